"""`llmdesk serve --lora` and `llmdesk lora` as a user runs them (#22): real processes, the stand-in vLLM
(which lists adapters, answers by adapter name and offers the runtime routes only with the env flag),
the Hub stand-in for an adapter given as a repo id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fakes.hub_server import SHA, HubStandIn
from tests.fakes.lora_adapters import make_adapter, make_model, real_config
from tests.fakes.server_records import no_records
from tests.fakes.standin_server import free_port
from tests.fakes.vllm_standin.runtime import make_fake_runtime
from tests.integration.test_serve_cli import read_line

ROOT = Path(__file__).resolve().parents[2]


def llmdesk(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.fixture
def model(tmp_path) -> Path:
    """A model folder whose config.json names the repo it came from, as Transformers writes it."""
    return make_model(tmp_path / "Llama-3.1-8B-Instruct")


@pytest.fixture
def runtime(tmp_path) -> Path:
    return make_fake_runtime(tmp_path / "rt", delay_scale=0.002)


def test_serve_with_two_adapters_answers_by_name_and_loads_more_at_runtime(tmp_path, model, runtime, launched):
    sql, poem = make_adapter(tmp_path / "sql"), make_adapter(tmp_path / "poem", rank=32)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmdesk", "serve", str(model), "--served-model-name", "demo",
                             "--port", str(port), "--runtime", str(runtime), "--lora", f"sql={sql}",
                             "--lora", f"poem={poem}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    launched.append(proc)
    url = read_line(proc.stdout, 30).strip()
    assert url == f"http://127.0.0.1:{port}/v1"
    listed = llmdesk("lora", "list", "--url", url, "--json")
    assert listed.returncode == 0, listed.stderr
    cards = json.loads(listed.stdout)["models"]
    assert [(c["id"], c["parent"]) for c in cards] == [("demo", None), ("sql", "demo"), ("poem", "demo")]
    assert cards[1]["root"] == str(sql)
    reply = httpx.post(url + "/chat/completions", json={"model": "poem", "max_tokens": 3,
                                                         "messages": [{"role": "user", "content": "hi"}]}).json()
    assert reply["model"] == "poem" and reply["choices"][0]["message"]["content"]
    # loopback: the runtime routes are open
    extra = make_adapter(tmp_path / "extra", rank=8)
    loaded = llmdesk("lora", "load", "extra", str(extra), "--url", url)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "Success: LoRA adapter 'extra' added successfully."
    assert "LoRA extra: rank 8" in loaded.stderr and "meta-llama/Llama-3.1-8B-Instruct: the model served" in loaded.stderr
    again = llmdesk("lora", "load", "extra", str(extra), "--url", url)
    assert again.returncode == 2 and "The server already serves 'extra'" in again.stderr
    too_big = make_adapter(tmp_path / "big", rank=64)  # the server took --max-lora-rank 32 from poem
    refused = llmdesk("lora", "load", "big", str(too_big), "--url", url)
    assert refused.returncode == 1
    assert "LoRA rank 64 is greater than the server's max_lora_rank 32" in refused.stderr
    assert "--max-lora-rank 64" in refused.stderr
    other = make_adapter(tmp_path / "tiny", base="TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    mismatch = llmdesk("lora", "load", "tiny", str(other), "--url", url)
    assert mismatch.returncode == 2 and "was trained on another model" in mismatch.stderr
    listing = llmdesk("lora", "list", "--url", url)
    assert listing.stdout.splitlines() == [f"demo  (base model: {model})", f"  sql  ({sql})", f"  poem  ({poem})",
                                           f"  extra  ({extra})"]
    assert llmdesk("lora", "unload", "extra", "--url", url).returncode == 0
    missing = llmdesk("lora", "unload", "extra", "--url", url)
    assert missing.returncode == 1 and "No adapter called 'extra' is loaded" in missing.stderr
    proc.terminate()
    assert proc.wait(15) == 0
    err = proc.stderr.read()
    assert "LoRA sql: rank 16, alpha 32, q_proj, v_proj" in err
    assert "LoRA: 2 adapters at start, --max-loras 2, --max-lora-rank 32; adapters can be loaded while it runs" in err


def test_print_command_has_the_lora_flags_and_the_env_flag(tmp_path, model, runtime):
    odd = make_adapter(tmp_path / "a=b", rank=2)
    done = llmdesk("serve", str(model), "--runtime", str(runtime), "--lora", f"x={odd}", "--print-command")
    assert done.returncode == 0, done.stderr
    line = done.stdout
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=1" in line and "--enable-lora" in line
    assert "--max-lora-rank 8" in line and "--max-loras" not in line  # rank 2 -> 8; one slot is vLLM's default
    assert json.dumps({"name": "x", "path": str(odd)}) in line.replace("'", "")  # a path with '=': the JSON form


@pytest.mark.parametrize("extra, message", [
    (("--lora", "tiny={tiny}"), "The adapter 'tiny' was trained on another model"),
    (("--lora", "big={big}", "--max-lora-rank", "16"), "LoRA rank 64 is greater than --max-lora-rank 16"),
    (("--lora", "demo={ok}", "--served-model-name", "demo"), "The adapter has the base model's name"),
    (("--lora", "bad name={ok}"), "Invalid LoRA adapter name"),
    (("--lora", "a={ok}", "--lora", "a={ok}"), "Duplicate LoRA adapter name"),
    (("--lora", "x=./no/such/folder"), "No adapter at './no/such/folder'"),
    (("--lora", "s={saves}"), "vLLM cannot serve an adapter with modules_to_save"),
    (("--lora", "l={l2}"), "The adapter was trained for a model of another size"),
])
def test_bad_adapters_exit_2_and_start_nothing(tmp_path, model, runtime, extra, message):
    folders = {"tiny": make_adapter(tmp_path / "tiny", base="TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
               "big": make_adapter(tmp_path / "big", rank=64), "ok": make_adapter(tmp_path / "ok"),
               "saves": make_adapter(tmp_path / "saves", modules_to_save=["lm_head"]),
               "l2": make_adapter(tmp_path / "l2", config=real_config("llama2-7b-domain-r64"), base=None,
                                  model_config={"hidden_size": 4096, "num_attention_heads": 32,
                                                "num_key_value_heads": 32, "intermediate_size": 11008})}
    args = [a.format(**folders) for a in extra]
    done = llmdesk("serve", str(model), "--runtime", str(runtime), "--port", str(free_port()), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stdout == "" and no_records()


def test_other_base_served_when_asked(tmp_path, model, runtime):
    tiny = make_adapter(tmp_path / "tiny", base="TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    done = llmdesk("serve", str(model), "--runtime", str(runtime), "--lora", f"t={tiny}", "--lora-any-base",
                   "--print-command")
    assert done.returncode == 0, done.stderr
    assert f"t={tiny}" in done.stdout


def test_an_adapter_from_the_hub_is_downloaded_first(tmp_path, model, runtime):
    folder = make_adapter(tmp_path / "src", rank=16)
    files = {name: (folder / name).read_bytes() for name in ("adapter_config.json", "adapter_model.safetensors")}
    with HubStandIn() as hub:
        hub.add_model("org/sql-lora", files=files, lfs=("adapter_model.safetensors",))
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
        done = llmdesk("serve", str(model), "--runtime", str(runtime), "--lora", "sql=org/sql-lora", "--print-command",
                       env=env)
        assert done.returncode == 0, done.stderr
        snapshot = tmp_path / "hf-home" / "hub" / "models--org--sql-lora" / "snapshots" / SHA
        assert f"sql={snapshot}" in done.stdout
        assert (snapshot / "adapter_config.json").read_bytes() == files["adapter_config.json"]
        missing = llmdesk("serve", str(model), "--runtime", str(runtime), "--lora", "x=org/nothing", env=env)
        assert missing.returncode == 2 and "No model called org/nothing" in missing.stderr


def test_lora_check_offline(tmp_path, model):
    r64 = make_adapter(tmp_path / "r64", config=real_config("llama2-7b-domain-r64"), base=str(model))
    done = llmdesk("lora", "check", str(r64), "--model", str(model), "--max-lora-rank", "16")
    assert done.returncode == 2
    assert "rank 64, alpha 16, q_proj, v_proj" in done.stdout and "the model served" in done.stdout
    assert "✗ LoRA rank 64 is greater than the server's max_lora_rank 16" in done.stdout
    ok = llmdesk("lora", "check", str(r64), "--model", str(model), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["base"]["verdict"] == "same"


def test_runtime_routes_refused_without_the_env_flag(tmp_path, runtime):
    from tests.fakes.standin_server import running_standin

    adapter = make_adapter(tmp_path / "a")
    with running_standin(tmp_path / "rt2", "ok", "--enable-lora") as root:
        done = llmdesk("lora", "load", "a", str(adapter), "--url", root)
        assert done.returncode == 1
        assert "This server does not allow loading adapters while it runs" in done.stderr
