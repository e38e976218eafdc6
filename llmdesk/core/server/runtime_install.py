"""How one install of vLLM runs: a base Python that can hold it, the installer's output streamed
line by line, and its failures told in plain words. What is installed where, and switching between
runtimes, is `runtimes.py`.

Qt-free and async: the subprocesses are read in a worker thread and ``on_line`` is called on the
event loop's thread (safe for widgets under qasync). Cancelling SIGKILLs the installer's whole
process group.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.server import runtime

STEP_CREATING = "creating the environment"
STEP_INSTALLING = "installing vLLM"
STEP_CHECKING = "checking"
STEP_DONE = "done"
STEP_FAILED = "failed"

MIN_PYTHON = (3, 10)
MAX_PYTHON_EXCLUSIVE = (3, 15)  # vLLM 0.26: Requires-Python <3.15,>=3.10
# Preferred first: the versions PyTorch and vLLM publish wheels for most reliably.
PYTHON_NAMES = ("python3.12", "python3.11", "python3.13", "python3.10", "python3.14", "python3",
                "python")
_TAIL_LINES = 40
_PROBE_CODE = ("import sys, platform, venv, ensurepip; "
               "print(platform.python_implementation(), *sys.version_info[:3])")

_NO_SPACE = ("No space left on device", "[Errno 28]")
_NO_INDEX = ("Could not find a version that satisfies", "No matching distribution found",
             "Failed to establish a new connection", "Max retries exceeded",
             "Temporary failure in name resolution", "Name or service not known",
             "NewConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
             "Connection refused", "Network is unreachable",
             # uv's words for the same
             "not found in the package registry", "was not found in the provided package locations",
             "Failed to fetch", "error sending request", "dns error", "Could not connect")


@dataclass(frozen=True)
class InstallProgress:
    step: str  # "creating the environment" | "installing vLLM" | "checking" | "done" | "failed"
    line: str | None = None  # one line of pip's (or venv's) output, as it came
    fraction: float | None = None  # rough, 0..1; None when unknown
    problem: Problem | None = None  # set with step "failed"


def default_log_path() -> Path:
    return paths.log_dir() / f"runtime-install-{time.strftime('%Y%m%d-%H%M%S')}.log"


def find_base_python(path_env: str | None = None) -> tuple[str | None, list[tuple[str, str]]]:
    """A CPython 3.10–3.14 with venv and ensurepip: (path, tried) or (None, tried).

    Not sys.executable in a packaged (frozen) app: that is the app itself, not a Python.
    Blocking (runs each candidate for a moment).
    """
    tried: list[tuple[str, str]] = []
    candidates: list[str] = []
    if not getattr(sys, "frozen", False) and sys.executable:
        candidates.append(sys.executable)
    for name in PYTHON_NAMES:
        found = shutil.which(name, path=path_env)
        if found:
            candidates.append(found)
    seen: set[str] = set()
    for python in candidates:
        key = os.path.normpath(os.path.abspath(python))
        if key in seen:
            continue
        seen.add(key)
        why = check_base_python(python)
        if not why:
            return python, tried
        tried.append((python, why))
    if not candidates:
        tried.append(("PATH", "no python3 found"))
    return None, tried


def check_base_python(python: str, timeout_s: float = 15.0) -> str:
    """"" when ``python`` can create the runtime's venv, else why not (plain words)."""
    try:
        result = subprocess.run([python, "-c", _PROBE_CODE], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout_s,
                                env=clean_env())
    except subprocess.TimeoutExpired:
        return f"did not answer within {timeout_s:g} s"
    except OSError as exc:
        return f"could not be run ({exc.strerror or exc})"
    if result.returncode != 0:
        if "venv" in result.stderr or "ensurepip" in result.stderr:
            return ("cannot create virtual environments (on Debian/Ubuntu install the "
                    "python3-venv package)")
        return "could not be run"
    words = result.stdout.split()
    if len(words) != 4 or not all(w.isdigit() for w in words[1:]):
        return "gave an unexpected answer"
    version = tuple(int(w) for w in words[1:3])
    shown = ".".join(words[1:])
    if words[0] != "CPython":
        return f"is {words[0]} {shown}, not CPython"
    if not MIN_PYTHON <= version < MAX_PYTHON_EXCLUSIVE:
        return f"is Python {shown}; vLLM {runtime.TESTED_VLLM} needs 3.10 to 3.14"
    return ""


def choose_python(python: str | None) -> str:
    if python:
        resolved = shutil.which(python) or python
        why = check_base_python(resolved)
        if why:
            raise BadInput(Problem(
                "This Python cannot hold vLLM",
                f"{python} {why}.",
                "Choose a CPython 3.10 to 3.14 (for example python3.12)."))
        return resolved
    found, tried = find_base_python()
    if found is None:
        looked = "; ".join(f"{where}: {why}" for where, why in tried)
        raise ProblemError(Problem(
            "No suitable Python found",
            f"vLLM {runtime.TESTED_VLLM} needs CPython 3.10 to 3.14 to create its environment, "
            f"and none was found. Looked at: {looked}.",
            "Install Python 3.12 (with venv support, e.g. the python3-venv package) and try "
            "again, or name one with --python."))
    return found


async def stream_lines(argv: list[str], on_line: Callable[[str], None],
                       env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``argv`` in its own session; each output line to ``on_line`` on the loop thread.

    Returns (exit code, last lines). Cancelling SIGKILLs the whole process group.
    """
    loop = asyncio.get_running_loop()
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env if env is not None else clean_env(),
                                start_new_session=(os.name == "posix"))
    except OSError as exc:
        return 127, [f"could not run {argv[0]}: {exc.strerror or exc}"]

    def deliver(line: str) -> None:
        tail.append(line)
        on_line(line)

    def pump() -> int:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            try:
                loop.call_soon_threadsafe(deliver, line)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass
        return proc.wait()

    try:
        code = await asyncio.to_thread(pump)
    except asyncio.CancelledError:
        runtime.kill_process_group(proc, timeout_s=10, drain=False)  # a thread reads its output
        raise
    await asyncio.sleep(0)  # let the last delivered lines run before the caller goes on
    return code, list(tail)




def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__",
                        "PYTHONSTARTUP")}
    env.update(PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               NO_COLOR="1")
    return env


def log_line(log: IO[str], line: str) -> None:
    try:
        log.write(line + "\n")
        log.flush()
    except OSError:
        pass


def os_problem(exc: OSError, target: Path, log_path: Path) -> Problem:
    if exc.errno == 28:
        return _disk_full(target, log_path)
    return Problem("Could not create the vLLM environment",
                   f"{exc.strerror or exc} ({exc.filename or target}).",
                   "Check the folder's permissions and free space, then try again.")


def _disk_full(target: Path, log_path: Path) -> Problem:
    return Problem(
        "The disk is full",
        f"Installing vLLM needs about {runtime.INSTALL_DISK_GB:g} GB free where the environment lives ({target}) and "
        "space for pip's temporary files; the disk ran out.",
        f"Free some space and try again (details in {log_path}).")


def failure_problem(doing: str, code: int, tail: list[str], spec: str, target: Path,
                     log_path: Path) -> Problem:
    text = "\n".join(tail)
    if any(marker in text for marker in _NO_SPACE):
        return _disk_full(target, log_path)
    if any(marker in text for marker in _NO_INDEX):
        errors = [line.strip() for line in tail if line.strip().startswith(("ERROR:", "error:", "×"))]
        detail = f" ({errors[0].split(':', 1)[-1].strip(' ×')})" if errors else ""
        return Problem(
            "vLLM could not be downloaded",
            f"The installer could not reach the package index, or found no {spec} there for this "
            f"Python{detail}.",
            "Check the internet connection and any proxy or mirror in pip's configuration, "
            f"then try again (details in {log_path}).")
    last = [line for line in tail if line.strip()][-8:]
    shown = "\n".join(last) if last else "(no output)"
    return Problem(
        f"Failed while {doing}",
        f"The command ended with exit code {code}. Its last lines:\n{shown}",
        f"The full output is in {log_path}.")
