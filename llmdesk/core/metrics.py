"""vLLM's ``/metrics``: a scrape parsed into a ``Scrape``, scrapes kept in a ``MetricsWindow`` that
derives the live figures (``MetricsSnapshot``), and ``MetricsScraper`` that fetches them (httpx; no Qt).

    scraper = MetricsScraper(default_base_url(), api_key=None)   # server root or its /v1 base
    window = MetricsWindow()                                     # 15 min of history
    every interval (0.25–5 s):
        snap = window.add(await scraper.scrape())                # ProblemError when it fails
        snap.generation_tokens_per_s, snap.kv_cache_usage, snap.ttft_p95_s, ...   (None: not known)
    times, values = window.series("generation_tokens_per_s", since_s=300)       # for a chart
    window.to_csv(path)
    await scraper.aclose()

How the figures are made (what vLLM 0.26 exposes is in the project's vLLM reference, section 3):

- Every series is summed over the ``engine`` label (data-parallel engines) and kept per served model
  (``model_name``); the fraction gauges (KV-cache usage) are averaged instead.
- Throughput comes from counter differences between scrapes, timed with the caller's monotonic clock
  because the text format carries no timestamps. A counter lower than before means the server
  restarted (``process_start_time_seconds`` changing says so too): that interval counts the new value
  from zero, never a negative rate.
- Latency percentiles come from the increase of each cumulative histogram bucket over a sliding
  window, interpolated inside the bucket exactly as Prometheus' ``histogram_quantile`` does.
- Names that changed across releases are looked up newest first (``vllm:kv_cache_usage_perc`` then
  ``vllm:gpu_cache_usage_perc``, and so on); a series that is absent gives None, as every ``vllm:``
  series is when the server runs with ``--disable-log-stats``.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, TextIO

import httpx

from llmdesk.core.chat import ServerUnreachable, Unauthorized, normalise_base_url
from llmdesk.core.errors import Problem, ProblemError

# --- names across vLLM releases (newest first) ------------------------------------------------

RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
# A 0–1 fraction despite "perc"; the gpu_ name is what releases before ≈0.12 exposed.
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREFIX_QUERIES = ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries")
PREFIX_HITS = ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits")
PREEMPTIONS = ("vllm:num_preemptions",)
PROMPT_TOKENS = ("vllm:prompt_tokens",)
PROMPT_BY_SOURCE = ("vllm:prompt_tokens_by_source",)
GENERATION_TOKENS = ("vllm:generation_tokens",)
FINISHED = ("vllm:request_success",)
TTFT = ("vllm:time_to_first_token_seconds",)
ITL = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
E2E = ("vllm:e2e_request_latency_seconds",)
CACHE_CONFIG = "vllm:cache_config_info"
LORA_INFO = "vllm:lora_requests_info"
START_TIME = "process_start_time_seconds"

# Families parse_metrics keeps by default. Counters are named without "_total", histograms by
# their base name. Leaving the other ~80 families to one side makes a scrape about 4x cheaper.
WANTED: frozenset[str] = frozenset({
    *RUNNING, *WAITING, *KV_USAGE, *PREFIX_QUERIES, *PREFIX_HITS, *PREEMPTIONS, *PROMPT_TOKENS,
    *PROMPT_BY_SOURCE, *GENERATION_TOKENS, *FINISHED, *TTFT, *ITL, *E2E, CACHE_CONFIG, LORA_INFO,
    START_TIME,
})

# Gauges that are fractions per engine: two engines at 0.5 are 0.5 for the server, not 1.0.
_AVERAGED = frozenset(KV_USAGE)
# Counters watched for a restart when process_start_time_seconds is missing (api-server-count > 1).
_RESTART_WITNESSES = (GENERATION_TOKENS, PROMPT_TOKENS, FINISHED, PREFIX_QUERIES, PREEMPTIONS)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")

Labels = tuple[tuple[str, str], ...]  # sorted, without engine and model_name


# --- errors -----------------------------------------------------------------------------------

class NotVllmMetrics(ProblemError):
    """The URL answers, but not with vLLM's metrics (not vLLM, or vLLM with --disable-log-stats)."""


class UnreadableMetrics(ProblemError):
    """The /metrics text is not valid Prometheus text."""


# --- one scrape -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Histogram:
    """A cumulative histogram: ``counts[i]`` observations were <= ``bounds[i]``; the last bound is +Inf."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear inside the bucket that holds rank q·count.

        Ranks falling in the +Inf bucket give the highest finite bound; no observations give None."""
        if len(self.bounds) < 2 or not self.counts:
            return None
        total = self.counts[-1]
        if total <= 0:
            return None
        rank = q * total
        # Searches the finite buckets only, as Prometheus does; len-1 means "in the +Inf bucket".
        b = bisect.bisect_left(self.counts, rank, 0, len(self.counts) - 1)
        if b == len(self.bounds) - 1:
            return self.bounds[-2]
        if b == 0 and self.bounds[0] <= 0:
            return self.bounds[0]
        start, count = 0.0, self.counts[b]
        if b > 0:
            start = self.bounds[b - 1]
            count -= self.counts[b - 1]
            rank -= self.counts[b - 1]
        if count <= 0:
            return self.bounds[b]
        return start + (self.bounds[b] - start) * (rank / count)

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None

    def increase_since(self, earlier: Histogram | None) -> Histogram:
        """What was observed after ``earlier``; after a restart (fewer observations) all of self."""
        if earlier is None or self.count < earlier.count or self.bounds != earlier.bounds:
            return self
        return Histogram(self.bounds, tuple(max(0.0, a - b) for a, b in zip(self.counts, earlier.counts)),
                         max(0.0, self.sum - earlier.sum), self.count - earlier.count)

    def __add__(self, other: Histogram) -> Histogram:
        if self.bounds != other.bounds:  # another layout cannot be merged; keep the newer one
            return other
        return Histogram(self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts)),
                         self.sum + other.sum, self.count + other.count)


@dataclass(frozen=True, eq=False)
class Scrape:
    """One ``/metrics`` answer, summed over engines. ``time`` is monotonic seconds, ``wall_time`` Unix."""

    time: float
    wall_time: float
    # name -> model ("" when unlabelled) -> other labels -> value; counters named without "_total".
    series: Mapping[str, Mapping[str, Mapping[Labels, float]]]
    histograms: Mapping[str, Mapping[str, Histogram]]
    # "*_info" gauges, whose labels are the information: every series' labels (engine included) and value.
    infos: Mapping[str, tuple[tuple[Mapping[str, str], float], ...]]

    @property
    def models(self) -> tuple[str, ...]:
        """Served model names seen in the ``model_name`` label."""
        names: set[str] = set()
        for table in (self.series, self.histograms):
            for name, by_model in table.items():
                if name.startswith("vllm:"):
                    names.update(m for m in by_model if m)
        return tuple(sorted(names))

    @property
    def has_vllm(self) -> bool:
        return any(n.startswith("vllm:") for t in (self.series, self.histograms, self.infos) for n in t)

    @property
    def start_time(self) -> float | None:
        """When the server process started (Unix seconds), if it says."""
        return self.value(START_TIME)

    def value(self, names: str | Sequence[str], model: str | None = None, *, average: bool = False,
              **match: str) -> float | None:
        """The first of ``names`` present, summed (or averaged) over models and label sets.

        ``model`` keeps one model; ``match`` keeps series with those label values. None: absent."""
        for name in (names,) if isinstance(names, str) else names:
            by_model = self.series.get(name)
            if by_model is None:
                continue
            total, n = 0.0, 0
            tables = by_model.values() if model is None else (by_model.get(model) or {},)
            for by_labels in tables:
                for labels, v in by_labels.items():
                    if match and not all((k, w) in labels for k, w in match.items()):
                        continue
                    total += v
                    n += 1
            if n == 0:
                return None
            return total / n if average else total
        return None

    def values_by(self, names: str | Sequence[str], label: str, model: str | None = None) -> dict[str, float]:
        """The first of ``names`` present, split by one label (e.g. finished_reason), summed over the rest."""
        for name in (names,) if isinstance(names, str) else names:
            by_model = self.series.get(name)
            if by_model is None:
                continue
            out: dict[str, float] = {}
            tables = by_model.values() if model is None else (by_model.get(model) or {},)
            for by_labels in tables:
                for labels, v in by_labels.items():
                    key = dict(labels).get(label)
                    if key is not None:
                        out[key] = out.get(key, 0.0) + v
            return out
        return {}

    def histogram(self, names: str | Sequence[str], model: str | None = None) -> Histogram | None:
        """The first of ``names`` present, for one model or merged over all."""
        for name in (names,) if isinstance(names, str) else names:
            by_model = self.histograms.get(name)
            if not by_model:
                continue
            if model is not None:
                return by_model.get(model)
            merged: Histogram | None = None
            for h in by_model.values():
                merged = h if merged is None else merged + h
            return merged
        return None

    def info(self, name: str) -> tuple[tuple[Mapping[str, str], float], ...]:
        return self.infos.get(name, ())

    @property
    def kv_cache_capacity_tokens(self) -> int | None:
        """KV-cache size in tokens over all engines, from ``vllm:cache_config_info``."""
        total, seen = 0, False
        for labels, _ in self.info(CACHE_CONFIG):
            tokens = _int_label(labels, "kv_cache_size_tokens")  # 0.25.1+, right for hybrid models too
            if tokens is None:
                blocks, size = _int_label(labels, "num_gpu_blocks"), _int_label(labels, "block_size")
                tokens = blocks * size if blocks is not None and size is not None else None
            if tokens is not None:
                total += tokens
                seen = True
        return total if seen else None

    @property
    def lora_adapters(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(running, waiting) LoRA adapter names, from the newest ``vllm:lora_requests_info`` series."""
        # vLLM sets a fresh label set to the current time at each change, so the old ones linger.
        series = self.info(LORA_INFO)
        if not series:
            return (), ()
        labels, _ = max(series, key=lambda item: item[1])

        def names(key: str) -> tuple[str, ...]:
            return tuple(n for n in (labels.get(key) or "").split(",") if n.strip())

        return names("running_lora_adapters"), names("waiting_lora_adapters")


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    try:
        return int(float(labels[key]))
    except (KeyError, ValueError, TypeError):
        return None


def parse_metrics(text: str, *, at: float | None = None, wall_time: float | None = None,
                  only: Iterable[str] | None = WANTED) -> Scrape:
    """Parse Prometheus text (prometheus_client's parser) into a Scrape; pure apart from the clock.

    ``at``/``wall_time`` default to now (monotonic / Unix). ``only`` names the families to keep
    (counters without ``_total``); None keeps every family. Raises UnreadableMetrics on bad text."""
    from prometheus_client.parser import text_string_to_metric_families

    at = time.monotonic() if at is None else at
    wall_time = time.time() if wall_time is None else wall_time
    if only is not None:
        text = _keep_families(text, frozenset(only))
    series: dict[str, dict[str, dict[Labels, float]]] = {}
    averaged: dict[tuple[str, str, Labels], int] = {}
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    infos: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families(text):
            histogram = family.type == "histogram"
            for sample in family.samples:
                name, value = sample.name, float(sample.value)
                if name.endswith("_created") or value != value:  # creation stamps; NaN
                    continue
                labels = sample.labels
                if family.name.endswith("_info") or name.endswith("_info"):
                    infos.setdefault(family.name, []).append((dict(labels), value))
                    continue
                model = labels.get("model_name", "")
                if histogram:
                    key = (family.name, model)
                    if name.endswith("_bucket"):
                        le = labels.get("le")
                        if le is None:
                            continue
                        bound = float(le)
                        per_bound = buckets.setdefault(key, {})
                        per_bound[bound] = per_bound.get(bound, 0.0) + value
                    elif name.endswith("_sum"):
                        sums[key] = sums.get(key, 0.0) + value
                    elif name.endswith("_count"):
                        counts[key] = counts.get(key, 0.0) + value
                    continue
                if name.endswith("_total"):
                    name = name[:-6]
                rest: Labels = ()
                if len(labels) > 2 or not labels.keys() <= {"engine", "model_name"}:
                    rest = tuple(sorted((k, v) for k, v in labels.items() if k not in ("engine", "model_name")))
                by_labels = series.setdefault(name, {}).setdefault(model, {})
                by_labels[rest] = by_labels.get(rest, 0.0) + value
                if name in _AVERAGED:
                    averaged[(name, model, rest)] = averaged.get((name, model, rest), 0) + 1
    except ValueError as exc:
        raise UnreadableMetrics(Problem("The metrics could not be read",
                                        f"The /metrics text is not valid Prometheus text ({exc}).",
                                        "Check that the URL points at a vLLM server.")) from None
    for (name, model, rest), n in averaged.items():
        if n > 1:
            series[name][model][rest] /= n
    histograms: dict[str, dict[str, Histogram]] = {}
    for key in buckets.keys() | counts.keys():
        name, model = key
        per_bound = buckets.get(key, {})
        count = counts.get(key, per_bound.get(math.inf, 0.0))
        if math.inf not in per_bound:
            per_bound[math.inf] = count
        bounds = tuple(sorted(per_bound))
        histograms.setdefault(name, {})[model] = Histogram(
            bounds, tuple(per_bound[b] for b in bounds), sums.get(key, 0.0), count)
    return Scrape(at, wall_time, series, histograms, {k: tuple(v) for k, v in infos.items()})


def _keep_families(text: str, only: frozenset[str]) -> str:
    """Only the lines of the wanted families (and their TYPE lines), so the parser sees a quarter."""
    keep = {f"{base}{suffix}" for base in only for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    out: list[str] = []
    for line in text.splitlines():
        if not line:
            continue
        if line[0] == "#":
            if line.startswith("# TYPE "):
                parts = line.split(" ", 3)
                if len(parts) > 2 and parts[2] in keep:
                    out.append(line)
            continue
        end = line.find("{")
        if end < 0:
            end = line.find(" ")
        if line[:end] in keep:
            out.append(line)
    out.append("")
    return "\n".join(out)


# --- derived figures --------------------------------------------------------------------------

# Figures kept per served model in MetricsSnapshot.models.
MODEL_KEYS = (
    "generation_tokens_per_s", "generation_tokens_per_s_avg", "prompt_tokens_per_s", "prompt_tokens_per_s_avg",
    "requests_running", "requests_waiting", "kv_cache_usage", "prefix_cache_hit_rate", "preemptions",
    "requests_finished", "finished_by_reason", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s",
    "e2e_p50_s", "e2e_p95_s",
)


@dataclass(frozen=True)
class MetricsSnapshot:
    """The live figures at one scrape; None where not known (one scrape only, series absent, no traffic).

    ``*_per_s`` are over the last interval, ``*_per_s_avg`` over the smoothing span (10 s by default);
    the hit rate, preemptions, finished requests and percentiles are over the window (60 s by default),
    whose real span is ``window_s``."""

    time_s: float  # the scrape's monotonic time (the clock series() uses)
    timestamp: float  # Unix seconds
    interval_s: float | None
    window_s: float | None
    generation_tokens_per_s: float | None = None
    generation_tokens_per_s_avg: float | None = None
    prompt_tokens_per_s: float | None = None
    prompt_tokens_per_s_avg: float | None = None
    prompt_computed_tokens_per_s: float | None = None  # prefill work: cache hits excluded
    requests_running: int | None = None
    requests_waiting: int | None = None
    kv_cache_usage: float | None = None  # 0–1
    kv_cache_capacity_tokens: int | None = None
    prefix_cache_hit_rate: float | None = None  # 0–1
    preemptions: int | None = None
    preemptions_total: int | None = None
    requests_finished: int | None = None
    requests_per_s: float | None = None
    finished_by_reason: Mapping[str, int] = field(default_factory=dict)
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_mean_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    itl_mean_s: float | None = None
    e2e_p50_s: float | None = None
    e2e_p95_s: float | None = None
    e2e_mean_s: float | None = None
    generation_tokens_total: int | None = None
    prompt_tokens_total: int | None = None
    server_restarted: bool = False  # counters went back since the previous scrape
    lora_adapters_running: tuple[str, ...] = ()
    lora_adapters_waiting: tuple[str, ...] = ()
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with stable keys (the field names)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["finished_by_reason"] = dict(self.finished_by_reason)
        out["lora_adapters_running"] = list(self.lora_adapters_running)
        out["lora_adapters_waiting"] = list(self.lora_adapters_waiting)
        out["models"] = {m: {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in figures.items()}
                         for m, figures in self.models.items()}
        return out

    def row(self) -> dict[str, Any]:
        """One flat CSV row (CSV_COLUMNS)."""
        row: dict[str, Any] = {k: getattr(self, k) for k in CSV_COLUMNS if hasattr(self, k)}
        row["time"] = datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat(timespec="milliseconds")
        for reason in FINISH_REASONS:
            row[f"finished_{reason}"] = self.finished_by_reason.get(reason) if self.window_s else None
        row["server_restarted"] = int(self.server_restarted)
        return row


# Scalar keys series() accepts: what a chart can plot.
SERIES_KEYS = tuple(
    f.name for f in fields(MetricsSnapshot)
    if f.name not in ("time_s", "timestamp", "finished_by_reason", "server_restarted",
                      "lora_adapters_running", "lora_adapters_waiting", "models"))
CSV_COLUMNS = ("time", "timestamp", *SERIES_KEYS, *(f"finished_{r}" for r in FINISH_REASONS),
               "server_restarted")


class MetricsWindow:
    """Scrapes in time order and the snapshot derived at each; the history a page charts.

    Snapshots are kept for ``keep_s`` (15 min); the scrapes themselves only as long as the figures
    need them (``window_s``, ``smooth_s``). Scrapes must come with increasing ``time``."""

    def __init__(self, *, keep_s: float = 900.0, window_s: float = 60.0, smooth_s: float = 10.0):
        self.keep_s = keep_s
        self.window_s = window_s
        self.smooth_s = smooth_s
        self._scrapes: list[Scrape] = []
        self._times: list[float] = []
        self._restarted: list[bool] = []
        self._snapshots: list[MetricsSnapshot] = []
        self._snap_times: list[float] = []
        self.restarts = 0

    # -- feeding --

    def add(self, scrape: Scrape) -> MetricsSnapshot:
        """Keep a scrape and return the figures as of it."""
        if self._times and scrape.time <= self._times[-1]:
            raise ValueError("scrapes must come in time order")
        restarted = bool(self._scrapes) and _restarted(self._scrapes[-1], scrape)
        self.restarts += restarted
        self._scrapes.append(scrape)
        self._times.append(scrape.time)
        self._restarted.append(restarted)
        snap = self._derive(len(self._scrapes) - 1)
        self._snapshots.append(snap)
        self._snap_times.append(snap.time_s)
        self._trim(scrape.time)
        return snap

    def clear(self) -> None:
        self._scrapes.clear()
        self._times.clear()
        self._restarted.clear()
        self._snapshots.clear()
        self._snap_times.clear()
        self.restarts = 0

    @property
    def latest(self) -> MetricsSnapshot | None:
        return self._snapshots[-1] if self._snapshots else None

    @property
    def latest_scrape(self) -> Scrape | None:
        return self._scrapes[-1] if self._scrapes else None

    @property
    def snapshots(self) -> tuple[MetricsSnapshot, ...]:
        return tuple(self._snapshots)

    def __len__(self) -> int:
        return len(self._snapshots)

    # -- reading --

    def series(self, key: str, since_s: float | None = None, model: str | None = None
               ) -> tuple[list[float], list[float]]:
        """(times, values) of one figure for a chart: times are the scrapes' monotonic seconds
        (subtract ``latest.time_s`` for "seconds ago"), values NaN where not known.

        ``since_s`` keeps the last so many seconds; ``model`` reads that model's figure (MODEL_KEYS)."""
        if key not in SERIES_KEYS:
            raise KeyError(f"{key!r} is not a chart series; one of {', '.join(SERIES_KEYS)}")
        snaps, times = self._snapshots, self._snap_times
        if since_s is not None and snaps:
            start = bisect.bisect_left(times, times[-1] - since_s)
            snaps, times = snaps[start:], times[start:]
        else:
            times = list(times)
        if model is None:
            raw = [getattr(s, key) for s in snaps]
        else:
            raw = [(s.models.get(model) or {}).get(key) for s in snaps]
        return times, [math.nan if v is None else float(v) for v in raw]

    def to_csv(self, target: str | os.PathLike | TextIO) -> int:
        """Write one row per scrape kept (CSV_COLUMNS); returns the number of rows."""
        if isinstance(target, (str, os.PathLike)):
            with open(target, "w", newline="", encoding="utf-8") as f:
                return self.to_csv(f)
        writer = csv.DictWriter(target, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for snap in self._snapshots:
            writer.writerow({k: ("" if v is None else v) for k, v in snap.row().items()})
        return len(self._snapshots)

    def csv_text(self) -> str:
        buf = io.StringIO()
        self.to_csv(buf)
        return buf.getvalue()

    # -- inside --

    def _trim(self, now: float) -> None:
        span = max(self.window_s, self.smooth_s) + 1.0
        # The newest scrape at or before now - span is still needed as the start of the window.
        drop = bisect.bisect_right(self._times, now - span) - 1
        if drop > 0:
            del self._scrapes[:drop], self._times[:drop], self._restarted[:drop]
        old = bisect.bisect_left(self._snap_times, now - self.keep_s)
        if old:
            del self._snapshots[:old], self._snap_times[:old]

    def _start_index(self, i: int, span: float) -> int:
        """The newest scrape at least ``span`` before scrape i, else the oldest kept."""
        return max(0, bisect.bisect_right(self._times, self._times[i] - span, 0, i) - 1)

    def _segments(self, i0: int, i1: int) -> list[tuple[int, int]]:
        """(first, last) scrape of each run without a restart from i0 to i1; a run after a restart
        starts at the restarted scrape, whose counters count from zero."""
        starts = [i0] + [k for k in range(i0 + 1, i1 + 1) if self._restarted[k]]
        ends = [k - 1 for k in starts[1:]] + [i1]
        return list(zip(starts, ends))

    def _increase(self, i0: int, i1: int, read) -> float | None:
        """How much a counter grew from scrape i0 to i1, restarts counted from zero."""
        if i0 >= i1:
            return None
        s = self._scrapes
        # Reading only the ends of each run between restarts, not every scrape of the window: after a
        # restart (often with another model, whose series are all new) the window would otherwise be
        # walked for every counter on every scrape.
        total, seen = 0.0, False
        for n, (first, last) in enumerate(self._segments(i0, i1)):
            b = read(s[last])
            if b is None or (n == 0 and last == first):
                continue  # absent at the run's end (another model's series, a family switched off)
            a = read(s[first]) if n == 0 else 0.0
            if a is None or b < a:  # appeared, or fell, inside the run: read it scrape by scrape
                step = self._increase_walk(first, last, read)
                if step is None:
                    continue
            else:
                step = b - a
            total += step
            seen = True
        return total if seen else None

    def _increase_walk(self, i0: int, i1: int, read) -> float | None:
        s = self._scrapes
        total, seen = 0.0, False
        for k in range(i0 + 1, i1 + 1):
            b = read(s[k])
            if b is None:
                continue
            a = read(s[k - 1])
            seen = True
            total += b if a is None or self._restarted[k] or b < a else b - a
        return total if seen else None

    def _hist_increase(self, i0: int, i1: int, names: Sequence[str], model: str | None) -> Histogram | None:
        if i0 >= i1:
            return None
        s = self._scrapes
        total: Histogram | None = None
        for n, (first, last) in enumerate(self._segments(i0, i1)):
            b = s[last].histogram(names, model)
            if b is None or (n == 0 and last == first):
                continue
            if n == 0:
                a = s[first].histogram(names, model)
                step = self._hist_increase_walk(first, last, names, model) if a is None else b.increase_since(a)
                if step is None:
                    continue
            else:
                step = b  # counted from zero since the restart
            total = step if total is None else total + step
        return total

    def _hist_increase_walk(self, i0: int, i1: int, names: Sequence[str], model: str | None) -> Histogram | None:
        s = self._scrapes
        total: Histogram | None = None
        for k in range(i0 + 1, i1 + 1):
            b = s[k].histogram(names, model)
            if b is None:
                continue
            a = None if self._restarted[k] else s[k - 1].histogram(names, model)
            step = b.increase_since(a)
            total = step if total is None else total + step
        return total

    def _derive(self, i: int) -> MetricsSnapshot:
        cur = self._scrapes[i]
        prev = i - 1 if i > 0 else i
        smooth = self._start_index(i, self.smooth_s)
        window = self._start_index(i, self.window_s)
        top = self._figures(i, prev, smooth, window, None)
        models = {}
        for m in cur.models:
            figures = self._figures(i, prev, smooth, window, m)
            models[m] = {k: figures[k] for k in MODEL_KEYS}
        running, waiting = cur.lora_adapters
        return MetricsSnapshot(
            time_s=cur.time, timestamp=cur.wall_time,
            interval_s=cur.time - self._times[prev] if prev < i else None,
            window_s=cur.time - self._times[window] if window < i else None,
            kv_cache_capacity_tokens=cur.kv_cache_capacity_tokens,
            server_restarted=self._restarted[i],
            lora_adapters_running=running, lora_adapters_waiting=waiting,
            models=models, **top)

    def _figures(self, i: int, prev: int, smooth: int, window: int, model: str | None) -> dict[str, Any]:
        cur = self._scrapes[i]
        t = self._times

        def rate(i0: int, names: Sequence[str], **match: str) -> float | None:
            inc = self._increase(i0, i, lambda s: s.value(names, model, **match))
            return None if inc is None else inc / (t[i] - t[i0])

        def latency(names: Sequence[str]) -> tuple[float | None, float | None, float | None]:
            h = self._hist_increase(window, i, names, model)
            if h is None:
                return None, None, None
            return h.quantile(0.5), h.quantile(0.95), h.mean

        hits = self._increase(window, i, lambda s: s.value(PREFIX_HITS, model))
        queries = self._increase(window, i, lambda s: s.value(PREFIX_QUERIES, model))
        reasons = set(cur.values_by(FINISHED, "finished_reason", model))
        by_reason = {}
        for reason in sorted(reasons):
            inc = self._increase(window, i, lambda s, r=reason: s.values_by(FINISHED, "finished_reason", model).get(r))
            if inc is not None:
                by_reason[reason] = int(round(inc))
        finished = sum(by_reason.values()) if by_reason else None
        preempted = self._increase(window, i, lambda s: s.value(PREEMPTIONS, model))
        ttft, itl, e2e = latency(TTFT), latency(ITL), latency(E2E)
        window_s = t[i] - t[window] if window < i else None
        return {
            "generation_tokens_per_s": rate(prev, GENERATION_TOKENS),
            "generation_tokens_per_s_avg": rate(smooth, GENERATION_TOKENS),
            "prompt_tokens_per_s": rate(prev, PROMPT_TOKENS),
            "prompt_tokens_per_s_avg": rate(smooth, PROMPT_TOKENS),
            "prompt_computed_tokens_per_s": rate(prev, PROMPT_BY_SOURCE, source="local_compute"),
            "requests_running": _int(cur.value(RUNNING, model)),
            "requests_waiting": _int(cur.value(WAITING, model)),
            "kv_cache_usage": cur.value(KV_USAGE, model, average=True),
            "prefix_cache_hit_rate": hits / queries if hits is not None and queries else None,
            "preemptions": _int(preempted),
            "preemptions_total": _int(cur.value(PREEMPTIONS, model)),
            "requests_finished": finished,
            "requests_per_s": finished / window_s if finished is not None and window_s else None,
            "finished_by_reason": by_reason,
            "ttft_p50_s": ttft[0], "ttft_p95_s": ttft[1], "ttft_mean_s": ttft[2],
            "itl_p50_s": itl[0], "itl_p95_s": itl[1], "itl_mean_s": itl[2],
            "e2e_p50_s": e2e[0], "e2e_p95_s": e2e[1], "e2e_mean_s": e2e[2],
            "generation_tokens_total": _int(cur.value(GENERATION_TOKENS, model)),
            "prompt_tokens_total": _int(cur.value(PROMPT_TOKENS, model)),
        }


def _int(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def _restarted(before: Scrape, after: Scrape) -> bool:
    a, b = before.start_time, after.start_time
    if a is not None and b is not None and abs(a - b) > 0.5:
        return True
    for names in _RESTART_WITNESSES:
        x, y = before.value(names), after.value(names)
        if x is not None and y is not None and y < x:
            return True
    hx, hy = before.histogram(E2E), after.histogram(E2E)
    return hx is not None and hy is not None and hy.count < hx.count


# --- fetching ---------------------------------------------------------------------------------

def root_url(base_url: str) -> str:
    """``http://h:8000``, ``http://h:8000/v1`` → ``http://h:8000`` (where /metrics lives)."""
    return normalise_base_url(base_url)[: -len("/v1")]


class MetricsScraper:
    """GETs ``/metrics`` of one server through one persistent connection; call ``aclose()`` at the end.

    Parsing a scrape costs about 3 ms of CPU, so it runs on the event loop."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 5.0,
                 only: Iterable[str] | None = WANTED):
        self.root_url = root_url(base_url)
        self.metrics_url = self.root_url + "/metrics"
        self.api_key = api_key or None
        self.only = None if only is None else frozenset(only)
        # vLLM leaves /metrics open, but a proxy in front of it may not.
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._http = httpx.AsyncClient(headers=headers, trust_env=False,
                                       timeout=httpx.Timeout(timeout_s, connect=min(2.0, timeout_s)))
        self.last_duration_s: float | None = None

    async def __aenter__(self) -> MetricsScraper:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def scrape(self) -> Scrape:
        """One scrape; ProblemError subclasses for a server that is not there, refuses, or is not vLLM."""
        started = time.monotonic()
        try:
            resp = await self._http.get(self.metrics_url)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(Problem(
                f"No server at {self.root_url}", f"Could not connect ({exc or type(exc).__name__}).",
                "Start one with `llmdesk serve MODEL` or on the Server page, or check the URL.")) from None
        except httpx.TimeoutException as exc:
            raise ProblemError(Problem(f"The server at {self.root_url} did not answer in time",
                                       f"{self.metrics_url} took too long ({type(exc).__name__}).",
                                       "It may be overloaded; the next scrape will try again.")) from None
        except httpx.HTTPError as exc:
            raise ProblemError(Problem(f"Could not talk to the server at {self.root_url}",
                                       f"{type(exc).__name__}: {exc}",
                                       "Check the URL and that the server is running.")) from None
        at, wall = time.monotonic(), time.time()
        if resp.status_code in (401, 403):
            said = "The API key given was refused" if self.api_key else "The server needs an API key and none was given"
            raise Unauthorized(Problem("Wrong or missing API key",
                                       f"{said} for {self.metrics_url} (HTTP {resp.status_code}).",
                                       "Use the key the server was started with (--api-key)."))
        if resp.status_code == 404:
            raise NotVllmMetrics(Problem(
                "Not a vLLM server", f"{self.metrics_url} answered HTTP 404: there are no metrics there.",
                "Check the URL: it should be the vLLM server's root (http://127.0.0.1:8000) or its /v1 base."))
        if resp.status_code != 200:
            raise ProblemError(Problem(f"The server refused to give its metrics (HTTP {resp.status_code})",
                                       f"{self.metrics_url}: {resp.text.strip()[:300] or '(no message)'}",
                                       "Check the server's log."))
        text = resp.text
        try:
            scrape = parse_metrics(text, at=at, wall_time=wall, only=self.only)
        except UnreadableMetrics:
            scrape = None
        if scrape is None or not scrape.has_vllm:
            raise NotVllmMetrics(_no_vllm_problem(self.metrics_url, prometheus="# TYPE " in text))
        self.last_duration_s = time.monotonic() - started
        return scrape


def _no_vllm_problem(url: str, prometheus: bool) -> Problem:
    if prometheus:
        return Problem("No vLLM figures in the metrics",
                       f"{url} answers with Prometheus metrics, but none from vLLM: either the server "
                       "was started with --disable-log-stats (which turns them off), or it is not vLLM.",
                       "Start vLLM without --disable-log-stats, or check the URL.")
    return Problem("Not a vLLM server", f"{url} did not answer with Prometheus metrics.",
                   "Check the URL: it should be the vLLM server's root (http://127.0.0.1:8000) or its /v1 base.")
