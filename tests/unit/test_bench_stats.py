"""The figures of a benchmark level, checked against values worked out by hand with the definitions
of `vllm bench serve` 0.26.0 (calculate_metrics)."""

import math

import pytest

from llmdesk.core.bench.stats import RequestResult, distribution, level_metrics


def request(ttft, latency, tokens, prompt=100, itls=()):
    return RequestResult(ok=True, prompt_tokens=prompt, output_tokens=tokens, ttft_s=ttft, latency_s=latency,
                         itls_s=tuple(itls))


RESULTS = [
    request(0.10, 1.10, 101, itls=[0.01] * 100),  # TPOT = 1.0 / 100 = 10 ms
    request(0.20, 2.20, 101, itls=[0.02] * 100),  # TPOT = 20 ms
    request(0.30, 0.30, 1),  # one token: no TPOT, but counted as 0 for goodput
    RequestResult(ok=False, error="Server disconnected"),
]


def test_throughputs_count_only_completed_requests_over_the_level():
    m = level_metrics(RESULTS, duration_s=4.0)
    assert (m.completed, m.failed) == (3, 1)
    assert (m.total_input_tokens, m.total_output_tokens) == (300, 203)
    assert m.request_throughput == 0.75 and m.output_throughput == 203 / 4 and m.total_token_throughput == 503 / 4
    assert m.errors == ("Server disconnected",) and m.request_goodput is None


def test_latencies_follow_vllm_ttft_tpot_pooled_itl_and_e2e():
    m = level_metrics(RESULTS, duration_s=4.0)
    assert m.ttft_ms.mean == pytest.approx(200.0) and m.ttft_ms.p50 == pytest.approx(200.0)
    assert m.tpot_ms.mean == pytest.approx(15.0) and m.tpot_ms.percentiles[99] == pytest.approx(19.9)
    assert m.itl_ms.mean == pytest.approx(15.0) and m.itl_ms.p50 == pytest.approx(15.0)  # 200 gaps pooled
    assert m.e2el_ms.percentiles[90] == pytest.approx(1100 + 0.8 * 1100)  # numpy's linear percentile
    assert m.ttft_ms.std == pytest.approx(math.sqrt(((100 - 200) ** 2 + 0 + 100 ** 2) / 3))


def test_goodput_counts_requests_within_every_limit_a_one_token_request_has_tpot_zero():
    assert level_metrics(RESULTS, 4.0, slo_ms={"ttft": 250}).request_goodput == 0.5
    assert level_metrics(RESULTS, 4.0, slo_ms={"tpot": 15}).request_goodput == 0.5  # 10 ms and the 0
    assert level_metrics(RESULTS, 4.0, slo_ms={"ttft": 250, "tpot": 15, "e2el": 2000}).request_goodput == 0.25
    with pytest.raises(ValueError, match="ttft, tpot, e2el"):
        level_metrics(RESULTS, 4.0, slo_ms={"itl": 5})


def test_an_empty_level_reports_zeros_as_vllm_does():
    m = level_metrics([RequestResult(ok=False, error="refused")], duration_s=1.0)
    assert m.completed == 0 and m.output_throughput == 0 and m.ttft_ms.mean == 0 and m.ttft_ms.p50 == 0
    assert distribution([]).as_dict() == {"mean": 0.0, "std": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}


def test_the_json_uses_vllms_names():
    d = level_metrics(RESULTS, 4.0).as_dict()
    assert {"completed", "failed", "request_throughput", "output_throughput", "total_token_throughput",
            "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "duration"} <= set(d)
    assert set(d["ttft_ms"]) == {"mean", "std", "p50", "p90", "p99"}
