"""Model specs from a folder, a config.json and the Hub (a local stand-in, the real client)."""

import json
import struct
from pathlib import Path

import pytest

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.fit.model_config import BadModelConfig
from llmdesk.core.hub.model_source import (SOURCE_ESTIMATE, SOURCE_GIVEN, SOURCE_HEADERS, SOURCE_HUB_PARAMETERS,
                                           SOURCE_INDEX, load_model_spec)
from tests.fakes.hub_server import HubStandIn

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
LLAMA8B_CONFIG = (CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json").read_bytes()


def safetensors_file(path: Path, data_bytes: int) -> None:
    header = json.dumps({"w": {"dtype": "BF16", "shape": [data_bytes // 2], "data_offsets": [0, data_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * data_bytes)


def point_hub_client_at(monkeypatch, url: str) -> None:
    """What HF_ENDPOINT=url does when set before huggingface_hub is imported (its constants are read then)."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn() as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        yield stand_in


def test_folder_with_an_index_uses_its_total_size(tmp_path):
    (tmp_path / "config.json").write_bytes(LLAMA8B_CONFIG)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 16_060_522_496}}))
    spec = load_model_spec(str(tmp_path))
    assert (spec.weights_bytes, spec.weights_source) == (16_060_522_496, SOURCE_INDEX)
    assert spec.geometry.num_layers == 32 and spec.checkpoint_format.key == "bf16"


def test_folder_without_an_index_reads_the_safetensors_headers(tmp_path):
    (tmp_path / "config.json").write_bytes(LLAMA8B_CONFIG)
    safetensors_file(tmp_path / "model-00001-of-00002.safetensors", 4096)
    safetensors_file(tmp_path / "model-00002-of-00002.safetensors", 1024)
    spec = load_model_spec(str(tmp_path))
    assert (spec.weights_bytes, spec.weights_source) == (5120, SOURCE_HEADERS)


def test_config_file_with_given_or_estimated_weights(tmp_path):
    config = tmp_path / "config.json"
    config.write_bytes(LLAMA8B_CONFIG)
    assert load_model_spec(str(config), weights_bytes=123).weights_source == SOURCE_GIVEN
    assert load_model_spec(str(config), parameters=8e9).weights_bytes == 16_000_000_000
    estimated = load_model_spec(str(config))
    assert (estimated.weights_bytes, estimated.weights_source) == (16_060_522_496, SOURCE_ESTIMATE)


def test_garbled_or_missing_configs_are_bad_input(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "num_hid')
    with pytest.raises(BadModelConfig) as caught:
        load_model_spec(str(tmp_path))
    assert "complete JSON" in caught.value.problem.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadModelConfig):
        load_model_spec(str(tmp_path / "empty"))  # a folder without config.json
    with pytest.raises(BadInput) as caught:
        load_model_spec("not a model")
    assert caught.value.problem.title == "No model at 'not a model'"


def test_unknown_architecture_is_refused_with_close_names(tmp_path):
    config = json.loads(LLAMA8B_CONFIG)
    config["architectures"] = ["LlamaForCausalLMM"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadModelConfig) as caught:
        load_model_spec(str(tmp_path / "config.json"))
    assert caught.value.problem.title == "vLLM 0.26 does not serve LlamaForCausalLMM"
    assert "LlamaForCausalLM" in caught.value.problem.explanation
    assert load_model_spec(str(tmp_path / "config.json"), allow_unknown_architecture=True).geometry.num_layers == 32


def test_hub_repo_reads_config_and_exact_weight_bytes_without_downloading_weights(hub):
    hub.add_model("meta-llama/Llama-3.1-8B-Instruct", files={"config.json": LLAMA8B_CONFIG},
                  safetensors={"BF16": 8_030_261_248},
                  sizes={"model-00001-of-00004.safetensors": 4_976_698_672})
    spec = load_model_spec("meta-llama/Llama-3.1-8B-Instruct")
    assert (spec.weights_bytes, spec.weights_source) == (16_060_522_496, SOURCE_HUB_PARAMETERS)
    assert spec.geometry.max_position_embeddings == 131072
    assert not any("safetensors" in r and "resolve" in r for r in hub.requests)


def test_hub_errors_become_problems(hub):
    hub.add_model("org/gated", files={"config.json": LLAMA8B_CONFIG}, gated=True)
    with pytest.raises(ProblemError) as caught:
        load_model_spec("org/gated")
    assert caught.value.problem.title == "org/gated is gated"
    assert "https://huggingface.co/org/gated" in caught.value.problem.fix
    with pytest.raises(BadInput) as caught:
        load_model_spec("org/missing")
    assert caught.value.problem.title == "No model called org/missing"
    hub.add_model("org/no-config", files={"README.md": b"hi"})
    with pytest.raises(BadModelConfig) as caught:
        load_model_spec("org/no-config")
    assert caught.value.problem.title == "org/no-config has no config.json"


def test_unreachable_hub_is_a_network_problem(monkeypatch):
    point_hub_client_at(monkeypatch, "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    with pytest.raises(ProblemError) as caught:
        load_model_spec("org/any")
    assert caught.value.problem.title == "Could not reach the Hugging Face Hub"
