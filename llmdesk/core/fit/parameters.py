"""Parameter counts from the geometry, for when no checkpoint sizes are known.

Linear layers are what quantization shrinks; embeddings, the LM head and norms usually stay
16-bit. Counts follow the Llama/Qwen/Mistral layout (q, k, v, o; gate, up, down); checked against
published index sizes of real models in tests/unit/test_parameters.py.
"""

from __future__ import annotations

from llmdesk.core.fit.model_config import ModelGeometry


def attention_parameters(g: ModelGeometry) -> int:
    if g.mla is not None:  # DeepSeek MLA: q (maybe through q_a/q_b), kv_a to the latent, kv_b back to heads
        m = g.mla
        qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
        q_out = g.num_attention_heads * qk_head
        q = g.hidden_size * q_out if m.q_lora_rank is None else m.q_lora_rank * (g.hidden_size + q_out)
        kv_a = g.hidden_size * m.latent_size
        kv_b = m.kv_lora_rank * g.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
        o = g.num_attention_heads * m.v_head_dim * g.hidden_size
        return q + kv_a + kv_b + o
    q_and_o = 2 * g.hidden_size * g.num_attention_heads * g.head_dim
    k_and_v = 2 * g.hidden_size * g.num_kv_heads * g.head_dim
    bias = (g.num_attention_heads + 2 * g.num_kv_heads) * g.head_dim if g.qkv_bias else 0
    return q_and_o + k_and_v + bias


def mlp_parameters(g: ModelGeometry) -> tuple[int, int]:
    """(linear parameters of all MLPs, router parameters)."""
    dense_layer = 3 * g.hidden_size * g.intermediate_size
    if g.moe is None:
        return g.num_layers * dense_layer, 0
    moe = g.moe
    expert = 3 * g.hidden_size * moe.expert_intermediate_size
    moe_layer = (moe.num_experts + moe.num_shared_experts) * expert
    moe_layers = g.num_layers - moe.first_dense_layers
    return moe.first_dense_layers * dense_layer + moe_layers * moe_layer, moe_layers * g.hidden_size * moe.num_experts


def split_parameters(g: ModelGeometry) -> tuple[int, int]:
    """(parameters in quantizable linear layers, everything else)."""
    mlp, router = mlp_parameters(g)
    linear = g.num_layers * attention_parameters(g) + mlp
    embeddings = g.vocab_size * g.hidden_size * (1 if g.tie_word_embeddings else 2)
    norms_per_layer = 4 if g.model_type.startswith(("gemma2", "gemma3")) else 2  # + pre/post feed-forward
    norms = (norms_per_layer * g.num_layers + 1) * g.hidden_size
    if g.model_type.startswith(("qwen3", "gemma3", "olmo2")):  # per-head q and k norms
        norms += g.num_layers * 2 * g.head_dim
    if g.mla is not None:  # MLA's latent norms: kv_a_layernorm, and q_a_layernorm with a q LoRA
        norms += g.num_layers * (g.mla.kv_lora_rank + (g.mla.q_lora_rank or 0))
    return linear, embeddings + norms + router + _gpt_oss_extras(g)


def routed_expert_parameters(g: ModelGeometry) -> int:
    """The MoE routed experts' linear parameters: what experts-only formats (gpt-oss's MXFP4) quantize."""
    if g.moe is None:
        return 0
    moe = g.moe
    return (g.num_layers - moe.first_dense_layers) * moe.num_experts * 3 * g.hidden_size * moe.expert_intermediate_size


def quantized_split(g: ModelGeometry, experts_only: bool) -> tuple[int, int]:
    """(parameters a format quantizes, parameters it keeps 16-bit)."""
    linear, other = split_parameters(g)
    if not experts_only:
        return linear, other
    experts = routed_expert_parameters(g)
    return experts, linear - experts + other


def _gpt_oss_extras(g: ModelGeometry) -> int:
    """gpt-oss's 16-bit extras per layer: expert biases (gate_up and down), router and o_proj biases, attention
    sinks (openai/gpt-oss-20b's index: tests/data/arch)."""
    if g.model_type != "gpt_oss" or g.moe is None:
        return 0
    moe = g.moe
    per_layer = moe.num_experts * (2 * moe.expert_intermediate_size + g.hidden_size) + moe.num_experts \
        + g.hidden_size + g.num_attention_heads
    return g.num_layers * per_layer


def total_parameters(g: ModelGeometry) -> int:
    linear, other = split_parameters(g)
    return linear + other
