"""Pause and Resume on real vLLM 0.26 through llmdesk's Supervisor and sleep gate (#23).

The Llama-3.1-8B shape (random weights; `gpu-host.sh models llama-3.1-8b`) with sleep mode:
- the gate's cost: output tok/s at c=1 and 64 through the gate and straight to vLLM's own port, on the
  same server, alternating;
- Pause (level 1) while 16 streamed requests run: every one finishes; GPU memory before and after
  (goal: at least 90% of what the server holds freed in under 5 s); a request sent while paused wakes
  the model and is answered (goal: under 5 s to its reply);
- level 2 (weights dropped, read again): pause, a request during the resume is answered with the
  reloaded weights;
- with wake-on-request off, a request to the paused server gets 503 and the plain message;
- the idle pause: after the idle time the server pauses by itself, and the next request wakes it.
Figures go to the report (gpu-report.json, "sleep_mode") and $OUT/sleep-mode.json.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

from tests.fakes.standin_server import free_port
from tests.gpu.conftest import model_dir

NAME = "l8b"


def gpu_used() -> int:
    from llmdesk.core.machine.gpus import scan_gpus

    return sum(g.memory_used_bytes for g in scan_gpus().gpus)


async def completion(client: httpx.AsyncClient, root: str, tokens: int = 32, stream: bool = False) -> dict:
    t0 = time.monotonic()
    body = {"model": NAME, "prompt": "Once upon a time", "max_tokens": tokens, "ignore_eos": True, "stream": stream}
    if not stream:
        r = await client.post(root + "/v1/completions", json=body)
        return {"status": r.status_code, "s": time.monotonic() - t0, "body": r.text[:400],
                "tokens": (r.json().get("usage") or {}).get("completion_tokens") if r.status_code == 200 else None}
    chunks = 0
    async with client.stream("POST", root + "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                chunks += 1
        return {"status": r.status_code, "s": time.monotonic() - t0, "chunks": chunks}


def speed(port: int, concurrency: int, prompts: int, seed: int) -> float:
    from bench.bench_parity import llmdesk_level

    return llmdesk_level(port, NAME, concurrency, prompts, seed, None)["output_throughput"]


async def scenario(model: str, out: dict, python: str = sys.executable) -> None:
    from llmdesk.core.server.launch import LaunchConfig
    from llmdesk.core.server.supervisor import ServerState, Supervisor
    from llmdesk.core.server.sleep_gate import GateSettings

    baseline = await asyncio.to_thread(gpu_used)
    config = LaunchConfig(model=model, served_model_name=NAME, port=free_port(), gpu_memory_utilization=0.85,
                          max_model_len=4096, sleep_mode=True, sleep_level=1)  # level 2 comes later
    sup = Supervisor(python)
    t0 = time.monotonic()
    status = await sup.start(config, timeout_s=900)
    out["launch_to_ready_s"] = round(time.monotonic() - t0, 1)
    assert status.state is ServerState.READY, status.diagnosis
    out["timeline"] = status.timeline.summary()
    gate = sup._gate
    root = f"http://127.0.0.1:{config.port}"
    try:
        # 1. the gate's cost, alternating gate / direct, twice each
        vllm_port = sup._vllm_port
        rounds = []
        for i in range(2):
            row = {}
            for name, port in (("gate", config.port), ("direct", vllm_port)) if i == 0 else \
                    (("direct", vllm_port), ("gate", config.port)):
                row[f"{name}_c1"] = await asyncio.to_thread(speed, port, 1, 16, 3 + i)
                row[f"{name}_c64"] = await asyncio.to_thread(speed, port, 64, 256, 5 + i)
            rounds.append(row)
        out["gate_speed_rounds"] = rounds
        for c in ("c1", "c64"):
            gate_mean = sum(r[f"gate_{c}"] for r in rounds) / len(rounds)
            direct_mean = sum(r[f"direct_{c}"] for r in rounds) / len(rounds)
            out[f"gate_vs_direct_{c}"] = round(gate_mean / direct_mean - 1, 4)

        async with httpx.AsyncClient(timeout=600) as client:
            # 2. level 1 while 16 streams run
            serving = await asyncio.to_thread(gpu_used)
            streams = [asyncio.create_task(completion(client, root, tokens=256, stream=True)) for _ in range(16)]
            await asyncio.sleep(0.5)
            t = time.monotonic()
            result = await sup.pause()
            out["pause1"] = {"seconds": round(time.monotonic() - t, 2), "gate": result}
            finished = await asyncio.gather(*streams)
            out["streams_during_pause"] = [(f["status"], f["chunks"]) for f in finished]
            assert all(f["status"] == 200 and f["chunks"] >= 128 for f in finished), finished
            paused = await asyncio.to_thread(gpu_used)
            held = serving - baseline
            out["memory"] = {"baseline_mib": baseline >> 20, "serving_mib": serving >> 20, "paused_mib": paused >> 20,
                             "freed_share": round((serving - paused) / held, 4) if held > 0 else None}
            # a request to the paused server wakes it
            woken = await completion(client, root, tokens=16)
            out["request_while_paused_l1"] = {k: woken[k] for k in ("status", "s", "tokens")}
            assert woken["status"] == 200 and woken["tokens"] == 16, woken
            out["resume1"] = sup.status.sleep.get("last_resume")
            after = await completion(client, root, tokens=16)
            out["next_request_s"] = round(after["s"], 3)

            # 3. level 2: a request arriving during the resume gets the reloaded weights
            t = time.monotonic()
            out["pause2"] = await gate.pause("user", level=2)
            out["pause2"]["wall_s"] = round(time.monotonic() - t, 2)
            out["memory"]["paused2_mib"] = (await asyncio.to_thread(gpu_used)) >> 20
            resume = asyncio.create_task(sup.resume())
            await asyncio.sleep(0.2)
            during = await completion(client, root, tokens=16)
            out["resume2"] = await resume
            out["request_during_resume_l2"] = {k: during[k] for k in ("status", "s", "tokens")}
            assert during["status"] == 200 and during["tokens"] == 16, during

            # 4. wake-on-request off: refused in words
            gate.set_settings(GateSettings(level=1, wake_on_request=False, api_key=None,
                                           control_token=gate.gate.settings.control_token))
            # the second level-1 pause: torch keeps the pinned CPU memory the first one allocated for the
            # weights (its caching host allocator), so only the first pause should pay for pinning 15 GiB
            t = time.monotonic()
            out["pause1_again"] = await sup.pause()
            out["pause1_again"]["wall_s"] = round(time.monotonic() - t, 2)
            refused = await client.post(root + "/v1/completions", json={"model": NAME, "prompt": "x", "max_tokens": 4})
            out["refused"] = {"status": refused.status_code, "retry_after": refused.headers.get("Retry-After"),
                              "message": refused.json()["error"]["message"]}
            assert refused.status_code == 503
            await sup.resume()

            # 5. the idle pause
            gate.set_settings(GateSettings(level=1, idle_pause_s=10, wake_on_request=True, api_key=None,
                                           control_token=gate.gate.settings.control_token))
            t = time.monotonic()
            while (sup.status.sleep or {}).get("state") != "paused" and time.monotonic() - t < 60:
                await asyncio.sleep(0.2)
            out["idle_pause_after_s"] = round(time.monotonic() - t, 1)
            out["idle_reason"] = (sup.status.sleep or {}).get("reason")
            out["idle_pause"] = (sup.status.sleep or {}).get("last_pause")
            assert sup.status.sleep["state"] == "paused"
            woken = await completion(client, root, tokens=16)
            out["request_after_idle_pause"] = {k: woken[k] for k in ("status", "s", "tokens")}
            assert woken["status"] == 200
    finally:
        await sup.stop()
        out["log"] = str(sup.log_path)


def test_pause_resume_and_the_gate_on_the_8b_shape(gpu_env, report, out_dir):
    model = model_dir("llama-3.1-8b")
    out: dict = {}
    try:
        asyncio.run(scenario(str(model), out))
    finally:
        (out_dir / "sleep-mode.json").write_text(json.dumps(out, indent=1, default=str))
        report.add("sleep_mode", **out)
    pause1 = out["pause1"]["gate"]
    out["goals"] = {"freed_90pct": out["memory"]["freed_share"] >= 0.9,
                    "pause_under_5s": pause1.get("sleep_s", pause1.get("seconds", 99)) < 5,
                    "later_pauses_under_5s": all(p.get("sleep_s", 99) < 5 for p in
                                                 (out.get("pause1_again") or {}, out.get("idle_pause") or {})),
                    "wake_and_answer_under_5s": out["request_while_paused_l1"]["s"] < 5}
    report.add("sleep_mode", goals=out["goals"])
