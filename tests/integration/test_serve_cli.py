"""`llmdesk serve … --runtime FAKE` as a user runs it: a real process, real signals, the stand-in vLLM."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmdesk.core.server.processes import group_members
from tests.fakes.server_records import no_records, only_record
from tests.fakes.vllm_standin.runtime import make_fake_runtime
from tests.fakes.standin_server import DEMO_MODEL, free_port

ROOT = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, mode: str, *extra: str) -> tuple[subprocess.Popen, int]:
    python = make_fake_runtime(tmp_path / f"rt-{mode}", mode=mode, delay_scale=0.002)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmdesk", "serve", DEMO_MODEL, "--served-model-name", "demo",
                             "--port", str(port), "--runtime", str(python), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, port


def read_line(stream, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(0.1):
            return stream.readline()
    raise AssertionError("no output in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_the_url_and_stops_cleanly(tmp_path, launched, sig):
    proc, port = serve(tmp_path, "ok")
    launched.append(proc)
    url = read_line(proc.stdout, 20).strip()
    assert url == f"http://127.0.0.1:{port}/v1"
    server = only_record()
    assert server["port"] == port and group_members(server["pid"])
    proc.send_signal(sig)
    assert proc.wait(15) == 0
    err = proc.stderr.read()
    assert "loading weights" in err and "ready" in err and "Stopped." in err
    assert "expected: no start of these settings here yet" in err  # a fresh home: nothing to go by
    assert re.search(r"where the [\d.]+ s went: starting [\d.]+ s · starting the engine [\d.]+ s · loading weights", err)
    assert group_members(server["pid"]) == []
    assert no_records()


def test_serve_failure_exits_1_with_the_diagnosis(tmp_path, launched):
    proc, _ = serve(tmp_path, "kv_too_small")
    launched.append(proc)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert out == ""
    assert "error: Not enough memory for the context length" in err
    assert "30,224 tokens" in err and "--max-model-len 30224" in err
    assert no_records()


def test_serve_bad_config_exits_2(tmp_path, launched):
    proc, _ = serve(tmp_path, "ok", "--host", "0.0.0.0")  # off loopback without an API key
    launched.append(proc)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "API key is required" in err
    assert no_records()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_server_pause_and_resume_from_another_terminal(tmp_path, launched):
    """#23: `llmdesk serve --sleep-mode` in one terminal, `llmdesk server pause|status|resume` in another."""
    proc, port = serve(tmp_path, "ok", "--sleep-mode")
    launched.append(proc)
    assert read_line(proc.stdout, 20).strip() == f"http://127.0.0.1:{port}/v1"
    status = run_cli("server", "status")
    assert status.returncode == 0 and status.stdout.strip() == f"port {port}: Awake", status.stderr
    paused = run_cli("server", "pause", "--port", str(port))
    assert paused.returncode == 0 and paused.stdout.startswith(f"port {port}: Paused from the command line in ")
    assert "or run llmdesk server resume." in paused.stdout  # the words of the Server page, with the CLI's way
    as_json = run_cli("server", "status", "--json")
    assert '"state": "paused"' in as_json.stdout
    resumed = run_cli("server", "resume")
    assert resumed.returncode == 0 and resumed.stdout.startswith(f"port {port}: Awake; last resume took")
    assert run_cli("server", "status", "--port", str(port + 1)).returncode == 1  # nothing there
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    err = proc.stderr.read()
    assert re.search(r"\] paused \(control\) in [\d.]+ s", err) and re.search(r"\] resumed \(control\) in", err), err


def test_server_pause_says_why_a_server_cannot(tmp_path, launched):
    proc, port = serve(tmp_path, "ok")
    launched.append(proc)
    read_line(proc.stdout, 20)
    refused = run_cli("server", "pause")
    assert refused.returncode == 1 and "This server cannot pause" in refused.stderr
    assert "--sleep-mode" in refused.stderr and "Traceback" not in refused.stderr
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    nothing = run_cli("server", "status")
    assert nothing.returncode == 1 and "No server" in nothing.stderr
