"""One level of a benchmark in figures, with the definitions of `vllm bench serve` 0.26.0
(`calculate_metrics` in vllm/benchmarks/serve.py), so that llmdesk's numbers compare with vLLM's:

- TTFT: request sent to the first content chunk; E2E latency: request sent to the last byte;
- TPOT = (latency − TTFT) / (output tokens − 1) per request, left out when a request made one token;
- ITL: every gap between chunks, pooled across requests;
- output throughput = Σ output tokens / the level's duration (total adds the prompt tokens);
- percentiles as numpy's (linear), means and standard deviations over the successful requests;
- goodput (DistServe): requests per second that met every service-level limit set (TTFT, TPOT, E2E).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50, 90, 99)
SLO_KEYS = ("ttft", "tpot", "e2el")


@dataclass(frozen=True)
class RequestResult:
    """One request as the load generator saw it (seconds; token counts from the server's usage)."""

    ok: bool
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float = 0.0
    latency_s: float = 0.0
    itls_s: tuple[float, ...] = ()
    error: str = ""

    @property
    def tpot_s(self) -> float | None:
        if not self.ok or self.output_tokens <= 1:
            return None
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class Distribution:
    """Milliseconds: mean, std and the percentiles (p50 is vLLM's median)."""

    mean: float
    std: float
    percentiles: Mapping[int, float] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return self.percentiles.get(50, float("nan"))

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, **{f"p{p}": v for p, v in sorted(self.percentiles.items())}}


@dataclass(frozen=True)
class LevelMetrics:
    duration_s: float
    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    request_goodput: float | None
    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2el_ms: Distribution
    errors: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """vLLM's key names where it has them (its JSON flattens the distributions)."""
        return {"duration": self.duration_s, "completed": self.completed, "failed": self.failed,
                "total_input_tokens": self.total_input_tokens, "total_output_tokens": self.total_output_tokens,
                "request_throughput": self.request_throughput, "request_goodput": self.request_goodput,
                "output_throughput": self.output_throughput, "total_token_throughput": self.total_token_throughput,
                "ttft_ms": self.ttft_ms.as_dict(), "tpot_ms": self.tpot_ms.as_dict(), "itl_ms": self.itl_ms.as_dict(),
                "e2e_ms": self.e2el_ms.as_dict(), "errors": list(self.errors)}


def distribution(values_s: Sequence[float], percentiles: Sequence[int] = PERCENTILES) -> Distribution:
    import numpy as np

    if not values_s:
        return Distribution(0.0, 0.0, {p: 0.0 for p in percentiles})  # vLLM reports 0 for an empty list
    ms = np.asarray(values_s, dtype=float) * 1000.0
    return Distribution(float(ms.mean()), float(ms.std()), {p: float(np.percentile(ms, p)) for p in percentiles})


def level_metrics(results: Sequence[RequestResult], duration_s: float, *,
                  slo_ms: Mapping[str, float] | None = None,
                  percentiles: Sequence[int] = PERCENTILES) -> LevelMetrics:
    """The figures of one level from its requests (warm-up requests already left out)."""
    if duration_s <= 0:
        raise ValueError("a level lasts some time")
    done = [r for r in results if r.ok]
    input_tokens = sum(r.prompt_tokens for r in done)
    output_tokens = sum(r.output_tokens for r in done)
    tpots = [t for r in done if (t := r.tpot_s) is not None]
    goodput = None
    if slo_ms:
        unknown = set(slo_ms) - set(SLO_KEYS)
        if unknown:
            raise ValueError(f"service-level limits are on {', '.join(SLO_KEYS)}, not {', '.join(sorted(unknown))}")
        good = sum(1 for r in done if _meets(r, slo_ms))
        goodput = good / duration_s
    return LevelMetrics(
        duration_s=duration_s, completed=len(done), failed=len(results) - len(done),
        total_input_tokens=input_tokens, total_output_tokens=output_tokens,
        request_throughput=len(done) / duration_s, output_throughput=output_tokens / duration_s,
        total_token_throughput=(input_tokens + output_tokens) / duration_s, request_goodput=goodput,
        ttft_ms=distribution([r.ttft_s for r in done], percentiles), tpot_ms=distribution(tpots, percentiles),
        itl_ms=distribution([gap for r in done for gap in r.itls_s], percentiles),
        e2el_ms=distribution([r.latency_s for r in done], percentiles),
        errors=tuple(sorted({r.error for r in results if not r.ok and r.error})))


def _meets(result: RequestResult, slo_ms: Mapping[str, float]) -> bool:
    measured = {"ttft": result.ttft_s * 1000, "e2el": result.latency_s * 1000,
                "tpot": (result.tpot_s or 0.0) * 1000}  # vLLM counts a one-token request's TPOT as 0
    return all(measured[key] <= limit for key, limit in slo_ms.items())
