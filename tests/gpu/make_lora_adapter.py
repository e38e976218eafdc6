"""A random-weight PEFT LoRA adapter for a Llama-style model, for starting real vLLM 0.26 with it (#22).

    python3 tests/gpu/make_lora_adapter.py --base /srv/models/llama-3.2-1b --rank 16 --out /srv/llmdesk/lora-a

Writes what peft's save_pretrained writes: adapter_config.json (the fields peft 0.x writes, the base model
named by --base-name, default the --base folder) and adapter_model.safetensors with peft's tensor names

    base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   [r, hidden]
    base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   [heads * head_dim, r]
    … k_proj, v_proj ([kv_heads * head_dim, r]), o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj

shaped from the base model's config.json (--base, a folder or a config.json file; or --preset
llama-3.2-1b: meta-llama/Llama-3.2-1B's published geometry). lora_A is N(0, 1/in), lora_B small but not
zero (peft starts B at zero, which would make the adapter do nothing): the adapter changes the model's
answers a little, and two seeds give two adapters. BF16, as vLLM's lora_dtype "auto" takes the model's.
Needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import numpy as np

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
# meta-llama/Llama-3.2-1B's config.json: the fields that shape its layers
PRESETS = {"llama-3.2-1b": {"hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                            "intermediate_size": 8192, "num_hidden_layers": 16, "vocab_size": 128256,
                            "model_type": "llama", "_name_or_path": "meta-llama/Llama-3.2-1B"}}


def module_dims(config: dict) -> dict[str, tuple[int, int]]:
    """(inputs, outputs) of each linear layer, whole."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    q, kv = heads * head_dim, config.get("num_key_value_heads", heads) * head_dim
    inter = config["intermediate_size"]
    return {"q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden),
            "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}


def tensor_name(layer: int, module: str, ab: str) -> str:
    return f"base_model.model.model.layers.{layer}.{'self_attn' if module in ATTENTION else 'mlp'}.{module}.lora_{ab}.weight"


def to_bf16(values: np.ndarray) -> bytes:
    """float32 -> bfloat16 bytes (round to nearest even), little-endian, as safetensors stores BF16."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def adapter_tensors(config: dict, rank: int, modules: tuple[str, ...], layers: range, seed: int
                    ) -> dict[str, tuple[tuple[int, int], np.ndarray]]:
    rng = np.random.default_rng(seed)
    dims = module_dims(config)
    out = {}
    for layer in layers:
        for module in modules:
            inputs, outputs = dims[module]
            a = rng.standard_normal((rank, inputs), dtype=np.float32) / np.sqrt(inputs)
            b = rng.standard_normal((outputs, rank), dtype=np.float32) * 0.02
            out[tensor_name(layer, module, "A")] = ((rank, inputs), a)
            out[tensor_name(layer, module, "B")] = ((outputs, rank), b)
    return out


def write_safetensors(path: Path, tensors: dict[str, tuple[tuple[int, int], np.ndarray]]) -> int:
    header, blobs, offset = {}, [], 0
    for name, (shape, values) in tensors.items():
        blob = to_bf16(values)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)
    return 8 + len(raw) + offset


def adapter_config(base_name: str, rank: int, alpha: float, modules: tuple[str, ...]) -> dict:
    """What peft 0.x's LoraConfig.save_pretrained writes for these settings."""
    return {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base_name, "bias": "none",
            "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
            "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
            "lora_dropout": 0.0, "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None,
            "peft_type": "LORA", "r": rank, "rank_pattern": {}, "revision": None, "target_modules": list(modules),
            "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}


def make_adapter(out: Path, config: dict, *, base_name: str, rank: int = 16, alpha: float | None = None,
                 modules: tuple[str, ...] = ATTENTION + MLP, seed: int = 0) -> int:
    """Write the adapter into ``out``; returns the safetensors file's size."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = adapter_tensors(config, rank, modules, range(config["num_hidden_layers"]), seed)
    size = write_safetensors(out / "adapter_model.safetensors", tensors)
    cfg = adapter_config(base_name, rank, float(alpha if alpha is not None else 2 * rank), modules)
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return size


def base_config(base: str | None, preset: str | None) -> dict:
    if preset:
        return dict(PRESETS[preset])
    path = Path(base)
    return json.loads((path / "config.json" if path.is_dir() else path).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base", help="the base model's folder (or its config.json)")
    where.add_argument("--preset", choices=tuple(PRESETS))
    parser.add_argument("--base-name", help="base_model_name_or_path (default: the --base folder, or the preset's repo)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--modules", default=",".join(ATTENTION + MLP), help="comma-separated (default: all seven)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config = base_config(args.base, args.preset)
    base_name = args.base_name or (str(Path(args.base).absolute()) if args.base else config["_name_or_path"])
    modules = tuple(m.strip() for m in args.modules.split(",") if m.strip())
    size = make_adapter(Path(args.out), config, base_name=base_name, rank=args.rank, alpha=args.alpha,
                        modules=modules, seed=args.seed)
    print(f"{args.out}: rank {args.rank}, {len(modules)} modules x {config['num_hidden_layers']} layers, "
          f"{size / 2**20:.1f} MiB, base {base_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
