"""Quantization formats: what a checkpoint is, how many bytes a weight takes, which GPUs run it.

Facts are for vLLM 0.26.0 (shared reference vllm.md section 6, hub.md sections 2.3, 2.4, 3.3).
Pure functions over plain dicts (config.json, hf_quant_config.json, file names), so this module
also runs on a GPU host without Qt or platformdirs.

bytes_per_weight is per parameter of the QUANTIZED linear layers, scales and zero points included,
as it sits in GPU memory under vLLM. It equals the checkpoint's own size per weight except where
vLLM expands data on load (bitsandbytes double-quant statistics, see _BNB4). One exception the
other way: FP32 checkpoints report their stored 4 bytes, though vLLM's --dtype auto loads them as
16-bit (2 bytes); callers sizing GPU memory should halve them. Small per-layer
overheads that depend on a layer's shape are left out: GPTQ g_idx (4 bytes per input row,
i.e. 4/out_features per weight) and per-channel or per-tensor scales.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

from llmdesk.core.base.errors import BadInput, Problem

# vLLM 0.26.0's --quantization literal list (vllm.md 6.1), online shorthands included.
ACCEPTED_QUANTIZATION: frozenset[str] = frozenset({
    "awq", "auto_awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4",
    "modelopt_mxfp8", "modelopt_mixed", "auto_gptq", "gptq", "gptq_marlin", "awq_marlin",
    "humming", "compressed-tensors", "bitsandbytes", "experts_int8", "quark", "moe_wna16",
    "torchao", "inc", "mxfp4", "gpt_oss_mxfp4", "deepseek_v4_fp8", "online",
    "fp8_per_tensor", "fp8_per_block", "fp8_per_channel", "int8_per_channel_weight_only",
    "nvfp4_per_token", "mxfp8",
})
# Deprecated in 0.26.0: vLLM refuses them without this flag.
_DEPRECATED = frozenset({"fbgemm_fp8", "fp_quant"})
_ALLOW_DEPRECATED = "--allow-deprecated-quantization"

# get_min_capability() per vLLM method (vllm.md 6.3), for methods without a format of their own.
_METHOD_MIN = {
    "fbgemm_fp8": 80, "fp_quant": 100, "modelopt_mixed": 75, "experts_int8": 80, "quark": 70,
    "moe_wna16": 70, "torchao": 75, "inc": 60,
}
# quant_method spellings in config.json that vLLM maps onto one of its own names.
_METHOD_ALIASES = {
    "auto-round": "inc", "auto_round": "inc", "intel/auto-round": "inc",
    "compressed_tensors": "compressed-tensors", "auto_gptq": "gptq", "gptq_marlin": "gptq",
    "auto_awq": "awq", "awq_marlin": "awq", "gpt_oss_mxfp4": "mxfp4",
}

WHEEL_MIN_CAPABILITY = 75  # the PyPI vllm-0.26.0 wheel has kernels for sm_75 and newer only
BF16_MIN_CAPABILITY = 80

_NVFP4 = 0.5 + 1 / 16  # one FP8 scale per 16 weights
_MXFP4 = 0.5 + 1 / 32  # one E8M0 scale per 32 weights
_MXFP8 = 1 + 1 / 32
# bitsandbytes 4-bit: one fp32 absmax per 64 weights. Double quant shrinks it on disk to
# 0.5 + 1/64 + 4/16384, but vLLM's loader dequantizes the nested statistics back to fp32 on load
# (BitsAndBytesModelLoader._dequantize_dq), so in GPU memory it is 0.5625 either way.
_BNB4 = 0.5 + 4 / 64


@dataclass(frozen=True)
class QuantFormat:
    key: str  # stable id, e.g. "awq", "fp8-block", "ct-w4a16"; online variants share the key
    label: str  # for people: "AWQ 4-bit (group 128)"
    bits: float  # nominal weight bits
    bytes_per_weight: float  # quantized linears, scales/zeros included (see module docstring)
    vllm_quantization: str | None  # vLLM's method name; None for plain 16/32-bit
    min_capability: int | None  # major*10+minor needed to run at all (None: no format limit)
    native_capability: int | None  # below this a slower fallback kernel runs
    served_by_vllm: bool
    online: bool = False  # vLLM quantizes a 16-bit checkpoint while loading it
    kv_cache_dtype_hint: str | None = None  # "fp8" when the checkpoint ships an FP8 KV cache
    unquantized_bytes_per_weight: float = 2.0  # embeddings, lm_head, norms
    dtype: str | None = None  # checkpoint dtype ("bfloat16"/"float16"/"float32"): activations
    experts_only: bool = False  # only MoE expert weights are quantized; the rest stays 16-bit
    not_quantized: tuple[str, ...] = ()  # module names the checkpoint keeps unquantized
    flags: tuple[str, ...] = ()  # extra vLLM arguments it needs besides --quantization
    not_served_reason: str | None = None  # why vLLM cannot load it, when served_by_vllm is False

    def __post_init__(self) -> None:
        # Callers pass config.json's ints; keep one type so JSON and comparisons agree.
        object.__setattr__(self, "bits", float(self.bits))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class UnsupportedQuantization(BadInput):
    """A --quantization name vLLM 0.26 would refuse for this checkpoint (CLI exit code 2)."""


@dataclass(frozen=True)
class GpuSupport:
    status: str  # "native" | "fallback" | "unsupported"
    reason: str  # one or two plain sentences
    flags: tuple[str, ...] = ()  # vLLM arguments that make it run, e.g. ("--dtype", "half")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- detection

def detect_format(config: Mapping[str, Any], *, hf_quant_config: Mapping[str, Any] | None = None,
                  file_names: Sequence[str] = ()) -> QuantFormat:
    """What a Hugging Face checkpoint is, from config.json, hf_quant_config.json and file names."""
    dtype = _config_dtype(config)
    base = {"dtype": dtype, "unquantized_bytes_per_weight": 4.0 if dtype == "float32" else 2.0}
    quant = _section(config, "quantization_config")
    if quant:
        return _from_quant_config(quant, config, hf_quant_config, base)
    if isinstance(config.get("quantization"), Mapping):  # MLX writes "quantization", not _config
        return _mlx(config["quantization"], base)
    if hf_quant_config:  # NVIDIA ModelOpt repos may only have this file
        return _modelopt(hf_quant_config.get("quantization") or hf_quant_config, base)
    names = [n.replace("\\", "/").rsplit("/", 1)[-1].lower() for n in file_names]
    has_weights = any(n.endswith((".safetensors", ".bin", ".pt", ".pth")) for n in names)
    if "measurement.json" in names:  # written by ExLlamaV2's converter
        return _not_served("exl2", "EXL2 (ExLlamaV2)", 4.0, 0.5, base)
    ggufs = [n for n in names if n.endswith(".gguf") and not n.startswith("mmproj")]
    if ggufs and not has_weights:  # with safetensors beside it, vLLM loads those instead
        return _gguf(ggufs, base)
    return _unquantized(dtype)


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """config[name], or the same key in a multimodal model's text config."""
    for where in (config, config.get("text_config"), config.get("llm_config")):
        if isinstance(where, Mapping) and isinstance(where.get(name), Mapping) and where[name]:
            return where[name]
    return None


_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
           "half": "float16", "float32": "float32", "fp32": "float32", "float": "float32"}


def _config_dtype(config: Mapping[str, Any]) -> str | None:
    # Newer transformers write "dtype", older "torch_dtype"; multimodal configs may keep it
    # only in the text config.
    for where in (config, config.get("text_config"), config.get("llm_config")):
        if not isinstance(where, Mapping):
            continue
        for key in ("torch_dtype", "dtype"):
            value = where.get(key)
            if isinstance(value, str):
                name = value.lower().removeprefix("torch.")
                if name in _DTYPES:
                    return _DTYPES[name]
    return None


def _unquantized(dtype: str | None) -> QuantFormat:
    if dtype == "float32":
        # vLLM's --dtype auto loads float32 checkpoints as 16-bit: GPU memory is 2 bytes/weight.
        return QuantFormat("fp32", "FP32 (vLLM loads it as 16-bit)", 32, 4.0, None, None, None,
                           True, unquantized_bytes_per_weight=4.0, dtype=dtype)
    if dtype == "float16":
        return QuantFormat("fp16", "FP16", 16, 2.0, None, None, None, True, dtype=dtype)
    if dtype == "bfloat16":
        return QuantFormat("bf16", "BF16", 16, 2.0, None, None, BF16_MIN_CAPABILITY, True,
                           dtype=dtype)
    # No dtype stated: vLLM treats it as float32 and picks a 16-bit type the GPU supports.
    return QuantFormat("bf16", "16-bit (config.json states no dtype)", 16, 2.0, None, None, None,
                       True)


def _from_quant_config(quant: Mapping[str, Any], config: Mapping[str, Any],
                       hf_quant_config: Mapping[str, Any] | None, base: dict) -> QuantFormat:
    raw = str(quant.get("quant_method") or "").lower()
    if not raw:
        if "load_in_4bit" in quant or "load_in_8bit" in quant:  # old BitsAndBytesConfig dumps
            raw = "bitsandbytes"
        elif isinstance(config.get("quantization"), Mapping):  # mlx-lm copies it here too
            return _mlx(config["quantization"], base)
    method = _METHOD_ALIASES.get(raw, raw)
    skipped = _skipped_modules(quant)
    if method == "gptq":
        return _gptq(quant, base, skipped)
    if method == "awq":
        return _awq(quant, base, skipped)
    if method == "fp8":
        return _fp8(quant, base, skipped)
    if method == "compressed-tensors":
        return _compressed_tensors(quant, base, skipped)
    if method == "bitsandbytes":
        return _bitsandbytes(quant, base, skipped)
    if method == "mxfp4":
        # gpt-oss quantizes only its MoE experts; attention and router stay 16-bit.
        return QuantFormat("mxfp4", "MXFP4", 4, _MXFP4, "mxfp4", 80, None, True,
                           experts_only=config.get("model_type") == "gpt_oss",
                           not_quantized=skipped, **base)
    if method == "mxfp8":
        return QuantFormat("mxfp8", "MXFP8", 8, _MXFP8, "mxfp8", 80, None, True,
                           not_quantized=skipped, **base)
    if method.startswith("modelopt"):
        inner = quant if "quant_algo" in quant else quant.get("quantization") or {}
        if "quant_algo" not in inner and hf_quant_config:
            inner = hf_quant_config.get("quantization") or hf_quant_config
        return _modelopt(inner, base)
    if method in ("exl2", "exl3"):
        bits = float(quant.get("bits") or 4.0)
        name = "EXL2 (ExLlamaV2)" if method == "exl2" else "EXL3 (ExLlamaV3)"
        # EXL "bits" is already the average bits per weight, overhead included.
        return _not_served(method, f"{name} {bits:g} bpw", bits, bits / 8, base)
    return _generic(method, raw, quant, base, skipped)


def _skipped_modules(quant: Mapping[str, Any]) -> tuple[str, ...]:
    for key in ("modules_to_not_convert", "ignore", "llm_int8_skip_modules", "exclude_modules"):
        value = quant.get(key)
        if isinstance(value, list):
            return tuple(str(v) for v in value)
    return ()


def _group_bytes(bits: float, group: int | None, *, zero: bool) -> float:
    """Packed weights plus one 16-bit scale (and a packed zero point) per group of weights."""
    size = bits / 8
    if group and group > 0:  # group -1 / None: per channel, scales negligible
        size += (2 + (bits / 8 if zero else 0)) / group
    return size


def _gptq(quant: Mapping[str, Any], base: dict, skipped: tuple[str, ...]) -> QuantFormat:
    bits = int(quant.get("bits", 4))
    group = int(quant.get("group_size", 128) or -1)
    parts = [f"GPTQ {bits}-bit", f"g{group}" if group > 0 else "per-channel"]
    if quant.get("desc_act"):
        parts.append("act-order")
    # GPTQ always stores packed zero points (qzeros), even when symmetric.
    # vLLM's minimum is 6.0 with Marlin from 7.5; the default wheel starts at 7.5 anyway, so
    # there is no slower-fallback range to report.
    return QuantFormat("gptq", " ".join(parts), bits, _group_bytes(bits, group, zero=True),
                       "gptq", 60, None, True, not_quantized=skipped, **base)


def _awq(quant: Mapping[str, Any], base: dict, skipped: tuple[str, ...]) -> QuantFormat:
    bits = int(quant.get("bits") or quant.get("w_bit") or 4)  # AutoAWQ's own names as fallback
    group = int(quant.get("group_size") or quant.get("q_group_size") or 128)
    zero = bool(quant.get("zero_point", True))
    label = f"AWQ {bits}-bit (group {group})" if group > 0 else f"AWQ {bits}-bit (per channel)"
    return QuantFormat("awq", label, bits, _group_bytes(bits, group, zero=zero), "awq", 75,
                       None, True, not_quantized=skipped, **base)


def _fp8(quant: Mapping[str, Any], base: dict, skipped: tuple[str, ...]) -> QuantFormat:
    block = quant.get("weight_block_size")
    blocked = isinstance(block, list) and len(block) == 2
    notes = [f"block {block[0]}×{block[1]}"] if blocked else []
    if quant.get("activation_scheme") == "static":
        notes.append("static activation scales")
    label = f"FP8 ({', '.join(notes)})" if notes else "FP8"
    if blocked:
        return QuantFormat("fp8-block", label, 8, 1 + 2 / (block[0] * block[1]), "fp8", 75, 89,
                           True, not_quantized=skipped, **base)
    return QuantFormat("fp8", label, 8, 1.0, "fp8", 75, 89, True, not_quantized=skipped, **base)


def _compressed_tensors(quant: Mapping[str, Any], base: dict,
                        skipped: tuple[str, ...]) -> QuantFormat:
    kv = quant.get("kv_cache_scheme")
    kv_hint = "fp8" if isinstance(kv, Mapping) and kv.get("num_bits", 8) == 8 and \
        kv.get("type", "float") == "float" else None
    groups = quant.get("config_groups") or {}
    schemes = [_ct_scheme(group, group.get("format") or quant.get("format") or "")
               for _, group in sorted(groups.items()) if isinstance(group, Mapping)]
    if not schemes:  # nothing but a KV-cache scheme: the weights are plain 16-bit
        plain = _unquantized(base["dtype"])
        return replace(plain, vllm_quantization="compressed-tensors", kv_cache_dtype_hint=kv_hint,
                       label=f"{plain.label} (compressed-tensors, weights not quantized)")
    # Several schemes (mixed precision): size by the largest, gate by the strictest GPU need.
    fmt = max(schemes, key=lambda s: s.bytes_per_weight)
    if len({s.key for s in schemes}) > 1:
        fmt = replace(fmt, label=f"{fmt.label} + other schemes",
                      min_capability=max(s.min_capability or 0 for s in schemes) or None,
                      native_capability=max(s.native_capability or 0 for s in schemes) or None)
    return replace(fmt, kv_cache_dtype_hint=kv_hint, not_quantized=skipped, **base)


def _ct_scheme(group: Mapping[str, Any], fmt_name: str) -> QuantFormat:
    """One compressed-tensors config group -> a format (vllm.md 6.3 minimums per scheme)."""
    w = group.get("weights") or {}
    act = group.get("input_activations") if isinstance(group.get("input_activations"), Mapping) \
        else None
    bits = int(w.get("num_bits", 8))
    kind = w.get("type", "int")
    strategy = w.get("strategy") or "tensor"
    size = w.get("group_size")
    act_is = (act.get("type", "int"), act.get("num_bits")) if act else None
    layout = f"group {size}" if strategy == "group" and size else f"per-{strategy}"

    def made(key: str, name: str, nbytes: float, low: int, native: int | None = None,
             detail: str | None = None) -> QuantFormat:
        where = f"compressed-tensors, {detail}" if detail else "compressed-tensors"
        return QuantFormat(key, f"{name} ({where})", bits, nbytes, "compressed-tensors", low,
                           native, True)

    if kind == "float" and bits == 4:
        if size == 32 or fmt_name.startswith("mxfp4"):
            return made("ct-mxfp4", "MXFP4", _MXFP4, 80)
        nbytes = 0.5 + 1 / (size or 16)  # one FP8 scale per group of 16
        if act is None:  # NVFP4A16: weight-only by design, runs on Marlin
            return made("ct-nvfp4", "NVFP4 weight-only", nbytes, 75)
        return made("ct-nvfp4", "NVFP4", nbytes, 75, 100)
    if kind == "float" and bits == 8:
        if strategy == "block":
            rows, cols = (w.get("block_structure") or [128, 128])[:2]
            nbytes, layout = 1 + 2 / (rows * cols), f"block {rows}×{cols}"
        else:
            nbytes = _group_bytes(8, size if strategy == "group" else None, zero=False)
        if act_is == ("float", 8):  # W8A8-FP8: native 89, else vLLM uses W8A16-FP8 (75)
            return made("ct-fp8", "FP8 W8A8", nbytes, 75, 89, layout)
        return made("ct-w8a16-fp8", "FP8 weight-only (W8A16)", nbytes, 75, None, layout)
    if kind == "int":
        zero = not w.get("symmetric", True)  # asymmetric schemes also store zero points
        nbytes = _group_bytes(bits, size if strategy == "group" else None, zero=zero)
        if zero:
            layout += ", asymmetric"
        if act is None:  # WNA16
            return made(f"ct-w{bits}a16", f"INT{bits} W{bits}A16", nbytes, 75, None, layout)
        if bits == 8 and act_is == ("int", 8):
            return made("ct-w8a8-int8", "INT8 W8A8", nbytes, 75, None, layout)
        if bits == 4 and act_is == ("float", 8):
            return made("ct-w4a8-fp8", "INT4 W4A8-FP8", nbytes, 90, None, layout)
    # A scheme llmdesk has no row for: vLLM's base minimum for compressed-tensors.
    return made("ct-other", f"{str(kind).upper()}{bits} weights, scheme not recognised",
                _group_bytes(bits, size, zero=False), 70)


def _bitsandbytes(quant: Mapping[str, Any], base: dict, skipped: tuple[str, ...]) -> QuantFormat:
    four = quant.get("load_in_4bit", quant.get("_load_in_4bit"))
    eight = quant.get("load_in_8bit", quant.get("_load_in_8bit"))
    if eight and not four:
        # LLM.int8: int8 weights plus one fp32 scale per row.
        return QuantFormat("bnb-8bit", "bitsandbytes 8-bit (LLM.int8)", 8, 1.0, "bitsandbytes",
                           70, None, True, not_quantized=skipped, **base)
    kind = str(quant.get("bnb_4bit_quant_type") or "fp4").lower()  # transformers' default: fp4
    double = " (double quant)" if quant.get("bnb_4bit_use_double_quant") else ""
    key = "bnb-nf4" if kind == "nf4" else "bnb-fp4"
    return QuantFormat(key, f"bitsandbytes {kind.upper()}{double}", 4, _BNB4, "bitsandbytes", 70,
                       None, True, not_quantized=skipped, **base)


# Packages vLLM 0.26 needs in its own environment for a format, which installing vLLM does not bring
# (vllm-0.26.0.dist-info/METADATA has no bitsandbytes), with vLLM's own words when one is missing
# (vllm/model_executor/layers/quantization/bitsandbytes.py: _check_bitsandbytes_version, CUDA).
RUNTIME_PACKAGES = {"bitsandbytes": ("bitsandbytes", "0.48.1")}


def runtime_package(fmt: QuantFormat) -> tuple[str, str] | None:
    """(package, minimum version) the format needs beside vLLM, or None."""
    return RUNTIME_PACKAGES.get(fmt.vllm_quantization or "")


def missing_package_error(package: str, minimum: str) -> str:
    """What vLLM 0.26 says when it starts on such a checkpoint without the package."""
    return (f"ImportError: Please install {package}>={minimum} via `pip install {package}>={minimum}` to use "
            f"{package} quantizer.")


def _modelopt(inner: Mapping[str, Any], base: dict) -> QuantFormat:
    algo = str(inner.get("quant_algo") or "").upper()
    kv_hint = "fp8" if str(inner.get("kv_cache_quant_algo") or "").upper() == "FP8" else None
    skipped = _skipped_modules(inner)
    common = dict(kv_cache_dtype_hint=kv_hint, not_quantized=skipped, **base)
    if algo.startswith("FP8"):
        # No Marlin fallback: vLLM refuses ModelOpt FP8 below 8.9.
        return QuantFormat("modelopt-fp8", "ModelOpt FP8", 8, 1.0, "modelopt", 89, None, True,
                           **common)
    if algo in ("NVFP4", "FP4"):
        return QuantFormat("modelopt-fp4", "ModelOpt NVFP4", 4, _NVFP4, "modelopt_fp4", 75, 100,
                           True, **common)
    if algo == "MXFP8":
        return QuantFormat("modelopt-mxfp8", "ModelOpt MXFP8", 8, _MXFP8, "modelopt_mxfp8", 80,
                           None, True, **common)
    if algo.startswith("MIXED"):
        # FP8 and NVFP4 layers mixed; sized as all-FP8, an upper bound.
        return QuantFormat("modelopt-mixed", "ModelOpt mixed precision (sized as FP8)", 8, 1.0,
                           "modelopt_mixed", 75, None, True, **common)
    return _not_served("modelopt-other", f"ModelOpt {algo or 'unknown algorithm'}", 8.0, 1.0,
                       base, why=f"vLLM 0.26 reads ModelOpt FP8, NVFP4, MXFP8 and mixed "
                                 f"checkpoints, not quant_algo {algo or '(none)'}.")


def _mlx(quant: Mapping[str, Any], base: dict) -> QuantFormat:
    bits = int(quant.get("bits", 4))
    group = int(quant.get("group_size", 64))
    # MLX stores a 16-bit scale and a 16-bit bias per group.
    return _not_served("mlx", f"MLX {bits}-bit (group {group})", bits, bits / 8 + 4 / group, base)


# llama.cpp bits per weight / 8 (vllm.md 6.2: general knowledge, the file size is better).
_GGUF_BYTES = {
    "F32": 4.0, "F16": 2.0, "BF16": 2.0, "Q8_0": 1.0625, "Q6_K": 0.8203125, "Q5_K_M": 0.71,
    "Q5_K_S": 0.69, "Q5_1": 0.75, "Q5_0": 0.6875, "Q4_K_M": 0.60, "Q4_K_S": 0.57, "Q4_1": 0.625,
    "Q4_0": 0.5625, "IQ4_XS": 0.53125, "IQ4_NL": 0.5625, "Q3_K_L": 0.53, "Q3_K_M": 0.49,
    "Q3_K_S": 0.43, "Q2_K": 0.42,
}
_GGUF_TYPE = re.compile(r"(?:^|[-_.])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?=[-_.]|$)")


def _gguf(names: Sequence[str], base: dict) -> QuantFormat:
    # The quant type ends the name ("…-BF16-Q4_K_M.gguf", shards add "-00001-of-00002").
    types = sorted({found[-1] for n in names if (found := _GGUF_TYPE.findall(n.upper()))})
    if len(types) == 1:
        kind = types[0]
        digits = re.search(r"\d+", kind)
        bits = float(digits.group()) if digits else 16.0
        # A type missing from the table: its bit count plus llama.cpp's usual ~0.5 bit of scales.
        nbytes = _GGUF_BYTES.get(kind, (bits + 0.5) / 8)
        label = f"GGUF {kind}"
    else:  # several quant files (or none named): size by the largest, a safe upper bound
        known = [_GGUF_BYTES[t] for t in types if t in _GGUF_BYTES]
        nbytes = max(known) if known else 0.6
        bits = nbytes * 8
        label = f"GGUF ({', '.join(types)})" if types else "GGUF"
    return _not_served("gguf", label, bits, nbytes, base)


_NOT_SERVED_WHY = {
    "gguf": "GGUF is not served by vLLM 0.26 itself: it needs the separate vllm-gguf-plugin "
            "package (and --tokenizer pointing at the original model repo).",
    "mlx": "MLX is Apple's format for Apple-silicon Macs; vLLM on NVIDIA GPUs cannot load it.",
    "exl2": "EXL2 is ExLlamaV2's format; vLLM cannot load it.",
    "exl3": "EXL3 is ExLlamaV3's format; vLLM cannot load it.",
}


def _not_served(key: str, label: str, bits: float, nbytes: float, base: dict, *,
                why: str | None = None) -> QuantFormat:
    return QuantFormat(key, label, bits, nbytes, None, None, None, False,
                       not_served_reason=why or _NOT_SERVED_WHY.get(key), **base)


def _generic(method: str, raw: str, quant: Mapping[str, Any], base: dict,
             skipped: tuple[str, ...]) -> QuantFormat:
    """A quant_method without a table row: known to vLLM or not, size it from "bits"."""
    bits = quant.get("bits") or quant.get("weight_bits") or quant.get("w_bit")
    group = quant.get("group_size")
    if isinstance(bits, (int, float)):
        nbytes = _group_bytes(bits, int(group) if isinstance(group, int) else None, zero=True)
        size_note = f"{bits:g}-bit, bytes per weight estimated"
    else:
        bits, nbytes = (8.0, 1.0)
        size_note = "bit width not stated, 1 byte per weight assumed"
    if method not in ACCEPTED_QUANTIZATION:
        return _not_served("unknown", f"Unknown quantization '{raw}' ({size_note})", float(bits),
                           nbytes, base, why=f"vLLM 0.26 does not know the quantization method "
                                             f"'{raw}'.")
    flags = (_ALLOW_DEPRECATED,) if method in _DEPRECATED else ()
    deprecated = ", deprecated in vLLM" if flags else ""
    return QuantFormat(method.replace("_", "-"), f"{method} ({size_note}{deprecated})",
                       float(bits), nbytes, method, _METHOD_MIN.get(method), None, True,
                       not_quantized=skipped, flags=flags, **base)


# ---------------------------------------------------------------- --quantization NAME

# --quantization names that mean "the checkpoint's own method" per format key.
_OWN_NAMES = {
    "awq": {"awq", "auto_awq", "awq_marlin"},
    "gptq": {"gptq", "auto_gptq", "gptq_marlin"},
    "fp8": {"fp8"}, "fp8-block": {"fp8"},
    "bnb-nf4": {"bitsandbytes"}, "bnb-fp4": {"bitsandbytes"}, "bnb-8bit": {"bitsandbytes"},
    "mxfp4": {"mxfp4", "gpt_oss_mxfp4"},
    "modelopt-fp8": {"modelopt"}, "modelopt-fp4": {"modelopt", "modelopt_fp4"},
    "modelopt-mxfp8": {"modelopt", "modelopt_mxfp8"},
    "modelopt-mixed": {"modelopt", "modelopt_mixed"},
}


def _online_formats() -> dict[str, tuple]:
    """name -> (key, label, bits, bytes, min, native, experts_only) for quantizing on load."""
    fp8 = ("fp8", 8, 1.0, 75, 89, False)  # Marlin weight-only below 8.9, as for checkpoints
    return {
        "fp8": (fp8[0], "FP8", *fp8[1:]),
        "fp8_per_tensor": (fp8[0], "FP8 per-tensor", *fp8[1:]),
        "fp8_per_channel": (fp8[0], "FP8 per-channel", *fp8[1:]),
        # Scales computed on load are float32: 4 bytes per 128x128 block.
        "fp8_per_block": ("fp8-block", "FP8 block 128×128", 8, 1 + 4 / 16384, 75, 89, False),
        # vLLM's loader quantizes to NF4 (with double quant, expanded again on load: _BNB4).
        "bitsandbytes": ("bnb-nf4", "bitsandbytes NF4", 4, _BNB4, 70, None, False),
        # These two quantize MoE experts only; linear layers stay 16-bit
        # (vllm/config/quantization.py). nvfp4_per_token needs Blackwell (FlashInfer TRTLLM).
        "int8_per_channel_weight_only": ("int8-weight-only", "INT8 weight-only, MoE experts",
                                         8, 1.0, 75, None, True),
        "nvfp4_per_token": ("nvfp4", "NVFP4, MoE experts", 4, _NVFP4, 100, None, True),
        # 80 as for ModelOpt MXFP8; vLLM's online config itself only checks 7.5.
        "mxfp8": ("mxfp8", "MXFP8", 8, _MXFP8, 80, None, False),
        "experts_int8": ("experts-int8", "INT8, MoE experts", 8, 1.0, 80, None, True),
    }


_ONLINE = _online_formats()


def online_format(name: str, checkpoint: QuantFormat) -> QuantFormat:
    """The format vLLM ends up with when started with `--quantization NAME` on this checkpoint."""
    wanted = name.strip().lower()
    if wanted not in ACCEPTED_QUANTIZATION:
        raise UnsupportedQuantization(Problem(
            f"vLLM does not know the quantization method '{name}'",
            f"vLLM 0.26 accepts: {', '.join(sorted(ACCEPTED_QUANTIZATION))}.",
            "Pick one of these, or leave quantization unset so vLLM reads the method from the "
            "checkpoint."))
    if not checkpoint.served_by_vllm:
        raise _refuse(name, f"vLLM cannot load this checkpoint ({checkpoint.label}) at all.",
                      "Pick a safetensors version of the model.")
    if wanted in _OWN_NAMES.get(checkpoint.key, ()) or wanted == checkpoint.vllm_quantization:
        if wanted == "gptq_marlin" and checkpoint.bits not in (4, 8):
            raise _refuse(name, f"Marlin runs 4- and 8-bit GPTQ only; this checkpoint is "
                                f"{checkpoint.label}.", "Use --quantization gptq.")
        return checkpoint
    if checkpoint.vllm_quantization is not None:
        if wanted == "moe_wna16" and checkpoint.key in ("awq", "gptq"):
            # vLLM's MoE kernel for AWQ/GPTQ experts; same weights, same bytes.
            return replace(checkpoint, vllm_quantization="moe_wna16", min_capability=70,
                           native_capability=None)
        if wanted in _ONLINE:
            raise _refuse(name, f"This checkpoint is already quantized ({checkpoint.label}); "
                                f"vLLM quantizes on load only 16-bit checkpoints.",
                          "Leave quantization unset so vLLM uses the checkpoint's own method.")
        raise _refuse(name, f"The checkpoint is {checkpoint.label}, quantized with "
                            f"'{checkpoint.vllm_quantization}'; vLLM refuses a different method.",
                      "Leave quantization unset so vLLM uses the checkpoint's own method.")
    if wanted not in _ONLINE:
        online = ", ".join(sorted(_ONLINE))
        raise _refuse(name, f"'{wanted}' reads weights that were quantized beforehand; this "
                            f"checkpoint is {checkpoint.label}. Methods that quantize a 16-bit "
                            f"checkpoint while loading it: {online}.",
                      "Pick one of those, or a checkpoint already quantized with this method.")
    key, label, bits, nbytes, low, native, experts = _ONLINE[wanted]
    return QuantFormat(key, f"{label} (quantized on load by vLLM)", bits, nbytes, wanted, low,
                       native, True, online=True, dtype=checkpoint.dtype, experts_only=experts)


def _refuse(name: str, explanation: str, fix: str) -> UnsupportedQuantization:
    return UnsupportedQuantization(Problem(
        f"--quantization {name} does not fit this checkpoint", explanation, fix))


# ---------------------------------------------------------------- GPU support

_SHORT_NAMES = {
    "bf16": "BF16", "fp16": "FP16", "fp32": "FP32", "fp8": "FP8", "fp8-block": "FP8",
    "awq": "AWQ", "gptq": "GPTQ", "ct-fp8": "FP8", "ct-w8a16-fp8": "FP8 weight-only",
    "ct-nvfp4": "NVFP4", "ct-mxfp4": "MXFP4", "ct-w4a16": "INT4 weight-only (W4A16)",
    "ct-w8a16": "INT8 weight-only (W8A16)", "ct-w8a8-int8": "INT8 W8A8", "ct-w4a8-fp8": "W4A8-FP8",
    "bnb-nf4": "bitsandbytes", "bnb-fp4": "bitsandbytes", "bnb-8bit": "bitsandbytes",
    "mxfp4": "MXFP4", "mxfp8": "MXFP8", "modelopt-fp8": "ModelOpt FP8",
    "modelopt-fp4": "ModelOpt NVFP4", "modelopt-mxfp8": "ModelOpt MXFP8",
    "modelopt-mixed": "ModelOpt mixed precision", "nvfp4": "NVFP4",
    "int8-weight-only": "INT8 weight-only", "experts-int8": "INT8 experts",
}
_NO_FALLBACK = {"modelopt-fp8": " Unlike plain FP8 it has no slower fallback."}
# Formats whose fallback is Marlin weight-only: same memory, slower compute.
_MARLIN_FALLBACK = {"fp8": "FP8", "fp8-block": "FP8", "ct-fp8": "FP8", "ct-nvfp4": "NVFP4",
                    "modelopt-fp4": "NVFP4"}


def _cc(value: int) -> str:
    return f"{value // 10}.{value % 10}"


def gpu_support(fmt: QuantFormat, capability: tuple[int, int]) -> GpuSupport:
    """Whether vLLM 0.26 runs this format on a GPU of this compute capability, and how."""
    cc = capability[0] * 10 + capability[1]
    here = f"{capability[0]}.{capability[1]}"
    name = _SHORT_NAMES.get(fmt.key, fmt.label)
    if not fmt.served_by_vllm:
        return GpuSupport("unsupported",
                          fmt.not_served_reason or f"vLLM 0.26 cannot load {fmt.label}.")
    if fmt.min_capability and cc < fmt.min_capability:
        return GpuSupport("unsupported", f"{name} needs compute capability "
                                         f"{_cc(fmt.min_capability)} or newer (this GPU: {here})."
                                         + _NO_FALLBACK.get(fmt.key, ""))
    if cc < WHEEL_MIN_CAPABILITY:
        return GpuSupport("unsupported", f"vLLM 0.26's standard wheel has GPU kernels for compute "
                                         f"capability 7.5 (Turing) and newer only; this GPU "
                                         f"({here}) is older.")
    reasons: list[str] = []
    flags: tuple[str, ...] = ()
    # bf16's own fallback is the dtype one below, which also applies to quantized BF16 models.
    if fmt.native_capability and cc < fmt.native_capability and fmt.key != "bf16":
        reasons.append(_fallback_reason(fmt, name, here))
    if fmt.dtype == "bfloat16" and cc < BF16_MIN_CAPABILITY:
        reasons.append(f"BF16 needs compute capability 8.0 or newer; this GPU ({here}) has to run "
                       f"the model in float16: start vLLM with --dtype half (a few models trained "
                       f"in BF16 overflow in float16).")
        flags = ("--dtype", "half")
    if reasons:
        return GpuSupport("fallback", " ".join(reasons), flags)
    return GpuSupport("native", f"{name} runs natively on this GPU (compute capability {here}).")


def _fallback_reason(fmt: QuantFormat, name: str, here: str) -> str:
    native = _cc(fmt.native_capability or 0)
    if fmt.key in _MARLIN_FALLBACK:
        return (f"{_MARLIN_FALLBACK[fmt.key]} runs natively on compute capability {native} and "
                f"newer; this GPU ({here}) runs it through Marlin weight-only kernels: it fits the "
                f"same, but is slower.")
    return (f"{name} runs natively on compute capability {native} and newer; this GPU ({here}) "
            f"runs it through a slower fallback.")
