"""Verdicts of the memory model at their boundaries, on catalogue GPUs and real model configs."""

import dataclasses
import json
from pathlib import Path

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.base.units import GIB
from llmdesk.core.fit.memory_model import (BLOCK_SIZE, VERDICT_FITS, VERDICT_NEEDS_TP, VERDICT_NO, VERDICT_SHORTER,
                                           VERDICT_UNSUPPORTED, LaunchSettings, ModelSpec, plan_fit,
                                           request_kv_bytes, vllm_batch_defaults)
from llmdesk.core.fit.model_config import geometry_from_config
from llmdesk.core.fit.parameters import total_parameters
from llmdesk.core.fit.quant import detect_format
from llmdesk.core.machine.gpu_catalogue import find_gpu

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"


def spec(name: str, weights: int | None = None) -> ModelSpec:
    config = json.loads((CONFIGS / f"{name}.json").read_text())
    geometry = geometry_from_config(config)
    return ModelSpec(name, geometry, detect_format(config), weights or total_parameters(geometry) * 2, "test")


def gpus(name: str, count: int = 1):
    return [find_gpu(name).as_gpu_info(i) for i in range(count)]


LLAMA8B = "meta-llama__Llama-3.1-8B-Instruct"
LLAMA70B = "meta-llama__Llama-3.3-70B-Instruct"


def test_vllm_batch_defaults_follow_the_gpu():
    assert vllm_batch_defaults(gpus("h100")[0]) == (1024, 8192)
    assert vllm_batch_defaults(gpus("h200")[0]) == (1024, 8192)
    assert vllm_batch_defaults(gpus("a100-80gb")[0]) == (256, 2048)  # A100 is excluded by vLLM
    assert vllm_batch_defaults(gpus("rtx-4090")[0]) == (256, 2048)


def test_llama8b_on_h100_fits_with_its_full_context():
    report = plan_fit(spec(LLAMA8B), gpus("h100"))
    assert report.verdict == VERDICT_FITS and report.tensor_parallel_size == 1
    assert report.kv_bytes_per_token == 131072
    assert report.max_model_len == 131072
    assert 460_000 < report.kv_cache_tokens < 470_000  # vLLM logged 462,944 on this GPU
    assert 3.4 < report.max_concurrency < 3.7  # vLLM logged 3.53x
    assert report.suggested_args == ()
    assert report.requested_bytes_per_gpu == -(-int(79.18 * GIB) * 92 // 100)


def test_the_boundary_between_fits_and_a_shorter_context():
    largest = plan_fit(spec(LLAMA8B), gpus("l4"), LaunchSettings(max_model_len=131072)).largest_max_model_len
    assert largest % BLOCK_SIZE == 0 and 0 < largest < 131072
    at = plan_fit(spec(LLAMA8B), gpus("l4"), LaunchSettings(max_model_len=largest))
    assert at.verdict == VERDICT_FITS and at.max_model_len == largest
    above = plan_fit(spec(LLAMA8B), gpus("l4"), LaunchSettings(max_model_len=largest + BLOCK_SIZE))
    assert above.verdict == VERDICT_SHORTER and above.max_model_len == largest
    assert above.suggested_args == ("--max-model-len", str(largest))
    # the safe length leaves room in the best estimate of the KV cache
    assert request_kv_bytes(spec(LLAMA8B).geometry, 2 * 8 * 128 * 2, largest, 2048) < at.kv_cache_bytes


def test_70b_needs_two_h100s_and_fits_on_them():
    one = plan_fit(spec(LLAMA70B), gpus("h100"))
    assert one.verdict == VERDICT_NEEDS_TP and one.tensor_parallel_size == 2
    assert "2 of these GPUs, 1 available" in one.summary
    # the figures show what two GPUs would give
    assert one.weights_bytes_per_gpu == 141_107_412_992 // 2 and one.max_model_len > 16384
    assert one.suggested_args[:2] == ("--tensor-parallel-size", "2")
    two = plan_fit(spec(LLAMA70B), gpus("h100", 2))
    assert two.tensor_parallel_size == 2 and two.verdict == VERDICT_SHORTER
    assert two.weights_bytes_per_gpu == 141_107_412_992 // 2
    assert two.suggested_args[:2] == ("--tensor-parallel-size", "2")
    four = plan_fit(spec(LLAMA70B), gpus("h100", 4), LaunchSettings(tensor_parallel_size=4))
    assert four.verdict == VERDICT_FITS and four.kv_bytes_per_token == 327680 // 4


def test_70b_does_not_fit_on_t4s_even_with_eight():
    report = plan_fit(spec(LLAMA70B), gpus("t4"))
    assert report.verdict == VERDICT_NO
    assert report.summary.startswith("Does not fit, even on 8 of these GPUs")
    assert report.suggested_args == () and report.max_model_len == 0 and report.max_concurrency == 0


def test_tensor_parallel_must_divide_the_heads():
    with pytest.raises(BadInput) as caught:
        plan_fit(spec(LLAMA8B), gpus("h100", 3), LaunchSettings(tensor_parallel_size=3))
    assert "Use one of 1, 2, 4, 8" in caught.value.problem.fix


def test_fp8_checkpoint_runs_on_a100_through_a_fallback_and_not_on_v100():
    config = json.loads((CONFIGS / "Qwen__Qwen3-30B-A3B-FP8.json").read_text())
    fp8 = ModelSpec("fp8", geometry_from_config(config), detect_format(config), 31_170_895_872, "test")
    on_a100 = plan_fit(fp8, gpus("a100-80gb"))
    assert on_a100.gpu_support == "fallback" and on_a100.verdict == VERDICT_FITS
    assert any("8.9" in note for note in on_a100.notes)
    on_h100 = plan_fit(fp8, gpus("h100"))
    assert on_h100.gpu_support == "native" and on_h100.notes == ()
    on_v100 = plan_fit(fp8, gpus("v100-32gb"))
    assert on_v100.verdict == VERDICT_UNSUPPORTED and on_v100.suggested_args == ()


def test_on_the_fly_fp8_halves_the_linear_weights():
    bf16 = plan_fit(spec(LLAMA8B), gpus("h100"))
    fp8 = plan_fit(spec(LLAMA8B), gpus("h100"), LaunchSettings(quantization="fp8"))
    assert bf16.weights_bytes == 16_060_522_496
    assert fp8.weights_bytes == 6_979_321_856 + 1_050_939_392 * 2  # linears at 1 byte, the rest at 2
    assert fp8.kv_cache_bytes - bf16.kv_cache_bytes == bf16.weights_bytes - fp8.weights_bytes
    assert "--quantization" in fp8.suggested_args


def test_fp8_kv_cache_doubles_the_tokens():
    auto = plan_fit(spec(LLAMA8B), gpus("h100"))
    fp8 = plan_fit(spec(LLAMA8B), gpus("h100"), LaunchSettings(kv_cache_dtype="fp8"))
    assert fp8.kv_bytes_per_token * 2 == auto.kv_bytes_per_token
    assert abs(fp8.kv_cache_tokens - 2 * auto.kv_cache_tokens) <= BLOCK_SIZE
    assert fp8.suggested_args == ("--kv-cache-dtype", "fp8")


def test_sliding_window_layers_stop_growing_at_the_window():
    gemma = spec("google__gemma-2-9b-it")
    report = plan_fit(gemma, gpus("l4"))
    full_only = request_kv_bytes(gemma.geometry, 2 * 8 * 256 * 2, 8192, 2048)
    assert full_only < 42 * 8192 * 8 * 256 * 2 * 2  # less than every layer holding 8192 tokens
    assert report.kv_cache_tokens == int(report.max_concurrency * report.max_model_len)


def test_eager_mode_has_no_cuda_graphs_and_small_gpus_get_small_batches():
    report = plan_fit(spec(LLAMA8B), gpus("rtx-4090"), LaunchSettings(enforce_eager=True, max_model_len=8192))
    assert report.allowances["cuda_graphs"].bytes == 0
    assert (report.max_num_seqs, report.max_num_batched_tokens) == (256, 2048)
    assert report.suggested_args == ("--max-model-len", "8192", "--enforce-eager")


def test_other_programs_on_the_gpu_are_reported():
    busy = dataclasses.replace(gpus("h100")[0], memory_free_bytes=40 * GIB)
    report = plan_fit(spec(LLAMA8B), [busy])
    assert not report.free_memory_ok
    assert "--gpu-memory-utilization 0.49" in report.notes[0]


@pytest.mark.parametrize("settings, word", [
    (LaunchSettings(gpu_memory_utilization=1.5), "gpu_memory_utilization"),
    (LaunchSettings(gpu_memory_utilization=0), "gpu_memory_utilization"),
    (LaunchSettings(max_model_len=-5), "max_model_len"),
    (LaunchSettings(max_num_seqs=0), "max_num_seqs"),
    (LaunchSettings(kv_cache_dtype="fp7"), "kv_cache_dtype"),
])
def test_impossible_settings_are_bad_input(settings, word):
    with pytest.raises(BadInput) as caught:
        plan_fit(spec(LLAMA8B), gpus("h100"), settings)
    assert word in caught.value.problem.explanation


def test_report_json_has_stable_keys():
    keys = set(plan_fit(spec(LLAMA8B), gpus("h100")).as_dict())
    assert {"weights_bytes", "kv_bytes_per_token", "kv_cache_tokens", "max_model_len", "max_concurrency",
            "tensor_parallel_size", "verdict", "suggested_args", "allowances"} <= keys
    json.dumps(plan_fit(spec(LLAMA8B), gpus("h100")).as_dict())


def test_a_context_longer_than_the_model_allows_is_refused_with_both_numbers_in_place():
    with pytest.raises(BadInput) as caught:
        plan_fit(spec(LLAMA8B), gpus("h100"), LaunchSettings(max_model_len=4_000_000))
    said = caught.value.problem.explanation
    assert "A context of 4,000,000 tokens is more than" in said and "at most 131,072" in said
    assert "--max-model-len 131072" in caught.value.problem.fix


def test_a_shorter_context_says_what_was_asked_for_or_what_the_model_allows():
    asked = plan_fit(spec(LLAMA8B), gpus("l4"), LaunchSettings(max_model_len=131_072))
    assert asked.verdict == VERDICT_SHORTER
    assert asked.summary.endswith("(you asked for 131,072).")
    assert f"at most {asked.max_model_len:,} tokens" in asked.summary
    default = plan_fit(spec(LLAMA8B), gpus("l4"))
    assert default.summary.endswith("(the model allows 131,072).")


def test_cuda_graph_capture_sizes_as_vllm_0_26_counts_them():
    from llmdesk.core.fit.memory_model import capture_sizes

    dense = geometry_from_config({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
                                  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                                  "intermediate_size": 14336, "max_position_embeddings": 131072})
    gpt_oss = dataclasses.replace(dense, architecture="GptOssForCausalLM")
    assert len(capture_sizes(dense, 1024, 8192)) == 51  # "PIECEWISE=51 (largest=512)" in the H100 logs
    assert len(capture_sizes(gpt_oss, 1024, 8192)) == 83  # gpt-oss: "PIECEWISE=83 (largest=1024)"
    assert capture_sizes(gpt_oss, 64, 8192)[-1] == 1024  # vLLM's override ignores max_num_seqs
    assert capture_sizes(dense, 64, 8192)[-1] == 128 and capture_sizes(gpt_oss, 1024, 300)[-1] == 288  # batched cap
