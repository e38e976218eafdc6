"""A stand-in for the pynvml module (nvidia-ml-py) with the same names, signatures and error classes.

    nvml = FakeNvml([FakeDevice(name="NVIDIA H100 80GB HBM3", ...)])
    nvml = FakeNvml(errors={"nvmlInit": FakeNvml.NVMLError_LibraryNotFound()})
    FakeDevice(errors={"nvmlDeviceGetPowerUsage": FakeNvml.NVMLError_NotSupported()})
    FakeDevice(power_usage_mw=300_000)          # its energy counter runs at 300 W from its creation
    FakeDevice(energy_mj=iter([5_000, 9_000]).__next__)   # counter readings given one by one

Like the real library, device calls before nvmlInit (or after nvmlShutdown) raise Uninitialized, and
initialisations are counted: NVML stays up until as many nvmlShutdown calls as nvmlInit calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

MIB = 1024**2

# The codes and messages of the real NVML (pynvml.NVML_ERROR_* and NVMLError._errcode_to_string).
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    value = NVML_ERROR_UNKNOWN

    def __init__(self, value: int | None = None):
        if value is not None:
            self.value = value
        super().__init__(self.value)

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


# pynvml builds one subclass per code; the subclasses take no meaningful arguments.
class NVMLError_Uninitialized(NVMLError):
    value = NVML_ERROR_UNINITIALIZED


class NVMLError_NotSupported(NVMLError):
    value = NVML_ERROR_NOT_SUPPORTED


class NVMLError_NoPermission(NVMLError):
    value = NVML_ERROR_NO_PERMISSION


class NVMLError_DriverNotLoaded(NVMLError):
    value = NVML_ERROR_DRIVER_NOT_LOADED


class NVMLError_LibraryNotFound(NVMLError):
    value = NVML_ERROR_LIBRARY_NOT_FOUND


class NVMLError_FunctionNotFound(NVMLError):
    value = NVML_ERROR_FUNCTION_NOT_FOUND


class NVMLError_GpuIsLost(NVMLError):
    value = NVML_ERROR_GPU_IS_LOST


class NVMLError_LibRmVersionMismatch(NVMLError):
    value = NVML_ERROR_LIB_RM_VERSION_MISMATCH


class NVMLError_Unknown(NVMLError):
    value = NVML_ERROR_UNKNOWN


@dataclass
class FakeDevice:
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    uuid: str | bytes = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total: int = 81559 * MIB
    memory_used: int = 0
    compute_capability: tuple[int, int] = (9, 0)
    utilization_gpu: int = 0
    temperature_c: int = 30
    power_usage_mw: int | Callable[[], int] = 70_000  # a callable is asked on every read
    power_limit_mw: int = 700_000
    errors: dict[str, BaseException] = field(default_factory=dict)  # NVML function name -> what it raises
    memory_reserved: int | None = None  # None: the driver has no v2 memory call
    # The total-energy counter (mJ): a number, a callable asked on every read, or None for a counter
    # that runs at power_usage_mw since `created` (meant for a constant power).
    energy_mj: int | Callable[[], int] | None = None
    created: float = field(default_factory=time.monotonic, compare=False, repr=False)

    @property
    def power_mw(self) -> int:
        return self.power_usage_mw() if callable(self.power_usage_mw) else self.power_usage_mw

    @property
    def total_energy_mj(self) -> int:
        if self.energy_mj is None:
            return int(self.power_mw * (time.monotonic() - self.created))
        return self.energy_mj() if callable(self.energy_mj) else self.energy_mj

    @property
    def memory_free(self) -> int:
        return self.memory_total - self.memory_used


# Two devices of different kinds with every figure set (keyword arguments for FakeDevice).
H100 = dict(name="NVIDIA H100 80GB HBM3", uuid="GPU-aaaa", memory_total=81559 * MIB,
            memory_used=1024 * MIB, compute_capability=(9, 0), utilization_gpu=37,
            temperature_c=41, power_usage_mw=123_456, power_limit_mw=700_000)
L4 = dict(name="NVIDIA L4", uuid="GPU-bbbb", memory_total=23034 * MIB, memory_used=0,
          compute_capability=(8, 9), utilization_gpu=0, temperature_c=33,
          power_usage_mw=16_000, power_limit_mw=72_000)


class FakeNvml:
    """Used in place of the module: scan_gpus(nvml=FakeNvml(...))."""

    NVML_TEMPERATURE_GPU = 0
    nvmlMemory_v2 = 0x02000028
    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_LibRmVersionMismatch = NVMLError_LibRmVersionMismatch
    NVMLError_Unknown = NVMLError_Unknown

    def __init__(self, devices: list[FakeDevice] | tuple[FakeDevice, ...] = (),
                 driver_version: str | bytes = "580.95.05", cuda_driver_version: int = 13000,
                 errors: dict[str, BaseException] | None = None):
        self.devices = list(devices)
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.errors = dict(errors or {})  # NVML function name -> what it raises, for system calls
        self.calls: list[str] = []
        self.initialised = False
        self.refcount = 0
        self.init_count = 0
        self.shutdown_count = 0

    # -- system --

    def nvmlInit(self) -> None:
        self._call("nvmlInit", needs_init=False)
        self.refcount += 1
        self.initialised = True
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")
        self.refcount -= 1
        self.initialised = self.refcount > 0
        self.shutdown_count += 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._call("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._call("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._call("nvmlSystemGetCudaDriverVersion_v2")
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.devices):
            raise NVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT
        device = self.devices[index]
        self._raise_for_device(device, "nvmlDeviceGetHandleByIndex")
        return device

    # -- per device; the handle is the FakeDevice itself --

    def nvmlDeviceGetName(self, handle: FakeDevice) -> str | bytes:
        return self._device_call(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: FakeDevice) -> str | bytes:
        return self._device_call(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetMemoryInfo(self, handle: FakeDevice, version: int | None = None) -> SimpleNamespace:
        device = self._device_call(handle, "nvmlDeviceGetMemoryInfo")
        if version == self.nvmlMemory_v2:
            if device.memory_reserved is None:
                raise NVMLError_NotSupported()  # older drivers: no v2 call
            return SimpleNamespace(total=device.memory_total, reserved=device.memory_reserved,
                                   free=device.memory_free, used=device.memory_used - device.memory_reserved)
        return SimpleNamespace(total=device.memory_total, free=device.memory_free, used=device.memory_used)

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeDevice) -> tuple[int, int]:
        return self._device_call(handle, "nvmlDeviceGetCudaComputeCapability").compute_capability

    def nvmlDeviceGetUtilizationRates(self, handle: FakeDevice) -> SimpleNamespace:
        device = self._device_call(handle, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=device.utilization_gpu, memory=0)

    def nvmlDeviceGetTemperature(self, handle: FakeDevice, sensor: int) -> int:
        device = self._device_call(handle, "nvmlDeviceGetTemperature")
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError(2)
        return device.temperature_c

    def nvmlDeviceGetPowerUsage(self, handle: FakeDevice) -> int:
        return self._device_call(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeDevice) -> int:
        return self._device_call(handle, "nvmlDeviceGetTotalEnergyConsumption").total_energy_mj

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeDevice) -> int:
        return self._device_call(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    # -- plumbing --

    def _call(self, function: str, needs_init: bool = True) -> None:
        self.calls.append(function)
        if function in self.errors:
            raise self.errors[function]
        if needs_init and not self.initialised:
            raise NVMLError_Uninitialized()

    def _device_call(self, handle: FakeDevice, function: str) -> FakeDevice:
        self._call(function)
        self._raise_for_device(handle, function)
        return handle

    @staticmethod
    def _raise_for_device(device: FakeDevice, function: str) -> None:
        if function in device.errors:
            raise device.errors[function]
