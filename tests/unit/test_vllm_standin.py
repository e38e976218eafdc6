"""The stand-in vLLM runtime (tests/fakes/vllm_standin) behaves like vLLM 0.26 where a supervisor looks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmdesk.core.server import runtime
from tests.fakes.vllm_standin.runtime import make_fake_runtime, serve_argv
from tests.fakes.standin_server import free_port


def _start(tmp_path: Path, mode: str = "ok", *flags: str, port: int | None = None,
           delay_scale: float = 0.002) -> tuple[subprocess.Popen, int, Path]:
    python = make_fake_runtime(tmp_path / "rt", mode=mode, delay_scale=delay_scale)
    port = port or free_port()
    log = tmp_path / f"server-{mode}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_VLLM_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        serve_argv(python, "/models/demo", "--host", "127.0.0.1", "--port", str(port),
                   "--served-model-name", "demo", *flags),
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return proc, port, log


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(port: int, path: str, body: dict) -> urllib.request.Request:
    return urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "stand-in exited before it was ready"
        try:
            if _get(port, "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.03)
    raise AssertionError("stand-in not ready in time")


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            pids.append(int(entry))
    return pids


def _wait_group_gone(pgid: int, timeout: float = 3.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_pids(pgid):
        time.sleep(0.03)
    return _group_pids(pgid)


@pytest.fixture
def cleanup():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


def test_wrapper_reports_the_vllm_version(tmp_path):
    assert runtime.vllm_version_of(str(make_fake_runtime(tmp_path / "a"))) == "0.26.0"
    assert runtime.vllm_version_of(str(make_fake_runtime(tmp_path / "b", version="0.25.1"))) == "0.25.1"


def test_serves_like_vllm_and_stops_cleanly_on_sigint(tmp_path, cleanup):
    proc, port, log = _start(tmp_path)
    cleanup.append(proc)
    _wait_ready(proc, port)

    status, body = _get(port, "/v1/models")
    card = json.loads(body)["data"][0]
    assert status == 200
    assert (card["id"], card["object"], card["owned_by"], card["root"], card["parent"], card["max_model_len"]) == \
        ("demo", "model", "vllm", "/models/demo", None, 4096)
    assert json.loads(_get(port, "/version")[1]) == {"version": "0.26.0"}

    def generation_tokens() -> float:
        text = _get(port, "/metrics")[1].decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        [sample] = [s for s in fams["vllm:generation_tokens"].samples if s.name.endswith("_total")]
        assert sample.labels == {"engine": "0", "model_name": "demo"}
        return sample.value

    before = generation_tokens()
    req = _post(port, "/v1/chat/completions", {
        "model": "demo", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 7,
        "stream": True, "stream_options": {"include_usage": True}})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.read().decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(content) == 7 and chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7
    assert generation_tokens() == before + 7

    with urllib.request.urlopen(_post(port, "/v1/completions", {"model": "demo", "prompt": "Hi", "max_tokens": 3}),
                                timeout=5) as r:
        done = json.loads(r.read())
    assert done["object"] == "text_completion" and done["usage"]["completion_tokens"] == 3

    pids = _group_pids(proc.pid)
    assert len(pids) >= 2, "the engine-core child is in the process group"
    assert any("VLLM::EngineCore" in Path(f"/proc/{p}/cmdline").read_text() for p in pids if p != proc.pid)

    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(3) == 0
    assert time.monotonic() - t0 < 1.0
    assert _wait_group_gone(proc.pid) == []
    out = log.read_text()
    assert "Starting vLLM server on http://127.0.0.1:%d" % port in out
    assert "model   /models/demo" in out
    assert "[shutdown] API server: shutdown triggered" in out
    assert "[shutdown] EngineCore: trigger received signal=SIGTERM" in out


def test_api_key_is_checked_on_v1_only(tmp_path, cleanup):
    proc, port, _ = _start(tmp_path, "ok", "--api-key", "sekret")
    cleanup.append(proc)
    _wait_ready(proc, port)
    assert _get(port, "/v1/models") == (401, b'{"error":"Unauthorized"}')
    assert _get(port, "/v1/models", {"Authorization": "Bearer sekret"})[0] == 200
    assert _get(port, "/metrics")[0] == 200


def test_client_disconnect_counts_an_abort(tmp_path, cleanup, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_TOKEN_RATE", "50")
    proc, port, _ = _start(tmp_path)
    cleanup.append(proc)
    _wait_ready(proc, port)
    body = json.dumps({"model": "demo", "prompt": "x", "max_tokens": 200, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        s.recv(4096)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = _get(port, "/metrics")[1].decode()
        if 'vllm:request_success_total{engine="0",finished_reason="abort",model_name="demo"} 1.0' in text:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the aborted request was not counted")


def test_ignore_sigint_needs_sigkill(tmp_path, cleanup):
    proc, port, _ = _start(tmp_path, "ignore_sigint")
    cleanup.append(proc)
    _wait_ready(proc, port)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.4)
    assert proc.poll() is None and _get(port, "/health")[0] == 200
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(3) == -signal.SIGKILL
    assert _wait_group_gone(proc.pid) == []


@pytest.mark.parametrize(("mode", "expected"), [
    ("oom_loading", ["Failed to load model - not enough GPU memory.",
                     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate",
                     "Engine core initialization failed. See root cause above. Failed core proc(s):"]),
    ("kv_too_small", ["Based on the available memory, the estimated maximum model length is 30224.",
                      "Engine core initialization failed. See root cause above."]),
    ("no_kv_memory", ["Available KV cache memory: -0.23 GiB",
                      "ValueError: No available memory for the cache blocks."]),
])
def test_failures_print_vllm_lines_and_exit_1(tmp_path, cleanup, mode, expected):
    proc, port, log = _start(tmp_path, mode)
    cleanup.append(proc)
    assert proc.wait(10) == 1
    out = log.read_text()
    for fragment in expected:
        assert fragment in out
    assert "model   /models/demo" in out
    assert _wait_group_gone(proc.pid) == []


def test_port_in_use_fails_at_once(tmp_path, cleanup):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        proc, _, log = _start(tmp_path, "ok", port=holder.getsockname()[1], delay_scale=0.5)
        cleanup.append(proc)
        assert proc.wait(5) == 1
    out = log.read_text()
    assert "OSError: [Errno 98] Address already in use" in out
    assert "Loading safetensors" not in out


def test_crash_mid_stream_drops_the_stream_and_exits_0(tmp_path, cleanup):
    proc, port, log = _start(tmp_path, "crash_mid_stream")
    cleanup.append(proc)
    _wait_ready(proc, port)
    req = _post(port, "/v1/chat/completions", {"model": "demo", "messages": [{"role": "user", "content": "x"}],
                                               "max_tokens": 50, "stream": True})
    with pytest.raises((OSError, http.client.HTTPException)), urllib.request.urlopen(req, timeout=5) as r:
        r.read()  # the chunked body ends without its last chunk
    assert proc.wait(5) == 0
    out = log.read_text()
    assert "Engine core proc EngineCore died unexpectedly" in out
    assert "EngineDeadError" in out
    assert _wait_group_gone(proc.pid) == []


def test_slow_start_and_sigint_while_loading(tmp_path, cleanup):
    proc, port, log = _start(tmp_path, "slow_start")
    cleanup.append(proc)
    time.sleep(0.8)
    assert proc.poll() is None
    with pytest.raises(OSError):
        _get(port, "/health")  # bound, not listening yet: connection refused
    proc.send_signal(signal.SIGINT)
    assert proc.wait(3) == -signal.SIGINT  # vLLM before uvicorn runs: death by SIGINT
    assert _wait_group_gone(proc.pid) == []


def test_the_apps_full_launch_line_is_accepted(tmp_path, cleanup, monkeypatch):
    from llmdesk.core.server.launch import LaunchConfig, LoraAdapter, build_vllm_command

    port = free_port()
    config = LaunchConfig(model="/models/demo", served_model_name="demo", port=port, api_key="k",
                          gpu_memory_utilization=0.5, max_model_len=2048, max_num_seqs=8,
                          max_num_batched_tokens=4096, dtype="bfloat16", kv_cache_dtype="fp8",
                          enable_prefix_caching=False, enforce_eager=True,
                          lora_adapters=(LoraAdapter("sql", "/loras/sql"),), max_loras=2, max_lora_rank=32)
    python = make_fake_runtime(tmp_path / "rt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_VLLM_")}
    env["VLLM_API_KEY"] = "k"
    proc = subprocess.Popen(build_vllm_command(config, str(python)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    cleanup.append(proc)
    _wait_ready(proc, port)
    assert _get(port, "/v1/models")[0] == 401
    status, body = _get(port, "/v1/models", {"Authorization": "Bearer k"})
    assert json.loads(body)["data"][0]["max_model_len"] == 2048
    assert 'gpu_memory_utilization="0.5"' in _get(port, "/metrics")[1].decode()


def test_unknown_flag_exits_2(tmp_path):
    python = make_fake_runtime(tmp_path / "rt")
    done = subprocess.run(serve_argv(python, "/models/demo", "--swap-space", "4"),
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "unrecognized arguments: --swap-space" in done.stderr


def test_a_port_taken_after_the_bind_makes_the_standin_exit_as_vllm_does(tmp_path):
    """Two starts on one port: both bind (SO_REUSEADDR), the second cannot listen and vLLM exits 1
    with 'Address already in use' (issue: hardening, item 16); the stand-in used to hang."""
    import socket

    from tests.fakes.standin_server import free_port, kill_group, serve_argv
    from tests.fakes.vllm_standin.runtime import make_fake_runtime

    port = free_port()
    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.05)
    proc = subprocess.Popen(serve_argv(python, "/models/demo", "--host", "127.0.0.1", "--port", str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        time.sleep(0.3)  # it has bound, and is loading
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", port))
            other.listen()
            out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "Address already in use" in out
    finally:
        kill_group(proc)
