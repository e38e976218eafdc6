"""A vLLM process imported ahead of time, that the next Start takes over instead of starting Python afresh.

Of the 51 s a warm start of the Llama-3.1-8B shape took on an H100 (2026-12-07), 30.7 s were two imports
of vLLM: the API server's and the engine's (vLLM's CLI starts the engine with ``spawn``). The fork-engine
option removes the second; this removes the first from the time the user waits: after a server stops (or
when the app starts), the runtime's Python imports what ``vllm serve`` imports, then waits on its stdin.
Start sends it the command line and the environment as one JSON line and it runs vLLM's CLI in-process,
with the same pipes, process group and supervision as a server started afresh.

What it may not change afterwards: whatever is read while importing. CUDA_VISIBLE_DEVICES (torch may
count the GPUs at import) and everything else except the variables llmdesk sets per start are compared,
and a process imported under another environment is not used: the start is cold, as without it.
The price is the idle process's memory (measured by bench/startup_options.py on the GPU host).
Pure asyncio, no Qt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

READY = "llmdesk-preload: ready"
FAILED = "llmdesk-preload: failed"
# What `vllm serve` imports before it parses its arguments: vLLM's CLI imports its subcommands lazily inside
# main(), so importing the entry module alone would save nothing. Optional ones may be missing in another vLLM.
_MODULES = ("vllm.entrypoints.cli.main",)
_OPTIONAL = ("vllm.entrypoints.cli.serve", "vllm.entrypoints.openai.api_server")
# Set per start by llmdesk (launch.child_environment) and read by vLLM only when used, not at import.
PER_START_ENV = frozenset({"VLLM_API_KEY", "HF_TOKEN", "VLLM_SERVER_DEV_MODE", "VLLM_WORKER_MULTIPROC_METHOD",
                           "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "VLLM_USE_FLASHINFER_SAMPLER"})

# Run as `python -c`: the runtime's Python has no llmdesk to import.
PRELOAD_CODE = f"""
import importlib, json, os, sys
try:
    for name in {_MODULES!r}:
        importlib.import_module(name)
    for name in {_OPTIONAL!r}:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
except BaseException as exc:
    print({FAILED!r}, type(exc).__name__, exc, flush=True)
    sys.exit(3)
print({READY!r}, flush=True)
line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)
request = json.loads(line)
os.environ.clear()
os.environ.update(request["env"])
sys.argv = request["argv"]
sys.stdin = open(os.devnull)
sys.exit(importlib.import_module({_MODULES[0]!r}).main())
"""


def import_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The part of a start's environment that importing vLLM may read: it must be the same to use a preload."""
    return {k: v for k, v in env.items() if k not in PER_START_ENV}


@dataclass
class Preload:
    """One imported, waiting process (the leader of its own process group)."""

    python: str
    env: dict[str, str]
    proc: asyncio.subprocess.Process
    ready: asyncio.Future  # True once imported; False when it failed or exited first
    lines: list[str]
    reader: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def fits(self, python: str, env: Mapping[str, str]) -> bool:
        return self.alive and python == self.python and import_environment(env) == import_environment(self.env)


async def spawn(python: str, env: Mapping[str, str], *, preexec_fn=None, limit: int = 2 ** 20) -> Preload:
    """Start the runtime's Python importing vLLM; ``ready`` says when (or that it failed). Its output is read
    here only until it is ready: after that, whoever takes it reads the same pipe."""
    proc = await asyncio.create_subprocess_exec(
        python, "-c", PRELOAD_CODE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=dict(env), start_new_session=True, limit=limit, preexec_fn=preexec_fn)
    preload = Preload(python, dict(env), proc, asyncio.get_running_loop().create_future(), [])

    async def until_ready() -> None:
        try:
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith(READY):
                    preload.ready.set_result(True)
                    return
                preload.lines.append(line)  # warnings while importing: kept for the log of the start
                del preload.lines[:-200]
            log.info("the preloaded vLLM ended before it was ready: %s", " | ".join(preload.lines[-3:]))
        except Exception:  # noqa: BLE001 - a preload is an optimisation: never an error of its own
            log.warning("reading the preloaded vLLM failed", exc_info=True)
        if not preload.ready.done():
            preload.ready.set_result(False)

    preload.reader = asyncio.create_task(until_ready())
    return preload


async def take(preload: Preload, argv: Sequence[str], env: Mapping[str, str], *, wait_s: float) -> bool:
    """Hand a start to the preload: ``argv`` as ``python -m`` would have (the part after ``-m``), ``env`` the
    start's environment. Waits up to ``wait_s`` for it to finish importing. False: not usable (the caller
    starts afresh and should ``discard`` it)."""
    try:
        ready = await asyncio.wait_for(asyncio.shield(preload.ready), wait_s)
    except asyncio.TimeoutError:
        return False
    if not ready or not preload.alive:
        return False
    request = json.dumps({"argv": list(argv), "env": dict(env)}) + "\n"
    try:
        preload.proc.stdin.write(request.encode())
        await preload.proc.stdin.drain()
        preload.proc.stdin.close()
    except (ConnectionError, OSError):
        return False
    return True


async def discard(preload: Preload | None) -> None:
    """End an unused preload and its process group."""
    if preload is None or not preload.alive:
        return
    import signal

    try:
        os.killpg(preload.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        await asyncio.wait_for(preload.proc.wait(), 5)
    except asyncio.TimeoutError:
        log.warning("the preloaded vLLM (pid %s) did not end", preload.proc.pid)
