"""vLLM's ``/metrics`` text parsed into a ``Scrape``: every wanted series summed over engines and kept
per served model, with names that changed across releases looked up newest first (no I/O, no Qt).

- Every series is summed over the ``engine`` label (data-parallel engines) and kept per served model
  (``model_name``); the fraction gauges (KV-cache usage) are averaged instead.
- Names that changed across releases are looked up newest first (``vllm:kv_cache_usage_perc`` then
  ``vllm:gpu_cache_usage_perc``, and so on); a series that is absent gives None, as every ``vllm:``
  series is when the server runs with ``--disable-log-stats``.

What vLLM 0.26 exposes is in the project's vLLM reference, section 3.
"""


from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


from llmdesk.core.base.errors import Problem, ProblemError


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

    @property
    def lora_slots(self) -> int | None:
        """--max-loras of a server with LoRA on (``max_lora`` of ``vllm:lora_requests_info``); None with LoRA off."""
        series = self.info(LORA_INFO)
        return _int_label(max(series, key=lambda item: item[1])[0], "max_lora") if series else None


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
