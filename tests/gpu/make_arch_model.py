"""Random-weight checkpoints of five published architectures, for starting real vLLM 0.26 on them (#21).

    python3 tests/gpu/make_arch_model.py --preset gpt-oss-20b --tokenizer-from /srv/models/tiny --out /srv/llmdesk/a-gpt

Presets (the real config.json of each is kept in the repository; see tests/data/arch/SOURCES.md):

  gemma3-1b        google/gemma-3-1b-it: Gemma3ForCausalLM, 5 sliding (512) : 1 global layers, tied embeddings
  mistral-7b-v0.1  mistralai/Mistral-7B-v0.1: MistralForCausalLM, a 4096-token window on every layer
  deepseek-v2-lite deepseek-ai/DeepSeek-V2-Lite: MLA (no q LoRA, kv_lora_rank 512), 64 routed + 2 shared
                   experts, first layer dense
  mixtral-8x7b     mistralai/Mixtral-8x7B-v0.1: 8 experts as block_sparse_moe.experts.E.w1/w2/w3
  gpt-oss-20b      openai/gpt-oss-20b: the MXFP4 checkpoint as published (experts' *_blocks and *_scales
                   as uint8, *_bias bf16; attention with biases and sinks), its quantization_config kept
  llama-3.3-70b    meta-llama/Llama-3.3-70B-Instruct: LlamaForCausalLM, 80 layers, 64 heads / 8 KV heads (#24:
                   tensor parallelism; the full model is 141,107,412,992 bytes, as its published index says)

config.json is the real one with num_hidden_layers (and per-layer lists such as layer_types) cut to
--layers; every tensor has the published name, dtype and shape (tests/data/arch/<preset>.json records
them, and tests/unit/test_arch_checkpoints.py checks the plan against the published index sizes). The
values are random but tame; one random block is reused for every tensor, so gigabytes take seconds.
Files over 5 GB are split into shards with a model.safetensors.index.json, as the Hub does. The
tokenizer files of --tokenizer-from are copied (the real vocabulary sizes are kept: they are larger than
a small test tokenizer's). Needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "gemma3-1b": ROOT / "tests/data/arch/configs/google__gemma-3-1b-it.json",
    "mistral-7b-v0.1": ROOT / "tests/data/arch/configs/mistralai__Mistral-7B-v0.1.json",
    "deepseek-v2-lite": ROOT / "tests/data/configs/deepseek-ai__DeepSeek-V2-Lite.json",
    "mixtral-8x7b": ROOT / "tests/data/arch/configs/mistralai__Mixtral-8x7B-v0.1.json",
    "gpt-oss-20b": ROOT / "tests/data/configs/openai__gpt-oss-20b.json",
    "llama-3.3-70b": ROOT / "tests/data/configs/meta-llama__Llama-3.3-70B-Instruct.json",
}
PRESETS = tuple(CONFIGS)
# Layers written by default: all of Gemma 3 1B; enough of the others for every layer kind (DeepSeek's dense
# first layer and MoE layers; gpt-oss's sliding and full layers) at a few GB each.
DEFAULT_LAYERS = {"gemma3-1b": 26, "mistral-7b-v0.1": 8, "deepseek-v2-lite": 4, "mixtral-8x7b": 2, "gpt-oss-20b": 4,
                  "llama-3.3-70b": 80}
DTYPE_BYTES = {"BF16": 2, "U8": 1}
MAX_SHARD_BYTES = 5 * 10**9  # the Hub's "5GB" shards
MXFP4_BLOCK = 32  # values per E8M0 scale; two E2M1 values a byte, so 16 bytes a block
PER_LAYER_KEYS = ("layer_types",)  # lists with one entry per layer (gpt-oss; none of the others has one)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "chat_template.jinja", "generation_config.json")
# A tensor: (name, safetensors dtype, shape, fill kind)
Tensor = tuple[str, str, tuple[int, ...], str]


def real_config(preset: str) -> dict:
    return json.loads(CONFIGS[preset].read_text())


def cut_config(config: dict, layers: int) -> dict:
    """The config with `layers` layers: num_hidden_layers and any per-layer list (layer_types) cut."""
    full = config["num_hidden_layers"]
    if not 1 <= layers <= full:
        raise SystemExit(f"--layers must be 1..{full} for this model, not {layers}")
    out = dict(config, num_hidden_layers=layers)
    for key in PER_LAYER_KEYS:
        if isinstance(config.get(key), list):
            out[key] = config[key][:layers]
    return out


def _attention(p: str, c: dict, bias: bool = False) -> list[Tensor]:
    h, heads, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or h // heads
    out = []
    for proj, rows, cols in (("q_proj", heads * hd, h), ("k_proj", kv * hd, h), ("v_proj", kv * hd, h),
                             ("o_proj", h, heads * hd)):
        out.append((f"{p}self_attn.{proj}.weight", "BF16", (rows, cols), "dense"))
        if bias:
            out.append((f"{p}self_attn.{proj}.bias", "BF16", (rows,), "bias"))
    return out


def _mlp(p: str, h: int, inter: int) -> list[Tensor]:
    return [(f"{p}gate_proj.weight", "BF16", (inter, h), "dense"), (f"{p}up_proj.weight", "BF16", (inter, h), "dense"),
            (f"{p}down_proj.weight", "BF16", (h, inter), "dense")]


def _norm(name: str, size: int) -> Tensor:
    return (name, "BF16", (size,), "norm")


def gemma3_layer(p: str, c: dict, i: int) -> list[Tensor]:
    h, hd = c["hidden_size"], c["head_dim"]
    return ([_norm(p + "input_layernorm.weight", h)] + _attention(p, c)
            + [_norm(p + "self_attn.q_norm.weight", hd), _norm(p + "self_attn.k_norm.weight", hd),
               _norm(p + "post_attention_layernorm.weight", h), _norm(p + "pre_feedforward_layernorm.weight", h),
               _norm(p + "post_feedforward_layernorm.weight", h)]
            + _mlp(p + "mlp.", h, c["intermediate_size"]))


def mistral_layer(p: str, c: dict, i: int) -> list[Tensor]:
    h = c["hidden_size"]
    return ([_norm(p + "input_layernorm.weight", h)] + _attention(p, c)
            + [_norm(p + "post_attention_layernorm.weight", h)] + _mlp(p + "mlp.", h, c["intermediate_size"]))


def mixtral_layer(p: str, c: dict, i: int) -> list[Tensor]:
    h, inter, experts = c["hidden_size"], c["intermediate_size"], c["num_local_experts"]
    out = ([_norm(p + "input_layernorm.weight", h)] + _attention(p, c)
           + [_norm(p + "post_attention_layernorm.weight", h),
              (p + "block_sparse_moe.gate.weight", "BF16", (experts, h), "dense")])
    for e in range(experts):
        q = f"{p}block_sparse_moe.experts.{e}."
        out += [(q + "w1.weight", "BF16", (inter, h), "dense"), (q + "w2.weight", "BF16", (h, inter), "dense"),
                (q + "w3.weight", "BF16", (inter, h), "dense")]
    return out


def deepseek_v2_layer(p: str, c: dict, i: int) -> list[Tensor]:
    """MLA as DeepSeek-V2-Lite has it (q_lora_rank null: q straight from the hidden state), then a dense MLP
    for the first first_k_dense_replace layers and a routed + shared-expert MoE after."""
    h, heads = c["hidden_size"], c["num_attention_heads"]
    rank, rope, nope, v = c["kv_lora_rank"], c["qk_rope_head_dim"], c["qk_nope_head_dim"], c["v_head_dim"]
    out = [_norm(p + "input_layernorm.weight", h)]
    if c.get("q_lora_rank"):
        q_rank = c["q_lora_rank"]
        out += [(p + "self_attn.q_a_proj.weight", "BF16", (q_rank, h), "dense"),
                _norm(p + "self_attn.q_a_layernorm.weight", q_rank),
                (p + "self_attn.q_b_proj.weight", "BF16", (heads * (nope + rope), q_rank), "dense")]
    else:
        out.append((p + "self_attn.q_proj.weight", "BF16", (heads * (nope + rope), h), "dense"))
    out += [(p + "self_attn.kv_a_proj_with_mqa.weight", "BF16", (rank + rope, h), "dense"),
            _norm(p + "self_attn.kv_a_layernorm.weight", rank),
            (p + "self_attn.kv_b_proj.weight", "BF16", (heads * (nope + v), rank), "dense"),
            (p + "self_attn.o_proj.weight", "BF16", (h, heads * v), "dense"),
            _norm(p + "post_attention_layernorm.weight", h)]
    moe = c.get("n_routed_experts") and i >= c["first_k_dense_replace"] and i % c.get("moe_layer_freq", 1) == 0
    if not moe:
        return out + _mlp(p + "mlp.", h, c["intermediate_size"])
    mi, experts = c["moe_intermediate_size"], c["n_routed_experts"]
    out.append((p + "mlp.gate.weight", "BF16", (experts, h), "dense"))
    for e in range(experts):
        out += _mlp(f"{p}mlp.experts.{e}.", h, mi)
    if c.get("n_shared_experts"):
        out += _mlp(p + "mlp.shared_experts.", h, mi * c["n_shared_experts"])
    return out


def gpt_oss_layer(p: str, c: dict, i: int) -> list[Tensor]:
    """In the published index's order. Experts are stacked over E; gate and up are fused (2I rows); the
    MXFP4 weights are [E, rows, in/32, 16] bytes with one E8M0 scale byte per 32 inputs."""
    h, inter, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    experts = c["num_local_experts"]
    attn = {t[0]: t for t in _attention(p, c, bias=True)}
    x = p + "mlp.experts."
    order = ["o_proj.bias", "o_proj.weight", "q_proj.bias", "k_proj.bias", "v_proj.bias", "q_proj.weight",
             "k_proj.weight", "v_proj.weight"]
    return ([_norm(p + "input_layernorm.weight", h)] + [attn[f"{p}self_attn.{k}"] for k in order]
            + [(p + "self_attn.sinks", "BF16", (heads,), "bias"),
               (p + "mlp.router.bias", "BF16", (experts,), "bias"),
               (p + "mlp.router.weight", "BF16", (experts, h), "dense"),
               (x + "gate_up_proj_bias", "BF16", (experts, 2 * inter), "bias"),
               (x + "gate_up_proj_blocks", "U8", (experts, 2 * inter, h // MXFP4_BLOCK, MXFP4_BLOCK // 2), "fp4"),
               (x + "gate_up_proj_scales", "U8", (experts, 2 * inter, h // MXFP4_BLOCK), "e8m0"),
               (x + "down_proj_bias", "BF16", (experts, h), "bias"),
               (x + "down_proj_blocks", "U8", (experts, h, inter // MXFP4_BLOCK, MXFP4_BLOCK // 2), "fp4"),
               (x + "down_proj_scales", "U8", (experts, h, inter // MXFP4_BLOCK), "e8m0"),
               _norm(p + "post_attention_layernorm.weight", h)])


LAYER = {"gemma3-1b": gemma3_layer, "mistral-7b-v0.1": mistral_layer, "deepseek-v2-lite": deepseek_v2_layer,
         "mixtral-8x7b": mixtral_layer, "gpt-oss-20b": gpt_oss_layer,
         "llama-3.3-70b": mistral_layer}  # Llama's layer has Mistral's tensors


def plan(preset: str, config: dict) -> list[Tensor]:
    """Every tensor of the checkpoint that `config` describes, in the order they are written."""
    h, vocab = config["hidden_size"], config["vocab_size"]
    # Gemma3TextConfig's tie_word_embeddings defaults to true and the 1B's config.json leaves it out
    tied = config.get("tie_word_embeddings", preset == "gemma3-1b")
    out = [("model.embed_tokens.weight", "BF16", (vocab, h), "dense")]
    for i in range(config["num_hidden_layers"]):
        out += LAYER[preset](f"model.layers.{i}.", config, i)
    out.append(_norm("model.norm.weight", h))
    if not tied:
        out.append(("lm_head.weight", "BF16", (vocab, h), "dense"))
    return out


def nbytes(tensor: Tensor) -> int:
    return math.prod(tensor[2]) * DTYPE_BYTES[tensor[1]]


class Filler:
    """A tensor's bytes, cut from one random block per kind (made once, repeated)."""

    def __init__(self, seed: int = 0, size: int = 1 << 24):
        rng = np.random.default_rng(seed)
        normal = rng.normal(0, 0.02, size // 2).astype(np.float32)
        small = rng.normal(0, 0.002, 1 << 16).astype(np.float32)
        self.blocks = {
            "dense": self._bf16(normal), "norm": self._bf16(np.ones(1 << 16, np.float32)), "bias": self._bf16(small),
            "fp4": rng.integers(0, 256, size, dtype=np.uint8).tobytes(),  # every E2M1 nibble is a number
            # E8M0 exponents near 2^-7 (bias 127): with E2M1 values up to 6, weights of about 0.01-0.05
            "e8m0": rng.integers(118, 122, 1 << 16, dtype=np.uint8).tobytes(),
        }

    @staticmethod
    def _bf16(values: np.ndarray) -> bytes:
        return (values.view(np.uint32) >> 16).astype("<u2").tobytes()

    def write(self, f, kind: str, size: int) -> None:
        block = memoryview(self.blocks[kind])
        while size > 0:
            n = min(size, len(block))
            f.write(block[:n])
            size -= n


def shards(tensors: list[Tensor], limit: int) -> list[list[Tensor]]:
    out: list[list[Tensor]] = [[]]
    size = 0
    for t in tensors:
        if out[-1] and size + nbytes(t) > limit:
            out.append([])
            size = 0
        out[-1].append(t)
        size += nbytes(t)
    return out


def write_safetensors(path: Path, tensors: list[Tensor], filler: Filler | None) -> None:
    """One .safetensors file; with no filler the data is left as a hole (a sparse file of the right size, for
    tests that read only the layout)."""
    header: dict = {"__metadata__": {"format": "pt", "made_by": "llmdesk tests/gpu/make_arch_model.py"}}
    offset = 0
    for name, dtype, shape, _ in tensors:
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        if filler is None:
            f.seek(offset, 1)
            f.truncate()
            return
        for t in tensors:
            filler.write(f, t[3], nbytes(t))


def tokenizer_size(folder: Path) -> int | None:
    """Ids the tokenizer can produce (its largest id + 1), from tokenizer.json."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    tok = json.loads(path.read_text())
    ids = list((tok.get("model") or {}).get("vocab", {}).values()) + [t["id"] for t in tok.get("added_tokens", [])]
    return max(ids) + 1 if ids else None


def copy_tokenizer(src: Path, out: Path, config: dict) -> list[str]:
    size = tokenizer_size(src)
    if size and size > config["vocab_size"]:
        raise SystemExit(f"the tokenizer in {src} has {size} ids, more than the model's vocab_size "
                         f"{config['vocab_size']}")
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
            copied.append(name)
    if "generation_config.json" not in copied:  # the real eos ids are outside a small tokenizer: use its own
        def read(name: str) -> dict:
            return json.loads((src / name).read_text()) if (src / name).is_file() else {}

        tc, tok = read("tokenizer_config.json"), read("tokenizer.json")
        ids = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
        gen = {k + "_id": ids[v] for k in ("bos_token", "eos_token") if isinstance(v := tc.get(k), str) and v in ids}
        if gen:
            (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
            copied.append("generation_config.json")
    return copied


def write(preset: str, layers: int, out: Path, tokenizer_from: Path | None = None, *, seed: int = 0,
          max_shard_bytes: int = MAX_SHARD_BYTES, values: bool = True) -> dict:
    t0 = time.time()
    config = cut_config(real_config(preset), layers)
    tensors = plan(preset, config)
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        old.unlink()
    filler = Filler(seed) if values else None
    groups = shards(tensors, max_shard_bytes)
    total = sum(nbytes(t) for t in tensors)
    if len(groups) == 1:
        files = ["model.safetensors"]
    else:
        files = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
        weight_map = {t[0]: f for f, g in zip(files, groups) for t in g}
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    for name, group in zip(files, groups):
        write_safetensors(out / name, group, filler)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    copied = copy_tokenizer(tokenizer_from, out, config) if tokenizer_from else []
    info = {"preset": preset, "out": str(out), "layers": layers, "tensors": len(tensors), "bytes": total,
            "files": files, "file_bytes": sum((out / f).stat().st_size for f in files), "tokenizer_files": copied,
            "seconds": round(time.time() - t0, 1)}
    (out / "make_arch_model.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", required=True, choices=PRESETS)
    ap.add_argument("--layers", type=int, help="layers to write (default: " +
                    ", ".join(f"{k} {v}" for k, v in DEFAULT_LAYERS.items()) + ")")
    ap.add_argument("--tokenizer-from", required=True, help="a folder with tokenizer.json etc. to copy")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    info = write(a.preset, a.layers or DEFAULT_LAYERS[a.preset], Path(a.out), Path(a.tokenizer_from), seed=a.seed)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
