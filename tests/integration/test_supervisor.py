"""The real Supervisor driving the stand-in vLLM (tests/fakes/vllm_standin) through the real code path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from llmdesk.core.server import supervisor as sup_mod
from llmdesk.core.server.diagnose import Phase
from llmdesk.core.server.launch import LaunchConfig
from llmdesk.core.server.processes import group_members
from llmdesk.core.server.supervisor import ServerState, Supervisor, find_leftover, stop_leftover
from tests.fakes.server_records import no_records, only_record
from tests.fakes.vllm_standin.runtime import make_fake_runtime
from tests.fakes.standin_server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.asyncio


def config(port: int | None = None, **kw) -> LaunchConfig:
    return LaunchConfig(model="/models/demo", served_model_name="demo", port=port or free_port(), **kw)


def make_sup(tmp_path: Path, mode: str = "ok", groups: list[int] | None = None, **kw) -> Supervisor:
    python = make_fake_runtime(tmp_path / f"rt-{mode}", mode=mode, delay_scale=0.002)
    kw.setdefault("health_interval_s", 0.05)
    kw.setdefault("grace_s", 3)
    kw.setdefault("term_grace_s", 1)
    sup = Supervisor(str(python), **kw)
    if groups is not None:
        sup.subscribe(on_status=lambda st: st.pid and st.pid not in groups and groups.append(st.pid))
    return sup


async def test_start_ready_stop_leaves_nothing(tmp_path, groups):
    sup = make_sup(tmp_path, groups=groups)
    seen_states, seen_phases, lines = [], [], []
    sup.subscribe(on_status=lambda st: (seen_states.append(st.state), seen_phases.append(st.phase)),
                  on_line=lines.append)
    cfg = config()
    status = await sup.start(cfg, timeout_s=20)
    assert status.state is ServerState.READY, status.diagnosis
    assert status.url == f"http://127.0.0.1:{cfg.port}/v1"
    phases = [p for i, p in enumerate(seen_phases) if p is not None and (i == 0 or seen_phases[i - 1] != p)]
    order = [Phase.STARTING, Phase.LOADING_WEIGHTS, Phase.PROFILING, Phase.CAPTURING_GRAPHS,
             Phase.WARMING_UP, Phase.STARTING_API, Phase.READY]
    assert [p for p in phases if p in order] == sorted(set(phases) & set(order), key=order.index)
    assert phases[0] is Phase.STARTING and phases[-1] is Phase.READY and Phase.LOADING_WEIGHTS in phases
    assert lines and list(sup.lines)[-len(lines):] == lines[-len(sup.lines):]
    assert sup.log_path is not None and "Application startup complete" in sup.log_path.read_text()
    record = only_record()
    assert record["pid"] == status.pid and record["port"] == cfg.port
    assert record["owner_pid"] == os.getpid()
    assert find_leftover() is None  # owned by a live supervisor
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{cfg.port}/v1/models")).status_code == 200

    pgid = status.pid
    stopped = await sup.stop()
    assert stopped.state is ServerState.STOPPED and stopped.diagnosis is None
    assert stopped.exit_code in (0, -signal.SIGINT)
    assert group_members(pgid) == []
    assert no_records()
    assert ServerState.STOPPING in seen_states and seen_states[-1] is ServerState.STOPPED
    # the ETA of the same configuration is remembered for the next start, phase by phase
    assert sup_mod.last_start_seconds(cfg) is not None and sup_mod.last_start_seconds(cfg) > 0
    assert status.timeline is not None and status.timeline.total_s == pytest.approx(sup_mod.last_start_seconds(cfg))
    estimate = sup_mod.start_estimate(cfg)
    assert [p for p, _ in estimate.phases] == [p for p, _ in status.timeline.phases]
    assert estimate.phases[0][0] is Phase.STARTING and Phase.LOADING_WEIGHTS in dict(estimate.phases)
    again = await sup.start(cfg, timeout_s=20)
    assert again.state is ServerState.READY and again.estimate is not None
    assert again.eta_s == pytest.approx(estimate.total_s)
    await sup.stop()


async def test_port_taken_is_reported_without_spawning(tmp_path, groups):
    sup = make_sup(tmp_path, groups=groups)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        status = await sup.start(config(port))
    assert status.state is ServerState.CRASHED and status.pid is None
    assert status.diagnosis.cause == "port_in_use"
    suggested = status.diagnosis.changes["port"]
    assert suggested > port
    assert not sup.lines and no_records()


@pytest.mark.parametrize(("mode", "cause", "changes"), [
    ("oom_loading", "cuda_oom_loading", None),
    ("kv_too_small", "kv_cache_too_small", {"max_model_len": 30224}),
    ("no_kv_memory", "no_kv_memory", None),
])
async def test_failed_starts_are_diagnosed(tmp_path, groups, mode, cause, changes):
    sup = make_sup(tmp_path, mode, groups=groups)
    status = await sup.start(config(), timeout_s=20)
    assert status.state is ServerState.CRASHED
    assert status.exit_code == 1
    assert status.diagnosis is not None and status.diagnosis.cause == cause
    if changes is not None:
        assert status.diagnosis.changes == changes
    assert group_members(status.pid) == []
    assert no_records()


async def test_crash_mid_stream_is_a_crash_although_exit_0(tmp_path, groups):
    sup = make_sup(tmp_path, "crash_mid_stream", groups=groups)
    cfg = config()
    status = await sup.start(cfg, timeout_s=20)
    assert status.state is ServerState.READY
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50, "stream": True}
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.HTTPError):
            async with client.stream("POST", f"http://127.0.0.1:{cfg.port}/v1/chat/completions", json=body) as r:
                async for _ in r.aiter_bytes():
                    pass
    await asyncio.wait_for(sup.watch(), timeout=10)
    assert sup.status.state is ServerState.CRASHED
    assert sup.status.exit_code == 0
    assert sup.status.diagnosis is not None and sup.status.diagnosis.cause == "engine_died"
    assert group_members(status.pid) == []
    assert no_records()


async def test_ignore_sigint_escalates_to_sigkill(tmp_path, groups):
    sup = make_sup(tmp_path, "ignore_sigint", groups=groups, grace_s=0.3, term_grace_s=0.3)
    status = await sup.start(config(), timeout_s=20)
    assert status.state is ServerState.READY
    t0 = time.monotonic()
    stopped = await sup.stop()
    assert stopped.state is ServerState.STOPPED
    assert stopped.exit_code == -signal.SIGKILL
    assert time.monotonic() - t0 < 5
    assert group_members(status.pid) == []


async def test_stop_while_starting(tmp_path, groups):
    python = make_fake_runtime(tmp_path / "rt-slow", mode="slow_start")
    sup = Supervisor(str(python), health_interval_s=0.05, grace_s=3, term_grace_s=1)
    sup.subscribe(on_status=lambda st: st.pid and st.pid not in groups and groups.append(st.pid))
    start = asyncio.create_task(sup.start(config(), timeout_s=20))
    while sup.status.pid is None:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    stopped = await sup.stop()
    result = await asyncio.wait_for(start, 10)
    assert stopped.state is ServerState.STOPPED and result.state is ServerState.STOPPED
    assert result.diagnosis is None
    assert group_members(result.pid) == []


LOST_GUI = textwrap.dedent("""
    import asyncio, sys, time
    from llmdesk.core.server.launch import LaunchConfig
    from llmdesk.core.server.supervisor import Supervisor
    async def main():
        sup = Supervisor(sys.argv[1], health_interval_s=0.05)
        st = await sup.start(LaunchConfig(model="/models/demo", served_model_name="demo", port=int(sys.argv[2])))
        print(st.state.value, st.pid, flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
""")


async def test_leftover_of_a_killed_gui_is_found_and_stopped(tmp_path, groups):
    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.002)
    port = free_port()
    gui = subprocess.Popen([sys.executable, "-c", LOST_GUI, str(python), str(port)], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    groups.append(gui.pid)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(gui.stdout.readline), 20)
        state, pid = line.split()
        assert state == "ready"
        groups.append(int(pid))
    finally:
        gui.kill()  # the GUI dies without stopping its server
        gui.wait(5)
    leftover = find_leftover()
    assert leftover is not None
    assert leftover.pid == leftover.pgid == int(pid) and leftover.port == port and leftover.model == "/models/demo"
    assert group_members(leftover.pgid)
    assert await stop_leftover(leftover, grace_s=3, term_grace_s=1)
    assert group_members(leftover.pgid) == []
    assert no_records()
    assert find_leftover() is None


async def test_a_stale_record_is_removed(tmp_path):
    from llmdesk.core.server.records import record_file

    record_file(8000).parent.mkdir(parents=True, exist_ok=True)
    record_file(8000).write_text(json.dumps({"pid": 999999, "port": 8000, "host": "127.0.0.1", "model": "x",
                                             "started_at": 1.0, "owner_pid": 999998, "owner_start": None,
                                             "claimed_at": 1.0}))
    assert find_leftover() is None
    assert no_records()


async def test_stop_waits_for_the_gpu_memory_to_come_back(tmp_path, groups):
    """NVML's view of GPU memory is checked after the stop (a fake probe stands in for the GPU)."""
    readings = iter([1_000, 70_000_000_000, 60_000_000_000, 1_200])  # before, during, freeing, freed
    supervisor = Supervisor(str(make_fake_runtime(tmp_path / "rt", delay_scale=0.005)), grace_s=5,
                            gpu_used_bytes=lambda: next(readings, 1_200))
    status = await supervisor.start(config())
    assert status.state is ServerState.READY
    next(readings)  # the server's own allocation while it served
    stopped = await supervisor.stop()
    assert stopped.state is ServerState.STOPPED and stopped.gpu_memory_released is True


async def test_without_a_gpu_the_release_check_is_skipped(tmp_path, groups):
    supervisor = Supervisor(str(make_fake_runtime(tmp_path / "rt", delay_scale=0.005)), grace_s=5,
                            gpu_used_bytes=lambda: None)
    await supervisor.start(config())
    assert (await supervisor.stop()).gpu_memory_released is None
