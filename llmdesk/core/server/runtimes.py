"""llmdesk's managed vLLM runtimes: one virtual environment per vLLM version, side by side, one in use.

    data/runtimes/vllm-<version>/            a venv holding that vLLM (with PyTorch and CUDA libraries)
    data/runtimes/vllm-<version>.partial/    an install under way, or one a dropped network cut short:
                                             the next install of that version continues from it
    data/runtimes/current                    a link to the runtime in use, switched with one rename
    data/runtimes/.install.lock              held by the one install that may run at a time

An install never touches the runtime in use until the new one is complete and `import vllm` has
worked in it (in a subprocess: the app never imports vLLM): it fills `.partial`, checks it, renames
it into place (the old copy of the same version is kept until the rename succeeded and put back if
it failed) and only then switches `current`. uv (the PyPI package) creates and fills the venvs;
pip inside the venv is the fallback (a packaged app has no uv unless one is on PATH). Downloads are
cached (uv's cache under llmdesk's cache folder), so a retry after a network drop fetches only
what was missing. `wheels=` installs from a folder of wheels, for machines without network.

Blocking parts run in threads; the install itself is async (`runtime_install.stream_lines`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmdesk.core.base import locks, paths
from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.base.units import GIB
from llmdesk.core.server import runtime
from llmdesk.core.server.runtime import CURRENT, runtimes_dir
from llmdesk.core.server.runtime_install import (STEP_CHECKING, STEP_CREATING, STEP_DONE, STEP_FAILED,
                                                 STEP_INSTALLING, InstallProgress, choose_python, clean_env,
                                                 default_log_path, failure_problem, log_line, os_problem,
                                                 stream_lines)

PARTIAL_SUFFIX = ".partial"
_VERSION = re.compile(r"\d+(\.\d+){1,3}((a|b|rc)\d+|\.post\d+|\.dev\d+)?")
HEALTH_TIMEOUT_S = 300.0  # `import vllm` imports torch and CUDA: 17–40 s seen on a fresh GPU host
# vLLM imports PyTorch and CUDA itself; the versions are said when they are there
HEALTH_CODE = ("import vllm, importlib.metadata as m\n"
               "try:\n    import torch; extra = f'torch {torch.__version__}, CUDA {torch.version.cuda}'\n"
               "except ImportError:\n    extra = 'no torch'\n"
               "print(f\"vLLM {m.version('vllm')}, {extra}\")")


@dataclass(frozen=True)
class ManagedRuntime:
    version: str
    path: Path
    in_use: bool = False

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def as_dict(self) -> dict:
        return {"version": self.version, "path": str(self.path), "python": str(self.python), "in_use": self.in_use}


def runtime_dir(version: str) -> Path:
    return runtimes_dir() / f"vllm-{check_version(version)}"


def check_version(text: str) -> str:
    """A vLLM release number (0.26.0, 0.27.0rc1, ...): it names a folder and a pip requirement."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise BadInput(Problem(f"Not a vLLM version: {text!r}", "A version is a release number such as 0.26.0.",
                               f"llmdesk is tested with {runtime.TESTED_VLLM}."))
    return text


# --- what is there ----------------------------------------------------------------------------

def list_runtimes() -> list[ManagedRuntime]:
    """The complete managed runtimes, oldest version first. Fast: reads folder names only."""
    folder = runtimes_dir()
    if not folder.is_dir():
        return []
    in_use = runtime.managed_runtime_dir().name  # before any switch: the tested release's folder
    found = []
    for path in folder.iterdir():
        version = path.name.removeprefix("vllm-")
        if (path.name.startswith("vllm-") and _VERSION.fullmatch(version) and not path.is_symlink()
                and (path / "bin" / "python").exists()):
            found.append(ManagedRuntime(version, path, in_use == path.name))
    return sorted(found, key=lambda r: [int(p) if p.isdigit() else p for p in re.split(r"[.]", r.version)])


def current_runtime() -> ManagedRuntime | None:
    return next((r for r in list_runtimes() if r.in_use), None)


def use_runtime(version: str) -> ManagedRuntime:
    """Make `version` the runtime in use: one rename of a new link over the old, so a reader sees the
    old or the new one, never none."""
    target = runtime_dir(version)
    if not (target / "bin" / "python").exists():
        installed = ", ".join(r.version for r in list_runtimes()) or "none"
        raise BadInput(Problem(f"vLLM {version} is not installed", f"Managed runtimes: {installed}.",
                               f"Install it first: llmdesk runtime install {version}"))
    link = runtimes_dir() / CURRENT
    tmp = runtimes_dir() / f".{CURRENT}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, link)
    return ManagedRuntime(version, target, True)


def remove_runtime(version: str) -> int:
    """Delete a managed runtime that is not in use; returns the bytes freed."""
    target = runtime_dir(version)
    if not target.exists():
        raise BadInput(Problem(f"vLLM {version} is not installed", f"There is no {target}.", None))
    current = current_runtime()
    if current is not None and current.version == version:
        others = [r.version for r in list_runtimes() if not r.in_use]
        raise BadInput(Problem(f"vLLM {version} is the runtime in use", "Removing it would leave llmdesk without "
                               "the vLLM it starts servers with.",
                               f"Switch first: llmdesk runtime use {others[0]}" if others
                               else "Install another version first, or keep this one."))
    size = _folder_bytes(target)
    trash = target.with_name(f".removing-{target.name}-{os.getpid()}")
    os.replace(target, trash)  # gone from the list at once, even if deleting takes a while
    shutil.rmtree(trash, ignore_errors=True)
    return size


def health_check(python: Path, timeout_s: float = HEALTH_TIMEOUT_S) -> tuple[str | None, str]:
    """Run `import vllm` in the runtime (never here): ("vLLM x, torch y, CUDA z", "") or (None, why)."""
    try:
        done = subprocess.run([str(python), "-c", HEALTH_CODE], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout_s, env=clean_env(), start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, f"import vllm did not finish within {timeout_s:g} s"
    except OSError as exc:
        return None, f"could not be run ({exc.strerror or exc})"
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or [f"exit code {done.returncode}"]
        return None, f"import vllm failed: {last[0].strip()}"
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "", ""


# --- installing -------------------------------------------------------------------------------

def find_uv() -> str | None:
    """uv from the app's environment (the PyPI package), else one on PATH; None: pip is used."""
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin

        return find_uv_bin()
    return shutil.which("uv")


def check_wheel_folder(wheels: Path, version: str) -> Path:
    wheels = Path(wheels).expanduser()
    if not wheels.is_dir():
        raise BadInput(Problem(f"No folder {wheels}", "--wheels names a folder of .whl files.", None))
    if not list(wheels.glob(f"vllm-{version}-*.whl")) + list(wheels.glob(f"vllm-{version}.tar.gz")):
        found = sorted(p.name for p in wheels.glob("vllm-*.whl"))
        raise BadInput(Problem(f"No vLLM {version} wheel in {wheels}",
                               f"The folder holds {', '.join(found[:3])}." if found else
                               "The folder holds no vLLM wheel at all.",
                               f"Download them on a machine with network: pip download vllm=={version} -d FOLDER"))
    return wheels


def check_disk_for_runtime(version: str, wheels: Path | None) -> None:
    folder = runtimes_dir()
    free = paths.free_bytes(folder) or 0
    needed = runtime.INSTALL_DISK_GB * 1e9 * (1.0 if wheels else 1.5)  # and the downloads, cached
    partial = _folder_bytes(runtime_dir(version).with_name(runtime_dir(version).name + PARTIAL_SUFFIX))
    if free + partial < needed:
        raise ProblemError(Problem(
            "Not enough disk space for vLLM",
            f"vLLM {version} with PyTorch and CUDA needs about {needed / GIB:.0f} GiB "
            f"({runtime.INSTALL_SIZE}); {free / GIB:.1f} GiB are free on the disk that holds {folder}.",
            "Free some space (llmdesk runtime remove removes runtimes you no longer use), then try again."))


async def install_runtime(version: str = runtime.TESTED_VLLM, *, wheels: Path | None = None, use: bool = True,
                          python: str | None = None, on_progress: Callable[[InstallProgress], None] | None = None,
                          log_path: Path | None = None, check_disk: bool = True,
                          uv: str | None | bool = True, extra_args: Sequence[str] = (),
                          check_driver: bool = True) -> ManagedRuntime:
    """Install vLLM `version` as a managed runtime and (with `use`) switch to it. ProblemError on
    failure, with the runtime in use untouched. `uv`: True finds it, False forces pip, a path names it.
    `extra_args` go to the installer before the requirement (e.g. --index-url for a mirror).
    `check_driver`: refuse a release whose CUDA build the NVIDIA driver cannot run (no GPU: no check)."""
    check_version(version)
    if check_driver:
        from llmdesk.core.machine.gpus import scan_gpus

        scan = await asyncio.to_thread(scan_gpus)
        too_old = runtime.cuda_driver_problem(version, scan.cuda_driver_version) if scan.gpus else None
        if too_old is not None:
            raise ProblemError(too_old)
    report = on_progress or (lambda _p: None)
    if wheels is not None:
        wheels = check_wheel_folder(wheels, version)
    log_path = Path(log_path) if log_path is not None else default_log_path()
    paths.private_dir(log_path.parent)
    try:
        runtimes_dir().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProblemError(os_problem(exc, runtimes_dir(), log_path)) from exc
    busy = Problem("Another vLLM install is running", "llmdesk installs one runtime at a time.",
                   "Wait for it to finish (or stop it), then try again.")
    with locks.exclusive(runtimes_dir() / ".install.lock", 0, busy), open(log_path, "a", encoding="utf-8") as log:
        if check_disk:
            await asyncio.to_thread(check_disk_for_runtime, version, wheels)
        uv_bin = (find_uv() if uv is True else (uv or None))
        log_line(log, f"# llmdesk: installing vLLM {version} with "
                      f"{'uv ' + uv_bin if uv_bin else 'uv from pip' if uv is True else 'pip'}"
                      + (f" from {wheels}" if wheels else ""))
        try:
            installed = await _install(version, wheels, python, uv_bin, uv is True, list(extra_args), report, log,
                                       log_path)
        except ProblemError as exc:
            log_line(log, f"# failed: {exc.problem.title}: {exc.problem.explanation}")
            report(InstallProgress(STEP_FAILED, None, None, exc.problem))
            raise
        except asyncio.CancelledError:
            log_line(log, "# cancelled: the next install continues from what is there")
            raise
        if use:
            installed = use_runtime(version)
        log_line(log, f"# done: {installed.path}" + (" (in use)" if use else ""))
    report(InstallProgress(STEP_DONE, None, 1.0, None))
    return installed


async def _install(version: str, wheels: Path | None, python: str | None, uv_bin: str | None, fetch_uv: bool,
                   extra: list[str], report: Callable[[InstallProgress], None], log, log_path: Path) -> ManagedRuntime:
    final = runtime_dir(version)
    staging = final.with_name(final.name + PARTIAL_SUFFIX)
    env = {**clean_env(), "UV_CACHE_DIR": str(paths.cache_dir() / "uv"), "UV_NO_PROGRESS": "1"}

    def line_to(step: str, fraction: Callable[[str], float | None]) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            log_line(log, line)
            report(InstallProgress(step, line, fraction(line), None))
        return on_line

    report(InstallProgress(STEP_CREATING, None, 0.0, None))
    base = await asyncio.to_thread(choose_python, python)
    staged_python = staging / "bin" / "python"
    if not staged_python.exists():
        shutil.rmtree(staging, ignore_errors=True)
        create = ([uv_bin, "venv", "--relocatable", "--seed", "--python", base, str(staging)] if uv_bin
                  else [base, "-m", "venv", str(staging)])
        log_line(log, "$ " + " ".join(create))
        code, tail = await stream_lines(create, line_to(STEP_CREATING, lambda _l: None), env=env)
        if code != 0:
            raise ProblemError(failure_problem("creating the environment", code, tail, f"vllm=={version}",
                                                staging, log_path))
    else:
        line_to(STEP_CREATING, lambda _l: None)(f"continuing the install in {staging}")

    source = list(extra)
    if wheels:
        source += ([] if "--no-index" in source else ["--no-index"]) + ["--find-links", str(wheels)]
    if uv_bin is None and fetch_uv:
        uv_bin = await _uv_into(staging, source, env, line_to(STEP_CREATING, lambda _l: None), log)
    if uv_bin:
        command = [uv_bin, "pip", "install", "--python", str(staged_python), *source, f"vllm=={version}"]
    else:
        command = [str(staged_python), "-m", "pip", "install", "--progress-bar", "off", "--no-color", *source,
                   f"vllm=={version}"]
    progress = InstallFraction()
    log_line(log, "$ " + " ".join(command))
    report(InstallProgress(STEP_INSTALLING, None, 0.05, None))
    code, tail = await stream_lines(command, line_to(STEP_INSTALLING, progress), env=env)
    if code != 0:
        raise ProblemError(failure_problem("installing vLLM", code, tail, f"vllm=={version}", staging, log_path))

    report(InstallProgress(STEP_CHECKING, "import vllm in the new runtime…", 0.97, None))
    said, why = await asyncio.to_thread(health_check, staged_python)
    log_line(log, f"# health check: {said or why}")
    if said is None:
        raise ProblemError(Problem(
            f"vLLM {version} was installed but does not start",
            f"In the new runtime ({staging}) {why}. The runtime in use was not changed.",
            f"The details are in {log_path}; a driver too old for this vLLM's CUDA build is a common cause "
            "(llmdesk doctor)."))
    report(InstallProgress(STEP_CHECKING, f"vLLM, PyTorch, CUDA: {said}", 0.99, None))
    await asyncio.to_thread(_put_in_place, staging, final)
    return ManagedRuntime(version, final, False)


async def _uv_into(staging: Path, source: list[str], env: dict[str, str], on_line, log) -> str | None:
    """No uv here (a packaged app carries none): pip puts uv into the new runtime itself, and uv fills
    it, about three times faster than pip would. None when that fails (offline without a uv wheel):
    pip does the whole install then."""
    command = [str(staging / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off", "--no-color",
               *source, "uv"]
    log_line(log, "$ " + " ".join(command))
    code, _tail = await stream_lines(command, on_line, env=env)
    uv = staging / "bin" / "uv"
    if code == 0 and uv.exists():
        return str(uv)
    log_line(log, "# uv could not be installed into the runtime; pip installs vLLM")
    return None


def _put_in_place(staging: Path, final: Path) -> None:
    """staging -> final; a copy of the same version already there is put back if the rename fails."""
    if final.exists() and not (final / "pyvenv.cfg").exists():
        raise ProblemError(Problem("The runtime folder holds something else",
                                   f"{final} exists and is not a virtual environment, so llmdesk will not replace it.",
                                   "Move or delete that folder, then try again."))
    old = final.with_name(f".old-{final.name}-{os.getpid()}-{int(time.time())}")
    had_old = final.exists()
    if had_old:
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except OSError:
        if had_old:
            os.replace(old, final)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


class InstallFraction:
    """A rough 0..1 from the installer's lines. uv announces each large download with its size
    ("Downloading torch (800.0MiB)") and ends it with " Downloaded torch": the bytes of the finished
    ones over the bytes announced carry most of the bar; pip's "Collecting"/"Downloading" lines count
    one each against the packages expected."""

    _SIZE = re.compile(r"^Downloading (\S+) \(([\d.]+)\s*([KMG]i?B)\)$")
    _UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1e3, "MB": 1e6, "GB": 1e9}

    def __init__(self, expected_packages: int = 198) -> None:
        self.total, self.seen, self.value = expected_packages, 0, 0.05
        self.announced: dict[str, float] = {}
        self.fetched = 0.0

    def __call__(self, line: str) -> float:
        text = line.strip()
        if match := re.match(r"Resolved (\d+) packages?", text):
            self.total, self.value = max(1, int(match.group(1))), max(self.value, 0.1)
        elif match := self._SIZE.match(text):
            self.announced[match.group(1)] = float(match.group(2)) * self._UNITS[match.group(3)]
        elif text.startswith("Downloaded ") and self.announced:
            self.fetched += self.announced.get(text.split()[1], 0.0)
            share = self.fetched / sum(self.announced.values())
            self.value = max(self.value, min(0.85, 0.1 + 0.75 * share))
        elif text.startswith(("Collecting ", "Downloading ", "Using cached ")):
            self.seen += 1
            self.value = max(self.value, min(0.85, 0.1 + 0.75 * self.seen / self.total))
        elif text.startswith(("Prepared ", "Installing collected packages")):
            self.value = max(self.value, 0.9)
        elif text.startswith(("Installed ", "Successfully installed")):
            self.value = max(self.value, 0.95)
        return self.value


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


__all__ = ["ManagedRuntime", "check_version", "current_runtime", "health_check", "install_runtime", "list_runtimes",
           "remove_runtime", "runtime_dir", "runtimes_dir", "use_runtime"]
