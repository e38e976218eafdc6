"""Servers nobody stops and servers that fight over a port: several `llmdesk serve` at once, a killed
CLI, a stale record naming somebody else's process, and another server answering on our port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmdesk.core.server import records
from llmdesk.core.server import supervisor as sup_mod
from llmdesk.core.server.launch import LaunchConfig
from llmdesk.core.server.processes import group_members, process_start
from llmdesk.core.server.supervisor import ServerState, Supervisor, find_leftovers, stop_leftover
from tests.fakes.server_records import record_files
from tests.fakes.standin_server import DEMO_MODEL, free_port, kill_group, start_standin
from tests.fakes.vllm_standin.runtime import make_fake_runtime

ROOT = Path(__file__).resolve().parents[2]


def serve(python: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmdesk", "serve", DEMO_MODEL, "--served-model-name", "demo",
                             "--port", str(port), "--runtime", str(python)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_url(proc: subprocess.Popen, timeout: float = 30) -> str:
    line = proc.stdout.readline()  # the URL, once ready (nothing else goes to stdout)
    assert line, proc.stderr.read()
    return line.strip()


def test_two_servers_on_two_ports_have_a_record_each_and_a_killed_clis_server_is_found(tmp_path, launched):
    # ignore_sigint: the server also ignores the SIGTERM sent when its parent dies, as a hung vLLM would
    python = make_fake_runtime(tmp_path / "rt", mode="ignore_sigint", delay_scale=0.002)
    ports = [free_port(), free_port()]
    clis = [serve(python, port) for port in ports]
    launched.extend(clis)
    for cli, port in zip(clis, ports):
        assert wait_for_url(cli) == f"http://127.0.0.1:{port}/v1"
    by_port = {r.port: r for r in records.live_records()}
    assert set(by_port) == set(ports) and all(r.pid and group_members(r.pid) for r in by_port.values())
    launched.extend([])
    first = by_port[ports[0]]
    os.kill(clis[0].pid, signal.SIGKILL)  # the first CLI dies without stopping its server
    clis[0].wait(5)
    leftovers = find_leftovers()
    assert [(r.port, r.pid) for r in leftovers] == [(ports[0], first.pid)]  # the other CLI still owns its own
    assert asyncio.run(stop_leftover(leftovers[0], grace_s=0.3, term_grace_s=0.3))
    assert group_members(first.pid) == []
    assert [r.port for r in records.live_records()] == [ports[1]]


def test_two_starts_on_one_port_at_the_same_moment_one_is_refused_and_one_vllm_runs(tmp_path, launched):
    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.002)
    port = free_port()
    clis = [serve(python, port) for _ in range(2)]
    launched.extend(clis)
    refused = None
    deadline = time.monotonic() + 30
    while refused is None and time.monotonic() < deadline:
        refused = next((c for c in clis if c.poll() is not None), None)
        time.sleep(0.05)
    assert refused is not None, "neither start was refused"
    winner = next(c for c in clis if c is not refused)
    out, err = refused.communicate(timeout=10)
    assert refused.returncode == 1 and out == ""
    assert f"Port {port} is already used by llmdesk" in err and "Traceback" not in err
    assert "loading weights" not in err  # the refused start spawned no vLLM
    assert wait_for_url(winner) == f"http://127.0.0.1:{port}/v1"
    (record,) = records.live_records()
    assert record.pid and len(group_members(record.pid)) >= 1
    logs = list((Path(os.environ["LLMDESK_HOME"]) / "log").glob("server-*.log"))
    assert len(logs) == 1  # one vLLM was started, not two
    winner.send_signal(signal.SIGINT)
    assert winner.wait(15) == 0
    assert record_files() == []


def test_a_stale_record_naming_an_unrelated_vllm_looking_process_never_gets_it_signalled(tmp_path):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--not-ours", "vllm"],
                                start_new_session=True)
    try:
        path = records.record_file(8123)
        path.parent.mkdir(parents=True, exist_ok=True)
        # a record from before a reboot: the same process id, another process start
        path.write_text(json.dumps({"port": 8123, "host": "127.0.0.1", "owner_pid": 999_999, "owner_start": "x:1",
                                    "claimed_at": 1.0, "pid": stranger.pid, "pid_start": "old-boot:12345",
                                    "started_at": 1.0, "model": "m"}))
        assert process_start(stranger.pid) != "old-boot:12345"
        assert find_leftovers() == []
        assert not path.exists()
        time.sleep(0.2)
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait(5)


def test_a_stopped_leftover_whose_pid_was_reused_is_not_signalled(tmp_path):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "vllm"], start_new_session=True)
    try:
        record = records.ServerRecord(port=8124, host="127.0.0.1", owner_pid=999_999, owner_start="x:1",
                                      claimed_at=1.0, pid=stranger.pid, pid_start="old-boot:1")
        assert asyncio.run(stop_leftover(record, grace_s=0.2, term_grace_s=0.2))
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(5)


@pytest.mark.asyncio
async def test_ready_only_when_the_server_we_started_answers(tmp_path, monkeypatch):
    """Another server (serving the same model name) takes the port between our check and our listen:
    its answers must not make our start READY; ours fails to listen and that is what is reported."""
    foreign, root = start_standin(tmp_path / "foreign")
    port = int(root.rsplit(":", 1)[1])
    monkeypatch.setattr(sup_mod, "port_is_free", lambda host, port: True)  # the race: it was free a moment ago
    sup = Supervisor(str(make_fake_runtime(tmp_path / "rt", delay_scale=0.002)), health_interval_s=0.05,
                     grace_s=1, term_grace_s=0.5)
    states = []
    sup.subscribe(on_status=lambda st: states.append(st.state))
    try:
        status = await sup.start(LaunchConfig(model=DEMO_MODEL, served_model_name="demo", port=port), timeout_s=30)
        assert ServerState.READY not in states
        assert status.state is ServerState.CRASHED and status.diagnosis.cause == "port_in_use"
        assert foreign.poll() is None  # the other server is left alone
        assert record_files() == []
    finally:
        kill_group(foreign)


@pytest.mark.asyncio
async def test_a_second_start_in_one_process_on_a_claimed_port_is_refused(tmp_path):
    python = str(make_fake_runtime(tmp_path / "rt", delay_scale=0.002))
    port = free_port()
    first, second = Supervisor(python, health_interval_s=0.05), Supervisor(python, health_interval_s=0.05)
    try:
        a, b = await asyncio.gather(first.start(LaunchConfig(model=DEMO_MODEL, served_model_name="demo", port=port)),
                                    second.start(LaunchConfig(model=DEMO_MODEL, served_model_name="demo", port=port)))
        states = sorted([a.state, b.state], key=lambda s: s.value)
        assert states == [ServerState.CRASHED, ServerState.READY]
        refused = a if a.state is ServerState.CRASHED else b
        assert refused.pid is None and refused.diagnosis.problem.title == f"Port {port} is already used by llmdesk"
    finally:
        await first.stop()
        await second.stop()
    assert record_files() == []
