"""What real vLLM 0.26.0 wrote on H100/H200 through llmdesk (tests/data/gpu-e2e) keeps being read right."""

from pathlib import Path

import pytest

from llmdesk.core.metrics.scrape import parse_metrics
from llmdesk.core.metrics.window import MetricsWindow
from llmdesk.core.server.diagnose import diagnose
from llmdesk.core.server.launch import LaunchConfig

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu-e2e"


def test_metrics_under_load_count_every_generated_token():
    window = MetricsWindow()
    before = window.add(parse_metrics((DATA / "e2e-metrics-before.txt").read_text(), at=0.0))
    after = window.add(parse_metrics((DATA / "e2e-metrics-after.txt").read_text(), at=10.0))
    # 64 concurrent chats of exactly 512 tokens ran between the two scrapes.
    assert after.generation_tokens_total - before.generation_tokens_total == 64 * 512
    assert after.generation_tokens_per_s == 64 * 512 / 10.0
    assert after.requests_running == 0 and after.requests_waiting == 0
    assert after.ttft_p50_s is not None and after.e2e_p50_s is not None


@pytest.mark.parametrize("log, launched, cause, changes", [
    # Llama-3.2-1B shape at 0.02 of an H100: no memory left for any KV cache.
    ("fail-no_kv_memory.log", LaunchConfig(model="/srv/models/llama-3.2-1b", gpu_memory_utilization=0.02,
                                           enforce_eager=True), "no_kv_memory", {"gpu_memory_utilization": 0.92}),
    # Mistral-7B shape (32,768-token context) at 0.117 of an H200: vLLM refused, naming 14,320 tokens.
    ("../vllm-runs/h200-mistral7b-util0117.log", LaunchConfig(model="/srv/models/mistral-7b-shape",
                                                              gpu_memory_utilization=0.117, enforce_eager=True),
     "kv_cache_too_small", {"max_model_len": 14320}),
])
def test_the_failing_launches_are_diagnosed(log, launched, cause, changes):
    diagnosis = diagnose((DATA / log).read_text().splitlines(), exit_code=1, config=launched)
    assert diagnosis.cause == cause
    assert diagnosis.changes == changes
