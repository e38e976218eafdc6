"""`llmdesk search` and `llmdesk variants` end to end, as a user runs them (subprocesses, HF_ENDPOINT
pointed at the local Hub stand-in)."""

import json
import os
import subprocess
import sys

import pytest

from tests.fakes.hub_fixtures import WEIGHT_BYTES, Catalogue, add_catalogue
from tests.fakes.hub_server import HubStandIn

C = Catalogue()
Q = C.qwen


def llmdesk(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **(env or {})})


@pytest.fixture(scope="module")
def hub_env():
    with HubStandIn() as hub:
        add_catalogue(hub)
        yield {"HF_ENDPOINT": hub.url}


def test_search_json_rows_have_stable_keys(hub_env):
    result = llmdesk("search", "qwen2.5-7b", "--limit", "3", "--json", env=hub_env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["repo_id"] for row in rows] == [Q.base, Q.awq, Q.gptq]
    assert list(rows[0]) == ["repo_id", "author", "downloads", "likes", "last_modified", "gated", "license",
                             "parameters", "pipeline_tag", "architecture", "served_by_vllm", "tags"]
    assert (rows[0]["downloads"], rows[0]["parameters"], rows[0]["license"]) == \
        (2_134_567, 7_615_616_512, "apache-2.0")


def test_search_filters_and_text_table(hub_env):
    result = llmdesk("search", "--sort", "likes", "--limit", "4", "--min-params", "7", "--open-only", env=hub_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "PARAMS", "DOWNLOADS", "LIKES", "UPDATED", "GATED", "LICENCE"]
    assert [line.split()[0] for line in lines[1:]] == [C.lone, Q.base, Q.lookalikes[0], Q.lookalikes[1]]
    assert lines[2].split() == [Q.base, "7.6B", "2.1M", "812", "2025-01-12", "apache-2.0"]
    everything = llmdesk("search", "qwen2.5-7b-instruct-", "--all-architectures", "--json", env=hub_env)
    assert {Q.gguf, Q.mlx} <= {row["repo_id"] for row in json.loads(everything.stdout)}
    none = llmdesk("search", "no-such-model", env=hub_env)
    assert none.returncode == 0 and none.stdout.strip() == \
        "No text-generation models matching 'no-such-model' that vLLM 0.26 serves."


def test_search_bad_input_exits_2(hub_env):
    result = llmdesk("search", "x", "--min-params", "70", "--max-params", "7", env=hub_env)
    assert result.returncode == 2 and "The parameter range is empty" in result.stderr


def verdicts(payload: dict) -> dict[str, tuple]:
    return {v["repo_id"]: (v["verdict"], v["format_key"], v["size_bytes"], v["max_model_len"])
            for v in payload["variants"]}


def test_variants_json_on_an_rtx_4090(hub_env):
    result = llmdesk("variants", Q.base, "--gpu", "rtx-4090", "--json", env=hub_env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["base"], payload["gpu"], payload["gpu_count"]) == (Q.base, "NVIDIA GeForce RTX 4090", 1)
    assert verdicts(payload) == {
        Q.base: ("fits", "bf16", WEIGHT_BYTES["bf16"], 32768),
        Q.fp8: ("fits", "ct-fp8", WEIGHT_BYTES["fp8-dynamic"], 32768),
        Q.no_lineage: ("fits", "gptq", WEIGHT_BYTES["gptq-int8"], 32768),
        Q.awq: ("fits", "awq", WEIGHT_BYTES["awq"], 32768),
        Q.gptq: ("fits", "gptq", WEIGHT_BYTES["gptq-int4"], 32768),
        Q.gguf: ("unsupported", "gguf", None, None),
        Q.mlx: ("unsupported", "mlx", WEIGHT_BYTES["mlx-4bit"], None),
        Q.gated: ("unknown", None, None, None),
    }
    assert [v["repo_id"] for v in payload["variants"]][:5] == [Q.base, Q.fp8, Q.no_lineage, Q.awq, Q.gptq]
    assert payload["recommended"] == Q.base
    assert [v["recommended"] for v in payload["variants"]] == [True] + [False] * 7
    concurrency = {v["repo_id"]: v["max_concurrency"] for v in payload["variants"]}
    assert concurrency[Q.awq] > concurrency[Q.fp8] > concurrency[Q.base] > 1
    gated = next(v for v in payload["variants"] if v["repo_id"] == Q.gated)
    assert gated["problem"]["title"] == "nvidia/Qwen2.5-7B-Instruct-FP4 is gated"


def test_variants_text_on_a_16_gb_card_with_a_shorter_context(hub_env):
    result = llmdesk("variants", Q.base, "--gpu", "rtx-4080", "--max-model-len", "16384", env=hub_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Variants of {Q.base} on 1× NVIDIA GeForce RTX 4080, best fit first"
    assert lines[2].split()[:2] == ["VARIANT", "FORMAT"]
    assert lines[3].startswith(f"★  {Q.fp8}") and "16,384" in lines[3]
    base_row = next(line for line in lines if line.split()[:1] == [Q.base])
    assert "needs 2 GPUs" in base_row
    assert f"  ! {Q.gated} is gated" in result.stdout
    assert lines[-1].startswith(f"★ Recommended: {Q.fp8} (FP8 W8A8")


def test_variants_of_a_model_without_children_on_an_h100(hub_env):
    result = llmdesk("variants", C.lone, "--gpu", "h100", "--json", env=hub_env)
    payload = json.loads(result.stdout)
    assert verdicts(payload) == {C.lone: ("fits", "bf16", 14_496_047_104, 32768)}
    assert payload["recommended"] == C.lone


def test_unknown_repo_exits_2(hub_env):
    result = llmdesk("variants", "org/nothing-here", "--gpu", "h100", env=hub_env)
    assert result.returncode == 2
    assert "No model called org/nothing-here" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["search", "qwen"], ["variants", Q.base, "--gpu", "h100"]])
def test_offline_is_a_clear_message_and_exit_1(command):
    result = llmdesk(*command, env={"HF_ENDPOINT": "http://127.0.0.1:9"})  # nothing listens there
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "error: Could not reach the Hugging Face Hub"
    assert "local models still work" in result.stderr and "Traceback" not in result.stderr
    assert "Retrying" not in result.stderr  # fails at once, without huggingface_hub's retry chatter
    switched_off = llmdesk(*command, "--json", env={"HF_HUB_OFFLINE": "1"})
    assert switched_off.returncode == 1
    assert json.loads(switched_off.stdout)["error"]["title"] == "Hugging Face access is switched off"
