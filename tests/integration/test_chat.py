"""core/chat/client.py and `llmdesk chat` against the stand-in vLLM (tests/fakes/vllm_standin)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.chat.client import ChatClient, ChatParams, ContextTooLong, ModelNotFound, StreamInterrupted
from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized, default_base_url, normalise_base_url
from tests.fakes.standin_server import free_port, kill_group, start_standin

ROOT = Path(__file__).resolve().parents[2]
KEY = "sekret"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An ok stand-in with an API key; yields its root URL. The group is always killed."""
    proc, root = start_standin(tmp_path_factory.mktemp("rt-ok"), "ok", "--api-key", KEY)
    try:
        yield root
    finally:
        kill_group(proc)


@pytest.fixture(scope="module")
def long_replies(tmp_path_factory):
    """Replies of 2,000 tokens (5 s): a reply the client leaves is still running when it leaves. With the
    24-token default, a loaded CI machine finalised the stream after the reply had ended (no abort)."""
    proc, root = start_standin(tmp_path_factory.mktemp("rt-long"), "ok", "--api-key", KEY,
                               env={"FAKE_VLLM_REPLY_TOKENS": "2000"})
    try:
        yield root
    finally:
        kill_group(proc)


@pytest.fixture
def crashing_server(tmp_path):
    proc, root = start_standin(tmp_path / "rt-crash", "crash_mid_stream", env={"FAKE_VLLM_CRASH_AFTER_TOKENS": "5"})
    try:
        yield root
    finally:
        kill_group(proc)


def aborts(root: str) -> float:
    text = httpx.get(root + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    m = re.search(r'^vllm:request_success_total\{[^}]*finished_reason="abort"[^}]*\} (\S+)', text, re.M)
    return float(m.group(1)) if m else 0.0


async def wait_aborts_above(root: str, before: float, timeout_s: float = 5) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        now = await asyncio.to_thread(aborts, root)
        if now > before or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


# --- pure -------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
    ("  127.0.0.1:8000  ", "http://127.0.0.1:8000/v1"),
    ("https://proxy.example/llm", "https://proxy.example/llm/v1"),
])
def test_normalise_base_url(given, expected):
    assert normalise_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "ftp://host/x", "http://"])
def test_normalise_base_url_rejects(bad):
    with pytest.raises(BadInput):
        normalise_base_url(bad)


def test_default_url_is_the_managed_server_else_8000():
    assert default_base_url() == "http://127.0.0.1:8000/v1"
    from tests.fakes.server_records import write_live_record

    write_live_record(9123, host="0.0.0.0")
    assert default_base_url() == "http://127.0.0.1:9123/v1"


def test_params_body_skips_defaults_and_sends_extras():
    assert ChatParams().body() == {}
    body = ChatParams(temperature=0.0, top_k=40, repetition_penalty=1.1, stop=("\n\n",), max_tokens=5).body()
    assert body == {"temperature": 0.0, "top_k": 40, "repetition_penalty": 1.1, "stop": ["\n\n"], "max_tokens": 5}


# --- against the stand-in -----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_models_and_streamed_reply(server):
    async with ChatClient(server, KEY) as client:
        assert await client.models() == ["demo"]
        parts = []
        async for delta in client.stream("demo", [{"role": "user", "content": "Hello there"}]):
            parts.append(delta.content)
        stats = client.last_stats
    assert len(parts) == 24 and "".join(parts).strip()
    assert stats.completion_tokens == 24 and stats.prompt_tokens and stats.prompt_tokens > 0
    assert stats.ttft_s is not None and stats.ttft_s > 0
    assert stats.tokens_per_s and stats.tokens_per_s > 10
    assert stats.finish_reason == "stop"


@pytest.mark.asyncio
async def test_max_tokens_is_sent(server):
    async with ChatClient(server + "/v1/", KEY) as client:
        text = "".join([d.content async for d in client.stream("demo", [{"role": "user", "content": "hi"}],
                                                                ChatParams(max_tokens=3, temperature=0.2))])
    assert text and client.last_stats.completion_tokens == 3 and client.last_stats.finish_reason == "length"


@pytest.mark.asyncio
async def test_cancelling_the_consumer_aborts_the_request(long_replies):
    before = aborts(long_replies)
    async with ChatClient(long_replies, KEY) as client:
        got = []

        async def consume():
            async for delta in client.stream("demo", [{"role": "user", "content": "long"}], ChatParams()):
                got.append(delta.content)
                if len(got) == 3:
                    await asyncio.sleep(30)  # stalled here until cancelled

        task = asyncio.create_task(consume())
        while len(got) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_aborts_above(long_replies, before) == before + 1
        assert client.last_stats is not None and client.last_stats.ttft_s is not None


@pytest.mark.asyncio
async def test_breaking_out_of_the_loop_aborts_the_request(long_replies):
    before = aborts(long_replies)
    async with ChatClient(long_replies, KEY) as client:
        async with contextlib.aclosing(client.stream("demo", [{"role": "user", "content": "x"}])) as deltas:
            async for _ in deltas:
                break
        assert await wait_aborts_above(long_replies, before) == before + 1


@pytest.mark.asyncio
async def test_breaking_without_aclosing_still_aborts(long_replies):
    """The event loop's async-generator finaliser closes the stream a moment later."""
    before = aborts(long_replies)
    async with ChatClient(long_replies, KEY) as client:
        async for _ in client.stream("demo", [{"role": "user", "content": "x"}]):
            break
        assert await wait_aborts_above(long_replies, before) == before + 1


@pytest.mark.asyncio
async def test_no_server():
    url = f"http://127.0.0.1:{free_port()}"
    async with ChatClient(url) as client:
        with pytest.raises(ServerUnreachable) as exc:
            await client.models()
        assert exc.value.problem.title == f"No server at {url}/v1"
        assert "llmdesk serve" in exc.value.problem.fix
        with pytest.raises(ServerUnreachable):
            async for _ in client.stream("demo", [{"role": "user", "content": "hi"}]):
                pass


@pytest.mark.asyncio
async def test_wrong_or_missing_key(server):
    for key in (None, "wrong"):
        async with ChatClient(server, key) as client:
            with pytest.raises(Unauthorized) as exc:
                async for _ in client.stream("demo", [{"role": "user", "content": "hi"}]):
                    pass
            assert "API key" in exc.value.problem.title
            with pytest.raises(Unauthorized):
                await client.models()


@pytest.mark.asyncio
async def test_max_tokens_too_large_names_the_limit(server):
    async with ChatClient(server, KEY) as client:
        with pytest.raises(ContextTooLong) as exc:
            async for _ in client.stream("demo", [{"role": "user", "content": "hi"}], ChatParams(max_tokens=100_000)):
                pass
    assert exc.value.limit == 2048
    assert "max_tokens=100000" in exc.value.problem.explanation  # vLLM's own words
    assert "2,048 tokens" in exc.value.problem.explanation


@pytest.mark.asyncio
async def test_unknown_model_lists_the_served_ones(server):
    async with ChatClient(server, KEY) as client:
        with pytest.raises(ModelNotFound) as exc:
            async for _ in client.stream("nope", [{"role": "user", "content": "hi"}]):
                pass
    assert exc.value.served == ["demo"] and "demo" in exc.value.problem.explanation


@pytest.mark.asyncio
async def test_crash_mid_stream_keeps_the_partial_text(crashing_server):
    got = []
    async with ChatClient(crashing_server) as client:
        with pytest.raises(StreamInterrupted) as exc:
            async for delta in client.stream("demo", [{"role": "user", "content": "hi"}]):
                got.append(delta.content)
    assert len(got) == 5 and exc.value.partial == "".join(got) and exc.value.partial
    assert isinstance(exc.value, ProblemError) and "cut off" in exc.value.problem.title


@pytest.mark.asyncio
async def test_a_stream_cut_by_a_server_that_still_answers_says_so():
    """vLLM 0.26 closed streamed replies mid-way and went on serving when its tool parser failed (H100,
    2026-12-07): "check that the server is still running" sent the person the wrong way."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        if head.startswith("GET /health"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        else:
            chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")  # then closed without the last chunk
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ChatClient(f"http://127.0.0.1:{port}/v1") as client:
            with pytest.raises(StreamInterrupted) as exc:
                async for _ in client.stream("demo", [{"role": "user", "content": "hi"}]):
                    pass
    finally:
        server.close()
        await server.wait_closed()
    problem = exc.value.problem
    assert exc.value.partial == "Hel" and "still answers" in problem.explanation
    assert "Log" in problem.fix and "still running" not in problem.fix


# --- CLI --------------------------------------------------------------------------------------

def cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", "chat", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, input=stdin if stdin is not None else "")


def test_cli_prompt_streams_the_answer(server):
    res = cli("--url", server, "--api-key", KEY, "--max-tokens", "6", "Hello")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() and "TTFT" in res.stderr and "6 completion tokens" in res.stderr


def test_cli_reads_stdin_and_takes_the_v1_url(server):
    res = cli("--url", server + "/v1", "--api-key", KEY, "--model", "demo", "--system", "Be brief.",
              stdin="What is vLLM?\nTell me.\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def test_cli_failures(server):
    res = cli("--url", f"http://127.0.0.1:{free_port()}", "Hello")
    assert res.returncode == 1 and "No server at" in res.stderr
    res = cli("--url", server, "--api-key", "wrong", "Hello")
    assert res.returncode == 1 and "API key" in res.stderr
    res = cli("--url", server, "--max-tokens", "0", "Hello")
    assert res.returncode == 2


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_chat_save_keeps_the_partial_reply_on_sigterm_and_sighup(tmp_path, sig):
    """A closed terminal or a kill saves what came, as Ctrl-C does (issue: hardening, item 12)."""
    import os
    import signal
    import subprocess
    import sys

    from llmdesk.core.chat.conversations import ConversationStore

    proc, root = start_standin(tmp_path / "rt-slow", "ok", env={"FAKE_VLLM_TOKEN_RATE": "5",
                                                               "FAKE_VLLM_REPLY_TOKENS": "200"})
    try:
        env = dict(os.environ)
        chat = subprocess.Popen([sys.executable, "-m", "llmdesk", "chat", "--save", "--url", root, "Tell a story"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = chat.stdout.read(1)  # the reply has begun
        assert first
        chat.send_signal(getattr(signal, sig))
        out, err = chat.communicate(timeout=30)
        assert chat.returncode == 143 and "Stopped." in err and "Traceback" not in err
        store = ConversationStore()
        saved = store.get(store.list()[0].id).messages
        assert [m.role for m in saved] == ["user", "assistant"] and saved[1].state == "stopped"
        assert saved[1].content.startswith((first + out).strip()[:3])
    finally:
        kill_group(proc)
