"""Geometry, KV bytes per token and parameter counts of real models, from their real config.json.

Expected values: shared reference hub.md section 4 (published index sizes, worked KV examples).
"""

import json
from pathlib import Path

import pytest

from llmdesk.core.fit.memory_model import kv_bytes_per_token_per_layer
from llmdesk.core.fit.model_config import FULL, SLIDING, BadModelConfig, geometry_from_config
from llmdesk.core.fit.parameters import split_parameters, total_parameters

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"


def geometry(name: str):
    return geometry_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


def kv_per_token(g, dtype_bytes=2, tp=1) -> int:
    return int(kv_bytes_per_token_per_layer(g, dtype_bytes, tp) * (g.full_layers + g.sliding_layers))


# name: (layers, kv heads, head_dim, max context, KV bytes/token in bf16, parameters)
REAL_MODELS = {
    "meta-llama__Llama-3.1-8B-Instruct": (32, 8, 128, 131072, 131072, 8_030_261_248),
    "meta-llama__Llama-3.3-70B-Instruct": (80, 8, 128, 131072, 327680, 70_553_706_496),
    "Qwen__Qwen2.5-7B-Instruct": (28, 4, 128, 32768, 57344, 7_615_616_512),
    "Qwen__Qwen3-30B-A3B": (48, 4, 128, 40960, 98304, 30_532_122_624),
    "Qwen__Qwen3-32B": (64, 8, 128, 40960, 262144, 32_762_123_264),
    "mistralai__Mistral-7B-Instruct-v0.3": (32, 8, 128, 32768, 131072, 7_248_023_552),
    "google__gemma-2-9b-it": (42, 8, 256, 8192, 344064, 9_241_705_984),
}


@pytest.mark.parametrize("name", sorted(REAL_MODELS))
def test_geometry_kv_and_parameters_of_real_models(name):
    layers, kv_heads, head_dim, context, kv_bytes, parameters = REAL_MODELS[name]
    g = geometry(name)
    assert (g.num_layers, g.num_kv_heads, g.head_dim, g.max_position_embeddings) == (layers, kv_heads, head_dim, context)
    assert kv_per_token(g) == kv_bytes
    assert total_parameters(g) == parameters  # equals the published safetensors index total_size / 2


def test_moe_geometry_counts_every_expert():
    g = geometry("Qwen__Qwen3-30B-A3B")
    assert (g.moe.num_experts, g.moe.experts_per_token, g.moe.expert_intermediate_size) == (128, 8, 768)
    linear, other = split_parameters(g)
    assert linear > 0.97 * total_parameters(g)  # experts dominate; all of them are resident


def test_mla_keeps_one_latent_per_token_not_split_by_tensor_parallel():
    g = geometry("deepseek-ai__DeepSeek-V2-Lite")
    assert (g.mla.kv_lora_rank, g.mla.qk_rope_head_dim, g.mla.latent_size) == (512, 64, 576)
    assert kv_per_token(g) == 27 * 576 * 2 == 31104
    assert kv_per_token(g, tp=2) == 31104
    v3 = geometry("deepseek-ai__DeepSeek-V3")
    assert kv_per_token(v3) == 61 * 576 * 2 == 70272
    assert (v3.moe.num_experts, v3.moe.num_shared_experts, v3.moe.first_dense_layers) == (256, 1, 3)


def test_gemma2_alternates_sliding_and_global_layers():
    g = geometry("google__gemma-2-9b-it")
    assert g.layer_kinds[:4] == (SLIDING, FULL, SLIDING, FULL)
    assert (g.full_layers, g.sliding_layers, g.sliding_window) == (21, 21, 4096)
    assert g.tie_word_embeddings  # absent from the file: Gemma's default


def test_gemma3_text_config_with_class_defaults():
    g = geometry("google__gemma-3-27b-it")
    assert g.architecture == "Gemma3ForConditionalGeneration" and g.is_multimodal
    assert (g.num_layers, g.hidden_size, g.vocab_size, g.max_position_embeddings) == (62, 5376, 262208, 131072)
    assert (g.full_layers, g.sliding_layers, g.sliding_window) == (10, 52, 1024)  # 5 local : 1 global
    assert g.layer_kinds[5] == FULL and g.layer_kinds[4] == SLIDING


def test_gpt_oss_reads_layer_types():
    g = geometry("openai__gpt-oss-20b")
    assert (g.full_layers, g.sliding_layers, g.sliding_window) == (12, 12, 128)
    assert g.moe.num_experts == 32 and g.moe.experts_per_token == 4


def test_qwen2_window_that_is_switched_off_is_full_attention():
    g = geometry("Qwen__Qwen2.5-7B-Instruct")
    assert g.sliding_layers == 0 and g.sliding_window is None and g.qkv_bias


def test_linear_attention_layers_hold_no_per_token_kv():
    config = json.loads((CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json").read_text())
    config["layer_types"] = ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 8
    g = geometry_from_config(config)
    assert (g.full_layers, g.sliding_layers) == (8, 0)
    assert kv_per_token(g) == 8 * 2 * 8 * 128 * 2


@pytest.mark.parametrize("config, missing", [
    ({}, "architectures"),
    ({"architectures": ["LlamaForCausalLM"]}, "num_hidden_layers"),
    ({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2, "hidden_size": 64,
      "num_attention_heads": 0, "vocab_size": 10}, "num_attention_heads"),
    ([], "JSON object"),
])
def test_incomplete_configs_say_what_is_missing(config, missing):
    with pytest.raises(BadModelConfig) as caught:
        geometry_from_config(config)
    assert missing in caught.value.problem.explanation
