"""The random-weight checkpoints of tests/gpu/make_arch_model.py (#21): Gemma 3 1B, Mistral-7B-v0.1,
DeepSeek-V2-Lite, Mixtral-8x7B and gpt-oss-20b as published. Each is written with a few layers (the data
left as a hole: only the layout is read) and checked against tests/data/arch/<preset>.json, the published
names, dtypes and shapes (tests/data/arch/SOURCES.md), whose full-model sums are the published index sizes;
then read by the fit."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "gpu"))

import make_arch_model as maker  # noqa: E402

from llmdesk.core.fit.model_config import FULL, SLIDING, geometry_from_config  # noqa: E402
from llmdesk.core.fit.quant import detect_format  # noqa: E402
from llmdesk.core.hub.model_source import estimate_weights, spec_from_directory  # noqa: E402

ARCH = ROOT / "tests" / "data" / "arch"
# Few layers, but every layer kind: Gemma's sixth layer is its first global one, DeepSeek's second its first MoE
# layer, gpt-oss alternates sliding and full.
LAYERS = {"gemma3-1b": 6, "mistral-7b-v0.1": 2, "deepseek-v2-lite": 2, "mixtral-8x7b": 2, "gpt-oss-20b": 2,
          "llama-3.3-70b": 2}
DTYPE_BYTES = {"BF16": 2, "U8": 1}
FORMAT = {"gpt-oss-20b": "mxfp4"}  # the others are plain bf16
FIT_KIND = {"sliding_attention": SLIDING, "full_attention": FULL, "dense": FULL, "moe": FULL}


def record(preset: str) -> dict:
    return json.loads((ARCH / f"{preset}.json").read_text())


def size_of(entry) -> int:
    dtype, shape = entry
    return math.prod(shape) * DTYPE_BYTES[dtype]


def headers(folder: Path) -> dict[str, dict]:
    """Every tensor of the checkpoint, name -> its header entry plus the file it is in."""
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        header.pop("__metadata__", None)
        data = path.stat().st_size - 8 - size
        assert sum(e["data_offsets"][1] - e["data_offsets"][0] for e in header.values()) == data, path.name
        for name, entry in header.items():
            assert name not in out, f"{name} twice"
            out[name] = dict(entry, file=path.name)
    return out


def layout_differences(tensors: dict[str, dict], rec: dict, layers: int) -> list[str]:
    """Where the written tensors differ from the published record: every layer against the recorded layer
    of its kind, and the tensors outside the layers."""
    problems = []
    by_kind = {rec["layer_kinds"][int(i)]: layer for i, layer in rec["layers"].items()}
    want: dict[str, list] = dict(rec["non_layer"])
    for i in range(layers):
        want.update({f"model.layers.{i}.{suffix}": e for suffix, e in by_kind[rec["layer_kinds"][i]].items()})
    for name in sorted(set(want) | set(tensors)):
        if name not in tensors:
            problems.append(f"missing {name}")
        elif name not in want:
            problems.append(f"not published: {name}")
        elif [tensors[name]["dtype"], tensors[name]["shape"]] != want[name]:
            problems.append(f"{name}: {tensors[name]['dtype']} {tensors[name]['shape']}, published {want[name]}")
    return problems


@pytest.fixture
def tokenizer(tmp_path) -> Path:
    """A tokenizer folder like make_tiny_llama's, 1000 ids, no generation_config.json."""
    folder = tmp_path / "tok"
    folder.mkdir()
    vocab = {f"t{i}": i for i in range(997)}
    added = [{"id": 997 + i, "content": c, "special": True} for i, c in enumerate(["<s>", "</s>", "<eot>"])]
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "added_tokens": added,
                                                       "model": {"type": "BPE", "vocab": vocab, "merges": []}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "<eot>",
                                                              "tokenizer_class": "PreTrainedTokenizerFast"}))
    return folder


@pytest.mark.parametrize("preset", maker.PRESETS)
def test_the_records_add_up_to_the_published_checkpoints(preset):
    """The record alone (no maker code): non-layer tensors plus each layer's kind, over the real layer count,
    is the published index's total_size; and the maker's plan for the full model is the same."""
    rec = record(preset)
    config = json.loads((ROOT / rec["config"]).read_text())
    assert rec["layers_in_model"] == config["num_hidden_layers"] == len(rec["layer_kinds"])
    by_kind = {rec["layer_kinds"][int(i)]: layer for i, layer in rec["layers"].items()}
    total = sum(map(size_of, rec["non_layer"].values()))
    total += sum(size_of(e) for kind in rec["layer_kinds"] for e in by_kind[kind].values())
    assert total == rec["published"]["total_size"]
    plan = maker.plan(preset, config)
    assert sum(map(maker.nbytes, plan)) == rec["published"]["total_size"]
    if "tensors" in rec["published"]:
        assert len(plan) == rec["published"]["tensors"]


@pytest.mark.parametrize("preset", maker.PRESETS)
def test_a_written_checkpoint_has_the_published_layout_and_config(preset, tmp_path, tokenizer):
    rec, layers = record(preset), LAYERS[preset]
    out = tmp_path / preset
    info = maker.write(preset, layers, out, tokenizer, values=False)
    tensors = headers(out)
    assert layout_differences(tensors, rec, layers) == []
    assert info["tensors"] == len(tensors) and info["layers"] == layers
    assert info["bytes"] == sum(size_of([e["dtype"], e["shape"]]) for e in tensors.values())
    files = sorted(out.glob("*.safetensors"))
    header_bytes = sum(8 + struct.unpack("<Q", p.open("rb").read(8))[0] for p in files)
    assert sum(p.stat().st_size for p in files) == header_bytes + info["bytes"] == info["file_bytes"]
    # config.json: the published one, layers cut (and layer_types with them)
    real = json.loads((ROOT / rec["config"]).read_text())
    written = json.loads((out / "config.json").read_text())
    assert written["num_hidden_layers"] == layers
    if "layer_types" in real:
        assert written["layer_types"] == real["layer_types"][:layers] == rec["layer_kinds"][:layers]
    strip = ("num_hidden_layers", "layer_types")
    assert {k: v for k, v in written.items() if k not in strip} == {k: v for k, v in real.items() if k not in strip}
    # the tokenizer is copied, and its own eos goes into generation_config.json (the real ids are beyond it)
    assert (out / "tokenizer.json").read_bytes() == (tokenizer / "tokenizer.json").read_bytes()
    assert json.loads((out / "generation_config.json").read_text()) == {"bos_token_id": 997, "eos_token_id": 999}


def test_over_5_gb_the_checkpoint_is_sharded_with_an_index(tmp_path):
    info = maker.write("mixtral-8x7b", 2, tmp_path / "m", values=False)  # 6.3 GB
    index = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())
    tensors = headers(tmp_path / "m")
    assert info["files"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert index["metadata"]["total_size"] == info["bytes"] == 6_329_376_768
    assert index["weight_map"] == {name: e["file"] for name, e in tensors.items()}
    assert all(p.stat().st_size <= maker.MAX_SHARD_BYTES for p in (tmp_path / "m").glob("*.safetensors"))
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_a_wrong_shape_or_name_is_caught(tmp_path, monkeypatch):
    layer = maker.gpt_oss_layer

    def wrong(p, c, i):
        out = []
        for name, dtype, shape, kind in layer(p, c, i):
            if name.endswith("gate_up_proj_scales"):
                shape = (shape[0], shape[1], shape[2] * 2)  # a scale per 16 values instead of 32
            if name.endswith("self_attn.sinks"):
                name = name.replace("sinks", "sink")
            out.append((name, dtype, shape, kind))
        return out

    monkeypatch.setitem(maker.LAYER, "gpt-oss-20b", wrong)
    maker.write("gpt-oss-20b", 1, tmp_path / "bad", values=False)
    problems = layout_differences(headers(tmp_path / "bad"), record("gpt-oss-20b"), 1)
    assert any("gate_up_proj_scales: U8 [32, 5760, 180]" in p for p in problems)
    assert "missing model.layers.0.self_attn.sinks" in problems
    assert "not published: model.layers.0.self_attn.sink" in problems


@pytest.mark.parametrize("preset", maker.PRESETS)
def test_the_fit_reads_the_written_checkpoint(preset, tmp_path):
    rec, layers = record(preset), LAYERS[preset]
    out = tmp_path / preset
    info = maker.write(preset, layers, out, values=False)
    spec = spec_from_directory(out)
    assert spec.weights_bytes == info["bytes"]  # from the headers (or the index), exact
    assert spec.checkpoint_format.key == FORMAT.get(preset, "bf16")
    geometry = spec.geometry
    assert geometry.num_layers == layers
    assert geometry.layer_kinds == tuple(FIT_KIND[k] for k in rec["layer_kinds"][:layers])
    config = json.loads((out / "config.json").read_text())
    if preset in ("gemma3-1b", "mistral-7b-v0.1", "gpt-oss-20b"):
        assert geometry.sliding_window == config["sliding_window"]
    if preset == "deepseek-v2-lite":
        assert geometry.mla is not None and geometry.mla.q_lora_rank is None and geometry.mla.latent_size == 576
        moe = geometry.moe
        assert (moe.num_experts, moe.num_shared_experts, moe.first_dense_layers) == (64, 2, 1)


@pytest.mark.parametrize("preset", maker.PRESETS)
def test_the_fits_weight_estimate_before_download_matches_the_written_bytes(preset):
    """What the fit says from config.json alone, against the bytes of the published layout: the full model and
    the layer count the GPU runs use."""
    config = maker.real_config(preset)
    for layers in (config["num_hidden_layers"], maker.DEFAULT_LAYERS[preset]):
        cut = maker.cut_config(config, layers)
        exact = sum(map(maker.nbytes, maker.plan(preset, cut)))
        estimate = estimate_weights(cut, detect_format(cut))
        assert estimate / exact - 1 == pytest.approx(0, abs=0.002), (layers, estimate, exact)


def test_values_are_tame(tmp_path):
    """bf16 weights small and finite, norms 1, E8M0 scales near 2^-7, FP4 blocks anything."""
    tensors = [t for t in maker.gpt_oss_layer("model.layers.0.", maker.real_config("gpt-oss-20b"), 0)
               if not t[0].endswith(("_blocks", "proj.weight"))]
    tensors.append(("blocks", "U8", (4096,), "fp4"))
    path = tmp_path / "t.safetensors"
    maker.write_safetensors(path, tensors, maker.Filler(3))
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    for name, dtype, _, kind in tensors:
        a, b = header[name]["data_offsets"]
        raw = data[8 + size + a:8 + size + b]
        if dtype == "BF16":
            values = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            assert np.isfinite(values).all(), name
            if kind == "norm":
                assert (values == 1).all(), name
            else:
                assert 0 < np.abs(values).max() < 0.2, name
        elif kind == "e8m0":
            assert set(raw) <= set(range(118, 122)), name
        else:
            assert len(set(raw)) > 200, name


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path, tokenizer):
    tok = json.loads((tokenizer / "tokenizer.json").read_text())
    tok["added_tokens"].append({"id": 262144, "content": "<big>", "special": True})  # gemma3-1b has 262144 ids
    (tokenizer / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(SystemExit, match="more than the model's vocab_size 262144"):
        maker.write("gemma3-1b", 1, tmp_path / "g", tokenizer, values=False)


def test_the_geometry_of_the_full_models():
    """The fit's geometry of the five published configs, as the GPU runs' full-size figures will be scaled."""
    g = {p: geometry_from_config(maker.real_config(p)) for p in maker.PRESETS}
    assert (g["gemma3-1b"].sliding_layers, g["gemma3-1b"].full_layers, g["gemma3-1b"].sliding_window) == (22, 4, 512)
    assert (g["mistral-7b-v0.1"].sliding_layers, g["mistral-7b-v0.1"].sliding_window) == (32, 4096)
    oss = g["gpt-oss-20b"]
    assert (oss.sliding_layers, oss.full_layers, oss.sliding_window) == (12, 12, 128)
    assert g["mixtral-8x7b"].moe.num_experts == 8 and g["mixtral-8x7b"].sliding_window is None
    assert g["deepseek-v2-lite"].moe.first_dense_layers == 1


def test_the_70b_shape_for_tensor_parallelism_is_the_published_size():
    """#24: Llama-3.3-70B as make_arch_model.py writes it: the full plan sums to the published index's
    total_size (141,107,412,992 bytes), and a cut of it keeps the per-layer bytes."""
    config = maker.real_config("llama-3.3-70b")
    full = sum(maker.nbytes(t) for t in maker.plan("llama-3.3-70b", config))
    assert full == 141_107_412_992
    cut = sum(maker.nbytes(t) for t in maker.plan("llama-3.3-70b", maker.cut_config(config, 16)))
    per_layer = (full - cut) / 64
    assert per_layer == 2 * (3 * 8192 * 28672 + 2 * 8192 * 8192 + 2 * 1024 * 8192 + 2 * 8192)
    geometry = geometry_from_config(maker.cut_config(config, 16))
    assert geometry.num_layers == 16 and geometry.num_kv_heads == 8 and geometry.num_attention_heads == 64


def test_a_special_token_added_to_a_random_weight_llama(tmp_path):
    """tests/gpu/test_tools_structured.py gives the tiny model <|python_tag|> (vLLM's llama3_json parser
    needs it for every chat request): the next id, one more embedding row, the other tensors untouched."""
    import struct

    from llmdesk.core.hub.chat_template import chat_facts
    from tests.gpu.add_special_token import add_special_token

    src = tmp_path / "tiny"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"vocab_size": 3, "architectures": ["LlamaForCausalLM"]}))
    (src / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 2, "content": "<|eot_id|>"}]}))
    (src / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|eot_id|>"}))
    header = {"model.norm.weight": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]},
              "model.embed_tokens.weight": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [2, 14]}}
    text = json.dumps(header).encode()
    (src / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"\xaa\xbb" + bytes(range(1, 13)))
    out = add_special_token(src, tmp_path / "tagged", "<|python_tag|>")
    raw = (out / "model.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    assert size % 8 == 0
    grown = json.loads(raw[8:8 + size])
    body = raw[8 + size:]
    start, end = grown["model.embed_tokens.weight"]["data_offsets"]
    assert grown["model.embed_tokens.weight"]["shape"] == [4, 2] and body[start:end] == bytes(range(1, 13)) + bytes(4)
    norm = grown["model.norm.weight"]["data_offsets"]
    assert body[norm[0]:norm[1]] == b"\xaa\xbb"
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 4
    assert chat_facts(str(out), look_for=["<|python_tag|>"]).tokens_present == {"<|python_tag|>"}
    assert chat_facts(str(src), look_for=["<|python_tag|>"]).tokens_present == frozenset()
