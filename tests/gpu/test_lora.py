"""Multi-LoRA on real vLLM 0.26 through `llmdesk serve --lora` and `llmdesk lora` (#22).

Two random-weight adapters of the Llama-3.2-1B shape (tests/gpu/make_lora_adapter.py): one at start
(--lora), one loaded while the server runs; both answer by name; an adapter of rank 64 is refused by
the running server (--max-lora-rank 16) in plain words and the server goes on serving; unload takes
the name out of the API; /metrics' vllm:lora_requests_info names the adapter a request runs on. The
figures, the CLI's words and vLLM's raw answers go to the report (and $OUT/lora-*.txt) for the docs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.fakes.standin_server import free_port
from tests.gpu.conftest import ROOT, model_dir
from tests.gpu.make_lora_adapter import make_adapter


def llmdesk(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def chat(url: str, model: str, max_tokens: int = 16) -> httpx.Response:
    return httpx.post(url + "/chat/completions", timeout=120, json={
        "model": model, "max_tokens": max_tokens, "temperature": 0.0,
        "messages": [{"role": "user", "content": "Name three colours."}]})


def lora_info(root: str) -> list[str]:
    return [line for line in httpx.get(root + "/metrics", timeout=10).text.splitlines()
            if line.startswith("vllm:lora_requests_info{")]


def test_two_adapters_start_and_runtime_load_rank_refusal_unload(gpu_env, report, out_dir, tmp_path):
    model = model_dir("llama-3.2-1b")
    config = json.loads((model / "config.json").read_text())
    base = str(model)
    adapters = tmp_path / "adapters"
    make_adapter(adapters / "a", config, base_name=base, rank=16, seed=1)
    make_adapter(adapters / "b", config, base_name=base, rank=8, seed=2)
    make_adapter(adapters / "big", config, base_name=base, rank=64, seed=3)
    port = free_port()
    stderr = open(out_dir / "lora-serve.stderr", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmdesk", "serve", base, "--served-model-name", "l1b", "--port", str(port),
         "--runtime", sys.executable, "--max-model-len", "2048", "--lora", f"a={adapters / 'a'}", "--max-loras", "2"],
        stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True, cwd=ROOT)
    results: dict = {}
    try:
        url = proc.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}/v1", (url, (out_dir / "lora-serve.stderr").read_text()[-3000:])
        results["launch_to_ready_s"] = round(time.monotonic() - t0, 1)
        root = url.removesuffix("/v1")

        listed = llmdesk("lora", "list", "--url", url, "--json")
        assert listed.returncode == 0, listed.stderr
        cards = json.loads(listed.stdout)["models"]
        assert [(c["id"], c["parent"]) for c in cards] == [("l1b", None), ("a", "l1b")]

        base_reply = chat(url, "l1b")
        a_reply = chat(url, "a")
        assert base_reply.status_code == 200 and a_reply.status_code == 200, a_reply.text
        assert a_reply.json()["model"] == "a"
        results["a_differs_from_base"] = (a_reply.json()["choices"][0]["message"]["content"]
                                          != base_reply.json()["choices"][0]["message"]["content"])

        loaded = llmdesk("lora", "load", "b", str(adapters / "b"), "--url", url)
        results["load_b"] = {"code": loaded.returncode, "stdout": loaded.stdout, "stderr": loaded.stderr}
        assert loaded.returncode == 0, loaded.stderr
        assert "added successfully" in loaded.stdout
        b_reply = chat(url, "b")
        assert b_reply.status_code == 200 and b_reply.json()["model"] == "b", b_reply.text

        refused = llmdesk("lora", "load", "big", str(adapters / "big"), "--url", url)
        results["load_big"] = {"code": refused.returncode, "stderr": refused.stderr}
        (out_dir / "lora-rank-refusal.txt").write_text(refused.stderr, encoding="utf-8")
        raw = httpx.post(url + "/load_lora_adapter", timeout=120,
                         json={"lora_name": "big2", "lora_path": str(adapters / "big")})
        results["raw_rank_refusal"] = {"status": raw.status_code, "body": raw.text}
        assert refused.returncode == 1
        assert "LoRA rank 64 is greater than the server's max_lora_rank 16" in refused.stderr
        assert httpx.get(root + "/health", timeout=10).status_code == 200
        assert chat(url, "a").status_code == 200  # still serving

        # a long request on "a" while /metrics is read: vllm:lora_requests_info names it
        long = threading.Thread(target=chat, args=(url, "a", 400), daemon=True)
        long.start()
        seen = []
        deadline = time.monotonic() + 20
        while long.is_alive() and time.monotonic() < deadline:
            seen.append(lora_info(root))
            time.sleep(0.2)
        long.join(120)
        results["lora_info_samples"] = seen[:3] + seen[-3:]
        (out_dir / "lora-metrics.txt").write_text("\n\n".join("\n".join(s) for s in seen), encoding="utf-8")
        assert any('running_lora_adapters="a"' in line for sample in seen for line in sample)
        assert any('max_lora="2"' in line for sample in seen for line in sample)

        unloaded = llmdesk("lora", "unload", "b", "--url", url)
        assert unloaded.returncode == 0, unloaded.stderr
        gone = chat(url, "b")
        results["after_unload"] = {"status": gone.status_code, "body": gone.text[:300]}
        assert gone.status_code == 404
        assert [c["id"] for c in json.loads(llmdesk("lora", "list", "--url", url, "--json").stdout)["models"]] \
            == ["l1b", "a"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
        stderr.close()
        results["exit_code"] = code
        report.add("lora_multi_adapter", **results)
    assert code == 0
