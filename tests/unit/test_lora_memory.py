"""LoRA adapter memory (#21): what vLLM 0.26 reserves with --enable-lora, counted layer by layer, taken
from the KV cache, carried to the suggested arguments and to the Server page's launch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.fit.lora_memory import lora_buffer_bytes, lora_buffer_elements
from llmdesk.core.fit.memory_model import LaunchSettings, plan_fit
from llmdesk.core.fit.model_config import geometry_from_config
from llmdesk.core.server.launch import config_from_fit
from tests.unit.test_fit import gpus, spec

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"


def geometry(name: str):
    return geometry_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


def test_llama_8b_rank_16_one_slot_by_hand():
    g = geometry("meta-llama__Llama-3.1-8B-Instruct")
    r, hidden, q, kv, inter, vocab = 16, 4096, 4096, 1024, 14336, 128256
    per_layer = (r * hidden * 3 + (q + kv + kv) * r) + (r * q + hidden * r) \
        + (r * hidden * 2 + 2 * inter * r) + (r * inter + hidden * r)
    expected = 32 * per_layer + (vocab * r + hidden * r) + (r * hidden + vocab * r)
    assert lora_buffer_elements(g, 1, 16) == expected == 46_178_304
    assert lora_buffer_bytes(g, 1, 16) == 2 * expected  # 88 MiB in bf16
    assert lora_buffer_bytes(g, 4, 64) == 4 * 4 * 2 * expected  # linear in slots and in rank


def test_tensor_parallelism_splits_the_sharded_halves_only():
    g = geometry("meta-llama__Llama-3.1-8B-Instruct")
    one, two = lora_buffer_elements(g, 1, 16), lora_buffer_elements(g, 1, 16, tp=2)
    assert one / 2 < two < one  # the A of column layers, the B of row layers and the embeddings stay whole


def test_moe_and_mla_are_not_modelled_and_the_fit_says_so():
    for name in ("Qwen__Qwen3-30B-A3B", "deepseek-ai__DeepSeek-V2-Lite"):
        assert lora_buffer_elements(geometry(name), 1, 16) is None
    report = plan_fit(spec("Qwen__Qwen3-30B-A3B"), gpus("H100"), LaunchSettings(max_model_len=8192, max_loras=2))
    assert "lora" not in report.allowances and any("LoRA" in n for n in report.notes)


def test_the_adapters_come_out_of_the_kv_cache_and_into_the_arguments():
    model, h100 = spec("meta-llama__Llama-3.1-8B-Instruct"), gpus("H100")
    plain = plan_fit(model, h100, LaunchSettings(max_model_len=8192))
    lora = plan_fit(model, h100, LaunchSettings(max_model_len=8192, max_loras=4, max_lora_rank=64))
    reserved = lora.allowances["lora"].bytes
    assert reserved == lora_buffer_bytes(model.geometry, 4, 64)
    assert plain.kv_cache_bytes - lora.kv_cache_bytes == reserved
    args = list(lora.suggested_args)
    at = args.index("--enable-lora")
    assert args[at:at + 5] == ["--enable-lora", "--max-loras", "4", "--max-lora-rank", "64"]
    config = config_from_fit("meta-llama/Llama-3.1-8B-Instruct", lora)
    assert config.lora_enabled and config.max_loras == 4 and config.max_lora_rank == 64
    assert "--enable-lora" not in config.extra_args


@pytest.mark.parametrize("settings", [LaunchSettings(max_loras=0), LaunchSettings(max_loras=2, max_lora_rank=24)])
def test_impossible_lora_settings_are_bad_input(settings):
    with pytest.raises(BadInput):
        settings.validate()


def test_the_memory_bar_shows_the_adapters():
    from llmdesk.ui.fit.panel import memory_segments

    report = plan_fit(spec("meta-llama__Llama-3.1-8B-Instruct"), gpus("H100"),
                      dataclasses.replace(LaunchSettings(max_model_len=8192), max_loras=1))
    assert ("lora", report.allowances["lora"].bytes) in memory_segments(report)
