"""#23: a vLLM imported ahead of Start (core/server/preload.py), driven through the real Supervisor and the
stand-in, whose import is made slow (FAKE_VLLM_IMPORT_S) as a real vLLM's is."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from llmdesk.core.server import preload as preloading
from llmdesk.core.server.diagnose import Phase
from llmdesk.core.server import supervisor as sup_mod
from llmdesk.core.server.processes import group_members
from llmdesk.core.server.supervisor import ServerState
from tests.integration.test_supervisor import config, make_sup

pytestmark = pytest.mark.asyncio
IMPORT_S = 1.5


@pytest.fixture
def slow_import(monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_IMPORT_S", str(IMPORT_S))


async def ready_preload(sup) -> preloading.Preload:
    preload = sup._preload
    assert preload is not None
    assert await asyncio.wait_for(asyncio.shield(preload.ready), 30)
    return preload


async def timed_start(sup, cfg) -> float:
    t0 = time.monotonic()
    status = await sup.start(cfg, timeout_s=60)
    assert status.state == ServerState.READY, status.diagnosis
    return time.monotonic() - t0


async def test_a_preloaded_vllm_takes_the_start_and_the_next_one_is_imported_after_the_stop(
        tmp_path, groups, slow_import):
    sup = make_sup(tmp_path, groups=groups)
    cfg = config()
    await timed_start(sup, cfg)
    assert not sup.status.timeline.preloaded
    cold = sup.status.timeline.seconds(Phase.STARTING)  # up to vLLM's first line: the import among it
    assert cold >= IMPORT_S
    await sup.stop()

    sup.keep_preloaded = True
    await sup.preload(cfg)
    preload = await ready_preload(sup)
    await timed_start(sup, cfg)
    assert sup.status.pid == preload.proc.pid and sup.status.timeline.preloaded
    assert "vLLM preloaded" in sup.status.timeline.summary()
    warm = sup.status.timeline.seconds(Phase.STARTING)
    assert warm < IMPORT_S / 2, (cold, warm)  # the import was done before Start
    # each kind of start has its own history: the estimate of a preloaded start has no import in it
    assert sup_mod.start_history(cfg).last.preloaded is False
    assert sup_mod.start_history(cfg, preloaded=True).last.preloaded is True
    async with httpx.AsyncClient() as client:  # it serves as a server started afresh does
        reply = await client.get(sup.status.url + "/models")
    assert reply.status_code == 200 and reply.json()["data"][0]["id"] == "demo"
    assert any("Starting vLLM" in line or "vLLM API server" in line for line in sup.lines)

    pgid = sup.status.pid
    await sup.stop()
    assert group_members(pgid) == []  # stopped as any server: nothing of its group is left
    await asyncio.wait_for(sup._preloading, 10)  # and the next start's vLLM is imported meanwhile
    following = await ready_preload(sup)
    assert following.proc.pid != pgid and following.alive
    await sup.close_preload()
    assert following.proc.returncode is not None and group_members(following.proc.pid) == []


async def test_a_preload_imported_for_other_gpus_is_not_used(tmp_path, groups, slow_import):
    sup = make_sup(tmp_path, groups=groups)
    await sup.preload(config(cuda_devices=(0,)))
    old = await ready_preload(sup)
    await timed_start(sup, config(cuda_devices=(1,)))  # CUDA_VISIBLE_DEVICES may be read while importing
    assert not sup.status.timeline.preloaded and sup.status.pid != old.proc.pid
    assert old.proc.returncode is not None  # the unusable one is gone, not left waiting
    await sup.stop()


async def test_a_preload_that_cannot_import_vllm_falls_back_to_a_fresh_start(tmp_path, groups, monkeypatch):
    sup = make_sup(tmp_path, groups=groups)
    cfg = config()
    monkeypatch.setenv("FAKE_VLLM_IMPORT_S", "not a number")  # the stand-in's import raises
    await sup.preload(cfg)
    preload = sup._preload
    assert not await asyncio.wait_for(asyncio.shield(preload.ready), 30)
    assert any(preloading.FAILED in line for line in preload.lines)
    monkeypatch.delenv("FAKE_VLLM_IMPORT_S")
    await timed_start(sup, cfg)  # the environment differs now as well; either way: a fresh start
    assert not sup.status.timeline.preloaded
    await sup.stop()


async def test_a_preload_killed_while_waiting_is_replaced_by_a_fresh_start(tmp_path, groups, slow_import):
    sup = make_sup(tmp_path, groups=groups)
    cfg = config()
    await sup.preload(cfg)
    preload = await ready_preload(sup)
    os.killpg(preload.proc.pid, signal.SIGKILL)
    await preload.proc.wait()
    await timed_start(sup, cfg)
    assert not sup.status.timeline.preloaded
    await sup.stop()


async def test_a_start_cancelled_while_the_preload_imports_leaves_no_process(tmp_path, groups, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_IMPORT_S", "30")  # still importing when Start comes, and when it is cancelled
    sup = make_sup(tmp_path, groups=groups)
    cfg = config()
    await sup.preload(cfg)
    waiting = sup._preload.proc
    start = asyncio.create_task(sup.start(cfg, timeout_s=60))
    await asyncio.sleep(1.0)  # waiting for the import to finish
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert waiting.returncode is not None and group_members(waiting.pid) == []
    assert sup._preload is None
