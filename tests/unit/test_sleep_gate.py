"""The sleep gate (#23) in front of the stand-in vLLM started with --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1,
which, like vLLM 0.26, queues generations while asleep and answers "<no weights>" after a level-2 wake-up
without reload_weights; and in front of a small aiohttp upstream that shows what the gate sends."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import aiohttp
import httpx
import pytest
import pytest_asyncio
from aiohttp import web

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.server import sleep_gate
from llmdesk.core.server.sleep_gate import (CONTROL_HEADER, GateSettings, GateState, GateThread, SleepGate, control,
                                            is_loopback, is_model_work, route_of)
from tests.fakes.standin_server import finished_requests, free_port, running_standin

KEY = "sk-gate-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
SLEEPY = {"VLLM_SERVER_DEV_MODE": "1", "FAKE_VLLM_SLEEP_S": "0.15", "FAKE_VLLM_WAKE_S": "0.15",
          "FAKE_VLLM_RELOAD_S": "0.4", "FAKE_VLLM_TOKEN_RATE": "200"}
PAUSED_BODY = {"error": {"message": "The model is paused to free the GPU, so this server answers no requests for it "
                                    "now; resume it in llmdesk (Server page) or with `llmdesk server resume`.",
                         "type": "ServiceUnavailableError", "param": None, "code": 503}}


@pytest.fixture
def standin(tmp_path):
    with running_standin(tmp_path / "rt", "ok", "--enable-sleep-mode", "--api-key", KEY, env=SLEEPY) as root:
        yield root


class Gate:
    """A SleepGate on the test's loop, with every state change it reported."""

    def __init__(self, upstream: str, **settings):
        self.changes: list[tuple[GateState, dict]] = []
        self.gate = SleepGate("127.0.0.1", 0, upstream, GateSettings(api_key=KEY, **settings),
                              on_change=lambda state, info: self.changes.append((state, info)))
        self.url = ""

    async def __aenter__(self) -> Gate:
        await self.gate.start()
        self.url = f"http://127.0.0.1:{self.gate.port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.gate.close()

    @property
    def states(self) -> list[str]:
        return [state.value for state, _ in self.changes]


def completion(max_tokens: int = 6, stream: bool = False) -> dict:
    return {"model": "demo", "prompt": "hello there", "max_tokens": max_tokens, "stream": stream, "ignore_eos": True}


async def is_sleeping(root: str) -> bool:
    async with httpx.AsyncClient() as c:
        return (await c.get(root + "/is_sleeping")).json()["is_sleeping"]


async def sleep_gauges(root: str) -> dict[str, float]:
    async with httpx.AsyncClient() as c:
        text = (await c.get(root + "/metrics", headers=AUTH)).text
    out = {}
    for line in text.splitlines():
        if line.startswith("vllm:engine_sleep_state{"):
            out[line.split('sleep_state="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return out


async def raw_http(port: int, request: bytes) -> tuple[int, bytes]:
    """One request sent exactly as written (no client normalises the path); (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def wait_for(predicate, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


# --- pure parts ---------------------------------------------------------------------------------

def test_routes_and_peers():
    assert route_of("/sleep") == "/sleep"
    assert route_of("/%73leep?level=2") == "/sleep"
    assert route_of("/%2573leep") == "/sleep"  # decoded until stable: stricter than any server
    assert route_of("//v1/./../wake_up/") == "/wake_up"
    assert route_of("/v1/chat/completions") == "/v1/chat/completions"
    assert is_model_work("POST", "/v1/chat/completions") and is_model_work("POST", "/v1/load_lora_adapter")
    assert is_model_work("POST", "/pooling") and is_model_work("POST", "/inference/v1/generate")
    assert not is_model_work("GET", "/v1/models") and not is_model_work("POST", "/tokenize")
    assert not is_model_work("POST", "/v1/messages/count_tokens") and not is_model_work("POST", "/v1x")
    assert [is_loopback(a) for a in ("127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1")] == [True] * 4
    assert [is_loopback(a) for a in ("10.0.0.2", "192.168.1.5", "::ffff:10.0.0.1", "", None, "x")] == [False] * 6
    with pytest.raises(ProblemError):
        GateSettings(level=3)
    with pytest.raises(ProblemError):
        GateSettings(idle_pause_s=0)
    assert GateSettings().control_token != GateSettings().control_token  # a fresh secret each


# --- against the stand-in vLLM ------------------------------------------------------------------

@pytest.mark.asyncio
async def test_stream_passes_chunk_by_chunk(standin):
    async with Gate(standin) as g, aiohttp.ClientSession() as s:
        arrivals, body = [], b""
        started = time.monotonic()
        async with s.post(g.url + "/v1/completions", json=completion(60, stream=True), headers=AUTH) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert g.gate.in_flight == 1
            async for chunk in r.content.iter_any():
                arrivals.append(time.monotonic() - started)
                body += chunk
        events = [e for e in body.decode().split("\n\n") if e]
        assert len(events) == 61 and events[-1] == "data: [DONE]"
        assert [json.loads(e[6:])["choices"][0]["finish_reason"] for e in events[:-1]][-1] == "length"
        # 60 tokens at 200/s: ~0.3 s; the first arrives long before the last is generated
        assert len(arrivals) >= 20 and arrivals[-1] - arrivals[0] > 0.2
        assert g.gate.in_flight == 0 and g.states == []


@pytest.mark.asyncio
async def test_pause_lets_the_stream_finish_then_sleeps(standin):
    async with Gate(standin) as g, aiohttp.ClientSession() as s:
        async with s.post(g.url + "/v1/completions", json=completion(60, stream=True), headers=AUTH) as r:
            first = await r.content.readline()
            assert first.startswith(b"data: ")
            pausing = asyncio.ensure_future(g.gate.pause())
            await wait_for(lambda: g.gate.state is GateState.PAUSING)
            assert g.gate.in_flight == 1 and not await is_sleeping(standin)
            rest = await r.read()
        assert rest.endswith(b"data: [DONE]\n\n") and rest.count(b"data: ") == 60
        result = await pausing
        assert result["changed"] is True and result["state"] == "paused" and result["level"] == 1
        assert result["in_flight_at_start"] == 1 and result["drain_s"] > 0.05 and result["sleep_s"] >= 0.15
        assert g.gate.state is GateState.PAUSED and await is_sleeping(standin)
        assert await sleep_gauges(standin) == {"awake": 0.0, "weights_offloaded": 1.0, "discard_all": 0.0}
        assert (await g.gate.pause())["changed"] is False  # idempotent, at once
        resumed = await g.gate.resume()
        assert resumed["changed"] is True and resumed["state"] == "awake" and resumed["reload_s"] is None
        assert not await is_sleeping(standin)
        assert await sleep_gauges(standin) == {"awake": 1.0, "weights_offloaded": 0.0, "discard_all": 0.0}
        assert g.states == ["pausing", "paused", "resuming", "awake"]
        assert [info["reason"] for _, info in g.changes] == ["user"] * 4


@pytest.mark.asyncio
async def test_refused_while_paused_without_wake_on_request(standin):
    async with Gate(standin, wake_on_request=False) as g, httpx.AsyncClient() as c:
        await g.gate.pause()
        before = finished_requests(standin, "length", KEY)
        r = await c.post(g.url + "/v1/chat/completions", headers=AUTH, json={
            "model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        assert r.status_code == 503 and r.headers["Retry-After"] == "30" and r.json() == PAUSED_BODY
        # what needs no engine still passes, without waking anything
        assert (await c.get(g.url + "/v1/models", headers=AUTH)).json()["data"][0]["id"] == "demo"
        assert (await c.get(g.url + "/health")).status_code == 200
        assert (await c.post(g.url + "/tokenize", json={"prompt": "abcd"})).json()["count"] == 2
        assert g.gate.state is GateState.PAUSED and g.states == ["pausing", "paused"]
        await g.gate.resume()
        await asyncio.sleep(0.3)  # had vLLM queued it, it would run now
        assert finished_requests(standin, "length", KEY) == before


@pytest.mark.asyncio
async def test_wake_on_request_one_resume_for_all(standin):
    async with Gate(standin) as g, httpx.AsyncClient() as c:
        await g.gate.pause()
        replies = await asyncio.gather(*(c.post(g.url + "/v1/completions", json=completion(4), headers=AUTH)
                                         for _ in range(3)))
        assert [r.status_code for r in replies] == [200] * 3
        assert all(r.json()["choices"][0]["text"] and "<no weights>" not in r.json()["choices"][0]["text"]
                   for r in replies)
        assert g.states == ["pausing", "paused", "resuming", "awake"]  # one resume, shared
        assert g.changes[2][1]["reason"] == "request" and g.gate.last_resume["held_requests"] == 3
        assert g.gate.state is GateState.AWAKE and g.gate.in_flight == 0


@pytest.mark.asyncio
async def test_level2_holds_requests_until_the_weights_are_back(standin):
    async with httpx.AsyncClient() as c:
        # the stand-in does what vLLM does: after a level-2 wake-up without reload_weights it runs at once,
        # on missing weights
        assert (await c.post(standin + "/sleep?level=2&mode=wait")).status_code == 200
        assert await sleep_gauges(standin) == {"awake": 0.0, "weights_offloaded": 0.0, "discard_all": 1.0}
        assert (await c.post(standin + "/wake_up")).status_code == 200
        garbage = (await c.post(standin + "/v1/completions", json=completion(2), headers=AUTH)).json()
        assert garbage["choices"][0]["text"] == "<no weights><no weights>"
        await c.post(standin + "/collective_rpc", json={"method": "reload_weights"})

        async with Gate(standin, level=2) as g:
            paused = await g.gate.pause()
            assert paused["level"] == 2 and await is_sleeping(standin)
            resuming = asyncio.ensure_future(g.gate.resume())
            deadline = time.monotonic() + 3
            while await is_sleeping(standin):  # until wake_up is done: vLLM's scheduler runs again
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert g.gate.state is GateState.RESUMING  # reload_weights (0.4 s) under way
            reply = await c.post(g.url + "/v1/completions", json=completion(3), headers=AUTH)
            text = reply.json()["choices"][0]["text"]
            assert reply.status_code == 200 and text and "<no weights>" not in text
            result = await resuming
            assert result["level"] == 2 and result["reload_s"] >= 0.4 and result["held_requests"] == 1
            assert g.states == ["pausing", "paused", "resuming", "awake"]


@pytest.mark.asyncio
async def test_idle_pause_waits_for_requests_in_flight(standin):
    async with Gate(standin, idle_pause_s=0.2) as g, aiohttp.ClientSession() as s:
        async with s.post(g.url + "/v1/completions", json=completion(120, stream=True), headers=AUTH) as r:
            await r.content.readline()
            await asyncio.sleep(0.4)  # longer than idle_pause_s, but a request runs
            assert g.gate.state is GateState.AWAKE and g.gate.idle_for_s == 0.0
            body = await r.read()
        assert body.endswith(b"data: [DONE]\n\n")
        ended = time.monotonic()
        await wait_for(lambda: g.gate.state is GateState.PAUSED, 2.0)
        assert time.monotonic() - ended >= 0.15
        assert g.gate.last_pause["reason"] == "idle" and g.gate.last_pause["in_flight_at_start"] == 0
        assert await is_sleeping(standin)
        # a request wakes it again, and the idle clock starts again from the wake-up
        async with s.post(g.url + "/v1/completions", json=completion(2), headers=AUTH) as r:
            assert r.status == 200
        assert g.gate.state is GateState.AWAKE and g.states[-2:] == ["resuming", "awake"]
        await wait_for(lambda: g.gate.state is GateState.PAUSED, 2.0)


@pytest.mark.asyncio
async def test_dev_routes_are_not_reachable(standin):
    async with Gate(standin) as g, httpx.AsyncClient() as c:
        assert (await c.get(standin + "/server_info")).status_code == 200  # open on vLLM itself
        port = g.gate.port
        for method, path in [("POST", "/sleep?level=1"), ("POST", "/sleep/"), ("POST", "//sleep"),
                             ("POST", "/%73leep"), ("POST", "/v1/../sleep"), ("POST", "/wake_up"),
                             ("POST", "/collective_rpc"), ("GET", "/is_sleeping"), ("GET", "/server_info"),
                             ("POST", "/reset_prefix_cache"), ("POST", "/update_weights"), ("POST", "/pause")]:
            status, body = await raw_http(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                                f"Connection: close\r\n\r\n".encode())
            error = json.loads(body)["error"]
            assert status == 404 and error["code"] == 404 and error["type"] == "NotFoundError", path
            assert "is not exposed by llmdesk" in error["message"]
        assert not await is_sleeping(standin) and g.states == []


@pytest.mark.asyncio
async def test_authorization_is_the_clients(standin):
    async with Gate(standin) as g, httpx.AsyncClient() as c:
        wrong = await c.post(g.url + "/v1/completions", json=completion(2), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "Unauthorized"}
        missing = await c.get(g.url + "/v1/models")
        assert missing.status_code == 401
        right = await c.post(g.url + "/v1/completions", json=completion(2), headers=AUTH)
        assert right.status_code == 200 and right.json()["usage"]["completion_tokens"] == 2


@pytest.mark.asyncio
async def test_client_gone_mid_stream(standin):
    async with Gate(standin) as g:
        aborted = finished_requests(standin, "abort", KEY)
        reader, writer = await asyncio.open_connection("127.0.0.1", g.gate.port)
        body = json.dumps(completion(400, stream=True)).encode()
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        await writer.drain()
        assert b"data: " in await reader.readuntil(b"data: ")
        assert g.gate.in_flight == 1
        writer.close()
        await wait_for(lambda: g.gate.in_flight == 0, 2.0)
        deadline = time.monotonic() + 3  # vLLM saw the connection go and aborted the request
        while finished_requests(standin, "abort", KEY) == aborted:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_control_routes(standin):
    async with Gate(standin) as g:
        token = g.gate.settings.control_token
        state = await control(g.url, token, "state")
        assert state["state"] == "awake" and state["in_flight"] == 0 and state["level"] == 1
        paused = await control(g.url + "/v1", token, "pause")
        assert paused["state"] == "paused" and paused["result"]["changed"] is True and paused["last_pause_s"] >= 0.15
        assert g.changes[0][1]["reason"] == "control" and await is_sleeping(standin)
        resumed = await control(g.url, token, "resume")
        assert resumed["state"] == "awake" and resumed["result"]["changed"] is True
        with pytest.raises(ProblemError) as err:
            await control(g.url, "not-the-token", "pause")
        assert err.value.problem.title == "The server refused the request"
        async with httpx.AsyncClient() as c:
            assert (await c.post(g.url + "/llmdesk/v1/pause")).status_code == 403
            assert (await c.get(g.url + "/llmdesk/v1/pause", headers={CONTROL_HEADER: token})).status_code == 405
            assert (await c.get(g.url + "/llmdesk/v1/other", headers={CONTROL_HEADER: token})).status_code == 404
            wrong_level = await c.post(g.url + "/llmdesk/v1/pause?level=3", headers={CONTROL_HEADER: token})
            assert wrong_level.status_code == 400
        assert g.gate.state is GateState.AWAKE
        # a vLLM without the gate, and nothing at all
        with pytest.raises(ProblemError) as err:
            await control(standin, token, "state")
        assert err.value.problem.title == f"The server at {standin} cannot be paused from here"
        with pytest.raises(ProblemError) as err:
            await control(f"http://127.0.0.1:{free_port()}", token, "state")
        assert err.value.problem.title.startswith("No server at")


@pytest.mark.asyncio
async def test_control_only_from_this_computer(standin, monkeypatch):
    async with Gate(standin) as g, httpx.AsyncClient() as c:
        token = {CONTROL_HEADER: g.gate.settings.control_token}
        monkeypatch.setattr(sleep_gate, "is_loopback", lambda address: False)
        r = await c.post(g.url + "/llmdesk/v1/pause", headers=token)
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"} and g.gate.state is GateState.AWAKE
    monkeypatch.undo()
    # and from a real non-loopback address of this machine, where it has one
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing address
        address = probe.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if is_loopback(address):
        return
    gate = SleepGate("0.0.0.0", 0, standin, GateSettings(api_key=KEY))
    await gate.start()
    try:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://{address}:{gate.port}/llmdesk/v1/state",
                            headers={CONTROL_HEADER: gate.settings.control_token})
            assert r.status_code == 404
            r = await c.get(f"http://127.0.0.1:{gate.port}/llmdesk/v1/state",
                            headers={CONTROL_HEADER: gate.settings.control_token})
            assert r.status_code == 200
    finally:
        await gate.close()


def test_gate_thread_from_another_loop(standin):
    delivered: list[tuple[str, int]] = []
    gt = GateThread("127.0.0.1", 0, standin, GateSettings(api_key=KEY),
                    on_change=lambda state, info: delivered.append((state.value, threading.get_ident())))
    gt.start()
    try:
        assert gt.running and gt.state is GateState.AWAKE and gt.port

        async def go():
            paused = await gt.pause()
            assert paused["state"] == "paused" and gt.state is GateState.PAUSED
            assert await is_sleeping(standin)
            async with httpx.AsyncClient() as c:  # the gate's loop answers while this loop waits
                reply = await c.post(f"http://127.0.0.1:{gt.port}/v1/completions", json=completion(2), headers=AUTH)
            assert reply.status_code == 200 and gt.state is GateState.AWAKE
            await gt.pause(level=2)
            assert gt.snapshot()["slept_level"] == 2
            resumed = await gt.resume()
            assert resumed["level"] == 2 and resumed["reload_s"] >= 0.4

        asyncio.run(go())
        assert [s for s, _ in delivered] == ["pausing", "paused", "resuming", "awake"] * 2
        assert {t for _, t in delivered} == {gt._thread.ident} != {threading.get_ident()}
        # a second gate on the same port: a Problem, not a traceback
        other = GateThread("127.0.0.1", gt.port, standin, GateSettings())
        with pytest.raises(ProblemError) as err:
            other.start()
        assert err.value.problem.title == f"Port {gt.port} is in use"
    finally:
        gt.stop()
    assert not gt.running
    with pytest.raises(ProblemError):
        asyncio.run(gt.resume())


# --- against an upstream that shows what it gets ------------------------------------------------

@pytest_asyncio.fixture
async def echo_upstream():
    """An aiohttp server: /echo answers the request's headers and body, /broken sends two chunks and drops
    the connection, /ws echoes WebSocket messages, /sleep and /wake_up answer 404 as vLLM without dev mode."""
    seen: dict = {}

    async def echo(request):
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.raw_path,
                                  "headers": [[k, v] for k, v in request.headers.items()], "body": body.decode()})

    async def broken(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: 1\n\n")
        await resp.write(b"data: 2\n\n")
        request.transport.close()
        return resp

    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        seen["ws_open"] = True
        async for msg in sock:
            await sock.send_str("echo:" + msg.data)
        return sock

    async def not_found(request):
        return web.json_response({"detail": "Not Found"}, status=404)

    async def awake(request):
        return web.json_response({"is_sleeping": False})

    app = web.Application()
    app.router.add_route("*", "/v1/echo", echo)
    app.router.add_route("*", "/echo", echo)
    app.router.add_post("/v1/broken", broken)
    app.router.add_get("/v1/realtime", ws)
    app.router.add_post("/sleep", not_found)
    app.router.add_get("/is_sleeping", awake)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


@pytest.mark.asyncio
async def test_headers_body_and_broken_streams(echo_upstream):
    upstream, seen = echo_upstream
    async with Gate(upstream) as g:
        async with httpx.AsyncClient() as c:
            r = await c.post(g.url + "/v1/echo?x=1%202", content=b'{"a": 1}', headers={
                "Authorization": "Bearer client-key", "Content-Type": "application/json", "X-Custom": "kept",
                "Connection": "keep-alive, X-Drop", "X-Drop": "hop", "Keep-Alive": "timeout=5",
                "X-Forwarded-For": "203.0.113.9", CONTROL_HEADER: "secret", "Accept-Encoding": "identity"})
            got = r.json()
            headers = {k.lower(): v for k, v in got["headers"]}
            assert got["method"] == "POST" and got["path"] == "/v1/echo?x=1%202" and got["body"] == '{"a": 1}'
            assert headers["authorization"] == "Bearer client-key" and headers["x-custom"] == "kept"
            assert headers["host"] == upstream.removeprefix("http://")
            assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
            assert headers["content-length"] == "8" and headers["accept-encoding"] == "identity"
            for gone in ("x-drop", "keep-alive", CONTROL_HEADER.lower(), "transfer-encoding"):
                assert gone not in headers, gone
            # a chunked request body goes on whole
            async def parts():
                yield b'{"b":'
                yield b' 2}'
            got = (await c.post(g.url + "/echo", content=parts())).json()
            assert got["body"] == '{"b": 2}' and ("Transfer-Encoding", "chunked") in map(tuple, got["headers"])
        # vLLM breaking a stream off breaks the client's stream off: never a clean end
        async with aiohttp.ClientSession() as s:
            async with s.post(g.url + "/v1/broken") as r:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await r.read()
        assert g.gate.in_flight == 0
        # a WebSocket goes through, counted as model work while it is open
        async with aiohttp.ClientSession() as s, s.ws_connect(g.url.replace("http", "ws") + "/v1/realtime") as ws:
            await ws.send_str("hi")
            assert (await ws.receive()).data == "echo:hi" and seen["ws_open"] and g.gate.in_flight == 1
        await wait_for(lambda: g.gate.in_flight == 0)


@pytest.mark.asyncio
async def test_pause_refused_by_vllm_without_dev_mode(echo_upstream):
    upstream, _ = echo_upstream
    async with Gate(upstream) as g:
        with pytest.raises(ProblemError) as err:
            await g.gate.pause()
        assert err.value.problem.title == "Could not put the model to sleep: this vLLM has no sleep mode"
        assert "VLLM_SERVER_DEV_MODE=1" in err.value.problem.explanation
        assert g.gate.state is GateState.AWAKE and g.states == ["pausing", "awake"]
        assert g.changes[-1][1]["error"] == err.value.problem.explanation
        async with httpx.AsyncClient() as c:  # requests go on
            assert (await c.post(g.url + "/v1/echo", json={})).status_code == 200
