"""`llmdesk fit` end to end, as a user runs it (subprocesses; the Hub is a local stand-in)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.hub_server import HubStandIn

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
LLAMA8B = CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json"


def fit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", "fit", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_json_report_for_a_config_on_a_catalogue_gpu():
    result = fit(str(LLAMA8B), "--gpu", "h100", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "fits" and report["kv_bytes_per_token"] == 131072
    assert report["weights_bytes"] == 16_060_522_496 and report["tensor_parallel_size"] == 1
    assert set(report["allowances"]) == {"activation_peak", "non_torch", "rope_tables", "cuda_graphs"}
    assert report["measured"]["shape"] == "Llama-3.1-8B" and report["measured"]["output_tokens_per_s"]["1"] > 100


def test_text_report_explains_the_numbers_and_the_launch_line():
    result = fit(str(CONFIGS / "meta-llama__Llama-3.3-70B-Instruct.json"), "--gpu", "h100", "--gpus", "2",
                 "--max-model-len", "16384")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Fits on 2 GPUs with the full 16,384-token context." in out
    assert "GPU                2× NVIDIA H100 80GB HBM3" in out
    assert "vllm serve MODEL --tensor-parallel-size 2 --max-model-len 16384" in out


def test_hub_repo_through_hf_endpoint():
    with HubStandIn() as hub:
        hub.add_model("meta-llama/Llama-3.1-8B-Instruct", files={"config.json": LLAMA8B.read_bytes()},
                      safetensors={"BF16": 8_030_261_248})
        hub.add_model("org/gated", files={"config.json": LLAMA8B.read_bytes()}, gated=True)
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"}
        ok = fit("meta-llama/Llama-3.1-8B-Instruct", "--gpu", "l40s", "--json", env=env)
        gated = fit("org/gated", "--gpu", "l40s", env=env)
        missing = fit("org/nothing-here", "--gpu", "l40s", env=env)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["weights_source"].startswith("safetensors parameter counts on the Hub")
    assert report["gpu"] == "NVIDIA L40S"
    assert gated.returncode == 1 and "org/gated is gated" in gated.stderr
    assert missing.returncode == 2 and "No model called org/nothing-here" in missing.stderr


@pytest.mark.parametrize("args, message", [
    (["--gpu", "H10"], "Did you mean"),
    (["--gpu", "h100", "--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization: 1.5 is out of range"),
    (["--gpu", "h100", "--max-model-len", "0"], "--max-model-len: 0 is out of range"),
    (["--gpu", "h100", "--quantization", "fp9"], "fp9"),
    (["--gpu", "h100", "--kv-cache-dtype", "int3"], "kv_cache_dtype"),
])
def test_bad_input_exits_2_with_a_clear_message(args, message):
    result = fit(str(LLAMA8B), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_garbled_config_exits_2(tmp_path):
    broken = tmp_path / "config.json"
    broken.write_text('{"architectures": ["LlamaForCausalLM"], "hidden_si')
    result = fit(str(broken), "--gpu", "h100")
    assert result.returncode == 2 and "config.json cannot be read" in result.stderr


def test_without_a_gpu_auto_asks_which_one_to_plan_for():
    result = fit(str(LLAMA8B))
    if "error:" not in result.stderr:
        pytest.skip("this machine has an NVIDIA GPU")
    assert result.returncode == 2
    assert "--gpu NAME" in result.stderr
