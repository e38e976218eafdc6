"""llmdesk.core never imports Qt (or torch/vllm); the GUI never imports torch or vllm."""

import json
import os
import pkgutil
import subprocess
import sys

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
    assert "llmdesk.core.gpus" in modules and "llmdesk.core.settings" in modules
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
    assert probe["rss_bytes"] > 10_000_000
