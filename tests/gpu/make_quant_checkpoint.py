"""Random-weight, pre-quantized Llama-shaped checkpoints in the formats people download, for measuring
the fit against real vLLM 0.26 (#21). numpy only: runs here and on the GPU host.

    python tests/gpu/make_quant_checkpoint.py --base /srv/models/llama-3.1-8b --format awq --out /srv/models/l8b-awq

`--base` is a folder with a Llama-family config.json (and, to be served, its tokenizer files, which are
copied). Every tensor is written fresh with the names, dtypes and shapes vLLM 0.26 loads for the format
(tests/data/quantized/VLLM_PARAMS.md, from the wheel's create_weights) and the quantization_config
that real checkpoints carry (shared/reference hub.md §2.3; tests/data/quantized/). The values are random
but tame (small scales, no FP8 NaN codes), so a server answers with nonsense instead of NaNs.

Formats: awq (4-bit, group 128, zero point, GEMM, fp16), gptq4 / gptq8 (symmetric, group 128, no act-order,
fp16), w4a16 (compressed-tensors pack-quantized int4, group 128), w8a8 (compressed-tensors int8, per-channel
weights, dynamic per-token activations), fp8 (compressed-tensors float8, per-channel, dynamic), fp8-block
(quant_method fp8, 128x128 blocks, weight_scale_inv), bnb-nf4 (bitsandbytes 4-bit NF4 with double
quantization; vLLM needs the bitsandbytes package to load it).

The per-layer figures do not depend on the layer count: `--layers N` writes a shorter model whose fit
numbers scale back (weights and KV cache per layer times the full count; embeddings and LM head once).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

FORMATS = ("awq", "gptq4", "gptq8", "w4a16", "w8a8", "fp8", "fp8-block", "bnb-nf4")
GROUP = 128
LINEAR = re.compile(r"^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)$")
DTYPE = {"I32": (np.int32, 4), "I64": (np.int64, 8), "I8": (np.int8, 1), "U8": (np.uint8, 1), "F16": (np.float16, 2),
         "BF16": (np.uint16, 2), "F32": (np.float32, 4), "F8_E4M3": (np.uint8, 1)}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


def ct_config(fmt: str, weights: dict, activations: dict | None) -> dict:
    """compressed-tensors' block as llm-compressor writes it."""
    group = {"targets": ["Linear"], "weights": weights, "input_activations": activations, "output_activations": None}
    return {"quant_method": "compressed-tensors", "format": fmt, "quantization_status": "compressed",
            "config_groups": {"group_0": group}, "ignore": ["lm_head"], "kv_cache_scheme": None,
            "global_compression_ratio": None, "sparsity_config": {}}


def quantization_config(fmt: str) -> tuple[dict, str]:
    """(config.json's quantization_config, the torch_dtype that goes with it)."""
    if fmt == "awq":
        return {"bits": 4, "group_size": GROUP, "modules_to_not_convert": None, "quant_method": "awq",
                "version": "gemm", "zero_point": True}, "float16"
    if fmt in ("gptq4", "gptq8"):
        return {"bits": 4 if fmt == "gptq4" else 8, "group_size": GROUP, "damp_percent": 0.01, "desc_act": False,
                "sym": True, "true_sequential": True, "checkpoint_format": "gptq", "static_groups": False,
                "quant_method": "gptq"}, "float16"
    if fmt == "w4a16":
        return ct_config("pack-quantized", {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group",
                                            "group_size": GROUP, "dynamic": False, "actorder": None}, None), "bfloat16"
    if fmt == "w8a8":
        return ct_config("int-quantized", {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel",
                                           "dynamic": False},
                         {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True}), \
            "bfloat16"
    if fmt == "fp8":
        return ct_config("float-quantized", {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel",
                                             "dynamic": False},
                         {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "token", "dynamic": True}), \
            "bfloat16"
    if fmt == "fp8-block":
        return {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                "weight_block_size": [GROUP, GROUP], "modules_to_not_convert": ["lm_head"]}, "bfloat16"
    if fmt == "bnb-nf4":
        return {"_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "bfloat16",
                "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
                "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0, "load_in_4bit": True, "load_in_8bit": False,
                "quant_method": "bitsandbytes"}, "bfloat16"
    raise SystemExit(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def dense_tensors(config: dict) -> list[tuple[str, tuple[int, ...]]]:
    """A Llama-family model's 16-bit tensors (name, shape), in a checkpoint's order."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or hidden // heads
    vocab = config["vocab_size"]
    out = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [(f"{p}.input_layernorm.weight", (hidden,)),
                (f"{p}.self_attn.q_proj.weight", (heads * head_dim, hidden)),
                (f"{p}.self_attn.k_proj.weight", (kv_heads * head_dim, hidden)),
                (f"{p}.self_attn.v_proj.weight", (kv_heads * head_dim, hidden)),
                (f"{p}.self_attn.o_proj.weight", (hidden, heads * head_dim)),
                (f"{p}.post_attention_layernorm.weight", (hidden,)),
                (f"{p}.mlp.gate_proj.weight", (inter, hidden)),
                (f"{p}.mlp.up_proj.weight", (inter, hidden)),
                (f"{p}.mlp.down_proj.weight", (hidden, inter))]
    out.append(("model.norm.weight", (hidden,)))
    if not config.get("tie_word_embeddings"):
        out.append(("lm_head.weight", (vocab, hidden)))
    return out


def quantized(fmt: str, module: str, n: int, k: int, dense: str) -> list[tuple[str, str, tuple[int, ...], str | bytes]]:
    """(name, dtype, shape, fill) of one linear layer [n out, k in] in the format: the fill is a kind of random
    content (Filler.fill), or the tensor's bytes themselves for the small ones that hold facts."""
    g = GROUP
    if fmt == "awq":
        return [(f"{module}.qweight", "I32", (k, n // 8), "bits"), (f"{module}.qzeros", "I32", (k // g, n // 8), "bits"),
                (f"{module}.scales", "F16", (k // g, n), "scale")]
    if fmt in ("gptq4", "gptq8"):
        p = 8 if fmt == "gptq4" else 4
        return [(f"{module}.qweight", "I32", (k // p, n), "bits"),
                (f"{module}.qzeros", "I32", (k // g, n // p), "zeros4" if fmt == "gptq4" else "zeros8"),
                (f"{module}.scales", "F16", (k // g, n), "scale"), (f"{module}.g_idx", "I32", (k,), "g_idx")]
    if fmt == "w4a16":
        return [(f"{module}.weight_packed", "I32", (n, k // 8), "bits"),
                (f"{module}.weight_scale", dense, (n, k // g), "scale"),
                (f"{module}.weight_shape", "I64", (2,), np.array([n, k], dtype=np.int64).tobytes())]
    if fmt == "w8a8":
        return [(f"{module}.weight", "I8", (n, k), "bits"), (f"{module}.weight_scale", "F32", (n, 1), "scale")]
    if fmt == "fp8":
        return [(f"{module}.weight", "F8_E4M3", (n, k), "fp8"), (f"{module}.weight_scale", "F32", (n, 1), "scale")]
    if fmt == "fp8-block":
        return [(f"{module}.weight", "F8_E4M3", (n, k), "fp8"),
                (f"{module}.weight_scale_inv", "BF16", (math.ceil(n / g), math.ceil(k / g)), "scale")]
    if fmt == "bnb-nf4":
        blocks = n * k // 64
        return [(f"{module}.weight", "U8", (n * k // 2, 1), "bits"),
                (f"{module}.weight.absmax", "U8", (blocks,), "bits"),
                (f"{module}.weight.quant_map", "F32", (16,), "scale"),
                (f"{module}.weight.nested_absmax", "F32", (math.ceil(blocks / 256),), "scale"),
                (f"{module}.weight.nested_quant_map", "F32", (256,), "scale"),
                (f"{module}.weight.quant_state.bitsandbytes__nf4", "U8", (len(_nf4_state(n, k)),), _nf4_state(n, k))]
    raise SystemExit(f"unknown format {fmt!r}")


def _nf4_state(n: int, k: int) -> bytes:
    return json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [n, k],
                       "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0}).encode()


def plan(config: dict, fmt: str, dense: str) -> list[tuple[str, str, tuple[int, ...], str | bytes]]:
    tensors = []
    for name, shape in dense_tensors(config):
        module = name.removesuffix(".weight")
        if LINEAR.match(module):
            n, k = shape
            tensors += quantized(fmt, module, n, k, dense)
        else:
            tensors.append((name, dense, shape, "dense" if len(shape) > 1 else "norm"))
    return tensors


class Filler:
    """Bytes for a tensor, cut from one random block (a checkpoint of gigabytes is written in seconds)."""

    def __init__(self, seed: int, size: int = 1 << 24):
        rng = np.random.default_rng(seed)
        self.bits = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        codes = rng.integers(0, 0x7E, size, dtype=np.uint8)  # e4m3fn: 0x7f and 0xff are NaN; keep them out
        self.fp8 = np.where(rng.random(size) < 0.5, codes, codes | 0x80).astype(np.uint8).tobytes()
        self.floats = rng.normal(0, 0.02, size // 4).astype(np.float32)
        self._blocks: dict[tuple[str, str], bytes] = {}

    def fill(self, dtype: str, shape: tuple[int, ...], kind: str | bytes) -> bytes:
        if isinstance(kind, bytes):  # a fact, written as it is
            return kind
        count = math.prod(shape)
        width = DTYPE[dtype][1]
        if kind == "g_idx":
            return (np.arange(count, dtype=np.int32) // GROUP).tobytes()
        if kind in ("scale", "norm", "dense"):
            block = self._float_block(dtype, kind)
            want = count * width
            return (block * (want // len(block) + 1))[:want]
        if kind in ("zeros4", "zeros8"):  # GPTQ's symmetric zero point, stored minus one: 7 (or 127) in each lane
            return np.full(count, 0x77777777 if kind == "zeros4" else 0x7F7F7F7F, dtype=np.uint32).tobytes()
        source = self.fp8 if kind == "fp8" else self.bits
        want = count * width
        return (source * (want // len(source) + 1))[:want]

    def _float_block(self, dtype: str, kind: str) -> bytes:
        """A block of values in the tensor's dtype, made once and repeated: the dense tensors of an 8B (2 GB of
        embeddings) are written from it without being made in memory first."""
        key = (dtype, kind)
        if key not in self._blocks:
            values = {"scale": np.full(1024, 0.002, np.float32), "norm": np.ones(1024, np.float32)}.get(kind, self.floats)
            if dtype == "BF16":
                self._blocks[key] = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()
            else:
                self._blocks[key] = values.astype(DTYPE[dtype][0]).tobytes()
        return self._blocks[key]


def write(config: dict, fmt: str, out: Path, seed: int) -> dict:
    qconfig, dtype_name = quantization_config(fmt)
    dense = "F16" if dtype_name == "float16" else "BF16"
    tensors = plan(config, fmt, dense)
    header: dict = {"__metadata__": {"format": "pt", "made_by": "llmdesk tests/gpu/make_quant_checkpoint.py"}}
    offset = 0
    for name, dtype, shape, _ in tensors:
        size = math.prod(shape) * DTYPE[dtype][1]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    out.mkdir(parents=True, exist_ok=True)
    filler = Filler(seed)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, dtype, shape, kind in tensors:
            f.write(filler.fill(dtype, shape, kind))
    written = {**config, "torch_dtype": dtype_name, "quantization_config": qconfig}
    (out / "config.json").write_text(json.dumps(written, indent=2) + "\n")
    return {"format": fmt, "tensors": len(tensors), "bytes": offset, "layers": config["num_hidden_layers"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="a folder with config.json (and tokenizer files to copy)")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, help="fewer layers than the base (per-layer figures are unchanged)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    base, out = Path(a.base), Path(a.out)
    config = json.loads((base / "config.json").read_text())
    config.pop("quantization_config", None)
    if a.layers:
        config["num_hidden_layers"] = a.layers
    info = write(config, a.format, out, a.seed)
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copy(base / name, out / name)
    (out / "make_quant_checkpoint.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
