"""GPU tests: real vLLM on an NVIDIA host, through the app's own supervisor, client and parser.

They run on the GPU host prepared with `../shared/tools/gpu-host.sh` (vLLM in /srv/site, models in
/srv/models) and skip everywhere else, so the CPU suite stays green:

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 -m pytest tests/gpu -x

or `bash tests/gpu/host.sh models-small && bash tests/gpu/host.sh tests`, which first makes the models
the tests use (tiny, the Llama-3.2-1B shape, the Mistral-7B shape) and tars the report and logs into $OUT.
The tensor-parallel test needs two GPUs and skips on one.

LLMDESK_GPU_ENV names another env file, LLMDESK_GPU_MODELS another models folder. Results go to
`$OUT/gpu-report.json` (OUT unset: `.gpu-out/`), with the server logs and /metrics scrapes beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ENV_FILE = Path(os.environ.get("LLMDESK_GPU_ENV", "/srv/site/env.sh"))
MODELS = Path(os.environ.get("LLMDESK_GPU_MODELS", "/srv/models"))
ROOT = Path(__file__).resolve().parents[2]


def _gpu_works() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    if not ours:
        return
    why = None
    if not ENV_FILE.exists():
        why = f"no vLLM runtime env file ({ENV_FILE.name}; set LLMDESK_GPU_ENV)"
    elif not _gpu_works():
        why = "no NVIDIA GPU (nvidia-smi -L failed)"
    if why:
        for item in ours:
            item.add_marker(pytest.mark.skip(reason=why))
    for item in ours:
        item.add_marker(pytest.mark.gpu)
        # A real vLLM start on a fresh host takes 70-110 s before anything is tested (the suite's 120 s
        # default cut the LoRA and the sleep-mode tests there on 2026-12-07).
        item.add_marker(pytest.mark.timeout(1200))


def env_of(env_file: Path) -> dict[str, str]:
    """The environment after sourcing the file (PATH to `vllm`, PYTHONPATH, the flashinfer switch)."""
    raw = subprocess.run(["bash", "-c", f'source "{env_file}" >/dev/null && env -0'], capture_output=True,
                         check=True).stdout.decode()
    return dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)


@pytest.fixture(scope="session")
def gpu_env():
    """Apply the runtime's environment to this process, so every child the supervisor starts has it."""
    saved = dict(os.environ)
    os.environ.update(env_of(ENV_FILE))
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    yield dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def out_dir() -> Path:
    out = Path(os.environ.get("OUT") or ROOT / ".gpu-out")
    out.mkdir(parents=True, exist_ok=True)
    return out


class Report:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "results": {}}

    def add(self, name: str, **values) -> None:
        self.data["results"].setdefault(name, {}).update(values)
        self.path.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")


@pytest.fixture(scope="session")
def report(out_dir, gpu_env) -> Report:
    rep = Report(out_dir / "gpu-report.json")
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    rep.data["gpus"] = [g.as_dict() for g in scan.gpus]
    rep.data["vllm"] = subprocess.run(["python3", "-c", "import vllm; print(vllm.__version__)"],
                                      capture_output=True, text=True).stdout.strip()
    rep.add("session")
    return rep


def model_dir(name: str) -> Path:
    path = MODELS / name
    if not (path / "config.json").exists():
        pytest.skip(f"model {name} is not generated on this host ({path})")
    return path


@pytest.fixture(autouse=True)
def keep_server_logs(request, out_dir):
    """vLLM's own log of every server a test started (llmdesk's log folder of the test's home) goes to
    $OUT/logs/, pass or fail: an HTTP 500 says why only there."""
    yield
    from llmdesk.core.base import paths

    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)
    for log in sorted(paths.log_dir().glob("server-*.log")):
        shutil.copy(log, logs / f"{request.node.name[:60]}-{log.name}")
