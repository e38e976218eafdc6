"""Model geometry from a Hugging Face config.json: what the memory model needs to know.

Multimodal configs keep the language model under `text_config` (or `llm_config`); the
geometry is read from there, the architecture from the top level. Pure: no I/O, no Qt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem

FULL, SLIDING, STATE = "full", "sliding", "state"  # STATE: Mamba/linear attention, no per-token KV

_LINEAR_LAYER_TYPES = {"linear_attention", "mamba", "mamba2", "conv", "linear"}
# Values Transformers' config classes fill in when config.json leaves them out (real configs do).
_MODEL_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": {"tie_word_embeddings": True},
    "gemma2": {"tie_word_embeddings": True},
    "gemma3_text": {"tie_word_embeddings": True, "vocab_size": 262208, "max_position_embeddings": 131072,
                    "sliding_window": 4096, "sliding_window_pattern": 6},
}
_QKV_BIAS_MODEL_TYPES = ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl")
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}


class BadModelConfig(BadInput):
    """config.json is missing what the memory model needs."""


@dataclass(frozen=True)
class MlaGeometry:
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int = 128
    v_head_dim: int = 128
    q_lora_rank: int | None = None  # None: q is projected directly from the hidden state

    @property
    def latent_size(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True)
class MoeGeometry:
    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    num_shared_experts: int = 0
    first_dense_layers: int = 0  # DeepSeek keeps its first k layers dense


@dataclass(frozen=True)
class ModelGeometry:
    architecture: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    max_position_embeddings: int
    dtype: str
    tie_word_embeddings: bool
    qkv_bias: bool
    layer_kinds: tuple[str, ...]  # one of FULL, SLIDING, STATE per layer
    sliding_window: int | None = None
    mla: MlaGeometry | None = None
    moe: MoeGeometry | None = None

    @property
    def dtype_bytes(self) -> int:
        return _DTYPE_BYTES.get(self.dtype, 2)

    @property
    def full_layers(self) -> int:
        return self.layer_kinds.count(FULL)

    @property
    def sliding_layers(self) -> int:
        return self.layer_kinds.count(SLIDING)

    @property
    def is_multimodal(self) -> bool:
        return self.architecture.endswith("ForConditionalGeneration")


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language-model part of a (possibly multimodal) config, with its class defaults filled in."""
    text = config
    for key in ("text_config", "llm_config", "language_config"):
        nested = config.get(key)
        if isinstance(nested, Mapping) and nested.get("num_hidden_layers"):
            text = nested
            break
    defaults = _MODEL_TYPE_DEFAULTS.get(str(text.get("model_type") or ""), {})
    return {**defaults, **text}


def geometry_from_config(config: Mapping[str, Any]) -> ModelGeometry:
    if not isinstance(config, Mapping):
        raise _bad("config.json is not a JSON object")
    architectures = config.get("architectures") or []
    if not architectures or not isinstance(architectures[0], str):
        raise _bad("config.json names no architecture (the \"architectures\" list is missing)")
    text = text_config(config)
    layers = _positive_int(text, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _positive_int(text, "hidden_size", "n_embd", "d_model")
    heads = _positive_int(text, "num_attention_heads", "n_head")
    kv_heads = _optional_int(text, "num_key_value_heads", "num_kv_heads", "multi_query_group_num") or heads
    head_dim = _optional_int(text, "head_dim") or hidden // heads
    vocab = _positive_int(text, "vocab_size", "padded_vocab_size")
    intermediate = _optional_int(text, "intermediate_size", "ffn_hidden_size", "n_inner") or 4 * hidden
    max_len = (_optional_int(text, "max_position_embeddings", "n_positions", "max_sequence_length",
                             "seq_length") or _optional_int(config, "max_position_embeddings") or 2048)
    dtype = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype")
                or config.get("dtype") or "bfloat16")
    tie = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    model_type = str(text.get("model_type") or config.get("model_type") or "")
    qkv_bias = bool(text.get("attention_bias", False)) or model_type in _QKV_BIAS_MODEL_TYPES
    kinds, window = _layer_kinds(text, layers)
    return ModelGeometry(
        architecture=architectures[0], model_type=model_type, qkv_bias=qkv_bias,
        num_layers=layers, hidden_size=hidden, num_attention_heads=heads, num_kv_heads=kv_heads,
        head_dim=head_dim, vocab_size=vocab, intermediate_size=intermediate, max_position_embeddings=max_len,
        dtype=dtype.removeprefix("torch."), tie_word_embeddings=tie, layer_kinds=kinds, sliding_window=window,
        mla=_mla(text), moe=_moe(text, layers))


def _layer_kinds(text: Mapping[str, Any], layers: int) -> tuple[tuple[str, ...], int | None]:
    window = _optional_int(text, "sliding_window")
    if text.get("use_sliding_window") is False:  # Qwen2 carries a window it does not use
        window = None
    max_len = _optional_int(text, "max_position_embeddings") or 0
    if window and max_len and window >= max_len:  # Phi-3.5: a window longer than the context is full attention
        window = None
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == layers:
        kinds = tuple(_kind(str(t), window) for t in layer_types)
        return kinds, window if SLIDING in kinds else None
    if not window:
        return (FULL,) * layers, None
    pattern = _optional_int(text, "sliding_window_pattern")
    if pattern:  # Gemma 3: every pattern-th layer is global
        return tuple(FULL if (i + 1) % pattern == 0 else SLIDING for i in range(layers)), window
    if text.get("model_type") in ("gemma2", "cohere2") or text.get("cache_implementation") == "hybrid":
        return tuple(SLIDING if i % 2 == 0 else FULL for i in range(layers)), window  # alternating, local first
    max_window_layers = _optional_int(text, "max_window_layers")
    if max_window_layers is not None and text.get("model_type", "").startswith("qwen"):
        return tuple(SLIDING if i >= max_window_layers else FULL for i in range(layers)), window
    return (SLIDING,) * layers, window  # Mistral-7B v0.1 style: every layer windowed


def _kind(layer_type: str, window: int | None) -> str:
    if layer_type in _LINEAR_LAYER_TYPES or "mamba" in layer_type or "linear" in layer_type:
        return STATE
    if "sliding" in layer_type or "local" in layer_type or "chunked" in layer_type:
        return SLIDING if window else FULL
    return FULL


def _mla(text: Mapping[str, Any]) -> MlaGeometry | None:
    rank = _optional_int(text, "kv_lora_rank")
    rope = _optional_int(text, "qk_rope_head_dim")
    if not (rank and rope):
        return None
    return MlaGeometry(rank, rope, _optional_int(text, "qk_nope_head_dim") or 128,
                       _optional_int(text, "v_head_dim") or 128, _optional_int(text, "q_lora_rank"))


def _moe(text: Mapping[str, Any], layers: int) -> MoeGeometry | None:
    experts = _optional_int(text, "num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts")
    if not experts or experts <= 1:
        return None
    per_token = _optional_int(text, "num_experts_per_tok", "num_experts_per_token", "moe_top_k",
                              "experts_per_token") or 1
    expert_size = (_optional_int(text, "moe_intermediate_size", "expert_intermediate_size")
                   or _optional_int(text, "intermediate_size") or 0)
    shared = _optional_int(text, "n_shared_experts", "num_shared_experts") or 0
    if not shared and _optional_int(text, "shared_expert_intermediate_size"):
        shared = 1
    first_dense = min(_optional_int(text, "first_k_dense_replace") or 0, layers)
    return MoeGeometry(experts, per_token, expert_size, shared, first_dense)


def _optional_int(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return None


def _positive_int(config: Mapping[str, Any], *keys: str) -> int:
    value = _optional_int(config, *keys)
    if value is None or value <= 0:
        raise _bad(f"config.json has no usable \"{keys[0]}\"")
    return value


def _bad(what: str) -> BadModelConfig:
    return BadModelConfig(Problem(
        "This model's config.json cannot be used", what + ".",
        "Check that the path or repo id points at a Hugging Face model with a complete config.json."))
