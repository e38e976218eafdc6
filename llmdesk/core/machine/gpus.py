"""What NVIDIA GPUs this machine has, read through NVML (the nvidia-ml-py package, imported as pynvml).

scan_gpus() never raises: a machine without a driver or a GPU is a normal case for a desktop app,
so the answer is an empty scan with a Problem that says why and what to do. GpuSampler reads the
live figures (utilisation, memory, temperature, power) again and again without re-initialising NVML.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Callable

from llmdesk.core.base.errors import Problem

PLAN_WITHOUT_GPU = "You can still plan for a GPU by picking one from the catalogue."


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    memory_total_bytes: int
    memory_free_bytes: int
    memory_used_bytes: int
    compute_capability: tuple[int, int]
    driver_version: str | None
    cuda_driver_version: str | None  # highest CUDA version the driver supports, e.g. "13.0"
    utilization_percent: int | None = None
    temperature_c: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    # Memory the driver keeps for itself (NVML v2); CUDA, and so vLLM, sees total − reserved.
    memory_reserved_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready. compute_capability is "9.0" for people; its _major/_minor ints are for comparisons."""
        major, minor = self.compute_capability
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_free_bytes": self.memory_free_bytes,
            "memory_used_bytes": self.memory_used_bytes,
            "compute_capability": f"{major}.{minor}",
            "compute_capability_major": major,
            "compute_capability_minor": minor,
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "utilization_percent": self.utilization_percent,
            "temperature_c": self.temperature_c,
            "power_draw_w": self.power_draw_w,
            "power_limit_w": self.power_limit_w,
            "memory_reserved_bytes": self.memory_reserved_bytes,
        }


@dataclass(frozen=True)
class GpuScan:
    gpus: tuple[GpuInfo, ...]
    driver_version: str | None
    cuda_driver_version: str | None
    # Why there are no GPUs; also set when some GPUs were found but one of them could not be read.
    problem: Problem | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpus": [gpu.as_dict() for gpu in self.gpus],
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "problem": self.problem.as_dict() if self.problem else None,
        }


def scan_gpus(nvml: Any = None) -> GpuScan:
    """Read every GPU NVML can see. nvml defaults to the pynvml module; tests pass a fake."""
    try:
        if nvml is None:
            import pynvml as nvml  # imported here so that importing llmdesk.core never loads NVML
    except ImportError as exc:
        return _no_gpus(Problem(
            "GPU detection is not installed",
            f"The Python package nvidia-ml-py could not be imported ({exc}).",
            f"Reinstall llmdesk with its dependencies. {PLAN_WITHOUT_GPU}"))
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return _no_gpus(_init_problem(nvml, exc))
    try:
        return _scan_initialised(nvml)
    except Exception as exc:
        return _no_gpus(Problem("Could not read the GPUs", nvml_message(exc),
                                f"Check that the NVIDIA driver works (run nvidia-smi). {PLAN_WITHOUT_GPU}"))
    finally:
        shutdown_quietly(nvml)  # the scan itself succeeded


class GpuSampler:
    """Live GPU figures, sampled every second or so: ``sample()`` in a worker thread, ``close()`` at the end.

        sampler = GpuSampler()
        scan = await asyncio.to_thread(sampler.sample)   # a GpuScan; never raises
        for gpu in scan.gpus: gpu.utilization_percent, gpu.memory_used_bytes, gpu.power_draw_w, ...
        sampler.close()

    scan_gpus() initialises NVML and shuts it down on every call, which costs tens of milliseconds
    with a real driver; the sampler initialises once and keeps the handles and the fixed facts (name,
    UUID, compute capability, driver), so a sample is a handful of NVML reads. NVML counts its
    initialisations, so a scan_gpus() elsewhere meanwhile does not shut the sampler's NVML down.
    When NVML cannot start, every sample is an empty scan with the same Problem until close()."""

    def __init__(self, nvml: Any = None):
        self._nvml = nvml  # None: pynvml, imported on the first sample
        self._lock = threading.Lock()
        self._initialised = False
        self._failed: GpuScan | None = None
        self._static: dict[int, tuple[Any, GpuInfo]] = {}  # index -> (handle, the first full read)
        self._count = 0
        self._driver: tuple[str | None, str | None] = (None, None)

    def sample(self) -> GpuScan:
        with self._lock:
            if self._failed is not None:
                return self._failed
            if not self._initialised:
                started = self._start()
                if started is not None:
                    self._failed = started
                    return started
            try:
                return self._sample_initialised()
            except Exception as exc:
                if not is_nvml_error(self._nvml, exc, "NVMLError_Uninitialized"):
                    return _no_gpus(Problem("Could not read the GPUs", nvml_message(exc),
                                            "Check that the NVIDIA driver works (run nvidia-smi)."))
            # Someone shut NVML down under us (a binding that does not count initialisations): once more.
            self._forget()
            started = self._start()
            if started is not None:
                return started
            try:
                return self._sample_initialised()
            except Exception as exc:
                return _no_gpus(Problem("Could not read the GPUs", nvml_message(exc),
                                        "Check that the NVIDIA driver works (run nvidia-smi)."))

    def close(self) -> None:
        """Release NVML; a later sample() starts it again."""
        with self._lock:
            self._shutdown()
            self._failed = None

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _shutdown(self) -> None:
        if self._initialised:
            shutdown_quietly(self._nvml)
        self._forget()

    def _forget(self) -> None:
        self._initialised = False
        self._static.clear()
        self._count = 0

    def _start(self) -> GpuScan | None:
        """Initialise NVML and read the fixed facts; a scan with the Problem when that fails."""
        try:
            if self._nvml is None:
                import pynvml
                self._nvml = pynvml
        except ImportError as exc:
            return _no_gpus(Problem(
                "GPU detection is not installed",
                f"The Python package nvidia-ml-py could not be imported ({exc}).",
                "Reinstall llmdesk with its dependencies."))
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            return _no_gpus(_init_problem(nvml, exc))
        self._initialised = True
        try:
            self._driver = (_optional(lambda: _text(nvml.nvmlSystemGetDriverVersion())),
                            _optional(lambda: _cuda_version_text(_cuda_driver_version_number(nvml))))
            self._count = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            self._shutdown()
            return _no_gpus(Problem("Could not read the GPUs", nvml_message(exc),
                                    "Check that the NVIDIA driver works (run nvidia-smi)."))
        return None

    def _sample_initialised(self) -> GpuScan:
        nvml = self._nvml
        gpus: list[GpuInfo] = []
        unreadable: list[str] = []
        for index in range(self._count):
            try:
                gpus.append(self._read(nvml, index))
            except Exception as exc:
                if is_nvml_error(nvml, exc, "NVMLError_Uninitialized"):
                    raise
                self._static.pop(index, None)  # a GPU that fell off the bus gets a new handle if it returns
                unreadable.append(f"GPU {index}: {nvml_message(exc)}")
        driver, cuda = self._driver
        return GpuScan(tuple(gpus), driver, cuda, _scan_problem(self._count, len(gpus), unreadable))

    def _read(self, nvml: Any, index: int) -> GpuInfo:
        known = self._static.get(index)
        if known is None:
            info = _read_gpu(nvml, index, *self._driver)
            self._static[index] = (nvml.nvmlDeviceGetHandleByIndex(index), info)
            return info
        handle, info = known
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        return replace(
            info,
            memory_total_bytes=int(memory.total),
            memory_free_bytes=int(memory.free),
            memory_used_bytes=int(memory.used),
            utilization_percent=_optional(lambda: int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
            temperature_c=_optional(lambda: int(nvml.nvmlDeviceGetTemperature(handle, sensor))),
            power_draw_w=_optional(lambda: _milliwatts_to_watts(nvml.nvmlDeviceGetPowerUsage(handle))),
            power_limit_w=_optional(lambda: _milliwatts_to_watts(nvml.nvmlDeviceGetEnforcedPowerLimit(handle))),
        )


def _scan_initialised(nvml: Any) -> GpuScan:
    driver_version = _optional(lambda: _text(nvml.nvmlSystemGetDriverVersion()))
    cuda_driver_version = _optional(lambda: _cuda_version_text(_cuda_driver_version_number(nvml)))
    count = nvml.nvmlDeviceGetCount()
    gpus: list[GpuInfo] = []
    unreadable: list[str] = []
    for index in range(count):
        try:
            gpus.append(_read_gpu(nvml, index, driver_version, cuda_driver_version))
        except Exception as exc:
            unreadable.append(f"GPU {index}: {nvml_message(exc)}")
    return GpuScan(tuple(gpus), driver_version, cuda_driver_version,
                   _scan_problem(count, len(gpus), unreadable))


def _read_gpu(nvml: Any, index: int, driver_version: str | None,
              cuda_driver_version: str | None) -> GpuInfo:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    temperature_sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
    return GpuInfo(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        memory_total_bytes=int(memory.total),
        memory_free_bytes=int(memory.free),
        memory_used_bytes=int(memory.used),
        compute_capability=(int(major), int(minor)),
        driver_version=driver_version,
        cuda_driver_version=cuda_driver_version,
        # Each optional reading stands alone: many GPUs answer NotSupported for some of them.
        utilization_percent=_optional(lambda: int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
        temperature_c=_optional(lambda: int(nvml.nvmlDeviceGetTemperature(handle, temperature_sensor))),
        power_draw_w=_optional(lambda: _milliwatts_to_watts(nvml.nvmlDeviceGetPowerUsage(handle))),
        power_limit_w=_optional(lambda: _milliwatts_to_watts(nvml.nvmlDeviceGetEnforcedPowerLimit(handle))),
        memory_reserved_bytes=_optional(
            lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2).reserved)),
    )


def _cuda_driver_version_number(nvml: Any) -> int:
    try:
        return nvml.nvmlSystemGetCudaDriverVersion_v2()
    except Exception:
        return nvml.nvmlSystemGetCudaDriverVersion()  # older drivers lack the _v2 call


def _cuda_version_text(number: int) -> str:
    """NVML encodes CUDA versions as 1000 * major + 10 * minor: 13000 -> "13.0", 12040 -> "12.4"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def _milliwatts_to_watts(milliwatts: int) -> float:
    return milliwatts / 1000


def _text(value: str | bytes) -> str:
    # Old bindings returned bytes; current ones decode for us.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _optional(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:
        return None


def _no_gpus(problem: Problem) -> GpuScan:
    return GpuScan(gpus=(), driver_version=None, cuda_driver_version=None, problem=problem)


def shutdown_quietly(nvml: Any) -> None:
    """nvmlShutdown, whatever it says: the process may be ending, and there is nothing to tell the user."""
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass


def nvml_message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def is_nvml_error(nvml: Any, exc: BaseException, class_name: str) -> bool:
    error_class = getattr(nvml, class_name, None)
    return isinstance(error_class, type) and isinstance(exc, error_class)


def _init_problem(nvml: Any, exc: BaseException) -> Problem:
    if is_nvml_error(nvml, exc, "NVMLError_LibraryNotFound"):
        return Problem(
            "No NVIDIA driver found",
            "The NVIDIA driver library (NVML) is not installed on this computer, so no NVIDIA GPU can be used.",
            "Install the NVIDIA driver (in a container, start it with GPU access, e.g. docker run --gpus all). "
            + PLAN_WITHOUT_GPU)
    if is_nvml_error(nvml, exc, "NVMLError_DriverNotLoaded"):
        return Problem(
            "The NVIDIA driver is not running",
            "The NVIDIA driver is installed but not loaded, so no NVIDIA GPU can be used.",
            "Restart the computer; if that does not help, reinstall the NVIDIA driver. " + PLAN_WITHOUT_GPU)
    if is_nvml_error(nvml, exc, "NVMLError_LibRmVersionMismatch"):
        return Problem(
            "The NVIDIA driver was updated but not reloaded",
            "The driver library and the driver running in the kernel are different versions, "
            "which usually happens after a driver update.",
            "Restart the computer. " + PLAN_WITHOUT_GPU)
    if is_nvml_error(nvml, exc, "NVMLError_NoPermission"):
        return Problem(
            "Not allowed to read the GPUs",
            "The NVIDIA driver refused access to the GPUs for this user.",
            "Check the permissions of /dev/nvidia* or ask the administrator. " + PLAN_WITHOUT_GPU)
    return Problem(
        "Could not start NVIDIA GPU detection",
        f"NVML reported: {nvml_message(exc)}.",
        "Check that the NVIDIA driver works (run nvidia-smi). " + PLAN_WITHOUT_GPU)


def _scan_problem(count: int, readable: int, unreadable: list[str]) -> Problem | None:
    if count == 0:
        return Problem(
            "No NVIDIA GPU found",
            "The NVIDIA driver is installed but reports no GPU on this computer.",
            "Check that the GPU is seated and powered and that nvidia-smi lists it. " + PLAN_WITHOUT_GPU)
    if unreadable:
        found = f"{readable} of {count} GPUs could be read. " if readable else ""
        return Problem(
            "Some GPUs could not be read" if readable else "Could not read the GPUs",
            found + "; ".join(unreadable) + ".",
            "Run nvidia-smi to check the GPU; a restart often clears a GPU that has fallen off the bus.")
    return None
