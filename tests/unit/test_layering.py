"""llmdesk.core never imports Qt (or torch/vllm); the GUI never imports torch or vllm."""

import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llmdesk.core

FORBIDDEN_IN_CORE = ["PySide6", "shiboken6", "qasync", "pyqtgraph", "torch", "vllm", "transformers"]

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in FORBIDDEN:
            raise ImportError('forbidden import: ' + name)
sys.meta_path.insert(0, Block())
"""


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(llmdesk.core.__path__, "llmdesk.core."))


def test_every_core_module_imports_with_qt_forbidden():
    modules = core_modules()
    assert "llmdesk.core.machine.gpus" in modules and "llmdesk.core.base.settings" in modules
    code = f"FORBIDDEN = {FORBIDDEN_IN_CORE!r}\n{BLOCKER}\nimport importlib\n" + \
        "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_blocker_itself_works():
    code = f"FORBIDDEN = ['PySide6']\n{BLOCKER}\nimport PySide6.QtCore\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "forbidden import: PySide6" in result.stderr


def test_cli_commands_that_need_no_window_do_not_import_qt():
    code = ("import sys, llmdesk.cli as c; c.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_gui_start_paints_without_torch_or_vllm(tmp_path):
    env = dict(os.environ, LLMDESK_STARTUP_PROBE="1", QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-m", "llmdesk"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["heavy_modules"] == []
    assert probe["imported_early"] == []  # HTTP, Hub and chart libraries load when first used
    assert probe["rss_bytes"] > 10_000_000


# --- import-linter: the contracts in pyproject.toml ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """Runs lint-imports over the llmdesk package found first on PYTHONPATH (the checkout or a copy)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_every_core_package_is_in_the_layers():
    """The layers contract is exhaustive, so a new core package must be placed in the order (or it fails)."""
    packages = sorted(p.name for p in (ROOT / "llmdesk" / "core").iterdir() if (p / "__init__.py").exists())
    assert packages == ["base", "bench", "chat", "deploy", "doctor", "fit", "hub", "machine", "metrics", "server"]


@pytest.mark.parametrize("module, line, broken", [
    # a cycle inside a package, and the one that hub.py and model_source.py had before they were untangled
    ("core/hub/model_source.py", "import llmdesk.core.hub.variants", "no module of llmdesk imports itself"),
    # a lower layer reaching up, and two packages on one line that must stay independent
    ("core/fit/quant.py", "import llmdesk.core.server.launch", "core packages in layers"),
    ("core/metrics/window.py", "import llmdesk.core.chat.client", "core packages in layers"),
    ("core/base/units.py", "import PySide6.QtCore", "core never imports the front ends"),
    ("ui/context.py", "import llmdesk.ui.pages.chat", "the window is built from pages"),
    ("ui/pages/chat.py", "import llmdesk.commands.chat", "the window never imports the CLI"),
])
def test_the_contracts_catch_a_breach(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "llmdesk", tmp_path / "llmdesk", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "llmdesk" / module, "a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout.split(broken, 1)[1].splitlines()[0]
