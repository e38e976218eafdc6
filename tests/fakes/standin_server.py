"""Run the stand-in vLLM server directly (no supervisor) for client-side tests and benches."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.fakes.vllm_standin.runtime import make_fake_runtime, serve_argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def start_standin(folder: Path, mode: str = "ok", *flags: str, env: dict | None = None,
                  served: str = "demo", max_model_len: int = 2048) -> tuple[subprocess.Popen, str]:
    """Start it in its own process group and wait for /health; returns (process, root URL)."""
    python = make_fake_runtime(folder, mode=mode, delay_scale=0.001)
    port = free_port()
    proc = subprocess.Popen(serve_argv(python, "/models/demo", "--served-model-name", served, "--host", "127.0.0.1",
                                       "--port", str(port), "--max-model-len", str(max_model_len), *flags),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "FAKE_VLLM_TOKEN_RATE": "400", **(env or {})})
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(root + "/health", timeout=1).status_code == 200:
                return proc, root
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    kill_group(proc)
    raise RuntimeError("stand-in vLLM did not become ready")


@contextlib.contextmanager
def running_standin(folder: Path, mode: str = "ok", *flags: str, **kwargs) -> Iterator[str]:
    proc, root = start_standin(folder, mode, *flags, **kwargs)
    try:
        yield root
    finally:
        kill_group(proc)


def finished_requests(root: str, reason: str, api_key: str | None = None) -> float:
    """vllm:request_success_total for one finish reason ("abort" counts requests the client dropped)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    text = httpx.get(root + "/metrics", headers=headers).text
    m = re.search(rf'^vllm:request_success_total{{[^}}]*finished_reason="{reason}"[^}}]*}} (\S+)', text, re.M)
    return float(m.group(1)) if m else 0.0


# A model folder `llmdesk serve` accepts (config.json and weights); the stand-in never reads it.
DEMO_MODEL = str(Path(__file__).resolve().parents[1] / "data" / "models" / "demo")
