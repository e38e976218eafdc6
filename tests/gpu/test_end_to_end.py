"""Real vLLM through the app's own code: supervisor, chat client, /metrics parser, leftover cleanup,
and launches that must fail with the right diagnosis. Each start is timed into the report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from llmdesk.core.chat.client import ChatClient, ChatParams
from llmdesk.core.fit.memory_model import LaunchSettings, plan_fit
from llmdesk.core.fit.vllm_memory_log import parse_memory_lines
from llmdesk.core.hub.model_source import load_model_spec
from llmdesk.core.machine.gpus import scan_gpus
from llmdesk.core.metrics.scraper import MetricsScraper
from llmdesk.core.metrics.window import MetricsWindow
from llmdesk.core.server.launch import LaunchConfig
from llmdesk.core.server import records
from llmdesk.core.server.processes import group_members
from llmdesk.core.server.supervisor import ServerState, Supervisor, find_leftover
from tests.gpu.conftest import model_dir
from tests.fakes.standin_server import free_port

GIB = 1024**3


def gpu_used_bytes() -> int:
    return sum(g.memory_used_bytes for g in scan_gpus().gpus)


def save_log(out_dir, name: str, sup: Supervisor) -> None:
    (out_dir / f"{name}.log").write_text("\n".join(sup.lines) + "\n", encoding="utf-8")


async def start_ready(config: LaunchConfig, out_dir, log_name: str, timeout_s: float):
    """Start under a supervisor, save its log, require READY: (supervisor, status, seconds to ready)."""
    sup = Supervisor(sys.executable)
    t0 = time.monotonic()
    status = await sup.start(config, timeout_s=timeout_s)
    ready_s = time.monotonic() - t0
    save_log(out_dir, log_name, sup)
    assert status.state == ServerState.READY, (status.diagnosis, list(sup.lines)[-30:])
    return sup, status, ready_s


async def load(client: ChatClient, model: str, n: int, max_tokens: int) -> list[int]:
    async def one(i: int) -> int:
        chunks = 0
        async with contextlib.aclosing(client.stream(
                model, [{"role": "user", "content": f"Request {i}: count to a thousand."}],
                ChatParams(max_tokens=max_tokens, temperature=0.0))) as deltas:
            async for _ in deltas:
                chunks += 1
        return chunks
    return await asyncio.gather(*(one(i) for i in range(n)))


def test_serve_chat_metrics_stop(gpu_env, report, out_dir):
    """Start the tiny model under the supervisor, chat, watch the metrics move, stop, nothing left."""
    model = str(model_dir("tiny"))

    async def run() -> dict:
        baseline = gpu_used_bytes()
        config = LaunchConfig(model=model, served_model_name="tiny", port=free_port())
        sup, status, ready_s = await start_ready(config, out_dir, "e2e-tiny-server", 600)
        pgid = sup._pgid
        try:
            async with ChatClient(status.url) as client, MetricsScraper(status.url) as scraper:
                assert await client.models() == ["tiny"]
                reply = []
                async for delta in client.stream("tiny", [{"role": "user", "content": "Hello!"}],
                                                 ChatParams(max_tokens=48)):
                    reply.append(delta.content)
                stats = client.last_stats
                assert "".join(reply) and stats.completion_tokens == 48 and stats.ttft_s < 5

                window = MetricsWindow()
                before = window.add(await scraper.scrape())
                (out_dir / "e2e-metrics-before.txt").write_text(
                    (await scraper._http.get(scraper.metrics_url)).text, encoding="utf-8")
                busy_kv, busy_running = 0.0, 0
                task = asyncio.create_task(load(client, "tiny", 64, 512))
                while not task.done():
                    await asyncio.sleep(0.25)
                    snap = window.add(await scraper.scrape())
                    busy_kv = max(busy_kv, snap.kv_cache_usage or 0.0)
                    busy_running = max(busy_running, snap.requests_running or 0)
                chunks = await task
                await asyncio.sleep(1.5)  # vLLM updates its counters once per engine step
                after = window.add(await scraper.scrape())
                (out_dir / "e2e-metrics-after.txt").write_text(
                    (await scraper._http.get(scraper.metrics_url)).text, encoding="utf-8")
            generated = after.generation_tokens_total - before.generation_tokens_total
            assert generated >= 64 * 512 * 0.95, generated
            assert busy_kv > 0 and busy_running > 1
            assert after.ttft_p50_s is not None and after.e2e_p50_s is not None
        finally:
            stopped = await sup.stop()
        left = group_members(pgid)
        assert stopped.state == ServerState.STOPPED and not left
        await asyncio.sleep(2)
        released = gpu_used_bytes()
        assert stopped.gpu_memory_released is True
        assert released <= baseline + 512 * 1024**2
        return {"launch_to_ready_s": round(ready_s, 1), "ttft_s": stats.ttft_s, "tokens_per_s": stats.tokens_per_s,
                "metrics_generation_tokens": generated, "peak_kv_cache_usage": busy_kv,
                "peak_requests_running": busy_running, "chunks_first_request": chunks[0],
                "gpu_used_before_gib": baseline / GIB, "gpu_used_after_stop_gib": released / GIB,
                "processes_left": left, "ttft_p50_s": after.ttft_p50_s, "itl_p50_s": after.itl_p50_s,
                "e2e_p50_s": after.e2e_p50_s}

    report.add("serve_chat_metrics_stop", **asyncio.run(run()))


def _wait_line(proc: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line starting with {prefix!r}")


def _llmdesk_serve(model: str, port: int, out_dir, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmdesk", "serve", model, "--served-model-name", "tiny", "--port", str(port),
         "--runtime", sys.executable],
        stdout=subprocess.PIPE, stderr=open(out_dir / f"{name}.stderr", "w"), text=True, start_new_session=True)


def test_killed_llmdesk_takes_its_server_along_and_the_next_start_works(gpu_env, report, out_dir):
    """SIGKILL to `llmdesk serve`: vLLM gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and shuts down
    by itself; its record is found stale; a second start on the same port goes ahead."""
    model = str(model_dir("tiny"))
    port = free_port()
    first = _llmdesk_serve(model, port, out_dir, "leftover-first")
    _wait_line(first, "http", 600)
    (record,) = records.live_records()
    first.kill()  # SIGKILL: llmdesk gets no chance to stop vLLM
    first.wait(10)
    t_kill = time.monotonic()
    while group_members(record.pid) and time.monotonic() - t_kill < 120:
        time.sleep(0.2)
    gone_s = time.monotonic() - t_kill
    assert not group_members(record.pid), "vLLM outlived the llmdesk that started it"
    assert find_leftover() is None and records.live_records() == []
    t0 = time.monotonic()
    second = _llmdesk_serve(model, port, out_dir, "leftover-second")
    try:
        url2 = _wait_line(second, "http", 600)
        ready_s = time.monotonic() - t0
        assert httpx.get(url2.removesuffix("/v1") + "/health", timeout=5).status_code == 200
        assert find_leftover() is None  # owned by the live llmdesk
    finally:
        second.send_signal(signal.SIGINT)
        code = second.wait(60)
    assert code == 0
    assert find_leftover() is None and records.live_records() == []
    report.add("killed_llmdesk_leftover", died_with_parent_s=round(gone_s, 1),
               second_start_to_ready_s=round(ready_s, 1), second_exit_code=code)


def _utilisation_for_kv_tokens(model: str, share_of_context: float) -> tuple[float, object]:
    """A utilisation that leaves KV cache for about ``share_of_context`` of the model's own context on
    one GPU, according to the fit engine (so vLLM must refuse to start at the model's full context)."""
    source = load_model_spec(model)
    gpu = scan_gpus().gpus[0]
    probe = plan_fit(source, [gpu], LaunchSettings())
    kv_gib = share_of_context * probe.model_max_len * probe.kv_bytes_per_token / GIB

    def plan(util: float):
        return plan_fit(source, [gpu], LaunchSettings(gpu_memory_utilization=util, tensor_parallel_size=1))

    lo, hi = 0.02, 0.9
    for _ in range(30):
        mid = (lo + hi) / 2
        fit = plan(mid)
        # Below the share where one GPU holds the weights the report describes the tensor-parallel
        # layout it suggests instead (more KV, not less): that is "too low" too.
        if fit.verdict != "needs_tensor_parallel" and fit.kv_cache_bytes / GIB > kv_gib:
            hi = mid
        else:
            lo = mid
    util = round(hi, 3)
    return util, plan(util)


@pytest.mark.parametrize("case", ["kv_cache_too_small", "no_kv_memory"])
def test_launch_that_must_fail_is_diagnosed(case, gpu_env, report, out_dir):
    """max_model_len larger than the KV cache; a utilisation too low for any KV cache."""
    if case == "kv_cache_too_small":
        # A 7B shape with a 32,768-token context: KV for 0.4 of it is about 1.6 GiB, far more than the
        # fit engine's error (the 1B's 8,192 tokens needed 0.1 GiB, within it, and landed on no KV at all).
        model = str(model_dir("mistral-7b-shape"))
        util, fit = _utilisation_for_kv_tokens(model, 0.4)
    else:
        model = str(model_dir("llama-3.2-1b"))
        util, fit = 0.02, None

    async def run():
        sup = Supervisor(sys.executable)
        config = LaunchConfig(model=model, served_model_name="l1b", port=free_port(), gpu_memory_utilization=util,
                              enforce_eager=True)
        t0 = time.monotonic()
        status = await sup.start(config, timeout_s=600)
        seconds = time.monotonic() - t0
        save_log(out_dir, f"fail-{case}", sup)
        if sup.running:  # it started after all: never leave it holding the GPU for the next test
            await sup.stop()
        return status, seconds, sup

    status, seconds, sup = asyncio.run(run())
    assert status.state == ServerState.CRASHED
    assert status.diagnosis is not None and status.diagnosis.cause == case, status.diagnosis
    assert not group_members(sup._pgid) if sup._pgid else True
    entry = {"utilisation": util, "seconds_to_diagnosis": round(seconds, 1), "cause": status.diagnosis.cause,
             "title": status.diagnosis.problem.title, "fix": status.diagnosis.changes}
    if fit is not None:
        entry.update(predicted_verdict=fit.verdict, predicted_kv_tokens=fit.kv_cache_tokens)
        assert fit.verdict != "fits"
    report.add(f"launch_fails_{case}", **entry)


def _compute_apps() -> list[str]:
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,gpu_uuid", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_tensor_parallel_serves_matches_fit_and_stops_every_worker(gpu_env, report, out_dir):
    """tensor_parallel_size=2 on a 2-GPU host: ready, chat, the KV cache the fit engine predicted, and
    after stop no worker process left on either GPU and both GPUs' memory back."""
    gpus = scan_gpus().gpus
    if len(gpus) < 2:
        pytest.skip(f"needs 2 GPUs, this host has {len(gpus)}")
    model = str(model_dir("llama-3.2-1b"))
    fit = plan_fit(load_model_spec(model), list(gpus[:2]), LaunchSettings(tensor_parallel_size=2))

    async def run() -> dict:
        baseline = [g.memory_used_bytes for g in gpus[:2]]
        config = LaunchConfig(model=model, served_model_name="l1b-tp2", port=free_port(), tensor_parallel_size=2,
                              cuda_devices=(gpus[0].index, gpus[1].index))
        sup, status, ready_s = await start_ready(config, out_dir, "tp2-l1b-server", 900)
        pgid = sup._pgid
        workers = group_members(pgid)
        busy = [g.memory_used_bytes for g in scan_gpus().gpus[:2]]
        # the Dashboard's GPU charts are fed by scan_gpus(): under load, real NVML must show both cards busy
        peak_util = [0, 0]
        sampling = True

        def sample() -> None:
            while sampling:
                for i, g in enumerate(scan_gpus().gpus[:2]):
                    peak_util[i] = max(peak_util[i], g.utilization_percent or 0)
                time.sleep(0.1)

        sampler = asyncio.create_task(asyncio.to_thread(sample))
        try:
            async with ChatClient(status.url) as client:
                reply = [d.content async for d in client.stream(
                    "l1b-tp2", [{"role": "user", "content": "Hello!"}], ChatParams(max_tokens=32))]
                assert "".join(reply) and client.last_stats.completion_tokens == 32
                for _ in range(4):  # long enough for NVML's utilisation window (about a second)
                    [d async for d in client.stream("l1b-tp2", [{"role": "user", "content": "Go on."}],
                                                    ChatParams(max_tokens=512))]
        finally:
            sampling = False
            await sampler
            stopped = await sup.stop()
        await asyncio.sleep(2)
        left = group_members(pgid)
        apps = _compute_apps()
        after = [g.memory_used_bytes for g in scan_gpus().gpus[:2]]
        logged = parse_memory_lines("\n".join(sup.lines))
        return {"launch_to_ready_s": round(ready_s, 1), "processes_while_serving": len(workers),
                "processes_left": left, "compute_apps_left": apps, "state_after_stop": stopped.state.value,
                "gpu_memory_released": stopped.gpu_memory_released,
                "gpu_used_gib": {"before": [b / GIB for b in baseline], "serving": [b / GIB for b in busy],
                                 "after_stop": [b / GIB for b in after]},
                "logged_kv_tokens": logged.kv_cache_tokens, "logged_kv_gib": logged.kv_cache_gib,
                "predicted_kv_tokens": fit.kv_cache_tokens, "predicted_kv_gib": fit.kv_cache_bytes / GIB,
                "predicted_verdict": fit.verdict, "predicted_tp": fit.tensor_parallel_size,
                "peak_utilisation_percent_per_card": peak_util}

    result = asyncio.run(run())
    report.add("tensor_parallel_2", **result)
    assert result["state_after_stop"] == ServerState.STOPPED.value
    assert not result["processes_left"] and not result["compute_apps_left"]
    assert all(a <= b + 0.5 for a, b in zip(result["gpu_used_gib"]["after_stop"], result["gpu_used_gib"]["before"]))
    assert all(s > b + 1 for s, b in zip(result["gpu_used_gib"]["serving"], result["gpu_used_gib"]["before"]))
    assert result["logged_kv_tokens"], "vLLM logged no KV cache size"
    assert result["predicted_tp"] == 2
    assert all(u > 0 for u in result["peak_utilisation_percent_per_card"]), result  # every card, from real NVML
    assert abs(result["predicted_kv_tokens"] / result["logged_kv_tokens"] - 1) <= 0.05, result


def test_killed_llmdesk_with_tensor_parallel_leaves_no_worker_on_any_gpu(gpu_env, report, out_dir):
    """#24: SIGKILL to `llmdesk serve --tensor-parallel-size 2`: the API server dies with its parent, and its
    engine and both GPU workers after it; no compute process is left on either GPU, their memory comes back."""
    gpus = scan_gpus().gpus
    if len(gpus) < 2:
        pytest.skip(f"needs 2 GPUs, this host has {len(gpus)}")
    model = str(model_dir("llama-3.2-1b"))
    baseline = [g.memory_used_bytes for g in gpus[:2]]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmdesk", "serve", model, "--served-model-name", "l1b-tp2", "--port",
         str(free_port()), "--tensor-parallel-size", "2", "--runtime", sys.executable],
        stdout=subprocess.PIPE, stderr=open(out_dir / "tp2-killed.stderr", "w"), text=True, start_new_session=True,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=f"{gpus[0].index},{gpus[1].index}"))
    _wait_line(proc, "http", 900)
    (record,) = records.live_records()
    serving = len(group_members(record.pid))
    # what the workers keep in /dev/shm (vLLM's shared-memory broadcast): the Kubernetes export's emptyDir
    # for /dev/shm is sized from this
    shm_used_gib = shutil.disk_usage("/dev/shm").used / GIB
    proc.kill()
    proc.wait(10)
    t_kill = time.monotonic()
    while (group_members(record.pid) or _compute_apps()) and time.monotonic() - t_kill < 180:
        time.sleep(0.5)
    gone_s = time.monotonic() - t_kill
    time.sleep(2)
    after = [g.memory_used_bytes for g in scan_gpus().gpus[:2]]
    result = {"processes_while_serving": serving, "shm_used_while_serving_gib": round(shm_used_gib, 3),
              "processes_left": group_members(record.pid),
              "compute_apps_left": _compute_apps(), "gone_s": round(gone_s, 1),
              "gpu_used_gib": {"before": [b / GIB for b in baseline], "after_kill": [a / GIB for a in after]}}
    report.add("tensor_parallel_2_killed", **result)
    assert not result["processes_left"] and not result["compute_apps_left"], result
    assert all(a <= b + 0.5 * GIB for a, b in zip(after, baseline)), result
    assert find_leftover() is None and records.live_records() == []
