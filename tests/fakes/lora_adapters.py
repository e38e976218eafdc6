"""PEFT LoRA adapter folders for tests: adapter_config.json and an adapter_model.safetensors whose header
names the tensors exactly as peft saves them (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight,
…) with the shapes of a model's geometry. The data is zeros, written as a sparse file (nothing the CPU
tests read); tests/gpu/make_lora_adapter.py writes random weights for real vLLM."""

from __future__ import annotations

import json
import struct
from pathlib import Path

LORA_DATA = Path(__file__).resolve().parents[1] / "data" / "lora"
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "data" / "models" / "demo" / "config.json"

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def dims(config: dict) -> dict[str, tuple[int, int]]:
    """(inputs, outputs) of each linear layer of a Llama-style config.json."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    q, kv, inter = heads * head_dim, config.get("num_key_value_heads", heads) * head_dim, config["intermediate_size"]
    return {"q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden),
            "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}


def tensor_name(layer: int, module: str, ab: str) -> str:
    part = "self_attn" if module in ATTENTION else "mlp"
    return f"base_model.model.model.layers.{layer}.{part}.{module}.lora_{ab}.weight"


def write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], dtype: str = "BF16") -> None:
    """A valid safetensors file of zeros (the data region is a hole in the file)."""
    size = {"BF16": 2, "F16": 2, "F32": 4}[dtype]
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = size
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


DEMO_BASE = "meta-llama/Llama-3.1-8B-Instruct"
_KEEP = object()


def make_adapter(folder: Path, *, base=_KEEP, rank: int = 16,
                 model_config: dict | None = None, modules: tuple[str, ...] = ("q_proj", "v_proj"),
                 layers: tuple[int, ...] = (0,), config: dict | None = None, **fields) -> Path:
    """An adapter folder: ``config`` (a real adapter_config.json's dict) or a minimal one (trained on
    DEMO_BASE at ``rank``), with ``base`` and ``fields`` changed; tensors of ``modules`` in ``layers`` shaped for ``model_config`` (default: the demo model,
    Llama-3.1-8B's geometry)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dict(config) if config is not None else {
        "base_model_name_or_path": DEMO_BASE, "bias": "none", "lora_alpha": 2 * rank, "lora_dropout": 0.05,
        "modules_to_save": None, "peft_type": "LORA", "r": rank, "target_modules": list(modules),
        "task_type": "CAUSAL_LM"}
    if base is not _KEEP:
        cfg["base_model_name_or_path"] = base
    cfg.update(fields)
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    geometry = dims(model_config or json.loads(DEMO_CONFIG.read_text()))
    r = cfg["r"]
    shapes = {}
    for layer in layers:
        for module in modules:
            inputs, outputs = geometry[module]
            shapes[tensor_name(layer, module, "A")] = (r, inputs)
            shapes[tensor_name(layer, module, "B")] = (outputs, r)
    write_safetensors(folder / "adapter_model.safetensors", shapes)
    return folder


def real_config(name: str) -> dict:
    """One of tests/data/lora's real adapter_config.json files (see SOURCES.md there)."""
    return json.loads((LORA_DATA / name / "adapter_config.json").read_text(encoding="utf-8"))


def make_model(folder: Path, name_or_path: str | None = DEMO_BASE) -> Path:
    """A model folder `llmdesk serve` accepts: the demo model's config.json (Llama-3.1-8B's geometry), with
    ``_name_or_path`` as Transformers writes it when it saves a model, and an empty safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
    if name_or_path is not None:
        config["_name_or_path"] = name_or_path
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    write_safetensors(folder / "model.safetensors", {})
    return folder
