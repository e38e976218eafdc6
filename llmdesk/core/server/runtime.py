"""Finding a Python that has vLLM, without ever importing vllm or torch in our process.

vLLM (with PyTorch and the CUDA libraries: INSTALL_SIZE) normally lives in its own virtual
environment and is only ever started as a subprocess: ``<python> -m vllm.entrypoints.cli.main
serve ...``. This module finds such an interpreter and reads its vLLM version from the package
metadata (``importlib.metadata`` reads the dist-info folder; it does not import vllm).

Everything here that probes an interpreter runs a subprocess and BLOCKS for up to ``timeout_s``
per candidate: call it from a worker thread (``asyncio.to_thread``), never on the GUI thread.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from llmdesk.core.base import paths
from llmdesk.core.base.errors import Problem

TESTED_VLLM = "0.26.0"
# What installing it takes, said the same way everywhere (measured for 0.26.0: shared reference qt.md 1c).
INSTALL_DOWNLOAD_GB, INSTALL_DISK_GB = 3.8, 7.8
INSTALL_SIZE = f"about {INSTALL_DOWNLOAD_GB:g} GB to download and {INSTALL_DISK_GB:g} GB on disk"
# What vLLM 0.26.0 pulls in on CPython 3.11 (pip download, 2026-12-06: 198 wheels, 3.85 GB; docs/benchmarks.md)
INSTALL_CONTENTS = "vLLM, PyTorch 2.11 (CUDA 13 build), the CUDA libraries and about 195 other packages"
DEFAULT_TIMEOUT_S = 15.0
# The PyPI vLLM 0.26 wheels are built against CUDA 13 (PyTorch 2.11.0+cu130): drivers 580 and newer.
CUDA_FOR_VLLM = {(0, 26): (13, 0)}

SOURCE_CONFIGURED = "configured"
SOURCE_APP = "app environment"
SOURCE_PATH = "PATH"
SOURCE_MANAGED = "managed"

_VERSION_QUERY = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"  # the package: argv[1]
_VERSION_RE = re.compile(r"^\d+(\.\d+)*[0-9A-Za-z.+\-]*$")
# pip/distlib and uv write this when the interpreter path is too long for a shebang line:
#   #!/bin/sh
#   '''exec' "/very/long/venv/bin/python" "$0" "$@"
#   ' '''
_SH_EXEC_RE = re.compile(r"""^'''exec' (?P<python>"[^"]+"|'[^']+'|\S+) "\$0" "\$@"\s*$""")


@dataclass(frozen=True)
class VllmRuntime:
    python: str  # the interpreter that runs `-m vllm.entrypoints.cli.main`
    vllm_version: str
    source: str  # "configured" | "app environment" | "PATH" | "managed"

    @property
    def is_tested(self) -> bool:
        """True for the 0.26.x series, the one llmdesk is verified with."""
        return _major_minor(self.vllm_version) == _major_minor(TESTED_VLLM)


@dataclass(frozen=True)
class RuntimeSearch:
    """The outcome of a search.

    ``runtime`` is what to use (None when nothing qualified). ``problem`` is None only when all is
    well: it is set when nothing was found, and ALSO when a configured interpreter is unusable
    even though another runtime was found and returned (the user's choice is being ignored, and
    they should hear about it).
    """

    runtime: VllmRuntime | None
    tried: tuple[tuple[str, str], ...]  # (where we looked, why it did not qualify)
    problem: Problem | None


CURRENT = "current"  # runtimes/current: a link to the managed runtime in use


def runtimes_dir() -> Path:
    """Where the managed runtimes live side by side (runtimes.py installs, switches and removes them)."""
    return paths.data_dir() / "runtimes"


def managed_runtime_dir() -> Path:
    """The managed runtime in use (runtimes/current), else the tested release's folder."""
    try:
        name = os.readlink(runtimes_dir() / CURRENT)
    except OSError:
        name = f"vllm-{TESTED_VLLM}"
    return runtimes_dir() / os.path.basename(name)


def package_version_of(python: str, package: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """The version of ``package`` installed for ``python`` (its dist-info, nothing imported), or None.
    Blocking, as vllm_version_of."""
    version, _why = _probe(python, timeout_s, package)
    return version


def missing_runtime_package(python: str, needed: tuple[str, str] | None) -> Problem | None:
    """A Problem when the runtime lacks (or has too old) a package the model's format needs, in the words
    vLLM would stop with; None when nothing is needed or it is there."""
    if needed is None:
        return None
    package, minimum = needed
    have = package_version_of(python, package)
    if have is not None and _version_tuple(have) >= _version_tuple(minimum):
        return None
    from llmdesk.core.fit.quant import missing_package_error

    found = f"it has {package} {have}" if have else f"it has no {package}"
    return Problem(f"vLLM's environment lacks {package} {minimum}",
                   f"This model's format needs {package} ≥ {minimum} beside vLLM, and {found}; vLLM would stop with "
                   f"“{missing_package_error(package, minimum)}”",
                   f"Install it into the runtime: {python} -m pip install '{package}>={minimum}' (or pick a variant "
                   "in another format on the Models page).")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def vllm_version_of(python: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """The vLLM version installed for ``python``, or None (absent, timed out, not runnable).

    Blocking: runs the interpreter in a subprocess for at most ``timeout_s`` seconds.
    """
    version, _why = _probe(python, timeout_s)
    return version


def find_vllm_runtime(configured_python: str = "", *, path_env: str | None = None,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> RuntimeSearch:
    """Look for a Python with vLLM, in order: the configured interpreter, the managed venv,
    this app's own environment, a ``vllm`` script on PATH (``path_env``; None = os.environ).

    A configured interpreter that does not qualify does not stop the search, but it is reported
    in ``tried`` and in ``problem``. Blocking (subprocesses, up to ``timeout_s`` each): run it in
    a worker thread.
    """
    tried: list[tuple[str, str]] = []
    seen: set[str] = set()
    configured_failure: tuple[str, str] | None = None

    if configured_python.strip():
        found, configured_failure = _try_configured(configured_python.strip(), path_env, timeout_s)
        if found is not None:
            return RuntimeSearch(found, (), None)
        tried.append(configured_failure)
        seen.add(_key(configured_failure[0]))

    candidates = (_try_managed, _try_app_environment, _try_path)
    for attempt in candidates:
        found = attempt(tried, seen, path_env, timeout_s)
        if found is not None:
            problem = _configured_problem(configured_failure, found) if configured_failure else None
            return RuntimeSearch(found, tuple(tried), problem)
    return RuntimeSearch(None, tuple(tried), _not_found_problem(tried, configured_failure))


# --- the places we look ---------------------------------------------------------------------

def _try_configured(configured: str, path_env: str | None,
                    timeout_s: float) -> tuple[VllmRuntime | None, tuple[str, str]]:
    python = _resolve_configured(configured, path_env)
    where = python
    if not os.path.exists(python):
        return None, (where, "does not exist")
    if os.path.isdir(python):
        return None, (where, "is a folder, not a Python interpreter (choose its bin/python)")
    if not os.access(python, os.X_OK):
        return None, (where, "is not executable")
    version, why = _probe(python, timeout_s)
    if version is None:
        return None, (where, why)
    return VllmRuntime(python, version, SOURCE_CONFIGURED), (where, "")


def _resolve_configured(configured: str, path_env: str | None) -> str:
    """A path as typed in Settings; a venv folder means its bin/python; a bare name is on PATH."""
    expanded = os.path.expanduser(configured)
    if os.sep not in expanded:
        on_path = shutil.which(expanded, path=path_env)
        if on_path:
            return on_path
    if os.path.isdir(expanded):
        venv_python = os.path.join(expanded, "bin", "python")
        if os.path.isfile(venv_python):
            return venv_python
    return os.path.abspath(expanded)


def _try_managed(tried: list[tuple[str, str]], seen: set[str], path_env: str | None,
                 timeout_s: float) -> VllmRuntime | None:
    python = str(managed_runtime_dir() / "bin" / "python")
    if _key(python) in seen:
        return None
    seen.add(_key(python))
    if not os.path.exists(python):
        tried.append((f"llmdesk's own vLLM environment ({managed_runtime_dir()})",
                      "not created yet"))
        return None
    version, why = _probe(python, timeout_s)
    if version is None:
        tried.append((python, why))
        return None
    return VllmRuntime(python, version, SOURCE_MANAGED)


def _try_app_environment(tried: list[tuple[str, str]], seen: set[str], path_env: str | None,
                         timeout_s: float) -> VllmRuntime | None:
    if getattr(sys, "frozen", False):
        tried.append(("this app's environment", "a packaged app cannot hold vLLM"))
        return None
    python = sys.executable
    if not python:
        tried.append(("this app's environment", "the interpreter path is unknown"))
        return None
    seen.add(_key(python))
    try:
        version = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        tried.append((f"this app's environment ({python})", "vLLM is not installed in it"))
        return None
    return VllmRuntime(python, version, SOURCE_APP)


def _try_path(tried: list[tuple[str, str]], seen: set[str], path_env: str | None,
              timeout_s: float) -> VllmRuntime | None:
    script = shutil.which("vllm", path=path_env)
    if script is None:
        tried.append(("a vllm command on PATH", "none found"))
        return None
    python, why = interpreter_of_script(script, path_env)
    if python is None:
        tried.append((script, why))
        return None
    if _key(python) in seen:
        tried.append((script, f"runs {python}, already checked above"))
        return None
    seen.add(_key(python))
    version, why = _probe(python, timeout_s)
    if version is None:
        tried.append((f"{script} (runs {python})", why))
        return None
    return VllmRuntime(python, version, SOURCE_PATH)


def interpreter_of_script(script: str, path_env: str | None = None) -> tuple[str | None, str]:
    """The Python a console script runs, read from its shebang line, or (None, why not)."""
    try:
        with open(script, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        return None, f"could not be read ({exc.strerror or exc})"
    if not head.startswith(b"#!"):
        return None, "is not a script with a #! line, so its Python cannot be told"
    lines = head.decode("utf-8", "replace").splitlines()
    try:
        words = shlex.split(lines[0][2:])
    except ValueError:
        words = lines[0][2:].split()
    if not words:
        return None, "has an empty #! line"
    program = words[0]
    if os.path.basename(program) == "env":
        names = [w for w in words[1:] if not w.startswith("-")]
        if not names:
            return None, f"has a #! line that names no interpreter ({lines[0].strip()})"
        found = shutil.which(names[0], path=path_env)
        if found is None:
            return None, f"runs {names[0]} through env, which is not on PATH"
        program = found
    if os.path.basename(program) in ("sh", "bash", "dash"):
        match = _SH_EXEC_RE.match(lines[1]) if len(lines) > 1 else None
        if match is None:
            return None, (f"starts with {lines[0].strip()}, so the Python it runs cannot be "
                          "told; set the interpreter in Settings → vLLM runtime")
        program = match.group("python").strip("'\"")
    if not os.path.isabs(program):
        return None, f"names a relative interpreter ({program})"
    if not os.path.exists(program):
        return None, f"runs {program}, which does not exist"
    return program, ""


# --- probing an interpreter -----------------------------------------------------------------

def _probe(python: str, timeout_s: float, package: str = "vllm") -> tuple[str | None, str]:
    """(version of `package`, "") or (None, why not). Kills the whole process group on timeout."""
    try:
        proc = subprocess.Popen(
            [python, "-c", _VERSION_QUERY, package],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=(os.name == "posix"),
        )
    except OSError as exc:
        return None, f"could not be run ({exc.strerror or exc})"
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_process_group(proc)
        return None, f"did not answer within {timeout_s:g} s"
    if proc.returncode != 0:
        if b"PackageNotFoundError" in err:
            return None, f"{'vLLM' if package == 'vllm' else package} is not installed in it"
        last = _last_line(err.decode("utf-8", "replace"))
        return None, f"failed (exit code {proc.returncode}{': ' + last if last else ''})"
    version = _last_line(out.decode("utf-8", "replace"))
    if not _VERSION_RE.match(version):
        return None, f"gave an answer that is not a version ({version[:60]!r})"
    return version, ""


def kill_process_group(proc: subprocess.Popen, *, timeout_s: float = 5, drain: bool = True) -> None:
    """SIGKILL a child started in its own session and anything it started (a shell wrapper's children
    hold the pipes), then reap it; `drain` reads what is left in its pipes (no other reader may)."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=timeout_s) if drain else proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def cuda_driver_problem(vllm_version: str, cuda_driver_version: str | None) -> Problem | None:
    """A Problem when the driver (which supports CUDA up to `cuda_driver_version`) is too old for the
    CUDA build of that vLLM release on PyPI; None when it is new enough or when this is not known."""
    needed = CUDA_FOR_VLLM.get(_major_minor(vllm_version) or (0, 0))
    try:
        have = tuple(int(p) for p in (cuda_driver_version or "").split("."))
    except ValueError:
        return None
    if needed is None or not have or have >= needed:
        return None
    shown = ".".join(map(str, needed))
    return Problem(f"The NVIDIA driver is too old for vLLM {vllm_version}",
                   f"vLLM {vllm_version} is built for CUDA {shown}; this driver supports CUDA {cuda_driver_version}.",
                   "Update the NVIDIA driver to version 580 or newer (it supports CUDA 13).")


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _key(path: str) -> str:
    # Not realpath: every venv's python is a symlink to the same base interpreter.
    return os.path.normpath(os.path.abspath(path))


# --- what to tell the user ------------------------------------------------------------------

def install_hint() -> str:
    venv = "python3 -m venv ~/vllm-venv && ~/vllm-venv/bin/pip install vllm==" + TESTED_VLLM
    hint = (f"Let llmdesk install vLLM {TESTED_VLLM} in its own environment (Install on the Server page, or "
            f"llmdesk runtime install), or create one yourself ({venv}) and choose "
            "~/vllm-venv/bin/python in Settings → vLLM runtime")
    if not getattr(sys, "frozen", False):
        hint += ', or install it into this environment: pip install "llmdesk[vllm]"'
    return hint + "."


def _configured_problem(failure: tuple[str, str], used: VllmRuntime) -> Problem:
    where, why = failure
    return Problem(
        "The configured vLLM runtime cannot be used",
        f"The interpreter chosen in Settings, {where}, {why}. llmdesk uses vLLM "
        f"{used.vllm_version} from {used.python} ({used.source}) instead.",
        "Correct or clear the interpreter in Settings → vLLM runtime.",
    )


def _not_found_problem(tried: list[tuple[str, str]], configured: tuple[str, str] | None) -> Problem:
    looked = "; ".join(f"{where}: {why}" for where, why in tried)
    lead = ""
    if configured is not None:
        lead = f"The interpreter chosen in Settings, {configured[0]}, {configured[1]}. "
    explanation = (
        f"{lead}llmdesk starts models with vLLM, which runs in its own Python environment "
        f"(with PyTorch and the CUDA libraries, {INSTALL_SIZE}). No Python with vLLM was found. "
        f"Looked at: {looked}."
    )
    fix = install_hint()
    if configured is not None:
        fix = f"Correct the interpreter in Settings → vLLM runtime, or: {fix[0].lower()}{fix[1:]}"
    return Problem("vLLM is not installed", explanation, fix)
