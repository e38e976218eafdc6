"""LoRA adapters (#22): adapter_config.json as peft writes it (real files in tests/data/lora), what vLLM 0.26
refuses, the slots and rank a launch needs, names, the base model, and the tensors against the model's layers."""

from __future__ import annotations

import json

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.fit.model_config import geometry_from_config
from llmdesk.core.server import lora
from llmdesk.core.server.launch import LaunchConfig, LoraAdapter, build_vllm_command, child_environment
from tests.fakes.lora_adapters import DEMO_BASE, DEMO_CONFIG, LORA_DATA, make_adapter, make_model, real_config

LLAMA_8B = geometry_from_config(json.loads(DEMO_CONFIG.read_text()))
TINYLLAMA = {"hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 4, "intermediate_size": 5632,
             "num_hidden_layers": 22}  # TinyLlama-1.1B's config.json, the fields that shape its layers
LLAMA2_7B = {"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 11008,
             "num_hidden_layers": 32}


# --- adapter_config.json ----------------------------------------------------------------------

def test_real_configs_parse_with_their_ranks_and_bases():
    tiny = lora.parse_adapter_config(real_config("tinyllama-structured-output"))
    assert (tiny.rank, tiny.alpha, tiny.base_model) == (16, 32.0, "TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    assert set(tiny.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert tiny.modules_to_save == () and not tiny.use_dora and lora.unsupported(tiny) == []
    r64 = lora.parse_adapter_config(real_config("llama2-7b-domain-r64"))
    assert (r64.rank, r64.alpha, r64.target_modules) == (64, 16.0, ("q_proj", "v_proj"))
    r2 = lora.parse_adapter_config(real_config("llama2-7b-chat-last-layer-r2"))
    assert r2.rank == 2 and r2.target_modules[0] == "model.layers.31.self_attn.q_proj"
    assert r2.base_model == "NousResearch/Llama-2-7b-chat-hf"


def test_every_real_config_is_in_sources():
    sources = (LORA_DATA / "SOURCES.md").read_text()
    for folder in LORA_DATA.iterdir():
        if folder.is_dir():
            assert f"`{folder.name}/`" in sources


@pytest.mark.parametrize("change, title", [
    ({"r": 0}, "Invalid LoRA rank"),
    ({"r": "16"}, "Invalid LoRA rank"),
    ({"r": True}, "Invalid LoRA rank"),
    ({"lora_alpha": None}, "Invalid lora_alpha"),
    ({"target_modules": 3}, "Invalid target_modules"),
    ({"peft_type": "IA3"}, "A IA3 adapter, not LoRA"),
    ({"rank_pattern": {"q_proj": -1}}, "Invalid rank_pattern"),
])
def test_configs_vllm_would_not_read(change, title):
    with pytest.raises(BadInput) as err:
        lora.parse_adapter_config({**real_config("tinyllama-structured-output"), **change})
    assert err.value.problem.title == title


def test_required_fields_are_vllms():
    data = real_config("llama2-7b-domain-r64")
    del data["lora_alpha"], data["target_modules"]
    with pytest.raises(BadInput) as err:
        lora.parse_adapter_config(data)
    assert "lora_alpha, target_modules" in err.value.problem.explanation


def test_what_vllm_refuses_in_an_adapter():
    data = {**real_config("tinyllama-structured-output"), "modules_to_save": ["embed_tokens", "lm_head"],
            "use_dora": True, "bias": "lora_only"}
    problems = lora.unsupported(lora.parse_adapter_config(data))
    assert [p.title for p in problems] == ["vLLM cannot serve an adapter with modules_to_save",
                                           "vLLM cannot serve a DoRA adapter", "vLLM cannot serve an adapter with biases"]
    assert "modules_to_save being None" in problems[0].explanation and "embed_tokens, lm_head" in problems[0].explanation


def test_rank_pattern_and_regex_targets():
    data = {**real_config("tinyllama-structured-output"), "rank_pattern": {"q_proj": 64},
            "target_modules": r".*\.(q_proj|v_proj)"}
    config = lora.parse_adapter_config(data)
    assert config.largest_rank == 64 and config.target_regex and config.target_modules == (r".*\.(q_proj|v_proj)",)


# --- the folder -------------------------------------------------------------------------------

def test_read_adapter_reads_the_config_and_the_tensor_shapes(tmp_path):
    folder = make_adapter(tmp_path / "sql", config=real_config("llama2-7b-domain-r64"), modules=("q_proj", "v_proj"),
                          model_config=LLAMA2_7B, layers=(0, 31))
    info = lora.read_adapter(folder)
    assert info.config.rank == 64 and info.weights_file == "adapter_model.safetensors"
    assert info.tensors["base_model.model.model.layers.31.self_attn.v_proj.lora_B.weight"] == (4096, 64)
    assert len(info.tensors) == 8
    assert info.summary().startswith("rank 64, alpha 16, q_proj, v_proj, ")


def test_folders_that_are_not_adapters(tmp_path):
    with pytest.raises(BadInput, match="No adapter folder"):
        lora.read_adapter(tmp_path / "nothing")
    model = make_model(tmp_path / "model")
    with pytest.raises(BadInput) as err:
        lora.read_adapter(model)
    assert err.value.problem.title.startswith("No adapter_config.json") and "whole model" in err.value.problem.explanation
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"r": 8,')
    with pytest.raises(BadInput, match="cannot be read"):
        lora.read_adapter(broken)
    (broken / "adapter_config.json").write_text(json.dumps(real_config("llama2-7b-domain-r64")))
    with pytest.raises(BadInput, match="No adapter weights"):
        lora.read_adapter(broken)
    (broken / "adapter_model.safetensors").write_bytes(b"\xff" * 12)
    with pytest.raises(BadInput, match="not a readable safetensors file"):
        lora.read_adapter(broken)
    (broken / "adapter_model.safetensors").unlink()
    (broken / "adapter_model.bin").write_bytes(b"torch pickle")
    assert lora.read_adapter(broken).tensors == {}  # .bin: vLLM reads it with torch; no shapes here


# --- slots and rank ---------------------------------------------------------------------------

@pytest.mark.parametrize("rank, allowed", [(1, 1), (2, 8), (8, 8), (9, 16), (16, 16), (17, 32), (64, 64), (100, 128),
                                           (300, 320), (321, 512), (512, 512)])
def test_rank_for_is_the_next_value_vllm_accepts(rank, allowed):
    assert lora.rank_for(rank) == allowed


def test_rank_above_512_is_refused():
    with pytest.raises(BadInput, match="above what vLLM serves"):
        lora.rank_for(513)


def test_slots_follow_the_adapters():
    assert lora.lora_slots([2]) == lora.LoraSlots(1, 8)
    assert lora.lora_slots([16, 64, 2]) == lora.LoraSlots(3, 64)
    assert lora.lora_slots([]) == lora.LoraSlots(1, 16)
    assert lora.lora_slots([16], max_lora_rank=64) == lora.LoraSlots(1, 64)  # given and large enough: kept
    slots = lora.lora_slots([16, 16, 16], max_loras=2)
    assert slots.max_loras == 2 and "3 adapters share 2 LoRA slots" in slots.notes[0]
    with pytest.raises(BadInput) as err:
        lora.lora_slots([64], max_lora_rank=16)
    assert err.value.problem.title == "LoRA rank 64 is greater than --max-lora-rank 16"
    assert "--max-lora-rank 64" in err.value.problem.fix


def test_rank_against_a_running_server():
    r64 = lora.parse_adapter_config(real_config("llama2-7b-domain-r64"))
    assert lora.rank_problem(r64, 64) is None
    problem = lora.rank_problem(r64, 16, "sql")
    assert problem.title == "LoRA rank 64 is greater than the server's max_lora_rank 16"
    assert "'sql'" in problem.explanation and "--max-lora-rank 64" in problem.fix


# --- names and sources ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sql", "sql-lora", "Qwen2.5_chat.v2", "a" * 64, "x"])
def test_names_allowed(name):
    assert lora.name_problem(name) is None


@pytest.mark.parametrize("name", ["", "-rm", "a b", "k=v", "a,b", "a/b", "a" * 65, "..", "naïve", "x\n", "$(id)"])
def test_names_refused(name):
    assert lora.name_problem(name).title == "Invalid LoRA adapter name"


def test_names_unique_and_not_the_base():
    assert lora.name_problem("demo", base_names=["demo"]).title == "The adapter has the base model's name"
    assert lora.name_problem("sql", taken={"sql"}).title == "Duplicate LoRA adapter name"


def test_lora_option(tmp_path):
    assert lora.parse_lora_option("sql=/models/sql") == ("sql", "/models/sql")
    assert lora.parse_lora_option(" sql = org/sql-lora ") == ("sql", "org/sql-lora")
    assert lora.parse_lora_option("odd=/a=b") == ("odd", "/a=b")
    for bad in ("sql", "=x", "sql=", "-x=/a"):
        with pytest.raises(BadInput):
            lora.parse_lora_option(bad)
    assert lora.check_source(str(tmp_path)) == tmp_path.absolute()
    assert lora.check_source("org/sql-lora") == "org/sql-lora"
    with pytest.raises(BadInput, match="No adapter at"):
        lora.check_source("./not/here")


# --- the base model ---------------------------------------------------------------------------

def test_cache_snapshot_path_is_its_repo():
    path = "/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.2-1B/snapshots/4e20de362430cd3b72f300e6b0f18e50e7166e08"
    assert lora.repo_of_cache_path(path) == "meta-llama/Llama-3.2-1B"
    assert lora.repo_of_cache_path("/srv/models/llama") is None
    assert lora.model_identities(path, served_name="l1b") == (path, "meta-llama/Llama-3.2-1B", "l1b")


def test_base_checks():
    ids = lora.model_identities("meta-llama/Llama-3.1-8B-Instruct")
    assert lora.check_base("meta-llama/Llama-3.1-8B-Instruct", ids).verdict == lora.SAME
    assert lora.check_base("META-LLAMA/llama-3.1-8b-instruct", ids).verdict == lora.SAME  # the Hub ignores case
    assert lora.check_base("unsloth/Llama-3.1-8B-Instruct-bnb-4bit", ids).verdict == lora.LIKELY
    assert lora.check_base(None, ids).verdict == lora.UNKNOWN
    different = lora.check_base("TinyLlama/TinyLlama-1.1B-Chat-v1.0", ids)
    assert different.verdict == lora.DIFFERENT and not different.ok
    problem = different.problem("sql")
    assert problem.title == "The adapter 'sql' was trained on another model"
    assert "TinyLlama/TinyLlama-1.1B-Chat-v1.0" in problem.explanation and "meta-llama/Llama-3.1-8B-Instruct" in \
        problem.explanation and "--lora-any-base" in problem.fix


def test_base_checks_of_folders(tmp_path):
    named = make_model(tmp_path / "m", DEMO_BASE)
    ids = lora.model_identities(str(named), config=json.loads((named / "config.json").read_text()))
    assert lora.check_base(DEMO_BASE, ids).verdict == lora.SAME  # config.json's _name_or_path
    assert lora.check_base(str(named) + "/", ids).verdict == lora.SAME  # trained on this very folder
    assert lora.check_base("TinyLlama/TinyLlama-1.1B-Chat-v1.0", ids).verdict == lora.DIFFERENT
    anonymous = make_model(tmp_path / "Llama-3.1-8B-Instruct", None)
    ids = lora.model_identities(str(anonymous), config={})
    assert lora.check_base(DEMO_BASE, ids).verdict == lora.LIKELY  # the folder's name
    assert lora.check_base("TinyLlama/TinyLlama-1.1B-Chat-v1.0", ids).verdict == lora.UNKNOWN  # nothing to go by
    # a served name is an alias, no proof: vLLM's /v1/models of a folder it serves as "demo"
    assert lora.check_base(DEMO_BASE, ("/models/demo", "demo")).verdict == lora.UNKNOWN
    cached = "/c/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/0e9e39f249a16976918f6564b8830bc894c89659"
    assert lora.check_base(DEMO_BASE, lora.model_identities(cached)).verdict == lora.SAME


# --- the tensors against the model's layers -----------------------------------------------------

def test_an_adapter_of_this_model_fits(tmp_path):
    info = lora.read_adapter(make_adapter(tmp_path / "a", modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                   "up_proj", "down_proj"), layers=(0, 31)))
    assert lora.layer_problem(info, LLAMA_8B) is None


def test_an_adapter_of_another_size_is_found_out(tmp_path):
    tiny = lora.read_adapter(make_adapter(tmp_path / "tiny", config=real_config("tinyllama-structured-output"),
                                          modules=("q_proj", "v_proj"), model_config=TINYLLAMA))
    problem = lora.layer_problem(tiny, LLAMA_8B, "demo")
    assert problem.title == "The adapter was trained for a model of another size"
    assert "[16, 2048]: 2,048 inputs, but q_proj of demo has 4,096" in problem.explanation
    assert "TinyLlama/TinyLlama-1.1B-Chat-v1.0" in problem.explanation
    # Llama-2-7B: q_proj has Llama-3.1-8B's shape, v_proj (no grouped-query attention) does not
    llama2 = lora.read_adapter(make_adapter(tmp_path / "l2", config=real_config("llama2-7b-domain-r64"),
                                            modules=("q_proj", "v_proj"), model_config=LLAMA2_7B))
    assert "v_proj" in lora.layer_problem(llama2, LLAMA_8B).explanation
    assert "4,096 outputs" in lora.layer_problem(llama2, LLAMA_8B).explanation


def test_layers_the_model_lacks_and_modules_vllm_does_not_adapt(tmp_path):
    deep = lora.read_adapter(make_adapter(tmp_path / "deep", layers=(40,)))
    assert lora.layer_problem(deep, LLAMA_8B).title == "The adapter has layers the model does not have"
    folder = make_adapter(tmp_path / "head")
    from tests.fakes.lora_adapters import write_safetensors
    write_safetensors(folder / "adapter_model.safetensors", {
        "base_model.model.model.layers.0.self_attn.rotary_emb.lora_A.weight": (16, 128)})
    problem = lora.layer_problem(lora.read_adapter(folder), LLAMA_8B)
    assert problem.title == "The adapter changes layers vLLM does not adapt in this model"
    # Llama takes LoRA on embed_tokens and lm_head; Mistral (empty embedding_modules in vLLM) does not
    write_safetensors(folder / "adapter_model.safetensors", {"base_model.model.lm_head.lora_A.weight": (16, 4096),
                                                             "base_model.model.lm_head.lora_B.weight": (128256, 16)})
    info = lora.read_adapter(folder)
    assert lora.layer_problem(info, LLAMA_8B) is None
    import dataclasses
    mistral = dataclasses.replace(LLAMA_8B, model_type="mistral")
    assert lora.layer_problem(info, mistral).title == "The adapter changes layers vLLM does not adapt in this model"


# --- the launch ---------------------------------------------------------------------------------

PY = "/venv/bin/python"


def test_lora_modules_take_the_json_form_where_name_equals_path_would_break():
    config = LaunchConfig("m", lora_adapters=(LoraAdapter("a", "/x/a"), LoraAdapter("b", "/x/b=c,d")))
    argv = build_vllm_command(config, PY)
    i = argv.index("--lora-modules")
    assert argv[i + 1] == "a=/x/a"
    assert json.loads(argv[i + 2]) == {"name": "b", "path": "/x/b=c,d"}


def test_adapter_names_in_the_launch():
    config = LaunchConfig("m", served_model_name="demo", lora_adapters=(LoraAdapter("demo", "/a"),
                                                                        LoraAdapter("-x", "/b")))
    assert [p.title for p in config.validate()] == ["The adapter has the base model's name",
                                                    "Invalid LoRA adapter name"]


@pytest.mark.parametrize("host, key, lora_on, allowed", [
    ("127.0.0.1", None, True, True), ("localhost", None, True, True), ("::1", None, True, True),
    ("0.0.0.0", "sk-1", True, True), ("192.168.1.5", "sk-1", True, True),
    ("0.0.0.0", None, True, False),  # refused by validate() anyway: never opened, even so
    ("127.0.0.1", None, False, False),  # LoRA off: no routes to open
])
def test_runtime_updating_only_on_loopback_or_with_a_key(host, key, lora_on, allowed):
    config = LaunchConfig("m", host=host, api_key=key, enable_lora=lora_on)
    assert config.runtime_lora_updating is allowed
    env = child_environment(config, {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "PATH": "/bin"})
    assert env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING") == ("1" if allowed else None)  # never inherited
    assert env["PATH"] == "/bin"


# --- the GPU host's adapter maker (tests/gpu/make_lora_adapter.py, numpy only) ----------------------

def test_the_gpu_adapter_maker_writes_what_peft_writes(tmp_path):
    import numpy as np

    from tests.gpu import make_lora_adapter as maker

    assert maker.to_bf16(np.array([1.0, -2.0, 0.0], dtype=np.float32)) == b"\x80\x3f\x00\xc0\x00\x00"
    config = maker.PRESETS["llama-3.2-1b"]
    size = maker.make_adapter(tmp_path / "a", config, base_name="meta-llama/Llama-3.2-1B", rank=1, seed=3)
    info = lora.read_adapter(tmp_path / "a")
    assert info.weights_bytes == size and info.config.rank == 1 and info.config.alpha == 2.0
    assert info.config.base_model == "meta-llama/Llama-3.2-1B" and lora.unsupported(info.config) == []
    assert len(info.tensors) == 16 * 7 * 2
    assert info.tensors["base_model.model.model.layers.15.self_attn.k_proj.lora_B.weight"] == (512, 1)
    assert info.tensors["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"] == (1, 8192)
    geometry = geometry_from_config({**json.loads(DEMO_CONFIG.read_text()), **config, "tie_word_embeddings": True})
    assert lora.layer_problem(info, geometry) is None
    assert lora.layer_problem(info, LLAMA_8B).title == "The adapter was trained for a model of another size"
    # the data is all there, in the header's order
    raw = (tmp_path / "a" / "adapter_model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    ends = sorted(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    assert 8 + header_len + ends[-1] == len(raw)


def test_serves_fit_check_counts_the_adapters_slots(monkeypatch, tmp_path):
    """llmdesk serve's fit check (before vLLM's long start) prices the slots with_loras sized."""
    import llmdesk.core.fit.memory_model as memory_model
    import llmdesk.core.machine.gpus as gpus
    from llmdesk.commands import serve
    from llmdesk.core.machine.gpu_catalogue import find_gpu
    from llmdesk.core.machine.gpus import GpuScan

    seen = []
    real = memory_model.plan_fit
    monkeypatch.setattr(memory_model, "plan_fit", lambda spec, g, settings: seen.append(settings) or real(spec, g, settings))
    monkeypatch.setattr(gpus, "scan_gpus", lambda: GpuScan(gpus=(find_gpu("H100 80GB HBM3").as_gpu_info(0),),
                                                           driver_version="580", cuda_driver_version="13.0",
                                                           problem=None))
    model = str(make_model(tmp_path / "m"))
    serve.check_before_launch(LaunchConfig(model, lora_adapters=(LoraAdapter("a", "/a"),), max_loras=2,
                                           max_lora_rank=32))
    serve.check_before_launch(LaunchConfig(model))
    assert [(s.max_loras, s.max_lora_rank) for s in seen] == [(2, 32), (None, 16)]
