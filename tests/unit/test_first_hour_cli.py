"""The first-hour defects of the command line (issue: the first hour), each as a new user met it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from llmdesk import cli

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
LLAMA8B_CONFIG = CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMDESK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def model_folder(tmp_path: Path, weights: bool) -> Path:
    folder = tmp_path / "my model"
    folder.mkdir()
    shutil.copy(LLAMA8B_CONFIG, folder / "config.json")
    if weights:
        (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return folder


# --- fit -----------------------------------------------------------------------------------------

def test_fit_refuses_a_context_longer_than_the_model_with_the_numbers_in_place(capsys):
    code = cli.main(["fit", str(LLAMA8B_CONFIG), "--gpu", "h100", "--max-model-len", "4000000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "A context of 4,000,000 tokens is more than" in err and "at most 131,072" in err


def test_fit_always_prints_the_serve_line_and_never_a_config_json(capsys):
    assert cli.main(["fit", str(LLAMA8B_CONFIG), "--gpu", "H100"]) == 0
    out = capsys.readouterr().out
    assert "  vllm serve MODEL\n" in out + "\n" and "config.json" not in out.split("vllm serve")[1].split("\n")[0]
    assert "vLLM cannot serve a bare config.json" in out


def test_fit_of_a_config_json_beside_its_weights_serves_the_folder(tmp_path, capsys):
    folder = model_folder(tmp_path, weights=True)
    assert cli.main(["fit", str(folder / "config.json"), "--gpu", "h100", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["serve_target"] == str(folder)
    assert report["serve_command"].startswith(f"vllm serve '{folder}'")  # quoted: the name has a space


def test_fit_of_a_folder_without_weights_has_no_serve_target(tmp_path, capsys):
    folder = model_folder(tmp_path, weights=False)
    assert cli.main(["fit", str(folder), "--gpu", "h100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["serve_target"] is None


# --- the GPU catalogue ---------------------------------------------------------------------------

def test_gpus_catalogue_lists_every_name_fit_takes(capsys):
    assert cli.main(["gpus", "--catalogue"]) == 0
    out = capsys.readouterr().out
    for key in ("h100-80gb", "rtx-5090", "b200", "h100-nvl", "l40", "l40s", "a40", "rtx-pro-6000"):
        assert f"\n{key} " in out
    assert "≈ estimated" in out


def test_gpus_catalogue_json(capsys):
    assert cli.main(["gpus", "--catalogue", "--json"]) == 0
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["a40"]["estimated"] == ["memory", "cuda"] and rows["h100-80gb"]["estimated"] == []


def test_an_unknown_gpu_says_where_the_names_are(capsys):
    assert cli.main(["fit", str(LLAMA8B_CONFIG), "--gpu", "nonsense"]) == 2
    assert "llmdesk gpus --catalogue" in capsys.readouterr().err


# --- repo ids ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["pull", "variants"])
@pytest.mark.parametrize("repo, said", [("a/b/c", "Not a Hugging Face repo id: 'a/b/c'"),
                                        ("owner/na me", "Not a Hugging Face repo id"),
                                        ("../x", "is a path, not a Hugging Face repo id")])
def test_a_malformed_repo_id_is_bad_input_with_the_expected_form(capsys, command, repo, said):
    assert cli.main([command, repo]) == 2
    err = capsys.readouterr().err
    assert said in err and "owner/name" in err and "Something went wrong" not in err


def test_a_local_folder_given_to_pull_points_to_fit_and_serve(tmp_path, capsys):
    folder = model_folder(tmp_path, weights=True)
    assert cli.main(["pull", str(folder)]) == 2
    assert f"llmdesk fit {folder}" in capsys.readouterr().err


# --- chats list, as the README writes it ---------------------------------------------------------

def test_chats_list_is_the_listing(capsys):
    from llmdesk.core.chat.conversations import ConversationStore

    store = ConversationStore()
    store.create("first one")
    store.close()
    assert cli.main(["chats", "list"]) == 0
    listed = capsys.readouterr().out
    assert "first one" in listed
    assert cli.main(["chats", "list", "--search", "nothing like it", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["chats"]) == 0 and capsys.readouterr().out == listed


def test_every_command_form_in_the_readme_table_parses():
    """Each `llmdesk WORD [SUB|…]` of the README's table: the command and its documented subcommands exist."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `llmdesk (\w+)([^`]*)`", readme, re.M)
    assert len(rows) >= 14
    for word, rest in rows:
        with pytest.raises(SystemExit) as done:
            cli.build_parser().parse_args([word, "--help"])
        assert done.value.code == 0, word
    chats = dict(rows)["chats"].replace("\\|", "|")
    subcommands = [form.split()[0] for form in chats[chats.index("[") + 1:].split("|")
                   if re.match(r"[a-z]+(\s|$)", form)]
    assert {"list", "show", "export", "import", "rename", "rm"} <= set(subcommands)
    for sub in subcommands:
        with pytest.raises(SystemExit) as done:
            cli.build_parser().parse_args(["chats", sub, "--help"])
        assert done.value.code == 0, f"llmdesk chats {sub}"


# --- runtime -------------------------------------------------------------------------------------

def test_runtime_says_where_it_looked_once_and_the_install_size_one_way(capsys, monkeypatch):
    import importlib.metadata

    from llmdesk.core.server.runtime import INSTALL_SIZE

    def no_vllm(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", no_vllm)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli.main(["runtime"]) == 1
    out = capsys.readouterr().out
    assert out.count("Looked at") == 1 and out.count("runtime install") == 1
    assert out.count(" GB") == 2 and out.count(INSTALL_SIZE) == 1


def test_the_install_size_is_one_phrase_in_the_code():
    """Every '… GB' about installing vLLM comes from runtime.INSTALL_SIZE / INSTALL_DISK_GB."""
    package = Path(__file__).resolve().parents[2] / "llmdesk"
    for path in package.rglob("*.py"):
        if path.name == "gpu_catalogue.py":
            continue  # card memory, not the install
        for line in path.read_text(encoding="utf-8").splitlines():
            assert not re.search(r"about \d+ GB (to )?download|\d GB on disk", line), f"{path}: {line.strip()}"


# --- serve: what is known to fail is refused before vLLM's long start -----------------------------

@pytest.mark.parametrize("make, said", [
    (lambda tmp: "/nonexistent/model", "No model at /nonexistent/model"),
    (lambda tmp: str(model_folder(tmp, weights=False)), "No weights in"),
    (lambda tmp: str(model_folder(tmp, weights=True) / "config.json"), "is a file, not a model folder"),
    (lambda tmp: "a/b/c", "No model at a/b/c"),
    (lambda tmp: "na me", "Not a Hugging Face repo id"),
])
def test_serve_refuses_a_source_vllm_cannot_serve_before_looking_for_vllm(tmp_path, capsys, make, said):
    source = make(tmp_path)
    assert cli.main(["serve", source, "--runtime", "/nonexistent/python"]) == 2
    err = capsys.readouterr().err
    assert said in err and "vLLM is not installed" not in err


def test_serve_refuses_a_context_the_model_does_not_allow(tmp_path, capsys):
    folder = model_folder(tmp_path, weights=True)
    assert cli.main(["serve", str(folder), "--max-model-len", "4000000", "--runtime", "/nonexistent/python"]) == 2
    assert "A context of 4,000,000 tokens is more than" in capsys.readouterr().err
