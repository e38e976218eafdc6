"""`llmdesk bench` against the stand-in: the --json shape the issue asks for, the table, saved runs
(list, show, compare, export), Ctrl-C keeping the finished levels, and exit codes for bad input."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.standin_server import finished_requests, kill_group, start_standin

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--input-len", "32", "--output-len", "8", "--prompts", "4", "--no-energy"]
DISTRIBUTION = {"mean", "p50", "p90", "p99"}


def llmdesk(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", "bench", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def server(tmp_path):
    proc, root = start_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": "400"})
    try:
        yield root
    finally:
        kill_group(proc)


def test_json_has_every_key_the_issue_names_and_prices_each_level(server):
    done = llmdesk("--url", server, "--concurrency", "1,2", *FAST, "--gpu-cost-per-hour", "2.69", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "saturation_concurrency" in out and out["status"] == "finished"
    assert [lv["concurrency"] for lv in out["levels"]] == [1, 2]
    for level in out["levels"]:
        for key in ("completed", "failed", "request_throughput", "output_throughput", "total_token_throughput"):
            assert isinstance(level[key], (int, float)), key
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            assert DISTRIBUTION <= set(level[key]), key
        assert "energy_j_per_output_token" in level
        # No power measured: the GPU's rent alone, $2.69 an hour over the level's output rate.
        assert level["cost_per_million_output_tokens"] == pytest.approx(2.69 / (level["output_throughput"] * 3600) * 1e6)
    assert out["cost"]["gpu_per_hour"] == 2.69


def test_the_table_and_saved_runs_list_show_compare_and_export(server, tmp_path):
    first = llmdesk("--url", server, "--concurrency", "1,2", *FAST, "--save", "baseline")
    assert first.returncode == 0, first.stderr
    assert "TTFT p50" in first.stdout and "Knee:" in first.stdout
    assert "level 2/2: concurrency 2" in first.stderr and "Saved as" in first.stderr
    second = llmdesk("--url", server, "--concurrency", "2,4", *FAST, "--save", "more")
    assert second.returncode == 0, second.stderr
    listing = json.loads(llmdesk("list", "--json").stdout)
    assert [r["name"] for r in listing["runs"]] == ["more", "baseline"]
    shown = json.loads(llmdesk("show", "baseline", "--json").stdout)
    assert [lv["concurrency"] for lv in shown["levels"]] == [1, 2]
    compared = json.loads(llmdesk("compare", "baseline", "more", "--metric", "ttft_ms.p50", "--json").stdout)
    assert compared["loads"] == [1, 2, 4] and compared["metric"] == "ttft_ms_p50"
    assert compared["runs"][0]["values"][2] is None and compared["runs"][1]["values"][0] is None
    table = llmdesk("compare", "1", "2")
    assert table.returncode == 0 and "output_throughput" in table.stdout
    exported = tmp_path / "run.csv"
    assert llmdesk("export", "baseline", "--format", "csv", "-o", str(exported)).returncode == 0
    again = llmdesk("export", "baseline", "--format", "csv", "-o", str(exported))
    assert again.returncode == 2 and "exists" in again.stderr  # never replaced without --force
    assert llmdesk("export", "baseline", "--format", "csv", "-o", str(exported), "--force").returncode == 0
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    assert [r["concurrency"] for r in rows] == ["1", "2"] and float(rows[0]["ttft_ms_p99"]) > 0
    assert llmdesk("rm", "more").returncode == 0
    assert [r["name"] for r in json.loads(llmdesk("list", "--json").stdout)["runs"]] == ["baseline"]
    missing = llmdesk("show", "nothing-like-it")
    assert missing.returncode == 2 and "No such benchmark run" in missing.stderr


def test_ctrl_c_aborts_the_level_in_flight_and_keeps_and_saves_the_finished_ones(tmp_path):
    proc, root = start_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": "50"})
    try:
        bench = subprocess.Popen([sys.executable, "-m", "llmdesk", "bench", "--url", root, "--concurrency", "1,2",
                                  "--input-len", "32", "--output-len", "40", "--prompts", "3", "--no-energy",
                                  "--save", "cut", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        # Level 1: the warm-up and 3 replies of 40 tokens at 50/s, one at a time (~3 s); then level 2 runs. The
        # signal goes once the server has finished level 1's four, not after a fixed time: on a loaded
        # machine a clock could let it arrive during level 1.
        deadline = time.monotonic() + 60
        while finished_requests(root, "length") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        bench.send_signal(signal.SIGINT)
        out, err = bench.communicate(timeout=20)
    finally:
        kill_group(proc)
    assert bench.returncode == 130, err
    run = json.loads(out)
    assert run["status"] == "stopped" and [lv["concurrency"] for lv in run["levels"]] == [1]
    assert "Traceback" not in err
    assert json.loads(llmdesk("show", "cut", "--json").stdout)["status"] == "stopped"


@pytest.mark.parametrize("argv, words", [
    (["--concurrency", "0"], "out of range"),
    (["--concurrency", "1,x"], "not a whole number"),
    (["--rate", "-1"], "out of range"),
    (["--concurrency", "1", "--rate", "2"], "not allowed with"),
    (["--prompts", "3", "--duration", "5"], "not allowed with"),
    (["--gpu-cost-per-hour", "nan"], "out of range"),
    (["--range-ratio", "1.5"], "out of range"),
])
def test_bad_arguments_exit_2_with_the_reason(argv, words):
    done = llmdesk(*argv)
    assert done.returncode == 2 and words in done.stderr


def test_no_server_and_lengths_beyond_the_context_are_clear_messages(server):
    gone = llmdesk("--url", "http://127.0.0.1:9", *FAST)
    assert gone.returncode == 1 and "error: No server at" in gone.stderr and "Traceback" not in gone.stderr
    long = llmdesk("--url", server, "--input-len", "2000", "--output-len", "100", "--no-energy")
    assert long.returncode == 2 and "longer than the model's context" in long.stderr
    model = llmdesk("--url", server, "--model", "other", *FAST)
    assert model.returncode == 2 and "does not serve 'other'" in model.stderr


def test_the_pages_worker_streams_events_and_stops_when_its_stdin_closes(tmp_path):
    proc, root = start_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": "50"})
    config = {"base_url": root, "concurrencies": [1, 2], "measure_energy": False,
              "workload": {"input_len": 32, "output_len": 20, "prompts": 2}}
    try:
        worker = subprocess.Popen([sys.executable, "-m", "llmdesk", "bench-worker"], cwd=ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        worker.stdin.write(json.dumps({"config": config, "name": "from the page"}) + "\n")
        worker.stdin.flush()
        events = []
        for line in worker.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "done":
                worker.stdin.close()  # Stop
            if events[-1]["event"] in ("run", "problem"):
                break
        worker.wait(20)
    finally:
        kill_group(proc)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "level" and "progress" in kinds and kinds[-1] == "run"
    run = events[-1]["run"]
    assert run["status"] == "stopped" and run["name"] == "from the page" and len(run["levels"]) == 1
    assert worker.returncode == 0


def test_the_worker_answers_bad_settings_with_a_problem():
    done = subprocess.run([sys.executable, "-m", "llmdesk", "bench-worker"], cwd=ROOT, input='{"config": {"concurrencies": [0]}}\n',
                          capture_output=True, text=True, timeout=60)
    event = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 1 and event["event"] == "problem" and event["bad_input"] is True
