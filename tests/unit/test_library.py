"""The local library: a cache filled by a real download (stand-in Hub), user folders, delete."""

import json
from pathlib import Path

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.hub.downloads import DONE, FAILED, Download
from llmdesk.core.hub.library import SOURCE_FOLDER, SOURCE_HF_CACHE, delete_model, find_models, scan_library
from tests.fakes.hub_server import SHA, HubStandIn
from tests.unit.test_downloads import CONFIG, DENSE_FILES, LFS, SHARD1, SHARD2
from tests.unit.test_model_source import point_hub_client_at, safetensors_file


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn() as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        stand_in.add_model("org/dense", files=dict(DENSE_FILES), lfs=LFS)
        yield stand_in


def awq_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    config = json.loads(CONFIG)
    config["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                     "version": "gemm"}
    (path / "config.json").write_text(json.dumps(config))
    safetensors_file(path / "model.safetensors", 4096)
    return path


def test_library_lists_a_downloaded_model_and_a_user_folder(hub, tmp_path):
    assert scan_library() == []  # no cache yet: an empty library, not an error
    assert Download("org/dense").run_blocking() == DONE
    folder = awq_folder(tmp_path / "my-models" / "llama-awq")
    (tmp_path / "my-models" / "notes").mkdir()  # not a model: ignored
    models = scan_library(extra_folders=[tmp_path / "my-models", tmp_path / "nowhere"])
    assert [(m.name, m.source) for m in models] == [("llama-awq", SOURCE_FOLDER), ("org/dense", SOURCE_HF_CACHE)]
    local, cached = models
    expected_size = sum(len(DENSE_FILES[n]) for n in DENSE_FILES if n not in ("pytorch_model.bin", "README.md",
                                                                               ".gitattributes"))
    assert cached.repo_id == "org/dense" and cached.revision == SHA and cached.refs == ("main",)
    assert cached.path.name == SHA and (cached.path / "config.json").is_file()
    assert cached.size_on_disk == expected_size and cached.complete and cached.partial_bytes == 0
    assert cached.format_label == "BF16" and cached.last_modified and cached.last_used
    assert local.path == tmp_path / "my-models" / "llama-awq" and local.complete
    assert local.format_key == "awq" and local.format_label.startswith("AWQ 4-bit")
    assert local.size_on_disk == sum(p.stat().st_size for p in folder.iterdir())
    assert json.loads(json.dumps(cached.as_dict()))["path"] == str(cached.path)
    assert find_models(models, "ORG/dense") == [cached] and find_models(models, str(folder)) == [local]
    # a folder given directly is a model too
    assert [m.name for m in scan_library(extra_folders=[folder])] == ["llama-awq", "org/dense"]


def test_missing_shards_or_a_partial_download_make_a_model_incomplete(hub, tmp_path):
    hub.drop_after = {SHARD2: 100_000}
    assert Download("org/dense", retries=0).run_blocking() == FAILED
    (model,) = scan_library()
    assert not model.complete and model.partial_bytes == 100_000
    assert model.size_on_disk == sum(len(DENSE_FILES[n]) for n in DENSE_FILES
                                     if n.endswith(".json")) + len(DENSE_FILES[SHARD1]) + 100_000
    # a user folder whose index names a shard that is not there
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    safetensors_file(folder / "model-00001-of-00002.safetensors", 64)
    (half,) = [m for m in scan_library(extra_folders=[folder]) if m.source == SOURCE_FOLDER]
    assert not half.complete


def test_delete_a_cached_model_frees_its_blobs_and_partial_files(hub, tmp_path):
    assert Download("org/dense").run_blocking() == DONE
    hub.add_model("org/other", files=dict(DENSE_FILES), lfs=LFS)
    hub.drop_after = {SHARD1: 50_000}
    assert Download("org/other", retries=0).run_blocking() == FAILED
    dense, other = scan_library()
    assert other.partial_bytes == 50_000
    freed = delete_model(other)
    assert freed == other.size_on_disk
    assert [m.name for m in scan_library()] == ["org/dense"]
    assert not (tmp_path / "hf-home" / "hub" / "models--org--other").exists()
    assert delete_model(dense) == dense.size_on_disk
    assert scan_library() == []
    with pytest.raises(BadInput):
        delete_model(dense)  # already gone


def test_delete_refuses_folders_that_are_not_one_model(tmp_path):
    folder = awq_folder(tmp_path / "models" / "llama-awq")
    models = scan_library(extra_folders=[tmp_path / "models"])
    (model,) = models
    size = model.size_on_disk
    assert delete_model(model) == size and not folder.exists()
    # a folder of models, a plain folder, the home folder: refused, nothing removed
    parent = tmp_path / "collection"
    awq_folder(parent / "a")
    (parent / "config.json").write_bytes(CONFIG)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("keep me")
    for target in (parent, plain, Path.home()):
        fake = model.__class__(**{**model.__dict__, "path": target, "name": target.name})
        with pytest.raises(BadInput) as caught:
            delete_model(fake)
        assert caught.value.problem.title == f"{target} is not a model folder"
    assert (parent / "a" / "config.json").exists() and (plain / "notes.txt").exists()


def test_a_fit_check_leaves_no_model_in_the_library(monkeypatch):
    """Reading a repo's config.json for a fit puts it in the HF cache; that is not a model on disk."""
    from llmdesk.core.hub.library import scan_library
    from llmdesk.core.hub.model_source import load_model_spec
    from tests.fakes.hub_fixtures import add_qwen_family
    from tests.fakes.hub_server import HubStandIn
    from tests.unit.test_model_source import point_hub_client_at

    with HubStandIn() as hub:
        point_hub_client_at(monkeypatch, hub.url)
        add_qwen_family(hub)
        assert load_model_spec("Qwen/Qwen2.5-7B-Instruct-AWQ").geometry.num_layers == 28
    assert scan_library() == []
