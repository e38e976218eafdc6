"""core/metrics/scraper.py and `llmdesk metrics` against the stand-in vLLM (tests/fakes/vllm_standin),
whose /metrics is the real tiny-metrics-before.txt counting up as chats go, and against servers that are not vLLM."""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmdesk.core.chat.client import ChatClient
from llmdesk.core.metrics.scrape import NotVllmMetrics
from llmdesk.core.metrics.scraper import MetricsScraper
from llmdesk.core.metrics.window import MetricsWindow
from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized
from tests.fakes.standin_server import free_port, kill_group, start_standin

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "metrics"
KEY = "sekret"
STABLE_KEYS = ("generation_tokens_per_s", "prompt_tokens_per_s", "requests_running", "requests_waiting",
               "kv_cache_usage", "prefix_cache_hit_rate", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s",
               "e2e_p50_s", "e2e_p95_s", "preemptions", "preemptions_total", "finished_by_reason", "models", "gpus")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    proc, root = start_standin(tmp_path_factory.mktemp("rt-metrics"), "ok", "--api-key", KEY)
    try:
        yield root
    finally:
        kill_group(proc)


def chat(root: str, text: str = "Hello there") -> None:
    r = httpx.post(root + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=10,
                   json={"model": "demo", "messages": [{"role": "user", "content": text}]})
    r.raise_for_status()


@contextlib.contextmanager
def chatting(root: str) -> Iterator[None]:
    """Chats back to back in a thread for as long as the block runs."""
    done = threading.Event()

    def loop():
        while not done.is_set():
            chat(root)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(15)


def llmdesk(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", "metrics", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


# --- the core scraper -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_scrapes_before_and_after_two_chats(server):
    window = MetricsWindow()
    async with MetricsScraper(server + "/v1") as scraper, ChatClient(server, KEY) as client:
        assert scraper.metrics_url == server + "/metrics"
        first = window.add(await scraper.scrape())
        for text in ("Hello there", "Tell me more"):
            async for _ in client.stream("demo", [{"role": "user", "content": text}]):
                pass
        snap = window.add(await scraper.scrape())
        assert scraper.last_duration_s is not None and scraper.last_duration_s < 2
    assert first.generation_tokens_per_s is None
    assert snap.generation_tokens_per_s > 0 and snap.prompt_tokens_per_s > 0
    assert snap.generation_tokens_total - first.generation_tokens_total == 48  # 24 tokens a reply
    assert snap.requests_finished == 2 and snap.finished_by_reason["stop"] == 2
    assert snap.ttft_p50_s is not None and snap.e2e_p95_s is not None
    assert snap.itl_p50_s is None  # the stand-in has no ITL observations
    assert snap.kv_cache_capacity_tokens == 67_237_328
    assert list(snap.models) == ["demo"]


@pytest.mark.asyncio
async def test_scraper_problems():
    async with MetricsScraper(f"http://127.0.0.1:{free_port()}") as scraper:
        with pytest.raises(ServerUnreachable) as exc:
            await scraper.scrape()
    assert "llmdesk serve" in exc.value.problem.fix
    with not_vllm({"/metrics": (404, "Not Found", "text/plain")}) as root:
        async with MetricsScraper(root) as scraper:
            with pytest.raises(NotVllmMetrics, match="Not a vLLM server"):
                await scraper.scrape()


@pytest.mark.asyncio
async def test_the_api_key_is_sent_for_a_proxy_that_wants_one():
    with not_vllm({"/metrics": (200, (DATA / "tiny-metrics-after.txt").read_text(), "text/plain")},
                  key="k1") as root:
        async with MetricsScraper(root, api_key="k1") as scraper:
            assert (await scraper.scrape()).has_vllm
        async with MetricsScraper(root, api_key="wrong") as scraper:
            with pytest.raises(Unauthorized, match="Wrong or missing API key") as exc:
                await scraper.scrape()
            assert "refused" in exc.value.problem.explanation


# --- the CLI ----------------------------------------------------------------------------------

def test_cli_json_while_chats_run(server):
    with chatting(server):
        result = llmdesk("--url", server, "--interval", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in STABLE_KEYS:
        assert key in data, key
    assert data["url"] == server
    assert data["generation_tokens_per_s"] > 0 and data["prompt_tokens_per_s"] > 0
    assert data["requests_finished"] > 0 and data["ttft_p50_s"] > 0
    assert data["itl_p50_s"] is None and data["prefix_cache_hit_rate"] is None
    assert 0.9 < data["interval_s"] < 3
    assert data["models"]["demo"]["generation_tokens_per_s"] == data["generation_tokens_per_s"]
    assert isinstance(data["gpus"], list)  # the server is on this machine; empty where there is no GPU


def test_cli_text_with_the_v1_url(server):
    with chatting(server):
        result = llmdesk("--url", server + "/v1", "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"vLLM at {server} · demo · over ")
    gen = next(line for line in out.splitlines() if line.strip().startswith("Generation"))
    assert float(gen.split()[1].replace(",", "")) > 0
    assert "ITL           —" in out and "of 67,237,328 tokens" in out
    assert "Traceback" not in result.stderr


def test_cli_default_url_is_the_managed_server(server, monkeypatch):

    port = int(server.rsplit(":", 1)[1])
    from tests.fakes.server_records import write_live_record

    write_live_record(port)
    result = llmdesk("--interval", "0.25", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["url"] == server


def test_cli_unreachable_server():
    url = f"http://127.0.0.1:{free_port()}"
    result = llmdesk("--url", url)
    assert result.returncode == 1
    assert f"error: No server at {url}" in result.stderr and "Traceback" not in result.stderr
    result = llmdesk("--url", url, "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["error"]["title"] == f"No server at {url}"


@pytest.mark.parametrize("routes, says", [
    ({"/metrics": (404, '{"detail":"Not Found"}', "application/json")}, "Not a vLLM server"),
    ({"/metrics": (200, "<html><body>Hello</body></html>", "text/html")}, "Not a vLLM server"),
    ({"/metrics": (200, "# TYPE python_info gauge\npython_info{version=\"3.12\"} 1.0\n", "text/plain")},
     "--disable-log-stats"),
    ({"/metrics": (401, '{"error":"Unauthorized"}', "application/json")}, "Wrong or missing API key"),
])
def test_cli_not_vllm_or_refused(routes, says):
    with not_vllm(routes) as root:
        result = llmdesk("--url", root + "/v1")
    assert result.returncode == 1
    assert says in result.stderr and "Traceback" not in result.stderr


def test_cli_bad_input():
    result = llmdesk("--interval", "0.1")
    assert result.returncode == 2 and "--interval must be between 0.25 and 5" in result.stderr
    result = llmdesk("--csv", "x.csv")
    assert result.returncode == 2 and "--csv needs --watch" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_watch_until_ctrl_c(server, tmp_path, sig):
    session = tmp_path / "session.csv"
    proc = watch("--url", server, "--interval", "0.25", "--csv", str(session))
    try:
        with chatting(server):
            frames = read_until(proc, lambda out: out.count("vLLM at") >= 4, 20)
        proc.send_signal(sig)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and err == ""
    assert "rates over the last" in frames and "Generation" in frames
    rows = list(csv.DictReader(session.open(encoding="utf-8")))
    assert len(rows) >= 4 and any(float(r["generation_tokens_per_s"] or 0) > 0 for r in rows)


def test_watch_json_says_when_the_server_goes_and_carries_on(tmp_path):
    sv, root = start_standin(tmp_path / "rt", "ok", "--api-key", KEY)
    proc = watch("--url", root, "--interval", "0.25", "--json")
    try:
        out = read_until(proc, lambda out: out.count("\n") >= 2, 20)
        kill_group(sv)
        out += read_until(proc, lambda out: '"No server at' in out, 20)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if sv.poll() is None:
            kill_group(sv)
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines[0]["problem"] is None and "generation_tokens_per_s" in lines[0]
    assert lines[-1]["problem"]["title"] == f"No server at {root}"
    assert "Traceback" not in proc.stderr.read()


# --- helpers ----------------------------------------------------------------------------------

def watch(*argv: str) -> subprocess.Popen:
    # SIGINT as a terminal sends it: reset in case this test run was started with it ignored.
    return subprocess.Popen([sys.executable, "-m", "llmdesk", "metrics", "--watch", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def read_until(proc: subprocess.Popen, done, timeout: float) -> str:
    """Read the process's stdout until done(text so far); returns that text."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(0.1):
            line = proc.stdout.readline()
            if not line:
                break
            text += line
            if done(text):
                return text
    raise AssertionError(f"not seen in time; output so far:\n{text}")


@contextlib.contextmanager
def not_vllm(routes: dict[str, tuple[int, str, str]], key: str | None = None) -> Iterator[str]:
    """A small HTTP server answering each path with (status, body, content type)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status, body, ctype = routes.get(self.path, (404, "Not Found", "text/plain"))
            if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
                status, body, ctype = 401, '{"error":"Unauthorized"}', "application/json"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
