"""What real vLLM 0.26.0 wrote on H100/H200 through llmdesk (tests/data/gpu-e2e) keeps being read right."""

import json
from pathlib import Path

import pytest

from llmdesk.core.diagnose import diagnose
from llmdesk.core.fit import LaunchSettings, ModelSpec, plan_fit
from llmdesk.core.gpus import GpuInfo
from llmdesk.core.launch import LaunchConfig
from llmdesk.core.metrics import MetricsWindow, parse_metrics
from llmdesk.core.model_config import geometry_from_config
from llmdesk.core.quant import detect_format
from llmdesk.core.vllm_memory_log import parse_memory_lines

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu-e2e"
RUNS = DATA.parent / "vllm-runs"


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
    ("h200-fail-kv_cache_too_small.log", LaunchConfig(model="/srv/models/mistral-7b-shape",
                                                      gpu_memory_utilization=0.117, enforce_eager=True),
     "kv_cache_too_small", {"max_model_len": 14320}),
])
def test_the_failing_launches_are_diagnosed(log, launched, cause, changes):
    diagnosis = diagnose((DATA / log).read_text().splitlines(), exit_code=1, config=launched)
    assert diagnosis.cause == cause
    assert diagnosis.changes == changes


def test_tensor_parallel_run_matches_the_fit_prediction():
    """Llama-3.2-1B shape with tensor_parallel_size=2 on two H200s: the fit engine's KV cache against vLLM's."""
    report = json.loads((DATA / "h200x2-report-tp2.json").read_text())
    run = json.loads((RUNS / "h200-llama1b.json").read_text())  # the same generated model's config
    gpus = [GpuInfo(index=g["index"], name=g["name"], uuid=g["uuid"], memory_total_bytes=g["memory_total_bytes"],
                    memory_free_bytes=g["memory_free_bytes"], memory_used_bytes=g["memory_used_bytes"],
                    compute_capability=(9, 0), driver_version=g["driver_version"], cuda_driver_version=None,
                    memory_reserved_bytes=g["memory_reserved_bytes"]) for g in report["gpus"]]
    spec = ModelSpec(name="l1b", geometry=geometry_from_config(run["config"]),
                     checkpoint_format=detect_format(run["config"]), weights_bytes=run["weights_bytes"],
                     weights_source="recorded")
    fit = plan_fit(spec, gpus, LaunchSettings(tensor_parallel_size=2))
    logged = parse_memory_lines((DATA / "h200-tp2-l1b-server.log").read_text())
    assert logged.kv_cache_tokens == 8_304_768
    assert fit.tensor_parallel_size == 2 and fit.verdict == "fits"
    assert abs(fit.kv_cache_tokens / logged.kv_cache_tokens - 1) <= 0.05
    assert report["results"]["tensor_parallel_2"]["processes_left"] == []
