"""Write a random-weight Qwen3-MoE checkpoint (bf16) that vLLM can load, for fit calibration.

    python3 tests/gpu/make_moe_model.py --layers 12 --tokenizer-from /srv/models/tiny --out /srv/models/qwen3-moe-12l

The geometry is Qwen/Qwen3-30B-A3B's (128 experts, 8 active, hidden 2048, expert MLP 768, 4 KV
heads × 128) with fewer layers: the activation peak and per-layer KV depend on a layer's shape,
not on how many there are, and 12 layers keep the file near 15 GB. One random block is reused for
every tensor (values do not matter for memory). Needs numpy only.
"""

import argparse
import json
import os
import shutil
import struct

import numpy as np

QWEN3_30B_A3B = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645, "decoder_sparse_step": 1,
    "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 6144, "max_position_embeddings": 40960, "max_window_layers": 48,
    "mlp_only_layers": [], "moe_intermediate_size": 768, "norm_topk_prob": True, "num_attention_heads": 32,
    "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4,
    "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.001, "sliding_window": None, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
}


def shapes(c):
    h, hd, e, mi = c["hidden_size"], c["head_dim"], c["num_experts"], c["moe_intermediate_size"]
    nh, kv, v = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (nh * hd, h)), (p + "self_attn.k_proj.weight", (kv * hd, h)),
                (p + "self_attn.v_proj.weight", (kv * hd, h)), (p + "self_attn.o_proj.weight", (h, nh * hd)),
                (p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,)),
                (p + "mlp.gate.weight", (e, h))]
        for x in range(e):
            q = f"{p}mlp.experts.{x}."
            out += [(q + "gate_proj.weight", (mi, h)), (q + "up_proj.weight", (mi, h)), (q + "down_proj.weight", (h, mi))]
    return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--tokenizer-from", required=True, help="a folder with tokenizer files to copy")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    c = dict(QWEN3_30B_A3B, num_hidden_layers=a.layers, max_window_layers=a.layers)
    os.makedirs(a.out, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        src = os.path.join(a.tokenizer_from, name)
        if os.path.exists(src):
            shutil.copy(src, a.out)
    with open(os.path.join(a.tokenizer_from, "config.json")) as f:
        tok = json.load(f)
    c["bos_token_id"], c["eos_token_id"] = tok.get("bos_token_id"), tok.get("eos_token_id")
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    header, off = {}, 0
    tensors = shapes(c)
    for name, shp in tensors:
        n = int(np.prod(shp)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shp), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    rng = np.random.default_rng(0)
    block = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(np.float32).view(np.uint32)
    block = (block >> np.uint32(16)).astype("<u2").tobytes()
    ones = np.full(1 << 16, 0x3F80, dtype="<u2").tobytes()  # bf16 1.0 for norms
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shp in tensors:
            n = int(np.prod(shp)) * 2
            src = ones if name.endswith("norm.weight") else block
            for i in range(0, n, len(src)):
                f.write(src[: min(len(src), n - i)])
    params = off // 2
    print(json.dumps({"out": a.out, "params": params, "safetensors_bytes": 8 + len(hb) + off, "tensor_bytes": off}))


if __name__ == "__main__":
    main()
