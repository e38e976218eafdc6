"""Scrapes kept in a ``MetricsWindow`` that derives the live figures (``MetricsSnapshot``), chart
series and CSV (no I/O but the CSV file, no Qt).

    scraper = MetricsScraper(default_base_url(), api_key=None)   # metrics.scraper
    window = MetricsWindow()                                     # 15 min of history
    every interval (0.25–5 s):
        snap = window.add(await scraper.scrape())                # ProblemError when it fails
        snap.generation_tokens_per_s, snap.kv_cache_usage, snap.ttft_p95_s, ...   (None: not known)
    times, values = window.series("generation_tokens_per_s", since_s=300)       # for a chart
    window.to_csv(path)
    await scraper.aclose()

How the figures are made:

- Throughput comes from counter differences between scrapes, timed with the caller's monotonic clock
  because the text format carries no timestamps. A counter lower than before means the server
  restarted (``process_start_time_seconds`` changing says so too): that interval counts the new value
  from zero, never a negative rate.
- Latency percentiles come from the increase of each cumulative histogram bucket over a sliding
  window, interpolated inside the bucket exactly as Prometheus' ``histogram_quantile`` does.
"""


from __future__ import annotations

import bisect
import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, TextIO



from llmdesk.core.metrics.scrape import E2E, FINISHED, FINISH_REASONS, GENERATION_TOKENS, Histogram, ITL, KV_USAGE, PREEMPTIONS, PREFIX_HITS, PREFIX_QUERIES, PROMPT_BY_SOURCE, PROMPT_TOKENS, RUNNING, Scrape, TTFT, WAITING

# Counters watched for a restart when process_start_time_seconds is missing (api-server-count > 1).
_RESTART_WITNESSES = (GENERATION_TOKENS, PROMPT_TOKENS, FINISHED, PREFIX_QUERIES, PREEMPTIONS)

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
    lora_slots: int | None = None  # --max-loras; None: LoRA off (no vllm:lora_requests_info)
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
                      "lora_adapters_running", "lora_adapters_waiting", "lora_slots", "models"))
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
            lora_adapters_running=running, lora_adapters_waiting=waiting, lora_slots=cur.lora_slots,
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
