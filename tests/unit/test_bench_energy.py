"""EnergyMeter: GPU energy over a benchmark level from NVML's energy counter, or from sampled power
where there is no counter (tests/fakes/fake_nvml.py stands in for NVML)."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from llmdesk.core.bench.energy import COUNTER, POWER_SAMPLES, EnergyMeter, EnergyReading, gpus_of_server
from tests.fakes.fake_nvml import FakeDevice, FakeNvml

NOT_SUPPORTED = {"nvmlDeviceGetTotalEnergyConsumption": FakeNvml.NVMLError_NotSupported()}


def counter(*readings_mj: int):
    """A counter that gives these readings, one per read."""
    return iter(readings_mj).__next__


def level(meter: EnergyMeter, seconds: float = 0.02) -> EnergyReading | None:
    meter.start()
    time.sleep(seconds)
    return meter.stop()


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llmdesk-energy-sampler"]


# -- the counter --

def test_counter_mode_gives_the_delta_in_joules_and_the_mean_power():
    nvml = FakeNvml([FakeDevice(energy_mj=counter(1_000_000, 1_450_000), power_usage_mw=300_000)])
    with EnergyMeter(nvml=nvml, sample_interval_s=0.01) as meter:
        before = time.monotonic()
        reading = level(meter, 0.05)
        took = time.monotonic() - before

    assert meter.problem is None
    assert reading.source == COUNTER and reading.gpus == (0,)
    assert reading.joules == 450.0
    assert 0.05 <= reading.seconds <= took
    assert reading.mean_watts == pytest.approx(450.0 / reading.seconds)
    assert reading.sampled_mean_watts == 300.0


def test_the_counter_agrees_with_the_sampled_mean_power():
    """What the issue asks of a real GPU: counter joules ≈ sampled mean watts × duration."""
    with EnergyMeter(nvml=FakeNvml([FakeDevice(power_usage_mw=300_000)]), sample_interval_s=0.01) as meter:
        reading = level(meter, 0.2)

    assert reading.source == COUNTER
    assert reading.joules == pytest.approx(reading.sampled_mean_watts * reading.seconds, rel=0.02)
    assert reading.mean_watts == pytest.approx(300.0, rel=0.02)


def test_two_gpus_are_summed():
    nvml = FakeNvml([FakeDevice(energy_mj=counter(0, 100_000), power_usage_mw=200_000),
                     FakeDevice(energy_mj=counter(5_000, 25_000), power_usage_mw=50_000)])
    with EnergyMeter(nvml=nvml) as meter:
        reading = level(meter)

    assert reading.gpus == (0, 1)
    assert reading.joules == 120.0
    assert reading.sampled_mean_watts == 250.0


def test_only_the_chosen_gpus_are_metered():
    lost = FakeNvml.NVMLError_GpuIsLost()
    nvml = FakeNvml([FakeDevice(energy_mj=counter(0, 7_000)),
                     FakeDevice(errors={"nvmlDeviceGetTotalEnergyConsumption": lost, "nvmlDeviceGetPowerUsage": lost}),
                     FakeDevice(energy_mj=counter(1_000, 4_000))])
    with EnergyMeter([2, 0], nvml=nvml) as meter:
        reading = level(meter)

    assert meter.problem is None
    assert reading.gpus == (2, 0)
    assert reading.joules == 10.0


def test_a_gpu_listed_twice_is_counted_once():
    with EnergyMeter([0, 0], nvml=FakeNvml([FakeDevice(energy_mj=counter(0, 3_000))])) as meter:
        reading = level(meter)

    assert reading.gpus == (0,) and reading.joules == 3.0


def test_a_counter_that_goes_backwards_drops_the_level_and_the_next_level_works():
    nvml = FakeNvml([FakeDevice(energy_mj=counter(5_000_000, 1_000, 2_000, 3_500))])
    with EnergyMeter(nvml=nvml) as meter:
        assert level(meter) is None
        assert "GPU 0" in meter.problem and "went backwards" in meter.problem

        again = level(meter)
        assert meter.problem is None
        assert again.joules == 1.5


def test_a_counter_that_fails_at_the_end_drops_the_level():
    readings = counter(1_000)

    def lost_after_one():
        try:
            return readings()
        except StopIteration:
            raise FakeNvml.NVMLError_GpuIsLost() from None

    with EnergyMeter(nvml=FakeNvml([FakeDevice(energy_mj=lost_after_one)])) as meter:
        assert level(meter) is None

    assert meter.problem == "The energy counter of GPU 0 could not be read: GPU is lost."


def test_without_the_power_draw_the_counter_still_measures():
    device = FakeDevice(energy_mj=counter(0, 9_000),
                        errors={"nvmlDeviceGetPowerUsage": FakeNvml.NVMLError_NotSupported()})
    with EnergyMeter(nvml=FakeNvml([device]), sample_interval_s=0.01) as meter:
        reading = level(meter)

    assert reading.source == COUNTER and reading.joules == 9.0
    assert reading.sampled_mean_watts is None


# -- power samples where there is no counter --

def test_without_a_counter_on_one_gpu_power_samples_are_integrated():
    nvml = FakeNvml([FakeDevice(power_usage_mw=200_000), FakeDevice(power_usage_mw=100_000, errors=NOT_SUPPORTED)])
    with EnergyMeter(nvml=nvml, sample_interval_s=0.02) as meter:
        reading = level(meter, 0.3)

    assert meter.problem is None
    assert reading.source == POWER_SAMPLES and reading.gpus == (0, 1)
    assert reading.joules == pytest.approx(300.0 * reading.seconds, rel=0.03)
    assert reading.sampled_mean_watts == 300.0
    assert nvml.calls.count("nvmlDeviceGetPowerUsage") >= 2 * 5  # the thread sampled between start and stop


def test_power_samples_are_integrated_as_trapezoids():
    """A linear ramp: trapezoids are exact, while a sum of rectangles would be ~10% off at this interval."""
    origin = time.monotonic()

    def ramp_mw() -> int:
        return int(100_000 + 1_000_000 * (time.monotonic() - origin))  # 100 W + 1000 W/s

    with EnergyMeter(nvml=FakeNvml([FakeDevice(power_usage_mw=ramp_mw, errors=NOT_SUPPORTED)]),
                     sample_interval_s=0.05) as meter:
        start = time.monotonic() - origin
        reading = level(meter, 0.3)
        end = time.monotonic() - origin

    exact = 100 * (end - start) + 1000 * (end**2 - start**2) / 2
    assert reading.source == POWER_SAMPLES
    assert reading.joules == pytest.approx(exact, rel=0.02)


def failing_power(watts: int, failed: threading.Event):
    def read() -> int:
        if failed.is_set():
            raise FakeNvml.NVMLError_GpuIsLost()
        return watts * 1000
    return read


def test_a_missed_last_sample_holds_the_one_before_to_the_end():
    failed = threading.Event()
    device = FakeDevice(power_usage_mw=failing_power(100, failed), errors=NOT_SUPPORTED)
    with EnergyMeter(nvml=FakeNvml([device]), sample_interval_s=0.1) as meter:
        meter.start()
        time.sleep(0.25)
        failed.set()  # stop's own sample fails, 0.05 s after the thread's last one
        reading = meter.stop()

    assert reading.joules == pytest.approx(100 * reading.seconds, rel=0.02)


def test_too_few_power_samples_means_no_energy():
    failed = threading.Event()
    device = FakeDevice(power_usage_mw=failing_power(100, failed), errors=NOT_SUPPORTED)
    with EnergyMeter(nvml=FakeNvml([device]), sample_interval_s=10.0) as meter:
        meter.start()
        failed.set()
        assert meter.stop() is None

    assert meter.problem == "The GPUs' power draw was read only 1 time during the level, too few to measure energy."


def test_a_binding_without_the_counter_call_samples_power():
    class OldNvml(FakeNvml):
        def __getattribute__(self, name):
            if name == "nvmlDeviceGetTotalEnergyConsumption":
                raise AttributeError(name)
            return super().__getattribute__(name)

    with EnergyMeter(nvml=OldNvml([FakeDevice(power_usage_mw=150_000)]), sample_interval_s=0.01) as meter:
        reading = level(meter, 0.1)

    assert reading.source == POWER_SAMPLES
    assert reading.mean_watts == pytest.approx(150.0, rel=0.01)


def test_neither_counter_nor_power_means_no_energy():
    device = FakeDevice(errors={**NOT_SUPPORTED, "nvmlDeviceGetPowerUsage": FakeNvml.NVMLError_NotSupported()})
    with EnergyMeter(nvml=FakeNvml([device])) as meter:
        meter.start()
        assert "GPU 0 has no energy counter" in meter.problem and "power draw could not be read" in meter.problem
        assert meter.stop() is None

    assert not sampler_threads()


# -- what cannot be measured --

def test_a_missing_nvml_library_gives_none_and_a_sentence():
    nvml = FakeNvml(errors={"nvmlInit": FakeNvml.NVMLError_LibraryNotFound()})
    meter = EnergyMeter(nvml=nvml)

    meter.start()
    assert meter.stop() is None
    assert meter.problem == "No NVIDIA GPU could be read: NVML Shared Library Not Found."
    assert level(meter) is None and meter.problem.startswith("No NVIDIA GPU could be read")
    assert nvml.calls.count("nvmlInit") == 1  # not tried again on every level
    meter.close()
    assert nvml.shutdown_count == 0


def test_without_nvidia_ml_py_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    meter = EnergyMeter()

    assert level(meter) is None
    assert meter.problem.startswith("No NVIDIA GPU could be read: the Python package nvidia-ml-py is not installed")
    meter.close()


def test_a_gpu_that_does_not_exist():
    nvml = FakeNvml([FakeDevice()])
    meter = EnergyMeter([0, 1], nvml=nvml)

    assert level(meter) is None
    assert meter.problem == "GPU 1 does not exist: NVML sees 1 GPU (0 to 0)."
    assert not nvml.initialised  # given back at once
    meter.close()
    assert nvml.init_count == nvml.shutdown_count == 1


def test_no_gpu_at_all():
    meter = EnergyMeter(nvml=FakeNvml([]))
    assert level(meter) is None
    assert meter.problem == "NVML reports no NVIDIA GPU on this computer."


def test_stop_without_start():
    meter = EnergyMeter(nvml=FakeNvml([FakeDevice()]))
    assert meter.stop() is None
    assert "without being started" in meter.problem


# -- the meter's life --

def test_levels_reuse_one_nvml_init_and_close_shuts_it_down_once():
    nvml = FakeNvml([FakeDevice(energy_mj=counter(0, 1_000, 1_000, 4_000))])
    meter = EnergyMeter(nvml=nvml, sample_interval_s=0.01)

    first, second = level(meter), level(meter)

    assert (first.joules, second.joules) == (1.0, 3.0)
    assert nvml.init_count == 1 and nvml.initialised
    meter.close()
    meter.close()
    assert nvml.shutdown_count == 1 and not nvml.initialised


def test_a_closed_meter_starts_nvml_again():
    nvml = FakeNvml([FakeDevice(power_usage_mw=100_000)])
    meter = EnergyMeter(nvml=nvml)
    level(meter)
    meter.close()

    assert level(meter) is not None
    assert nvml.init_count == 2
    meter.close()
    assert nvml.refcount == 0


def test_stop_is_quick_and_leaves_no_thread_behind():
    with EnergyMeter(nvml=FakeNvml([FakeDevice()]), sample_interval_s=10.0) as meter:
        meter.start()
        assert len(sampler_threads()) == 1
        before = time.monotonic()
        reading = meter.stop()
        assert time.monotonic() - before < 0.1  # not one sampling interval
        assert reading is not None
        assert not sampler_threads()


def test_a_second_start_begins_the_level_again():
    nvml = FakeNvml([FakeDevice(energy_mj=counter(0, 5_000, 6_000))])
    with EnergyMeter(nvml=nvml) as meter:
        meter.start()
        meter.start()
        reading = meter.stop()

    assert reading.joules == 1.0
    assert not sampler_threads()


# -- the reading --

def test_per_token_figures():
    reading = EnergyReading(joules=720.0, seconds=2.0, mean_watts=360.0, sampled_mean_watts=355.5,
                            source=COUNTER, gpus=(0, 1))

    assert reading.per_output_token(1_000) == 0.72
    assert reading.tokens_per_wh(1_000) == 5_000.0  # 720 J is 0.2 Wh
    assert reading.per_output_token(0) is None and reading.tokens_per_wh(0) is None
    assert reading.per_output_token(-3) is None
    assert EnergyReading(0.0, 1.0, 0.0, None, COUNTER, (0,)).tokens_per_wh(10) is None


def test_as_dict_is_json():
    reading = EnergyReading(joules=12.5, seconds=0.5, mean_watts=25.0, sampled_mean_watts=None,
                            source=POWER_SAMPLES, gpus=(1,))

    assert json.loads(json.dumps(reading.as_dict())) == {
        "joules": 12.5, "seconds": 0.5, "mean_watts": 25.0, "sampled_mean_watts": None,
        "source": "power-samples", "gpus": [1]}


# -- CUDA_VISIBLE_DEVICES --

@pytest.mark.parametrize(("value", "expected"), [
    (None, (0, 1, 2, 3)),
    ("", (0, 1, 2, 3)),
    ("  ", (0, 1, 2, 3)),
    ("2", (2,)),
    ("3,1", (3, 1)),
    (" 0 , 2 ", (0, 2)),
    ("1,1", (1,)),
    ("GPU-8f1c2a3b-0000-0000-0000-000000000000", (0, 1, 2, 3)),
    ("0,MIG-8f1c2a3b", (0, 1, 2, 3)),
    ("-1", ()),  # CUDA's way to hide every GPU
    ("0,1,-1,2", (0, 1)),  # CUDA stops at the first entry that is not a GPU
    ("1,7,2", (1,)),
    ("a", ()),
])
def test_gpus_of_server(value, expected):
    assert gpus_of_server(value, 4) == expected
