"""GpuSampler: live GPU figures with NVML kept initialised between samples (tests/fakes/fake_nvml.py)."""

from __future__ import annotations

import threading

from llmdesk.core.machine.gpus import GpuSampler, scan_gpus
from tests.fakes.fake_nvml import H100, L4, MIB, FakeDevice, FakeNvml


def two_gpus() -> FakeNvml:
    return FakeNvml([FakeDevice(**H100), FakeDevice(**L4)])


def test_first_sample_matches_a_scan_and_nvml_stays_initialised():
    nvml = two_gpus()
    expected = scan_gpus(two_gpus())
    sampler = GpuSampler(nvml)

    scan = sampler.sample()

    assert scan == expected
    assert nvml.initialised and nvml.init_count == 1 and nvml.shutdown_count == 0
    sampler.close()
    assert not nvml.initialised and nvml.shutdown_count == 1


def test_later_samples_read_only_the_live_figures():
    nvml = two_gpus()
    sampler = GpuSampler(nvml)
    sampler.sample()
    h100 = nvml.devices[0]
    h100.utilization_gpu, h100.memory_used, h100.temperature_c = 98, 70_000 * MIB, 66
    h100.power_usage_mw, h100.power_limit_mw = 612_500, 650_000
    nvml.calls.clear()

    gpu = sampler.sample().gpus[0]

    assert (gpu.utilization_percent, gpu.temperature_c, gpu.power_draw_w, gpu.power_limit_w) == (98, 66, 612.5, 650.0)
    assert gpu.memory_used_bytes == 70_000 * MIB
    assert gpu.memory_free_bytes == (81559 - 70_000) * MIB
    assert (gpu.name, gpu.uuid, gpu.compute_capability, gpu.driver_version) == (
        "NVIDIA H100 80GB HBM3", "GPU-aaaa", (9, 0), "580.95.05")
    # No re-initialisation and none of the fixed facts asked again.
    assert not {"nvmlInit", "nvmlShutdown", "nvmlDeviceGetName", "nvmlDeviceGetUUID",
                "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetCount"} & set(nvml.calls)
    assert nvml.init_count == 1
    sampler.close()


def test_a_scan_elsewhere_does_not_shut_the_sampler_down():
    """NVML counts nvmlInit calls: scan_gpus' shutdown leaves the sampler's initialisation standing."""
    nvml = two_gpus()
    sampler = GpuSampler(nvml)
    sampler.sample()

    assert len(scan_gpus(nvml).gpus) == 2
    scan = sampler.sample()

    assert scan.problem is None and len(scan.gpus) == 2
    assert nvml.initialised and nvml.refcount == 1
    sampler.close()
    assert nvml.refcount == 0


def test_nvml_shut_down_underneath_is_started_again():
    nvml = two_gpus()
    sampler = GpuSampler(nvml)
    sampler.sample()
    nvml.refcount, nvml.initialised = 0, False  # a binding that does not count initialisations

    scan = sampler.sample()

    assert scan.problem is None and len(scan.gpus) == 2
    assert nvml.init_count == 2


def test_no_driver_gives_an_empty_sample_with_the_problem_and_never_raises():
    nvml = FakeNvml(errors={"nvmlInit": FakeNvml.NVMLError_LibraryNotFound()})
    sampler = GpuSampler(nvml)

    first, second = sampler.sample(), sampler.sample()

    assert first.gpus == () and first.problem.title == "No NVIDIA driver found"
    assert second == first
    assert nvml.calls == ["nvmlInit"]  # not retried every second
    sampler.close()
    sampler.sample()
    assert nvml.calls == ["nvmlInit", "nvmlInit"]  # close() allows a fresh try


def test_missing_pynvml_is_a_problem_not_an_exception(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    scan = GpuSampler().sample()

    assert scan.gpus == () and scan.problem.title == "GPU detection is not installed"


def test_a_gpu_lost_mid_session_is_left_out_and_named():
    nvml = two_gpus()
    sampler = GpuSampler(nvml)
    sampler.sample()
    nvml.devices[1].errors["nvmlDeviceGetMemoryInfo"] = FakeNvml.NVMLError_GpuIsLost()

    scan = sampler.sample()

    assert [g.name for g in scan.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert scan.problem.title == "Some GPUs could not be read"
    assert "GPU 1: GPU is lost" in scan.problem.explanation

    del nvml.devices[1].errors["nvmlDeviceGetMemoryInfo"]
    assert len(sampler.sample().gpus) == 2  # back once it answers again
    sampler.close()


def test_unsupported_live_readings_are_none():
    nvml = FakeNvml([FakeDevice(**{**L4, "errors": {"nvmlDeviceGetPowerUsage": FakeNvml.NVMLError_NotSupported(),
                                                     "nvmlDeviceGetUtilizationRates": FakeNvml.NVMLError_NotSupported()}})])
    with GpuSampler(nvml) as sampler:
        sampler.sample()
        gpu = sampler.sample().gpus[0]

    assert gpu.power_draw_w is None and gpu.utilization_percent is None
    assert gpu.power_limit_w == 72.0 and gpu.temperature_c == 33
    assert not nvml.initialised


def test_samples_from_several_threads_do_not_interleave():
    nvml = two_gpus()
    sampler = GpuSampler(nvml)
    results = []

    def work():
        for _ in range(50):
            results.append(sampler.sample())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.close()

    assert len(results) == 200 and all(len(r.gpus) == 2 and r.problem is None for r in results)
    assert nvml.init_count == 1 and nvml.shutdown_count == 1
