from __future__ import annotations

import json

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.fit.quant import (ACCEPTED_QUANTIZATION, GpuSupport, QuantFormat, UnsupportedQuantization,
                                    detect_format, gpu_support, online_format)

# Exact blocks from shared/reference/hub.md 2.3.
AWQ = {"bits": 4, "group_size": 128, "modules_to_not_convert": None, "quant_method": "awq",
       "version": "gemm", "zero_point": True}
GPTQ = {"bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": False, "sym": True,
        "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model",
        "quant_method": "gptq"}
FP8_BLOCK = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
             "weight_block_size": [128, 128],
             "modules_to_not_convert": ["lm_head", "model.layers.0.input_layernorm",
                                        "model.layers.0.mlp.gate"]}
CT_FP8 = {
    "quant_method": "compressed-tensors", "format": "float-quantized",
    "quantization_status": "compressed",
    "config_groups": {"group_0": {
        "targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True,
                    "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                              "symmetric": True, "dynamic": True}}},
    "ignore": ["lm_head"], "kv_cache_scheme": None}
BNB_NF4 = {"_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "bfloat16",
           "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4",
           "bnb_4bit_use_double_quant": True, "llm_int8_enable_fp32_cpu_offload": False,
           "llm_int8_has_fp16_weight": False, "llm_int8_skip_modules": None,
           "llm_int8_threshold": 6.0, "load_in_4bit": True, "load_in_8bit": False,
           "quant_method": "bitsandbytes"}


def ct(weights: dict, activations: dict | None = None, fmt: str = "pack-quantized",
       **extra) -> dict:
    group = {"targets": ["Linear"], "weights": weights}
    if activations is not None:
        group["input_activations"] = activations
    return {"quant_method": "compressed-tensors", "format": fmt,
            "config_groups": {"group_0": group}, "ignore": ["lm_head"], **extra}


def model(quant: dict | None = None, dtype: str = "bfloat16", **extra) -> dict:
    config = {"architectures": ["LlamaForCausalLM"], "torch_dtype": dtype, **extra}
    if quant is not None:
        config["quantization_config"] = quant
    return config


# ---------------------------------------------------------------- detection

def test_awq_from_qwen3_32b_awq():
    fmt = detect_format(model(AWQ, dtype="float16"))
    assert fmt == QuantFormat(
        key="awq", label="AWQ 4-bit (group 128)", bits=4.0, bytes_per_weight=0.51953125,
        vllm_quantization="awq", min_capability=75, native_capability=None, served_by_vllm=True,
        dtype="float16")


def test_gptq_thebloke_style_and_its_variants():
    fmt = detect_format(model(GPTQ, dtype="float16"))
    assert (fmt.key, fmt.label, fmt.bits, fmt.bytes_per_weight) == \
        ("gptq", "GPTQ 4-bit g128", 4.0, 0.51953125)
    assert (fmt.vllm_quantization, fmt.min_capability) == ("gptq", 60)

    act_order = detect_format(model({**GPTQ, "desc_act": True, "group_size": 32}))
    assert act_order.label == "GPTQ 4-bit g32 act-order"
    assert act_order.bytes_per_weight == 0.578125  # hub.md 3.3: g=32

    eight = detect_format(model({**GPTQ, "bits": 8}))
    assert (eight.label, eight.bytes_per_weight) == ("GPTQ 8-bit g128", 1.0234375)

    per_channel = detect_format(model({**GPTQ, "bits": 3, "group_size": -1}))
    assert (per_channel.label, per_channel.bytes_per_weight) == ("GPTQ 3-bit per-channel", 0.375)


def test_fp8_block_from_qwen3_30b_a3b_thinking_fp8():
    fmt = detect_format(model(FP8_BLOCK))
    assert (fmt.key, fmt.label) == ("fp8-block", "FP8 (block 128×128)")
    assert fmt.bytes_per_weight == 1 + 2 / 16384 == 1.0001220703125
    assert (fmt.vllm_quantization, fmt.min_capability, fmt.native_capability) == ("fp8", 75, 89)
    assert fmt.not_quantized == ("lm_head", "model.layers.0.input_layernorm",
                                 "model.layers.0.mlp.gate")
    assert fmt.dtype == "bfloat16"


def test_plain_fp8_with_static_activations():
    fmt = detect_format(model({"quant_method": "fp8", "activation_scheme": "static"}))
    assert (fmt.key, fmt.label, fmt.bytes_per_weight) == \
        ("fp8", "FP8 (static activation scales)", 1.0)


def test_compressed_tensors_fp8_channel():
    fmt = detect_format(model(CT_FP8))
    assert (fmt.key, fmt.label) == ("ct-fp8", "FP8 W8A8 (compressed-tensors, per-channel)")
    assert (fmt.bits, fmt.bytes_per_weight) == (8.0, 1.0)
    assert (fmt.vllm_quantization, fmt.min_capability, fmt.native_capability) == \
        ("compressed-tensors", 75, 89)
    assert fmt.kv_cache_dtype_hint is None
    assert fmt.not_quantized == ("lm_head",)


def test_compressed_tensors_fp8_block_and_weight_only():
    block = detect_format(model(ct({"num_bits": 8, "type": "float", "strategy": "block",
                                    "block_structure": [128, 128]},
                                   {"num_bits": 8, "type": "float", "strategy": "group",
                                    "group_size": 128}, fmt="float-quantized")))
    assert (block.key, block.bytes_per_weight) == ("ct-fp8", 1.0001220703125)
    assert block.label == "FP8 W8A8 (compressed-tensors, block 128×128)"

    weight_only = detect_format(model(ct({"num_bits": 8, "type": "float", "strategy": "channel"},
                                         fmt="float-quantized")))
    assert (weight_only.key, weight_only.min_capability, weight_only.native_capability) == \
        ("ct-w8a16-fp8", 75, None)


def test_compressed_tensors_w4a16_group_128():
    fmt = detect_format(model(ct({"num_bits": 4, "type": "int", "strategy": "group",
                                  "group_size": 128, "symmetric": True})))
    assert (fmt.key, fmt.label) == ("ct-w4a16", "INT4 W4A16 (compressed-tensors, group 128)")
    assert (fmt.bits, fmt.bytes_per_weight, fmt.min_capability) == (4.0, 0.515625, 75)

    asym = detect_format(model(ct({"num_bits": 4, "type": "int", "strategy": "group",
                                   "group_size": 128, "symmetric": False})))
    assert asym.bytes_per_weight == 0.51953125  # plus a packed 4-bit zero point per group
    assert asym.label.endswith("group 128, asymmetric)")


def test_compressed_tensors_w8a16_and_w8a8_int8():
    w8a16 = detect_format(model(ct({"num_bits": 8, "type": "int", "strategy": "channel"})))
    assert (w8a16.key, w8a16.bytes_per_weight, w8a16.min_capability) == ("ct-w8a16", 1.0, 75)

    w8a8 = detect_format(model(ct({"num_bits": 8, "type": "int", "strategy": "channel",
                                   "symmetric": True},
                                  {"num_bits": 8, "type": "int", "strategy": "token",
                                   "dynamic": True}, fmt="int-quantized")))
    assert (w8a8.key, w8a8.label) == ("ct-w8a8-int8", "INT8 W8A8 (compressed-tensors, per-channel)")
    assert (w8a8.bytes_per_weight, w8a8.min_capability, w8a8.native_capability) == (1.0, 75, None)


def test_compressed_tensors_nvfp4_mxfp4_and_w4a8():
    nvfp4 = {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16}
    fmt = detect_format(model(ct(nvfp4, {**nvfp4, "dynamic": "local"},
                                 fmt="nvfp4-pack-quantized")))
    assert (fmt.key, fmt.label) == ("ct-nvfp4", "NVFP4 (compressed-tensors)")
    assert (fmt.bytes_per_weight, fmt.min_capability, fmt.native_capability) == (0.5625, 75, 100)

    a16 = detect_format(model(ct(nvfp4, fmt="nvfp4-pack-quantized")))
    assert (a16.label, a16.native_capability) == ("NVFP4 weight-only (compressed-tensors)", None)

    mx = detect_format(model(ct({"num_bits": 4, "type": "float", "strategy": "group",
                                 "group_size": 32}, fmt="mxfp4-pack-quantized")))
    assert (mx.key, mx.bytes_per_weight, mx.min_capability) == ("ct-mxfp4", 0.53125, 80)

    w4a8 = detect_format(model(ct({"num_bits": 4, "type": "int", "strategy": "group",
                                   "group_size": 128},
                                  {"num_bits": 8, "type": "float", "strategy": "token"})))
    assert (w4a8.key, w4a8.min_capability) == ("ct-w4a8-fp8", 90)


def test_compressed_tensors_kv_cache_scheme_means_fp8_kv():
    quant = {**CT_FP8, "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor",
                                           "dynamic": False, "symmetric": True}}
    assert detect_format(model(quant)).kv_cache_dtype_hint == "fp8"


def test_compressed_tensors_mixed_schemes_size_by_the_largest():
    quant = ct({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128})
    quant["config_groups"]["group_1"] = {
        "targets": ["re:.*down_proj"],
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token"}}
    fmt = detect_format(model(quant))
    assert (fmt.key, fmt.bytes_per_weight) == ("ct-fp8", 1.0)
    assert fmt.label.endswith("+ other schemes")
    assert (fmt.min_capability, fmt.native_capability) == (75, 89)


def test_bitsandbytes_nf4_double_quant_and_8bit():
    fmt = detect_format(model(BNB_NF4))
    assert (fmt.key, fmt.label) == ("bnb-nf4", "bitsandbytes NF4 (double quant)")
    # vLLM expands double-quant statistics to fp32 on load: 0.5 + 4/64, not the on-disk 0.5159.
    assert (fmt.bits, fmt.bytes_per_weight) == (4.0, 0.5625)
    assert (fmt.vllm_quantization, fmt.min_capability) == ("bitsandbytes", 70)

    fp4 = detect_format(model({**BNB_NF4, "bnb_4bit_quant_type": "fp4",
                               "bnb_4bit_use_double_quant": False}))
    assert (fp4.key, fp4.label) == ("bnb-fp4", "bitsandbytes FP4")

    eight = detect_format(model({**BNB_NF4, "_load_in_4bit": False, "load_in_4bit": False,
                                 "_load_in_8bit": True, "load_in_8bit": True}))
    assert (eight.key, eight.bits, eight.bytes_per_weight) == ("bnb-8bit", 8.0, 1.0)


def test_mxfp4_gpt_oss_quantizes_experts_only():
    quant = {"quant_method": "mxfp4",
             "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                        "model.embed_tokens", "lm_head"]}
    fmt = detect_format(model(quant, model_type="gpt_oss"))
    assert (fmt.key, fmt.bits, fmt.bytes_per_weight) == ("mxfp4", 4.0, 0.53125)
    assert (fmt.vllm_quantization, fmt.min_capability) == ("mxfp4", 80)
    assert fmt.experts_only is True
    assert "lm_head" in fmt.not_quantized


def test_modelopt_from_hf_quant_config_json():
    hf_quant = {"producer": {"name": "modelopt", "version": "0.29.0"},
                "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8",
                                 "exclude_modules": ["lm_head"]}}
    fmt = detect_format(model(), hf_quant_config=hf_quant)
    assert (fmt.key, fmt.label, fmt.bytes_per_weight) == ("modelopt-fp8", "ModelOpt FP8", 1.0)
    assert (fmt.vllm_quantization, fmt.min_capability, fmt.native_capability) == \
        ("modelopt", 89, None)
    assert fmt.kv_cache_dtype_hint == "fp8"
    assert fmt.not_quantized == ("lm_head",)

    fp4 = detect_format(model(), hf_quant_config={"quantization": {
        "quant_algo": "NVFP4", "group_size": 16, "kv_cache_quant_algo": None}})
    assert (fp4.key, fp4.bytes_per_weight, fp4.vllm_quantization) == \
        ("modelopt-fp4", 0.5625, "modelopt_fp4")
    assert (fp4.min_capability, fp4.kv_cache_dtype_hint) == (75, None)


def test_modelopt_folded_into_config_json():
    top = detect_format(model({"quant_method": "modelopt", "quant_algo": "NVFP4"}))
    nested = detect_format(model({"quant_method": "modelopt",
                                  "quantization": {"quant_algo": "FP8"}}))
    assert (top.key, nested.key) == ("modelopt-fp4", "modelopt-fp8")
    # quant_algo only in the side file
    side = detect_format(model({"quant_method": "modelopt"}),
                         hf_quant_config={"quantization": {"quant_algo": "MXFP8"}})
    assert (side.key, side.bytes_per_weight, side.min_capability) == \
        ("modelopt-mxfp8", 1.03125, 80)


def test_gguf_from_file_names():
    fmt = detect_format({"architectures": ["Qwen2ForCausalLM"]},
                        file_names=["README.md", "qwen2.5-7b-instruct-q4_k_m.gguf"])
    assert (fmt.key, fmt.label, fmt.bytes_per_weight) == ("gguf", "GGUF Q4_K_M", 0.60)
    assert (fmt.served_by_vllm, fmt.vllm_quantization) == (False, None)

    shards = detect_format({}, file_names=["Q8_0/Model-BF16-Q8_0-00001-of-00002.gguf",
                                           "Q8_0/Model-BF16-Q8_0-00002-of-00002.gguf",
                                           "mmproj-F16.gguf"])
    assert (shards.label, shards.bytes_per_weight) == ("GGUF Q8_0", 1.0625)

    several = detect_format({}, file_names=["m-Q4_0.gguf", "m-Q6_K.gguf"])
    assert (several.label, several.bytes_per_weight) == ("GGUF (Q4_0, Q6_K)", 0.8203125)


def test_safetensors_beside_a_gguf_win():
    fmt = detect_format(model(), file_names=["model.safetensors", "model-Q4_K_M.gguf"])
    assert fmt.key == "bf16"


def test_mlx_quantization_key():
    config = {"model_type": "qwen3", "torch_dtype": "bfloat16",
              "quantization": {"group_size": 64, "bits": 4}}
    fmt = detect_format(config)
    assert (fmt.key, fmt.label, fmt.bytes_per_weight) == ("mlx", "MLX 4-bit (group 64)", 0.5625)
    assert fmt.served_by_vllm is False
    # newer mlx-lm also copies the same dict to quantization_config, without a quant_method
    assert detect_format({**config, "quantization_config": {"group_size": 64, "bits": 4}}) == fmt


def test_exl2_from_config_and_from_files():
    fmt = detect_format(model({"quant_method": "exl2", "version": "0.2.3", "bits": 4.65,
                               "head_bits": 6}))
    assert (fmt.key, fmt.label, fmt.bytes_per_weight) == ("exl2", "EXL2 (ExLlamaV2) 4.65 bpw",
                                                          4.65 / 8)
    assert fmt.served_by_vllm is False
    files = detect_format(model(), file_names=["output.safetensors", "measurement.json"])
    assert (files.key, files.served_by_vllm) == ("exl2", False)


@pytest.mark.parametrize("key_name", ["torch_dtype", "dtype"])
@pytest.mark.parametrize("dtype, key, nbytes, unquantized", [
    ("bfloat16", "bf16", 2.0, 2.0), ("float16", "fp16", 2.0, 2.0), ("float32", "fp32", 4.0, 4.0)])
def test_unquantized_from_either_dtype_key(key_name, dtype, key, nbytes, unquantized):
    fmt = detect_format({"architectures": ["X"], key_name: dtype})
    assert (fmt.key, fmt.bytes_per_weight, fmt.unquantized_bytes_per_weight) == \
        (key, nbytes, unquantized)
    assert (fmt.vllm_quantization, fmt.served_by_vllm, fmt.dtype) == (None, True, dtype)


def test_dtype_nested_in_text_config():
    config = {"architectures": ["Gemma3ForConditionalGeneration"],
              "text_config": {"dtype": "bfloat16", "hidden_size": 2560},
              "vision_config": {"hidden_size": 1152}}
    assert (detect_format(config).key, detect_format(config).dtype) == ("bf16", "bfloat16")
    quantized = {**config, "quantization_config": AWQ}
    assert (detect_format(quantized).key, detect_format(quantized).dtype) == ("awq", "bfloat16")


def test_fp32_checkpoint_keeps_4_bytes_for_its_unquantized_parts():
    fmt = detect_format(model(AWQ, dtype="float32"))
    assert (fmt.key, fmt.unquantized_bytes_per_weight) == ("awq", 4.0)


def test_no_dtype_at_all():
    fmt = detect_format({"architectures": ["X"]})
    assert (fmt.key, fmt.dtype, fmt.native_capability) == ("bf16", None, None)


def test_method_vllm_knows_without_a_table_row():
    fmt = detect_format(model({"quant_method": "quark", "bits": 4}))
    assert (fmt.key, fmt.vllm_quantization, fmt.served_by_vllm) == ("quark", "quark", True)
    assert (fmt.bytes_per_weight, fmt.min_capability) == (0.5, 70)
    assert "estimated" in fmt.label

    no_bits = detect_format(model({"quant_method": "torchao"}))
    assert (no_bits.bytes_per_weight, no_bits.min_capability) == (1.0, 75)
    assert "1 byte per weight assumed" in no_bits.label

    auto_round = detect_format(model({"quant_method": "auto-round", "bits": 4,
                                      "group_size": 128}))
    assert (auto_round.vllm_quantization, auto_round.bytes_per_weight) == ("inc", 0.51953125)

    deprecated = detect_format(model({"quant_method": "fbgemm_fp8"}))
    assert deprecated.flags == ("--allow-deprecated-quantization",)
    assert deprecated.min_capability == 80


def test_method_vllm_does_not_know():
    fmt = detect_format(model({"quant_method": "hqq", "bits": 4}))
    assert (fmt.key, fmt.served_by_vllm, fmt.vllm_quantization) == ("unknown", False, None)
    assert gpu_support(fmt, (9, 0)) == GpuSupport(
        "unsupported", "vLLM 0.26 does not know the quantization method 'hqq'.")


def test_format_is_json_ready():
    data = detect_format(model(FP8_BLOCK)).as_dict()
    assert json.loads(json.dumps(data))["bytes_per_weight"] == 1.0001220703125


# ---------------------------------------------------------------- --quantization NAME

BF16 = detect_format(model())


def test_accepted_list_is_vllm_0_26s():
    assert len(ACCEPTED_QUANTIZATION) == 31
    assert {"bitsandbytes", "mxfp8", "gpt_oss_mxfp4", "online"} <= ACCEPTED_QUANTIZATION
    assert "gguf" not in ACCEPTED_QUANTIZATION


def test_online_fp8_on_a_bf16_checkpoint():
    fmt = online_format("fp8", BF16)
    assert fmt == QuantFormat(
        key="fp8", label="FP8 (quantized on load by vLLM)", bits=8.0, bytes_per_weight=1.0,
        vllm_quantization="fp8", min_capability=75, native_capability=89, served_by_vllm=True,
        online=True, dtype="bfloat16")


def test_online_bitsandbytes_is_nf4():
    fmt = online_format("bitsandbytes", BF16)
    assert (fmt.key, fmt.bits, fmt.bytes_per_weight, fmt.online) == ("bnb-nf4", 4.0, 0.5625, True)
    assert "NF4" in fmt.label and fmt.min_capability == 70


@pytest.mark.parametrize("name, key, nbytes, experts_only", [
    ("fp8_per_tensor", "fp8", 1.0, False),
    ("fp8_per_channel", "fp8", 1.0, False),
    ("fp8_per_block", "fp8-block", 1 + 4 / 16384, False),
    ("int8_per_channel_weight_only", "int8-weight-only", 1.0, True),
    ("nvfp4_per_token", "nvfp4", 0.5625, True),
    ("mxfp8", "mxfp8", 1.03125, False),
])
def test_online_shorthands(name, key, nbytes, experts_only):
    fmt = online_format(name, BF16)
    assert (fmt.key, fmt.bytes_per_weight, fmt.experts_only) == (key, nbytes, experts_only)
    assert (fmt.vllm_quantization, fmt.online) == (name, True)


def test_a_checkpoints_own_method_returns_it_unchanged():
    awq = detect_format(model(AWQ, dtype="float16"))
    gptq = detect_format(model(GPTQ))
    fp8 = detect_format(model(FP8_BLOCK))
    assert online_format("awq", awq) is awq
    assert online_format("awq_marlin", awq) is awq
    assert online_format("gptq_marlin", gptq) is gptq
    assert online_format("fp8", fp8) is fp8
    assert online_format(" Compressed-Tensors ", detect_format(model(CT_FP8))).key == "ct-fp8"


def test_moe_wna16_on_awq_keeps_the_bytes():
    awq = detect_format(model(AWQ))
    fmt = online_format("moe_wna16", awq)
    assert (fmt.vllm_quantization, fmt.bytes_per_weight, fmt.min_capability) == \
        ("moe_wna16", 0.51953125, 70)


def test_online_method_on_a_quantized_checkpoint_is_refused():
    awq = detect_format(model(AWQ))
    with pytest.raises(UnsupportedQuantization) as caught:
        online_format("fp8", awq)
    assert isinstance(caught.value, BadInput)
    assert "already quantized (AWQ 4-bit (group 128))" in caught.value.problem.explanation


def test_other_checkpoint_method_is_refused():
    with pytest.raises(UnsupportedQuantization) as caught:
        online_format("gptq", detect_format(model(AWQ)))
    assert "quantized with 'awq'" in caught.value.problem.explanation


def test_checkpoint_method_on_a_bf16_checkpoint_is_refused():
    with pytest.raises(UnsupportedQuantization) as caught:
        online_format("awq", BF16)
    problem = caught.value.problem
    assert "this checkpoint is BF16" in problem.explanation
    assert "bitsandbytes, experts_int8, fp8," in problem.explanation


def test_unknown_name_lists_the_accepted_ones():
    with pytest.raises(UnsupportedQuantization) as caught:
        online_format("gguf", BF16)
    problem = caught.value.problem
    assert problem.title == "vLLM does not know the quantization method 'gguf'"
    assert problem.explanation.startswith("vLLM 0.26 accepts: auto_awq, auto_gptq, awq, ")
    assert "nvfp4_per_token" in problem.explanation


def test_marlin_refuses_3bit_gptq():
    with pytest.raises(UnsupportedQuantization):
        online_format("gptq_marlin", detect_format(model({**GPTQ, "bits": 3})))


def test_nothing_applies_to_a_gguf():
    gguf = detect_format({}, file_names=["m-Q4_K_M.gguf"])
    with pytest.raises(UnsupportedQuantization):
        online_format("fp8", gguf)


# ---------------------------------------------------------------- GPU support

FP8 = detect_format(model(FP8_BLOCK))


def test_fp8_native_on_ada():
    assert gpu_support(FP8, (8, 9)) == GpuSupport(
        "native", "FP8 runs natively on this GPU (compute capability 8.9).")


def test_fp8_falls_back_to_marlin_on_ampere():
    assert gpu_support(FP8, (8, 0)) == GpuSupport(
        "fallback", "FP8 runs natively on compute capability 8.9 and newer; this GPU (8.0) runs "
                    "it through Marlin weight-only kernels: it fits the same, but is slower.")


def test_fp8_unsupported_on_volta():
    assert gpu_support(FP8, (7, 0)) == GpuSupport(
        "unsupported", "FP8 needs compute capability 7.5 or newer (this GPU: 7.0).")


def test_awq_boundaries():
    awq = detect_format(model(AWQ, dtype="float16"))
    assert gpu_support(awq, (7, 5)).status == "native"
    assert gpu_support(awq, (7, 0)) == GpuSupport(
        "unsupported", "AWQ needs compute capability 7.5 or newer (this GPU: 7.0).")


def test_modelopt_fp8_has_no_fallback():
    fmt = detect_format(model(), hf_quant_config={"quantization": {"quant_algo": "FP8"}})
    assert gpu_support(fmt, (8, 6)) == GpuSupport(
        "unsupported", "ModelOpt FP8 needs compute capability 8.9 or newer (this GPU: 8.6). "
                       "Unlike plain FP8 it has no slower fallback.")
    assert gpu_support(fmt, (8, 9)).status == "native"


def test_bf16_on_turing_runs_as_half():
    support = gpu_support(BF16, (7, 5))
    assert support.status == "fallback"
    assert support.flags == ("--dtype", "half")
    assert "--dtype half" in support.reason
    assert gpu_support(BF16, (8, 0)).status == "native"
    assert gpu_support(detect_format(model(dtype="float16")), (7, 5)).status == "native"


def test_quantized_bf16_model_on_turing_also_needs_half():
    support = gpu_support(detect_format(model(CT_FP8)), (7, 5))
    assert support.status == "fallback" and support.flags == ("--dtype", "half")
    assert support.reason.startswith("FP8 runs natively on compute capability 8.9")
    assert "BF16 needs compute capability 8.0" in support.reason


def test_mxfp4_needs_ampere():
    fmt = detect_format(model({"quant_method": "mxfp4"}, model_type="gpt_oss"))
    assert gpu_support(fmt, (8, 0)).status == "native"
    assert gpu_support(fmt, (7, 5)) == GpuSupport(
        "unsupported", "MXFP4 needs compute capability 8.0 or newer (this GPU: 7.5).")


def test_nvfp4_falls_back_before_blackwell():
    fmt = detect_format(model(), hf_quant_config={"quantization": {"quant_algo": "NVFP4"}})
    assert gpu_support(fmt, (9, 0)).status == "fallback"
    assert gpu_support(fmt, (10, 0)).status == "native"
    assert gpu_support(fmt, (12, 0)).status == "native"


@pytest.mark.parametrize("capability", [(7, 0), (8, 0), (9, 0), (12, 0)])
def test_gguf_unsupported_everywhere(capability):
    gguf = detect_format({}, file_names=["m-Q4_K_M.gguf"])
    assert gpu_support(gguf, capability) == GpuSupport(
        "unsupported", "GGUF is not served by vLLM 0.26 itself: it needs the separate "
                       "vllm-gguf-plugin package (and --tokenizer pointing at the original model "
                       "repo).")


def test_mlx_and_exl2_reasons():
    mlx = detect_format({"quantization": {"group_size": 64, "bits": 4}})
    assert "Apple" in gpu_support(mlx, (9, 0)).reason
    exl2 = detect_format(model({"quant_method": "exl2", "bits": 4.0}))
    assert gpu_support(exl2, (9, 0)).reason == "EXL2 is ExLlamaV2's format; vLLM cannot load it."


def test_below_turing_nothing_runs_with_the_default_wheel():
    # bitsandbytes' own minimum is 7.0, but the wheel has no sm_70 kernels.
    bnb = detect_format(model(BNB_NF4))
    support = gpu_support(bnb, (7, 0))
    assert support.status == "unsupported"
    assert "7.5 (Turing) and newer only; this GPU (7.0) is older" in support.reason
    assert gpu_support(detect_format(model(dtype="float16")), (6, 1)).status == "unsupported"


def test_online_nvfp4_needs_blackwell():
    fmt = online_format("nvfp4_per_token", BF16)
    assert gpu_support(fmt, (9, 0)).status == "unsupported"
    assert gpu_support(fmt, (10, 0)).status == "native"
