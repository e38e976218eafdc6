"""vLLM 0.26's memory lines, read from real logs (shared samples and our H100 runs)."""

from pathlib import Path

from llmdesk.core.fit.vllm_memory_log import MemoryLines, parse_memory_lines

RUNS = Path(__file__).resolve().parents[1] / "data" / "vllm-runs"


def read(name: str) -> MemoryLines:
    return parse_memory_lines((RUNS / name).read_text(errors="replace"))


def test_a_full_start_up_on_the_h200():
    assert read("h200-llama1b.log") == MemoryLines(
        weights_gib=2.3, kv_cache_gib=125.53, kv_cache_tokens=4_113_344, max_concurrency=502.12,
        concurrency_length=8192, max_num_batched_tokens=8192, cuda_graph_gib=0.45, free_gib=139.29,
        total_gib=139.8, utilization=0.92, requested_gib=128.62, activation_gib=0.56, non_torch_gib=0.22)


def test_moe_start_up_on_the_h100():
    lines = read("h100-moe8l.log")
    assert (lines.kv_cache_gib, lines.kv_cache_tokens, lines.max_concurrency) == (59.14, 3_875_792, 94.62)
    assert (lines.total_gib, lines.activation_gib, lines.non_torch_gib) == (79.18, 2.68, 0.23)


def test_a_context_that_does_not_fit_gives_vllms_own_largest_length():
    lines = read("h100-llama8b-util025.log")
    assert (lines.needed_len, lines.needed_kv_gib, lines.kv_cache_gib, lines.estimated_max_model_len) == \
        (131072, 16.0, 3.69, 30224)
    assert lines.kv_cache_tokens is None


def test_no_memory_left_at_all():
    lines = read("h200-llama1b-util002.log")
    assert lines.kv_cache_gib == -0.23 and lines.kv_cache_tokens is None


def test_text_without_memory_lines():
    assert parse_memory_lines("INFO starting\nERROR boom\n") == MemoryLines()
