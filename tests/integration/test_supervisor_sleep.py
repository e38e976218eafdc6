"""Pause and Resume through the Supervisor (#23): with sleep mode the stand-in vLLM listens on a loopback
port of its own, llmdesk's sleep gate on the address clients use; the gate's changes reach the
supervisor's status on its own loop; nothing is left listening after a stop."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.server.processes import group_members
from llmdesk.core.server.supervisor import ServerState
from tests.fakes.server_records import no_records, only_record
from tests.integration.test_supervisor import config, make_sup

pytestmark = pytest.mark.asyncio


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no holder
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def chat(url: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(url + "/chat/completions", headers=headers, json={
            "model": "demo", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_pause_resume_and_wake_through_the_supervisor(tmp_path, groups, monkeypatch):
    monkeypatch.setenv("VLLM_SERVER_DEV_MODE", "0")  # the child's comes from the config alone
    used = iter([70e9, 70e9, 2e9, 2e9, 2e9] + [2e9] * 50)  # NVML: serving, then paused
    sup = make_sup(tmp_path, groups=groups, gpu_used_bytes=lambda: int(next(used)))
    cfg = config(sleep_mode=True, api_key="sk-test")
    status = await sup.start(cfg, timeout_s=20)
    assert status.state is ServerState.READY, status.diagnosis
    record = only_record()
    assert record["port"] == cfg.port and record["vllm_port"] not in (None, cfg.port) and record["control_token"]
    assert status.sleep["state"] == "awake"
    assert (await chat(status.url, "sk-test")).status_code == 200  # through the gate
    # vLLM's development routes are on its own port only; the gate does not pass them
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"http://127.0.0.1:{cfg.port}/sleep")).status_code == 404

    seen: list[str] = []
    sup.subscribe(on_status=lambda st: st.sleep and (not seen or seen[-1] != st.sleep["state"])
                  and seen.append(st.sleep["state"]))
    result = await sup.pause()
    assert result["state"] == "paused" and result["changed"]
    await wait_for(lambda: sup.status.sleep["state"] == "paused" and sup.status.sleep.get("gpu_freed_bytes"))
    assert sup.status.sleep["gpu_freed_bytes"] == int(68e9)
    reply = await chat(status.url, "sk-test")  # wakes it (wake_on_request is on by default)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    await wait_for(lambda: sup.status.sleep["state"] == "awake")
    assert seen[:4] == ["pausing", "paused", "resuming", "awake"]

    pgid = status.pid
    await sup.stop()
    assert group_members(pgid) == [] and no_records()
    assert port_free(cfg.port) and port_free(record["vllm_port"])  # the gate is gone too
    assert sup.status.state is ServerState.STOPPED
    with pytest.raises(ProblemError):
        await sup.pause()


async def test_a_server_without_sleep_mode_cannot_pause(tmp_path, groups):
    sup = make_sup(tmp_path, groups=groups)
    status = await sup.start(config(), timeout_s=20)
    assert status.state is ServerState.READY and status.sleep is None
    assert only_record()["control_token"] is None
    with pytest.raises(ProblemError, match="cannot pause"):
        await sup.pause()
    await sup.stop()


async def test_a_taken_port_stops_the_start_before_vllm_runs(tmp_path, groups):
    sup = make_sup(tmp_path, groups=groups)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        status = await sup.start(config(port, sleep_mode=True), timeout_s=20)
    assert status.state is ServerState.CRASHED and status.pid is None and no_records()


async def test_a_leftover_that_had_a_gate_can_be_stopped_not_taken_over(tmp_path, groups):
    from llmdesk.core.server.records import ServerRecord

    record = ServerRecord(port=8000, host="127.0.0.1", owner_pid=1, owner_start=None, claimed_at=0.0, pid=12345,
                          vllm_port=41234, control_token="t")
    sup = make_sup(tmp_path, groups=groups)
    with pytest.raises(ProblemError, match="cannot be taken over"):
        await sup.adopt(record)
    assert sup.status.state is ServerState.STOPPED
