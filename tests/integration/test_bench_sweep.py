"""A whole benchmark run against the vLLM stand-in: the sweep's levels, its modes (chat, duration,
Poisson rates), the server's metrics during a level, and every way a run goes wrong (stop, a dying
server, bad settings) keeping the finished levels."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from types import SimpleNamespace

import pytest

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.bench.sweep import BenchConfig, max_num_seqs_from_log, run_bench
from llmdesk.core.bench.workload import Workload
from tests.fakes.standin_server import kill_group, start_standin

SMALL = Workload(input_len=64, output_len=16, prompts=4, warmups=1)


@pytest.fixture
def standin(tmp_path):
    proc, root = start_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": "400", "FAKE_VLLM_TTFT_S": "0.02"})
    try:
        yield SimpleNamespace(proc=proc, root=root)
    finally:
        kill_group(proc)


def bench(config: BenchConfig, **kwargs):
    return asyncio.run(run_bench(config, **kwargs))


def test_a_sweep_measures_every_level_with_the_servers_own_metrics(standin):
    events = []
    run = bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1, 2, 4), measure_energy=False,
                            slo_ms={"ttft": 1000}), on_event=lambda kind, data: events.append(kind))
    assert run.status == "finished" and run.model == "demo" and run.problem is None
    assert [lv["concurrency"] for lv in run.levels] == [1, 2, 4]
    for level in run.levels:
        assert level["completed"] == 4 and level["failed"] == 0
        assert level["total_output_tokens"] == 4 * 16  # ignore_eos: exactly the output length
        assert level["total_input_tokens"] == 4 * 64  # the BOS counted in, as vLLM counts it
        assert level["server"]["samples"] >= 1 and level["server"]["problem"] is None
        assert level["request_goodput"] is not None
    assert run.levels[2]["output_throughput"] > 2.5 * run.levels[0]["output_throughput"]
    assert set(run.saturation) == {"knee", "reason", "best_within_limits"}
    assert run.saturation["best_within_limits"] == 4
    assert events.count("level") == 3 and events.count("done") == 3 and "progress" in events


def test_the_chat_endpoint_is_sent_text_decoded_by_the_server(standin):
    run = bench(BenchConfig(standin.root, workload=Workload(input_len=64, output_len=8, prompts=2, endpoint="chat"),
                            concurrencies=(2,), measure_energy=False))
    level = run.levels[0]
    assert run.status == "finished" and level["completed"] == 2
    assert level["total_output_tokens"] == 16
    assert level["total_input_tokens"] > 2 * 50  # text of ~63 tokens plus the chat template's


def test_a_level_can_last_a_duration_instead_of_a_prompt_count(standin):
    run = bench(BenchConfig(standin.root, workload=Workload(input_len=32, output_len=8, duration_s=1.0),
                            concurrencies=(4,), measure_energy=False))
    level = run.levels[0]
    assert level["completed"] > 8  # ~0.04 s a request, 4 at a time, for a second
    assert 0.9 < level["duration"] < 2.0


def test_poisson_request_rates_are_levels_too(standin):
    run = bench(BenchConfig(standin.root, workload=Workload(input_len=32, output_len=4, prompts=20),
                            concurrencies=(), rates=(20.0, 40.0), measure_energy=False))
    assert run.mode == "rate" and [lv["rate"] for lv in run.levels] == [20.0, 40.0]
    # 20 requests arriving at 20/s take about a second; at 40/s about half.
    assert run.levels[0]["duration"] > run.levels[1]["duration"]
    assert 0.5 < run.levels[0]["duration"] < 2.0


def test_stopping_aborts_the_level_in_flight_and_keeps_the_finished_ones(standin):
    async def main():
        stop = asyncio.Event()

        def on_event(kind, data):
            if kind == "done":
                stop.set()

        return await run_bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1, 2, 4), measure_energy=False),
                               stop=stop, on_event=on_event)

    run = asyncio.run(main())
    assert run.status == "stopped" and len(run.levels) == 1


def test_stop_is_noticed_while_a_levels_prompts_are_still_being_made(standin, monkeypatch):
    """Decoding hundreds of prompts through the server takes seconds: Stop must not wait for it."""
    import time

    import llmdesk.core.bench.sweep as sweep

    made = sweep.as_text

    async def slow(*args, **kwargs):
        await asyncio.sleep(30)
        return await made(*args, **kwargs)

    monkeypatch.setattr(sweep, "as_text", slow)

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        return await run_bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1,), measure_energy=False),
                               stop=stop)

    began = time.monotonic()
    run = asyncio.run(main())
    assert run.status == "stopped" and run.levels == [] and time.monotonic() - began < 10


def test_a_server_that_dies_mid_run_fails_the_run_with_a_reason_and_keeps_the_levels(standin):
    def on_event(kind, data):
        if kind == "done":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(standin.proc.pid, signal.SIGKILL)

    run = bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1, 2, 4), measure_energy=False),
                on_event=on_event)
    assert run.status == "failed" and len(run.levels) == 1
    assert run.problem["title"] == "The server stopped answering"
    assert "kept" in run.problem["fix"]


def test_bad_settings_are_refused_before_anything_is_sent(standin):
    with pytest.raises(BadInput, match="does not serve"):
        bench(BenchConfig(standin.root, model="nope", workload=SMALL, measure_energy=False))
    with pytest.raises(BadInput) as err:
        bench(BenchConfig(standin.root, workload=Workload(input_len=2000, output_len=100), measure_energy=False))
    assert "max-model-len is 2,048" in err.value.problem.explanation
    with pytest.raises(BadInput):
        bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(0,)))
    with pytest.raises(BadInput):
        bench(BenchConfig(standin.root, workload=Workload(range_ratio=1.5)))


def test_no_server_and_a_refused_key_are_problems_that_say_so(tmp_path):
    with pytest.raises(ProblemError) as err:
        bench(BenchConfig("http://127.0.0.1:9", workload=SMALL))
    assert "No server" in err.value.problem.title or "reach" in err.value.problem.title.lower()
    proc, root = start_standin(tmp_path, "ok", "--api-key", "right")
    try:
        with pytest.raises(ProblemError) as err:
            bench(BenchConfig(root, api_key="wrong", workload=SMALL, measure_energy=False))
        assert "key" in err.value.problem.title.lower()
        run = bench(BenchConfig(root, api_key="right", workload=SMALL, concurrencies=(1,), measure_energy=False))
        assert run.levels[0]["completed"] == 4
    finally:
        kill_group(proc)


def test_the_sweep_stops_at_the_servers_max_num_seqs(standin, tmp_path):
    run = bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1, 2, 4), max_num_seqs=2, measure_energy=False))
    assert [lv["concurrency"] for lv in run.levels] == [1, 2]
    assert "max-num-seqs" in run.notes[0]
    with pytest.raises(BadInput, match="above the server's limit"):
        bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(4, 8), max_num_seqs=2, measure_energy=False))
    log = tmp_path / "server.log"
    log.write_text("(APIServer pid=1) INFO 11-27 22:38:29 [api_utils.py:273] non-default args: "
                   "{'model': '/m', 'max_num_seqs': 48, 'port': 8001}\n")
    assert max_num_seqs_from_log(log) == 48
    assert max_num_seqs_from_log(tmp_path / "missing.log") is None


def test_each_level_gets_its_energy_per_token_from_the_gpus_counters(standin):
    from llmdesk.core.bench.energy import EnergyMeter
    from tests.fakes.fake_nvml import FakeDevice, FakeNvml

    nvml = FakeNvml([FakeDevice(power_usage_mw=300_000), FakeDevice(power_usage_mw=100_000)])
    meter = EnergyMeter(nvml=nvml, sample_interval_s=0.02)
    run = bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1, 4)), energy_meter=meter)
    meter.close()
    for level in run.levels:
        assert level["mean_watts"] == pytest.approx(400, rel=0.05)  # both GPUs, from the counters
        assert level["energy"]["source"] == "counter"
        joules = level["energy"]["joules"]
        assert level["energy_j_per_output_token"] == pytest.approx(joules / level["total_output_tokens"])
        assert level["output_tokens_per_wh"] == pytest.approx(level["total_output_tokens"] / (joules / 3600))
    # Four at a time makes the same tokens in less time: fewer joules each.
    assert run.levels[1]["energy_j_per_output_token"] < run.levels[0]["energy_j_per_output_token"]
    assert run.energy_source == "counter"


def test_without_a_gpu_the_run_says_why_energy_is_missing(standin):
    from llmdesk.core.bench.energy import EnergyMeter
    from tests.fakes.fake_nvml import FakeNvml

    meter = EnergyMeter(nvml=FakeNvml(errors={"nvmlInit": FakeNvml.NVMLError_LibraryNotFound()}))
    run = bench(BenchConfig(standin.root, workload=SMALL, concurrencies=(1,)), energy_meter=meter)
    assert run.levels[0]["energy_j_per_output_token"] is None
    assert any(note.startswith("Energy is not measured: No NVIDIA GPU could be read") for note in run.notes)
