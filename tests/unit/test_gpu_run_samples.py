"""What real vLLM 0.26.0 wrote on an H100 through llmdesk (tests/data/gpu-e2e) keeps being read right."""

from pathlib import Path

from llmdesk.core.diagnose import diagnose
from llmdesk.core.launch import LaunchConfig
from llmdesk.core.metrics import MetricsWindow, parse_metrics

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


def test_the_failing_launch_is_diagnosed():
    lines = (DATA / "fail-no_kv_memory.log").read_text().splitlines()
    launched = LaunchConfig(model="/srv/models/llama-3.2-1b", gpu_memory_utilization=0.02, enforce_eager=True)
    diagnosis = diagnose(lines, exit_code=1, config=launched)
    assert diagnosis.cause == "no_kv_memory"
    assert diagnosis.changes == {"gpu_memory_utilization": 0.92}
