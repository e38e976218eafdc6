"""GPU energy over one benchmark level, read through NVML as vLLM's offline throughput bench does
(vllm-project/vllm PR #56354): the total-energy counter (mJ since the driver loaded) of each metered
GPU is read at the level's start and at its end, and the energy is the sum of the differences.

Where a GPU has no such counter (NotSupported, or a binding without the call), the level's energy
is the trapezoid integral of the GPUs' summed power draw (mW), sampled every `sample_interval_s` by a
daemon thread. Power is sampled in both modes, so a reading also carries the mean of the samples: on
a real GPU the counter's joules / seconds should agree with it within a few per cent.

    meter = EnergyMeter(gpus_of_server(os.environ.get("CUDA_VISIBLE_DEVICES"), count))
    meter.start(); ...the level...; reading = meter.stop()   # None, and meter.problem says why
    meter.close()

start() and stop() are a few NVML reads (well under a millisecond each), so the asyncio sweep calls
them directly. They never raise for NVML's sake: a machine without a driver, a GPU that does not
exist or a counter that was reset gives None and a sentence in `problem`.

GPU indices are NVML's. gpus_of_server maps CUDA_VISIBLE_DEVICES onto them assuming CUDA numbers the
GPUs as NVML does, which holds with CUDA_DEVICE_ORDER=PCI_BUS_ID (vLLM sets it); GPU UUIDs in the
variable are not resolved, and all GPUs are metered instead.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmdesk.core.machine.gpus import is_nvml_error, nvml_message, shutdown_quietly

COUNTER = "counter"
POWER_SAMPLES = "power-samples"

_COUNTER_CALL = "nvmlDeviceGetTotalEnergyConsumption"
# How long stop() waits for the sampler thread: its NVML read normally takes microseconds, and a
# stuck one must not freeze the caller (the thread is a daemon and its late samples are dropped).
_JOIN_TIMEOUT_S = 0.2


@dataclass(frozen=True)
class EnergyReading:
    joules: float  # energy over the level, all metered GPUs together
    seconds: float  # wall time between start and stop (time.monotonic)
    mean_watts: float  # joules / seconds
    sampled_mean_watts: float | None  # mean of the power samples (None if none could be taken)
    source: str  # COUNTER or POWER_SAMPLES
    gpus: tuple[int, ...]  # NVML indices metered

    def per_output_token(self, tokens: int) -> float | None:
        """Joules per output token."""
        return self.joules / tokens if tokens > 0 else None

    def tokens_per_wh(self, tokens: int) -> float | None:
        if tokens <= 0 or self.joules <= 0:
            return None
        return tokens / (self.joules / 3600)

    def as_dict(self) -> dict[str, Any]:
        return {
            "joules": self.joules,
            "seconds": self.seconds,
            "mean_watts": self.mean_watts,
            "sampled_mean_watts": self.sampled_mean_watts,
            "source": self.source,
            "gpus": list(self.gpus),
        }


def gpus_of_server(cuda_visible_devices: str | None, count: int) -> tuple[int, ...]:
    """The NVML indices a server with this CUDA_VISIBLE_DEVICES uses, out of `count` GPUs.

    As CUDA reads the variable, the list ends at the first entry that is not a GPU ("-1" hides them
    all); a UUID entry ("GPU-…", "MIG-…") is not resolved here, so every GPU is returned."""
    every = tuple(range(count))
    if not cuda_visible_devices or not cuda_visible_devices.strip():
        return every
    chosen: list[int] = []
    for entry in (item.strip() for item in cuda_visible_devices.split(",")):
        if entry.startswith(("GPU-", "MIG-")):
            return every
        if not entry.isdigit() or int(entry) >= count:
            break
        if int(entry) not in chosen:
            chosen.append(int(entry))
    return tuple(chosen)


class EnergyMeter:
    """Energy of the chosen GPUs (None: every GPU NVML sees) over levels marked by start() and stop().

    NVML is initialised on the first start() and kept until close(); nvml defaults to pynvml, and
    tests pass tests/fakes/fake_nvml.FakeNvml. When NVML cannot start or a GPU index does not exist,
    every level gives None with the same problem until close()."""

    def __init__(self, gpu_indices: Sequence[int] | None = None, *, nvml: Any = None,
                 sample_interval_s: float = 0.1):
        if sample_interval_s <= 0:
            raise ValueError("sample_interval_s must be positive")
        # Listing a GPU twice must not count its energy twice.
        self._wanted = None if gpu_indices is None else tuple(dict.fromkeys(int(i) for i in gpu_indices))
        self._nvml = nvml
        self._interval = sample_interval_s
        self._lock = threading.Lock()
        self._initialised = False
        self._failed: str | None = None
        self._handles: tuple[tuple[int, Any], ...] = ()
        self._level: _Level | None = None
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        return self._problem

    def start(self) -> None:
        with self._lock:
            self._abandon_level()
            self._problem = None
            if not self._ready():
                return
            self._level = self._begin()
            self._problem = self._level.problem  # known now, so the GUI can say it during the level

    def stop(self) -> EnergyReading | None:
        with self._lock:
            level, self._level = self._level, None
            if level is None:
                if self._problem is None:
                    self._problem = "The energy meter was stopped without being started."
                return None
            if level.problem is not None:
                self._problem = level.problem
                return None
            return self._finish(level)

    def close(self) -> None:
        with self._lock:
            self._abandon_level()
            if self._initialised:
                shutdown_quietly(self._nvml)
            self._initialised = False
            self._handles = ()
            self._failed = None

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- NVML --

    def _ready(self) -> bool:
        if self._failed is None and not self._initialised:
            self._failed = self._initialise()
        self._problem = self._failed
        return self._failed is None

    def _initialise(self) -> str | None:
        """Start NVML and take the handles; why not, as a sentence."""
        try:
            if self._nvml is None:
                import pynvml  # here, so that importing llmdesk.core never loads NVML
                self._nvml = pynvml
        except ImportError as exc:
            return f"No NVIDIA GPU could be read: the Python package nvidia-ml-py is not installed ({exc})."
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            return f"No NVIDIA GPU could be read: {nvml_message(exc)}."
        self._initialised = True
        why = self._take_handles(nvml)
        if why is not None:
            shutdown_quietly(nvml)
            self._initialised = False
        return why

    def _take_handles(self, nvml: Any) -> str | None:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            return f"No NVIDIA GPU could be read: {nvml_message(exc)}."
        if count == 0:
            return "NVML reports no NVIDIA GPU on this computer."
        indices = tuple(range(count)) if self._wanted is None else self._wanted
        if not indices:
            return "No GPU was chosen to measure energy on."
        handles = []
        for index in indices:
            if not 0 <= index < count:
                return f"GPU {index} does not exist: NVML sees {count} GPU{'s' if count != 1 else ''} (0 to {count - 1})."
            try:
                handles.append((index, nvml.nvmlDeviceGetHandleByIndex(index)))
            except Exception as exc:
                return f"GPU {index} could not be read: {nvml_message(exc)}."
        self._handles = tuple(handles)
        return None

    # -- one level --

    def _begin(self) -> _Level:
        level = _Level(gpus=tuple(index for index, _ in self._handles))
        when, counters = _timed(self._read_counters)
        level.start_s = when
        if isinstance(counters, _Missing):
            level.source = POWER_SAMPLES
        elif isinstance(counters, str):
            level.problem = counters
            return level
        else:
            level.counters = counters
        sampler = _PowerSampler(self._read_power_w, self._interval)
        first = sampler.start()
        if first is not None and level.source == POWER_SAMPLES:
            sampler.stop()
            level.problem = (f"{counters.why} Its power draw could not be read either ({first}), "
                             "so energy is not measured.")
            return level
        level.sampler = sampler
        return level

    def _finish(self, level: _Level) -> EnergyReading | None:
        samples = level.sampler.stop() if level.sampler is not None else []
        gpus = level.gpus
        if level.source == COUNTER:
            end_s, after = _timed(self._read_counters)
            if isinstance(after, _Missing):
                self._problem = f"{after.why} It was readable when the level started."
                return None
            if isinstance(after, str):
                self._problem = after
                return None
            for index, start_mj, end_mj in zip(gpus, level.counters, after):
                if end_mj < start_mj:
                    self._problem = (f"The energy counter of GPU {index} went backwards (the driver was reloaded "
                                     "or the GPU was reset), so this level's energy is not known.")
                    return None
            joules = sum(end - start for start, end in zip(level.counters, after)) / 1000
        else:
            end_s = time.monotonic()
            if len(samples) < 2:
                self._problem = (f"The GPUs' power draw was read only {len(samples)} time"
                                 f"{'s' if len(samples) != 1 else ''} during the level, too few to measure energy.")
                return None
            joules = _integrate(samples, level.start_s, end_s)
        seconds = end_s - level.start_s
        sampled = sum(watts for _, watts in samples) / len(samples) if samples else None
        return EnergyReading(joules=joules, seconds=seconds, mean_watts=joules / seconds if seconds > 0 else 0.0,
                             sampled_mean_watts=sampled, source=level.source, gpus=gpus)

    def _abandon_level(self) -> None:
        if self._level is not None and self._level.sampler is not None:
            self._level.sampler.stop()
        self._level = None

    def _read_counters(self) -> list[int] | _Missing | str:
        """Each GPU's counter (mJ); _Missing when one has none; else a sentence on what failed."""
        nvml = self._nvml
        read = getattr(nvml, _COUNTER_CALL, None)
        if read is None:
            return _Missing("This version of nvidia-ml-py has no energy counter call.")
        counters = []
        for index, handle in self._handles:
            try:
                counters.append(int(read(handle)))
            except Exception as exc:
                if (is_nvml_error(nvml, exc, "NVMLError_NotSupported")
                        or is_nvml_error(nvml, exc, "NVMLError_FunctionNotFound")):
                    return _Missing(f"GPU {index} has no energy counter ({nvml_message(exc)}).")
                return f"The energy counter of GPU {index} could not be read: {nvml_message(exc)}."
        return counters

    def _read_power_w(self) -> float:
        """The metered GPUs' power draw together; raises _PowerError naming the GPU that failed."""
        total_mw = 0
        for index, handle in self._handles:
            try:
                total_mw += self._nvml.nvmlDeviceGetPowerUsage(handle)
            except Exception as exc:
                raise _PowerError(f"GPU {index}: {nvml_message(exc)}") from exc
        return total_mw / 1000


@dataclass
class _Level:
    gpus: tuple[int, ...]
    start_s: float = 0.0
    source: str = COUNTER
    counters: list[int] | None = None
    sampler: _PowerSampler | None = None
    problem: str | None = None


@dataclass(frozen=True)
class _Missing:
    why: str


class _PowerError(Exception):
    pass


class _PowerSampler:
    """(time, watts) every `interval` seconds from start() to stop(); both also take a sample themselves,
    so that the samples span the whole level."""

    def __init__(self, read_watts: Callable[[], float], interval: float):
        self._read = read_watts
        self._interval = interval
        self._samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = None

    def start(self) -> str | None:
        """Take the first sample; the thread runs only when it worked (why not, otherwise)."""
        why = self._take()
        if why is None:
            self._thread = threading.Thread(target=self._run, name="llmdesk-energy-sampler", daemon=True)
            self._thread.start()
        return why

    def stop(self) -> list[tuple[float, float]]:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT_S)
            self._take()
        with self._lock:
            self._done = True
            # A thread that outlived the join may have added one sample after stop's own.
            return sorted(self._samples)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._take()

    def _take(self) -> str | None:
        when, watts = _timed(self._read, catch=_PowerError)
        if isinstance(watts, _PowerError):
            return str(watts)  # a missed sample only widens one trapezoid
        with self._lock:
            if not self._done:
                self._samples.append((when, watts))
        return None


def _timed(read: Callable[[], Any], catch: type[BaseException] | None = None) -> tuple[float, Any]:
    """read() stamped with the middle of the time it took."""
    before = time.monotonic()
    if catch is None:
        value = read()
    else:
        try:
            value = read()
        except catch as exc:
            value = exc
    return (before + time.monotonic()) / 2, value


def _integrate(samples: list[tuple[float, float]], start_s: float, end_s: float) -> float:
    """Joules from start_s to end_s: trapezoids between samples, the first and last held flat to the ends."""
    joules = samples[0][1] * max(0.0, samples[0][0] - start_s)
    joules += samples[-1][1] * max(0.0, end_s - samples[-1][0])
    for (t0, w0), (t1, w1) in itertools.pairwise(samples):
        joules += (t1 - t0) * (w0 + w1) / 2
    return joules


