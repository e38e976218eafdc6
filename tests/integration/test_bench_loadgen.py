"""The load generator against the vLLM stand-in, whose first token comes after a fixed time and the
others at a fixed rate: the measured TTFT, TPOT, ITL and throughput must be the analytic ones within 5%."""

from __future__ import annotations

import asyncio

import pytest

from llmdesk.core.bench.loadgen import Target, run_level
from llmdesk.core.bench.workload import Request
from tests.fakes.standin_server import running_standin

RATE = 100  # tokens per second per request: 10 ms between tokens
TTFT = 0.3  # long enough that a few ms of HTTP on a busy machine stay under 5%
OUTPUT = 30
REQUEST_S = TTFT + (OUTPUT - 1) / RATE  # each request, start to last token


@pytest.fixture
def server(tmp_path):
    with running_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": str(RATE), "FAKE_VLLM_TTFT_S": str(TTFT)}) as root:
        yield root


@pytest.mark.parametrize("concurrency", [1, 4])
def test_measured_figures_match_the_servers_fixed_token_rate(server, concurrency):
    prompts = [Request([1, 2, 3], OUTPUT)] * (2 * concurrency)
    level = asyncio.run(run_level(Target(server, "demo"), prompts, concurrency=concurrency))
    m = level.metrics
    assert (m.completed, m.failed) == (len(prompts), 0)
    assert m.total_output_tokens == OUTPUT * len(prompts)  # ignore_eos: exactly output_len each
    assert m.ttft_ms.p50 == pytest.approx(1000 * TTFT, rel=0.05)
    assert m.tpot_ms.mean == pytest.approx(1000 / RATE, rel=0.05)
    assert m.itl_ms.p50 == pytest.approx(1000 / RATE, rel=0.05)
    ideal = concurrency * OUTPUT / REQUEST_S  # every slot busy all the time
    assert m.output_throughput == pytest.approx(ideal, rel=0.05)


def test_a_server_that_is_not_there_fails_every_request_with_its_reason():
    level = asyncio.run(run_level(Target("http://127.0.0.1:9", "demo"), [Request("hi", 8)] * 3, concurrency=2))
    assert level.metrics.completed == 0 and level.metrics.failed == 3
    assert level.metrics.errors and "Connect" in level.metrics.errors[0]


def test_a_model_the_server_does_not_serve_is_an_http_error_per_request(server):
    level = asyncio.run(run_level(Target(server, "not-served"), [Request("hi", 8)], concurrency=1))
    assert level.metrics.failed == 1 and level.metrics.errors[0].startswith("HTTP 404")
    assert "does not exist" in level.metrics.errors[0]
