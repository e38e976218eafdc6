"""Where a sweep saturates, from its levels (as saved: dicts with `concurrency` or `rate`,
`output_throughput`, `ttft_ms`/`tpot_ms`/`e2e_ms` distributions and the server's `waiting_peak`).

- The knee is the last level after which adding load still paid: the next level's output throughput
  grew by less than 10%, or requests started waiting in vLLM's queue while TTFT more than doubled.
  Beyond it, more users mostly add latency. None when every level still grew (the sweep did not
  reach saturation).
- "The highest load that meets the limits": the largest level whose p99 TTFT, TPOT and E2E latency
  are within the limits set (GuideLLM judges its SLO presets at p99).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GROWTH_THAT_PAYS = 0.10
TTFT_CLIMB = 2.0
_SLO_FIELDS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2el": "e2e_ms"}


@dataclass(frozen=True)
class Saturation:
    knee: float | None  # the concurrency (or rate) of the knee level
    reason: str  # a sentence saying why it is the knee, or that none was found
    best_within_limits: float | None  # the highest load meeting every limit; None if none does or no limits

    def as_dict(self) -> dict:
        return {"knee": self.knee, "reason": self.reason, "best_within_limits": self.best_within_limits}


def load_of(level: Mapping) -> float:
    """The level's load: its concurrency, or its request rate in rate mode."""
    return level.get("concurrency") or level.get("rate") or 0


def find_saturation(levels: Sequence[Mapping], slo_ms: Mapping[str, float] | None = None) -> Saturation:
    ordered = sorted((lv for lv in levels if lv.get("completed")), key=load_of)
    knee, reason = None, "Not saturated: throughput still grew by 10% or more at every step."
    if len(ordered) < 2:
        reason = "One level is not enough to see where throughput stops growing."
    for before, after in zip(ordered, ordered[1:]):
        growth = after["output_throughput"] / before["output_throughput"] - 1 if before["output_throughput"] else 0
        ttft_before = _p(before, "ttft_ms", 50)
        ttft_after = _p(after, "ttft_ms", 50)
        queueing = ((after.get("server") or {}).get("waiting_peak") or 0) > 0 and ttft_before > 0 \
            and ttft_after > TTFT_CLIMB * ttft_before
        if growth < GROWTH_THAT_PAYS:
            knee = load_of(before)
            reason = (f"Going from {_fmt(before)} to {_fmt(after)} added only {growth:.0%} output throughput "
                      f"({before['output_throughput']:,.0f} → {after['output_throughput']:,.0f} tokens/s).")
            break
        if queueing:
            knee = load_of(before)
            reason = (f"At {_fmt(after)} requests waited in the server's queue and the median time to first token "
                      f"rose from {ttft_before:,.0f} to {ttft_after:,.0f} ms.")
            break
    best = None
    if slo_ms:
        meeting = [load_of(lv) for lv in ordered if meets_limits(lv, slo_ms)]
        best = max(meeting) if meeting else None
    return Saturation(knee, reason, best)


def meets_limits(level: Mapping, slo_ms: Mapping[str, float]) -> bool:
    if not level.get("completed") or level.get("failed"):
        return False
    return all(_p(level, _SLO_FIELDS[key], 99) <= limit for key, limit in slo_ms.items() if key in _SLO_FIELDS)


def _p(level: Mapping, field: str, percentile: int) -> float:
    return float((level.get(field) or {}).get(f"p{percentile}") or 0.0)


def _fmt(level: Mapping) -> str:
    if level.get("concurrency"):
        return f"{level['concurrency']} at a time"
    return f"{level.get('rate')} requests/s"
