"""`llmdesk doctor`: is this machine ready to host a model, and if not, what to do about it.

run_doctor() is blocking (NVML, subprocesses, disk): the CLI calls it directly, the GUI from a
worker thread. Every check says what it found in one line and, when something is wrong, one fix.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llmdesk
from llmdesk.core.base import paths
from llmdesk.core.base import settings as settings_module
from llmdesk.core.base.errors import Problem
from llmdesk.core.base.settings import Settings
from llmdesk.core.base.units import GIB, format_gib
from llmdesk.core.machine.display import WindowCheck, check_window
from llmdesk.core.machine.gpus import PLAN_WITHOUT_GPU, GpuScan, scan_gpus
from llmdesk.core.server.runtime import (TESTED_VLLM, RuntimeSearch, cuda_driver_problem, find_vllm_runtime,
                                         install_hint, managed_runtime_dir)

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: "✔", WARN: "!", FAIL: "✘"}

MIN_FREE_DISK_BYTES = 20 * GIB
MIN_COMPUTE_CAPABILITY = (7, 5)  # the PyPI vLLM 0.26.0 wheel has kernels for sm_75 and newer
PLAN_WITH_CATALOGUE = "You can still plan for a GPU from the catalogue: Plan for, on the Machine page, or llmdesk fit MODEL --gpu NAME."


@dataclass(frozen=True)
class Check:
    name: str  # "llmdesk", "Window", "NVIDIA driver", "GPUs", "vLLM runtime", "Hugging Face cache", "Settings"
    status: str  # "ok" | "warn" | "fail"
    summary: str  # one line, plain language
    fix: str | None = None
    details: dict = field(default_factory=dict)  # JSON-ready extras for --json

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "fix": self.fix, "details": self.details}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No check failed (warnings are allowed)."""
        return all(check.status != FAIL for check in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.as_dict() for check in self.checks]}

    def render_text(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0) + 2
        lines = []
        for check in self.checks:
            lines.append(f"{MARKS[check.status]} {check.name.ljust(width)}{check.summary}")
            if check.fix and check.status != OK:
                lines.append(f"    → {check.fix}")
        return "\n".join(lines)


def run_doctor(settings: Settings, *, gpu_scan: GpuScan | None = None,
               runtime_search: RuntimeSearch | None = None, window: WindowCheck | None = None) -> DoctorReport:
    """Run every check. Scans the GPUs and searches for vLLM when not given: blocking."""
    if window is None:
        window = check_window()
    if gpu_scan is None:
        gpu_scan = scan_gpus()
    if runtime_search is None:
        runtime_search = find_vllm_runtime(settings.runtime_python)
    return DoctorReport((
        check_llmdesk(),
        check_window_can_open(window),
        check_driver(gpu_scan),
        check_gpus(gpu_scan),
        check_runtime(runtime_search),
        check_model_cache(settings),
        check_settings(settings),
    ))


def check_llmdesk() -> Check:
    python = platform.python_version()
    where = f"{platform.system()} {platform.machine()}".strip()
    return Check("llmdesk", OK, f"{llmdesk.__version__} on Python {python} ({where})", details={
        "version": llmdesk.__version__,
        "python_version": python,
        "python_executable": sys.executable,
        "frozen": bool(getattr(sys, "frozen", False)),
        "platform": platform.platform(),
    })


def check_window_can_open(window: WindowCheck) -> Check:
    """What the app's window needs (PySide6 and the system libraries of Qt's platform plugin)."""
    details = {"platform": window.platform, "missing_libraries": list(window.missing_libraries),
               "packages": list(window.packages)}
    if window.problem is None:
        return Check("Window", OK, f"Qt can open the window (platform {window.platform})", details=details)
    # Without a display the window cannot open, but nothing is broken: every job runs headless.
    status = WARN if window.no_display else FAIL
    return Check("Window", status, f"{window.problem.title}: {window.problem.explanation}", window.problem.fix,
                 details)


def check_driver(scan: GpuScan) -> Check:
    name = "NVIDIA driver"
    details = {"driver_version": scan.driver_version, "cuda_driver_version": scan.cuda_driver_version}
    if scan.driver_version is None:
        if scan.problem is not None and not scan.gpus:
            # The GPUs check below says how to plan without a GPU; this one is about the driver.
            return Check(name, FAIL, f"{scan.problem.title}: {scan.problem.explanation}",
                         _without_plan_hint(scan.problem.fix) or None,
                         {**details, "problem": scan.problem.as_dict()})
        return Check(name, WARN, "NVML works but did not report the driver version", None, details)
    summary = scan.driver_version
    if scan.cuda_driver_version:
        summary += f" (CUDA {scan.cuda_driver_version})"
    too_old = cuda_driver_problem(TESTED_VLLM, scan.cuda_driver_version)
    if too_old is not None:
        return Check(name, WARN,
                     f"{summary}: vLLM {TESTED_VLLM} is built for CUDA 13, which this driver does not support",
                     too_old.fix, details)
    return Check(name, OK, summary, None, details)


def check_gpus(scan: GpuScan) -> Check:
    name = "GPUs"
    details: dict[str, Any] = {"count": len(scan.gpus), "gpus": [gpu.as_dict() for gpu in scan.gpus],
                               "problem": scan.problem.as_dict() if scan.problem else None}
    if not scan.gpus:
        if scan.driver_version is None and scan.problem is not None:
            summary = "none usable without the NVIDIA driver (see above)"
            fix = PLAN_WITH_CATALOGUE
        elif scan.problem is not None:
            summary = f"none: {scan.problem.title}"
            fix = _join(_without_plan_hint(scan.problem.fix), PLAN_WITH_CATALOGUE)
        else:
            summary = "none found"
            fix = PLAN_WITH_CATALOGUE
        return Check(name, FAIL, summary, fix, details)

    listed = "; ".join(
        f"{gpu.index}: {gpu.name}, {format_gib(gpu.memory_total_bytes)} "
        f"({format_gib(gpu.memory_free_bytes)} free), compute {gpu.compute_capability[0]}."
        f"{gpu.compute_capability[1]}"
        for gpu in scan.gpus)
    summary = f"{len(scan.gpus)} GPU{'s' if len(scan.gpus) != 1 else ''}: {listed}"
    old = [gpu for gpu in scan.gpus if tuple(gpu.compute_capability) < MIN_COMPUTE_CAPABILITY]
    if scan.problem is not None:
        return Check(name, WARN, f"{summary}. {scan.problem.title}: {scan.problem.explanation}",
                     _without_plan_hint(scan.problem.fix) or None, details)
    if old:
        names = ", ".join(f"GPU {g.index} ({g.name}, compute {g.compute_capability[0]}."
                          f"{g.compute_capability[1]})" for g in old)
        return Check(name, WARN, f"{summary}. vLLM {TESTED_VLLM} needs compute capability 7.5 "
                     f"(Turing) or newer: {names} cannot run it",
                     "Use a Turing (RTX 20xx, T4) or newer GPU for serving.", details)
    return Check(name, OK, summary, None, details)


def check_runtime(search: RuntimeSearch) -> Check:
    name = "vLLM runtime"
    details: dict[str, Any] = {
        "tested_version": TESTED_VLLM,
        "managed_dir": str(managed_runtime_dir()),
        "tried": [{"where": where, "why": why} for where, why in search.tried],
        "problem": search.problem.as_dict() if search.problem else None,
    }
    runtime = search.runtime
    if runtime is None:
        problem = search.problem or Problem("vLLM is not installed", "No Python with vLLM was found.",
                                            install_hint())
        looked = "; ".join(f"{where}: {why}" for where, why in search.tried)
        summary = f"{problem.title} (looked at {looked})" if looked else problem.title
        return Check(name, FAIL, summary, problem.fix, details)
    details.update({"python": runtime.python, "version": runtime.vllm_version,
                    "source": runtime.source, "is_tested": runtime.is_tested})
    summary = f"vLLM {runtime.vllm_version} in {runtime.python} ({runtime.source})"
    if search.problem is not None:
        return Check(name, WARN, f"{summary}. {search.problem.title}: {search.problem.explanation}",
                     search.problem.fix, details)
    if not runtime.is_tested:
        return Check(name, WARN, f"{summary}. llmdesk is verified with vLLM {TESTED_VLLM}",
                     f"Install vLLM {TESTED_VLLM} into that environment "
                     f"({runtime.python} -m pip install vllm=={TESTED_VLLM}) or use a separate one "
                     "for it; other releases may start with different flags or metrics.", details)
    return Check(name, OK, summary, None, details)


def check_model_cache(settings: Settings) -> Check:
    name = "Hugging Face cache"
    configured = bool(settings.models_dir.strip())
    location = Path(settings.models_dir).expanduser() if configured else paths.hf_cache_dir()
    exists = location.exists()
    details: dict[str, Any] = {"path": str(location), "configured": configured, "exists": exists,
                               "free_bytes": None, "min_free_bytes": MIN_FREE_DISK_BYTES,
                               "models": None}
    where_to_change = "choose another models folder in Settings" if configured else (
        "choose a models folder in Settings (or set HF_HUB_CACHE)")
    if exists and not location.is_dir():
        return Check(name, FAIL, f"{location} is a file, not a folder",
                     f"Move that file away or {where_to_change}.", details)
    existing = _nearest_existing(location)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        return Check(name, FAIL, f"{location}: cannot write there, so downloads would fail",
                     f"Fix the permissions of {existing or location} or {where_to_change}.", details)
    if exists:
        details["models"] = sum(1 for _ in location.glob("models--*"))
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        return Check(name, WARN, f"{location}: could not read the free disk space ({exc.strerror or exc})",
                     None, details)
    details["free_bytes"] = free
    state = f"{details['models']} model{'s' if details['models'] != 1 else ''}" if exists \
        else "not created yet"
    summary = f"{location} ({state}, {format_gib(free)} free)"
    if free < MIN_FREE_DISK_BYTES:
        return Check(name, WARN, f"{summary}: that is little room for models, a 7B model in BF16 "
                     "is about 15 GB", f"Free up disk space or {where_to_change}.", details)
    return Check(name, OK, summary, None, details)


def check_settings(settings: Settings) -> Check:
    name = "Settings"
    path = settings_module.settings_path()
    details: dict[str, Any] = {"config_dir": str(paths.config_dir()), "settings_file": str(path),
                               "settings_file_exists": path.exists(),
                               "data_dir": str(paths.data_dir()), "log_dir": str(paths.log_dir()),
                               "runtime_python": settings.runtime_python,
                               "models_dir": settings.models_dir}
    found = settings.problems()
    details["problems"] = list(found)
    where = str(path) if path.exists() else f"defaults (no {path} yet)"
    if found:
        return Check(name, WARN, f"{where}: " + "; ".join(found),
                     f"Fix these in Settings or edit {path}.", details)
    return Check(name, OK, where, None, details)


def _nearest_existing(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def _without_plan_hint(fix: str | None) -> str:
    return (fix or "").replace(PLAN_WITHOUT_GPU, "").strip()


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)
