from __future__ import annotations

import ctypes
import json

import pytest

from llmdesk.core.base.errors import Problem
from llmdesk.core.machine.gpus import GpuInfo, GpuScan, scan_gpus
from tests.fakes.fake_nvml import H100, L4, MIB, FakeDevice, FakeNvml


def two_gpus(**l4_changes) -> FakeNvml:
    return FakeNvml([FakeDevice(**H100), FakeDevice(**{**L4, **l4_changes})],
                    driver_version="580.95.05", cuda_driver_version=13000)


def test_two_gpus_are_read_exactly():
    nvml = two_gpus()
    scan = scan_gpus(nvml)

    assert scan.problem is None
    assert scan.driver_version == "580.95.05"
    assert scan.cuda_driver_version == "13.0"
    assert scan.gpus == (
        GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", uuid="GPU-aaaa",
                memory_total_bytes=85_520_809_984, memory_free_bytes=84_447_068_160,
                memory_used_bytes=1_073_741_824, compute_capability=(9, 0),
                driver_version="580.95.05", cuda_driver_version="13.0",
                utilization_percent=37, temperature_c=41, power_draw_w=123.456, power_limit_w=700.0),
        GpuInfo(index=1, name="NVIDIA L4", uuid="GPU-bbbb",
                memory_total_bytes=24_152_899_584, memory_free_bytes=24_152_899_584,
                memory_used_bytes=0, compute_capability=(8, 9),
                driver_version="580.95.05", cuda_driver_version="13.0",
                utilization_percent=0, temperature_c=33, power_draw_w=16.0, power_limit_w=72.0),
    )
    assert nvml.init_count == 1 and nvml.shutdown_count == 1
    assert nvml.calls[-1] == "nvmlShutdown"


def test_unsupported_power_reading_gives_none_and_keeps_the_gpu():
    nvml = two_gpus(errors={"nvmlDeviceGetPowerUsage": FakeNvml.NVMLError_NotSupported()})
    scan = scan_gpus(nvml)

    assert scan.problem is None
    assert [gpu.name for gpu in scan.gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    assert scan.gpus[0].power_draw_w == 123.456
    assert scan.gpus[1].power_draw_w is None
    # The other optional readings of the same GPU are unaffected.
    assert (scan.gpus[1].power_limit_w, scan.gpus[1].temperature_c, scan.gpus[1].utilization_percent) == (72.0, 33, 0)


def test_every_optional_reading_failing_still_keeps_the_gpu():
    not_supported = FakeNvml.NVMLError_NotSupported()
    errors = {name: not_supported for name in (
        "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature",
        "nvmlDeviceGetPowerUsage", "nvmlDeviceGetEnforcedPowerLimit")}
    scan = scan_gpus(FakeNvml([FakeDevice(**H100, errors=errors)]))

    gpu = scan.gpus[0]
    assert (gpu.name, gpu.memory_total_bytes, gpu.compute_capability) == ("NVIDIA H100 80GB HBM3", 81559 * MIB, (9, 0))
    assert (gpu.utilization_percent, gpu.temperature_c, gpu.power_draw_w, gpu.power_limit_w) == (None, None, None, None)
    assert scan.problem is None


def test_bytes_names_from_old_bindings_are_decoded():
    device = FakeDevice(**{**H100, "name": b"NVIDIA H100 80GB HBM3", "uuid": b"GPU-aaaa"})
    scan = scan_gpus(FakeNvml([device], driver_version=b"535.104.05", cuda_driver_version=12020))

    assert (scan.gpus[0].name, scan.gpus[0].uuid) == ("NVIDIA H100 80GB HBM3", "GPU-aaaa")
    assert (scan.driver_version, scan.cuda_driver_version) == ("535.104.05", "12.2")


@pytest.mark.parametrize("number, text", [(13000, "13.0"), (12040, "12.4"), (12080, "12.8"), (11080, "11.8")])
def test_cuda_driver_version_is_formatted(number, text):
    assert scan_gpus(FakeNvml([FakeDevice()], cuda_driver_version=number)).cuda_driver_version == text


def test_cuda_version_falls_back_to_the_old_call():
    nvml = FakeNvml([FakeDevice()], cuda_driver_version=12040,
                    errors={"nvmlSystemGetCudaDriverVersion_v2": FakeNvml.NVMLError(13)})  # Function Not Found
    assert scan_gpus(nvml).cuda_driver_version == "12.4"


def test_missing_driver_versions_are_none_not_failures():
    nvml = FakeNvml([FakeDevice()], errors={
        "nvmlSystemGetDriverVersion": FakeNvml.NVMLError_Unknown(),
        "nvmlSystemGetCudaDriverVersion_v2": FakeNvml.NVMLError_Unknown(),
        "nvmlSystemGetCudaDriverVersion": FakeNvml.NVMLError_Unknown()})
    scan = scan_gpus(nvml)
    assert (scan.driver_version, scan.cuda_driver_version, len(scan.gpus), scan.problem) == (None, None, 1, None)


def test_library_not_found_means_no_driver():
    nvml = FakeNvml([FakeDevice()], errors={"nvmlInit": FakeNvml.NVMLError_LibraryNotFound()})
    scan = scan_gpus(nvml)

    assert scan.gpus == ()
    assert (scan.driver_version, scan.cuda_driver_version) == (None, None)
    assert scan.problem.title == "No NVIDIA driver found"
    assert "Install the NVIDIA driver" in scan.problem.fix
    assert "catalogue" in scan.problem.fix
    assert nvml.shutdown_count == 0  # never initialised, so nothing to shut down
    assert nvml.calls == ["nvmlInit"]


@pytest.mark.parametrize("error_name, title", [
    ("NVMLError_DriverNotLoaded", "The NVIDIA driver is not running"),
    ("NVMLError_LibRmVersionMismatch", "The NVIDIA driver was updated but not reloaded"),
    ("NVMLError_NoPermission", "Not allowed to read the GPUs"),
])
def test_init_failures_have_their_own_plain_problem(error_name, title):
    scan = scan_gpus(FakeNvml([FakeDevice()], errors={"nvmlInit": getattr(FakeNvml, error_name)()}))
    assert scan.gpus == ()
    assert scan.problem.title == title
    assert scan.problem.fix


def test_any_other_nvml_error_at_init_carries_its_message():
    scan = scan_gpus(FakeNvml([FakeDevice()], errors={"nvmlInit": FakeNvml.NVMLError_Unknown()}))
    assert scan.problem.title == "Could not start NVIDIA GPU detection"
    assert scan.problem.explanation == "NVML reported: Unknown Error."


def test_zero_devices():
    nvml = FakeNvml([])
    scan = scan_gpus(nvml)

    assert scan.gpus == ()
    assert scan.driver_version == "580.95.05"
    assert scan.problem.title == "No NVIDIA GPU found"
    assert nvml.shutdown_count == 1


def test_failing_device_count_is_a_problem_and_still_shuts_down():
    nvml = FakeNvml([FakeDevice()], errors={"nvmlDeviceGetCount": FakeNvml.NVMLError_Unknown()})
    scan = scan_gpus(nvml)

    assert scan.gpus == ()
    assert scan.problem.title == "Could not read the GPUs"
    assert scan.problem.explanation == "Unknown Error"
    assert nvml.shutdown_count == 1


def test_a_lost_gpu_is_reported_and_the_others_kept():
    lost = FakeDevice(**{**L4, "errors": {"nvmlDeviceGetMemoryInfo": FakeNvml.NVMLError_GpuIsLost()}})
    scan = scan_gpus(FakeNvml([FakeDevice(**H100), lost]))

    assert [gpu.name for gpu in scan.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert scan.problem.title == "Some GPUs could not be read"
    assert scan.problem.explanation == "1 of 2 GPUs could be read. GPU 1: GPU is lost."


def test_only_gpu_unreadable():
    lost = FakeDevice(errors={"nvmlDeviceGetHandleByIndex": FakeNvml.NVMLError_GpuIsLost()})
    scan = scan_gpus(FakeNvml([lost]))
    assert scan.gpus == ()
    assert scan.problem.title == "Could not read the GPUs"
    assert scan.problem.explanation == "GPU 0: GPU is lost."


def test_a_failing_shutdown_is_ignored():
    nvml = FakeNvml([FakeDevice(**H100)], errors={"nvmlShutdown": FakeNvml.NVMLError_Unknown()})
    scan = scan_gpus(nvml)
    assert [gpu.name for gpu in scan.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert scan.problem is None


def test_a_non_nvml_exception_never_escapes():
    class Broken(FakeNvml):
        def nvmlDeviceGetCount(self):
            raise RuntimeError("boom")

    nvml = Broken([FakeDevice()])
    scan = scan_gpus(nvml)
    assert scan.gpus == () and scan.problem.explanation == "boom"
    assert nvml.shutdown_count == 1


def test_gpu_info_as_dict_keys_and_values():
    info = scan_gpus(two_gpus()).gpus[0].as_dict()
    assert info == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-aaaa",
        "memory_total_bytes": 85_520_809_984,
        "memory_free_bytes": 84_447_068_160,
        "memory_used_bytes": 1_073_741_824,
        "compute_capability": "9.0",
        "compute_capability_major": 9,
        "compute_capability_minor": 0,
        "driver_version": "580.95.05",
        "cuda_driver_version": "13.0",
        "utilization_percent": 37,
        "temperature_c": 41,
        "power_draw_w": 123.456,
        "power_limit_w": 700.0,
        "memory_reserved_bytes": None,
    }


def test_scan_as_dict_is_json_ready():
    scan = scan_gpus(FakeNvml([]))
    as_dict = json.loads(json.dumps(scan.as_dict()))
    assert as_dict["gpus"] == []
    assert as_dict["driver_version"] == "580.95.05"
    assert as_dict["cuda_driver_version"] == "13.0"
    assert as_dict["problem"]["title"] == "No NVIDIA GPU found"
    assert set(as_dict) == {"gpus", "driver_version", "cuda_driver_version", "problem"}

    ok = json.loads(json.dumps(scan_gpus(two_gpus()).as_dict()))
    assert ok["problem"] is None and [gpu["index"] for gpu in ok["gpus"]] == [0, 1]


def _nvml_library_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        return True
    except OSError:
        return False


def test_real_pynvml_never_raises():
    scan = scan_gpus()
    assert isinstance(scan, GpuScan)
    assert scan.gpus or isinstance(scan.problem, Problem)
    json.dumps(scan.as_dict())


@pytest.mark.skipif(_nvml_library_present(), reason="this machine has an NVIDIA driver")
def test_real_pynvml_without_a_driver():
    scan = scan_gpus()
    assert scan.gpus == ()
    assert scan.problem.title == "No NVIDIA driver found"


def test_scanning_twice_initialises_and_shuts_down_each_time():
    nvml = two_gpus()
    assert scan_gpus(nvml) == scan_gpus(nvml)
    assert (nvml.init_count, nvml.shutdown_count) == (2, 2)


def test_reserved_memory_comes_from_nvml_v2_when_the_driver_has_it():
    with_v2 = FakeNvml(devices=[FakeDevice(memory_total=143771 * MIB, memory_used=615 * MIB,
                                           memory_reserved=615 * MIB)])
    gpu = scan_gpus(with_v2).gpus[0]
    assert gpu.memory_reserved_bytes == 615 * MIB
    assert gpu.as_dict()["memory_reserved_bytes"] == 615 * MIB
    assert scan_gpus(FakeNvml(devices=[FakeDevice()])).gpus[0].memory_reserved_bytes is None
