"""The GPU memory vLLM 0.26 sets aside for LoRA adapters, which the KV cache loses.

With `--enable-lora`, vLLM wraps every linear layer of the model, the input embeddings and the LM head
and gives each `max_loras` zeroed adapter slots of rank `max_lora_rank` in the model's dtype before it
measures memory (vllm/lora/layers/*.py, create_lora_weights), so these buffers come out of the KV
cache whether adapters are loaded or not. Per wrapped layer and slot:

- a column-parallel linear (q/k/v, gate/up; one slice each): A [rank, in] and B [out / tp, rank];
- a row-parallel linear (o, down): A [rank, in / tp] and B [out, rank];
- the input embeddings: A [vocab, rank] and B [hidden, rank]; the LM head: A [rank, hidden] and
  B [vocab, rank] (both whole on every GPU).

Dense attention models (Llama, Qwen2.5, Mistral, Gemma) are modelled; MoE experts and MLA projections
take their own LoRA buffers that are not, and the fit says so. Checked on an H100 with two settings (the Llama-3.1-8B
shape, 1 × rank 16 and 4 × rank 64): KV tokens within +0.4%, loaded weights within 0.1% (docs/benchmarks.md).
"""

from __future__ import annotations

from llmdesk.core.fit.model_config import ModelGeometry

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what vLLM 0.26 accepts for --max-lora-rank


def lora_buffer_elements(geometry: ModelGeometry, max_loras: int, rank: int, tp: int = 1) -> int | None:
    """Elements of every adapter buffer on one GPU; None where the model's layout is not modelled."""
    if geometry.moe is not None or geometry.mla is not None:
        return None
    hidden = geometry.hidden_size
    q_out = geometry.num_attention_heads * geometry.head_dim
    kv_out = geometry.num_kv_heads * geometry.head_dim
    inter = geometry.intermediate_size

    def column(in_size: int, *outs: int) -> int:  # one A and one B per slice
        return sum(rank * in_size + (out // tp) * rank for out in outs)

    def row(in_size: int, out: int) -> int:
        return rank * (in_size // tp) + out * rank

    per_layer = column(hidden, q_out, kv_out, kv_out) + row(q_out, hidden) \
        + column(hidden, inter, inter) + row(inter, hidden)
    embeddings = geometry.vocab_size * rank + hidden * rank
    lm_head = rank * hidden + geometry.vocab_size * rank
    return max_loras * (geometry.num_layers * per_layer + embeddings + lm_head)


def lora_buffer_bytes(geometry: ModelGeometry, max_loras: int, rank: int, tp: int = 1) -> int | None:
    """Bytes on one GPU. The adapters' dtype is vLLM's lora_dtype "auto": the model's dtype, which is 16-bit
    (vLLM loads a float32 checkpoint in 16 bits too)."""
    elements = lora_buffer_elements(geometry, max_loras, rank, tp)
    return None if elements is None else elements * 2
