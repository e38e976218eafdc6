"""The random-weight quantized checkpoints of tests/gpu/make_quant_checkpoint.py (#21): tensors as vLLM
0.26 loads them (tests/data/quantized/VLLM_PARAMS.md), totals that match the Hub's published
checkpoints of the Llama-3.1-8B shape, and the fit reading them as the format they claim to be."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "gpu"))

import make_quant_checkpoint as maker  # noqa: E402

from llmdesk.core.fit.quant import detect_format  # noqa: E402
from llmdesk.core.hub.model_source import estimate_weights, spec_from_directory  # noqa: E402

LLAMA8B = json.loads((ROOT / "tests" / "data" / "configs" / "meta-llama__Llama-3.1-8B-Instruct.json").read_text())
TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1024,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16"}
# The Hub's file listings (tests/data/quantized/HUB_LISTINGS.md): shard sizes as shown, in GB.
HUB_TOTALS_GB = {"awq": 4.68 + 1.05, "gptq4": 4.97 + 0.764, "w8a8": 5.0 + 4.08, "fp8": 5.0 + 4.08,
                 "w4a16": 4.65 + 1.05}
EXPECTED_FORMAT = {"awq": "awq", "gptq4": "gptq", "gptq8": "gptq", "w4a16": "ct-w4a16", "w8a8": "ct-w8a8-int8",
                   "fp8": "ct-fp8", "fp8-block": "fp8-block", "bnb-nf4": "bnb-nf4"}


def total_bytes(config: dict, fmt: str) -> int:
    _, dtype = maker.quantization_config(fmt)
    dense = "F16" if dtype == "float16" else "BF16"
    return sum(math.prod(shape) * maker.DTYPE[d][1] for _, d, shape, _ in maker.plan(config, fmt, dense))


def header(folder: Path) -> dict:
    with open(folder / "model.safetensors", "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


@pytest.mark.parametrize("fmt", sorted(HUB_TOTALS_GB))
def test_the_8b_totals_match_the_published_checkpoints(fmt):
    assert total_bytes(LLAMA8B, fmt) / 1e9 == pytest.approx(HUB_TOTALS_GB[fmt], rel=0.005)


@pytest.mark.parametrize("fmt", maker.FORMATS)
def test_the_fit_reads_each_format_and_its_size_before_download(fmt):
    qconfig, dtype = maker.quantization_config(fmt)
    config = {**LLAMA8B, "torch_dtype": dtype, "quantization_config": qconfig}
    detected = detect_format(config)
    assert detected.key == EXPECTED_FORMAT[fmt]
    estimate, exact = estimate_weights(config, detected), total_bytes(LLAMA8B, fmt)
    if fmt == "bnb-nf4":  # the fit sizes GPU memory: vLLM dequantizes bnb's nested statistics to fp32 on load
        assert estimate / exact - 1 == pytest.approx(0.057, abs=0.01)
    else:
        assert estimate / exact - 1 == pytest.approx(0, abs=0.002)


# (module suffix, dtype, shape as a function of out n and in k) for one q_proj, from VLLM_PARAMS.md
LAYOUT = {
    "awq": [("qweight", "I32", lambda n, k: [k, n // 8]), ("qzeros", "I32", lambda n, k: [k // 128, n // 8]),
            ("scales", "F16", lambda n, k: [k // 128, n])],
    "gptq4": [("qweight", "I32", lambda n, k: [k // 8, n]), ("qzeros", "I32", lambda n, k: [k // 128, n // 8]),
              ("scales", "F16", lambda n, k: [k // 128, n]), ("g_idx", "I32", lambda n, k: [k])],
    "gptq8": [("qweight", "I32", lambda n, k: [k // 4, n]), ("qzeros", "I32", lambda n, k: [k // 128, n // 4]),
              ("scales", "F16", lambda n, k: [k // 128, n]), ("g_idx", "I32", lambda n, k: [k])],
    "w4a16": [("weight_packed", "I32", lambda n, k: [n, k // 8]), ("weight_scale", "BF16", lambda n, k: [n, k // 128]),
              ("weight_shape", "I64", lambda n, k: [2])],
    "w8a8": [("weight", "I8", lambda n, k: [n, k]), ("weight_scale", "F32", lambda n, k: [n, 1])],
    "fp8": [("weight", "F8_E4M3", lambda n, k: [n, k]), ("weight_scale", "F32", lambda n, k: [n, 1])],
    "fp8-block": [("weight", "F8_E4M3", lambda n, k: [n, k]),
                  ("weight_scale_inv", "BF16", lambda n, k: [-(-n // 128), -(-k // 128)])],
    "bnb-nf4": [("weight", "U8", lambda n, k: [n * k // 2, 1]), ("weight.absmax", "U8", lambda n, k: [n * k // 64])],
}


@pytest.mark.parametrize("fmt", maker.FORMATS)
def test_a_written_checkpoint_has_vllms_tensors_and_reads_back(tmp_path, fmt):
    folder = tmp_path / fmt
    info = maker.write(dict(TINY), fmt, folder, seed=1)
    tensors = header(folder)
    n, k = 4 * 64, 256  # q_proj of TINY: heads × head_dim out, hidden in
    for suffix, dtype, shape in LAYOUT[fmt]:
        entry = tensors[f"model.layers.1.self_attn.q_proj.{suffix}"]
        assert (entry["dtype"], entry["shape"]) == (dtype, shape(n, k)), suffix
    assert "model.layers.0.self_attn.q_proj.weight" in tensors or fmt in ("awq", "gptq4", "gptq8", "w4a16")
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"] == maker.quantization_config(fmt)[0]
    size = (folder / "model.safetensors").stat().st_size
    assert size == 8 + struct.unpack("<Q", (folder / "model.safetensors").read_bytes()[:8])[0] + info["bytes"]
    spec = spec_from_directory(folder)
    assert spec.checkpoint_format.key == EXPECTED_FORMAT[fmt] and spec.weights_bytes == info["bytes"]


def test_fp8_weights_hold_no_nan_codes_and_gptq_zero_points_are_symmetric(tmp_path):
    maker.write(dict(TINY), "fp8", tmp_path / "fp8", seed=2)
    tensors = header(tmp_path / "fp8")
    entry = tensors["model.layers.0.mlp.down_proj.weight"]
    data = (tmp_path / "fp8" / "model.safetensors").read_bytes()
    start = 8 + struct.unpack("<Q", data[:8])[0]
    weight = data[start + entry["data_offsets"][0]:start + entry["data_offsets"][1]]
    assert weight and 0x7F not in weight and 0xFF not in weight
    maker.write(dict(TINY), "gptq4", tmp_path / "gptq", seed=2)
    data = (tmp_path / "gptq" / "model.safetensors").read_bytes()
    entry = header(tmp_path / "gptq")["model.layers.0.mlp.up_proj.qzeros"]
    start = 8 + struct.unpack("<Q", data[:8])[0]
    assert set(data[start + entry["data_offsets"][0]:start + entry["data_offsets"][1]]) == {0x77}
