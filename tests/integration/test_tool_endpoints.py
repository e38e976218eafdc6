"""core/server/tool_check.py and `llmdesk endpoint` against the stand-in vLLM (tests/fakes/vllm_standin),
which serves /v1/messages and /v1/responses in vLLM 0.26's shapes and checks the key as vLLM does
(`Authorization: Bearer` only): each tool's request works, and a wrong key, a stopped server, a wrong
model and a missing route are each said in plain words."""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized
from llmdesk.core.server.tool_check import check_all, check_tool, read_endpoint
from llmdesk.core.server.tool_endpoints import TOOLS, Endpoint, ServedModel
from tests.fakes.standin_server import free_port, kill_group, start_standin

ROOT = Path(__file__).resolve().parents[2]
KEY = "sekret-key-for-tests"
REQUESTS = {"claude-code": ["POST /v1/messages?beta=true 200"], "codex": ["POST /v1/responses 200"],
            "continue": ["GET /v1/models 200", "POST /v1/chat/completions 200"],
            "aider": ["GET /v1/models 200", "POST /v1/chat/completions 200"],
            "open-webui": ["GET /v1/models 200", "POST /v1/chat/completions 200"]}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[str]:
    proc, root = start_standin(tmp_path_factory.mktemp("rt-tools-key"), "ok", "--api-key", KEY)
    try:
        yield root
    finally:
        kill_group(proc)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory) -> Iterator[str]:
    proc, root = start_standin(tmp_path_factory.mktemp("rt-tools-open"), "ok", served="my model")
    try:
        yield root
    finally:
        kill_group(proc)


# --- the stand-in's new routes, as vLLM answers them ----------------------------------------

def test_the_stand_in_checks_the_key_on_messages_as_vllm_does_bearer_only(keyed):
    body = {"model": "demo", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(keyed + "/v1/messages", json=body, headers={"x-api-key": KEY}).status_code == 401
    ok = httpx.post(keyed + "/v1/messages", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    data = ok.json()
    assert set(data) == {"id", "type", "role", "content", "model", "stop_reason", "usage"}
    assert data["type"] == "message" and data["content"][0]["type"] == "text" and data["stop_reason"] == "max_tokens"
    assert data["usage"]["output_tokens"] == 4
    missing = httpx.post(keyed + "/v1/messages", json={**body, "model": "nope"}, headers={"Authorization": f"Bearer {KEY}"})
    assert missing.status_code == 404
    assert missing.json() == {"type": "error", "error": {"type": "NotFoundError",
                                                         "message": "The model `nope` does not exist."}}


def test_the_stand_in_streams_messages_events_in_vllms_order(keyed):
    body = {"model": "demo", "max_tokens": 3, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(keyed + "/v1/messages", json=body, headers={"Authorization": f"Bearer {KEY}"})
    events = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert resp.headers["content-type"].startswith("text/event-stream")


def test_the_stand_in_answers_responses_without_streaming(keyed):
    auth = {"Authorization": f"Bearer {KEY}"}
    data = httpx.post(keyed + "/v1/responses", headers=auth,
                      json={"model": "demo", "input": "hi", "max_output_tokens": 5}).json()
    assert data["object"] == "response" and data["status"] == "incomplete"
    assert data["output"][0]["content"][0]["type"] == "output_text" and data["usage"]["output_tokens"] == 5
    assert httpx.post(keyed + "/v1/responses", headers=auth, json={"model": "demo", "input": "hi",
                                                                   "stream": True}).status_code == 400


# --- the checks -------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_every_tool_works_with_the_right_key(keyed):
    endpoint = await read_endpoint(keyed + "/v1", KEY)
    assert endpoint == Endpoint(keyed, (ServedModel("demo", 2048),), KEY)
    checks = await check_all(endpoint)
    assert [c.tool for c in checks] == list(TOOLS)
    for c in checks:
        assert c.ok, (c.tool, c.problem)
        assert list(c.requests) == REQUESTS[c.tool]
        assert c.answer and c.latency_s > 0 and c.model == "demo"
        assert c.line.startswith("ok · ") and "“" in c.line
    chat = await check_tool(endpoint, "codex", wire_api="chat")
    assert chat.ok and chat.requests == ("POST /v1/chat/completions 200",)


@pytest.mark.asyncio
async def test_a_wrong_key_is_said_for_every_tool(keyed):
    checks = await check_all(Endpoint(keyed, (ServedModel("demo"),), "wrong"))
    for c in checks:
        assert not c.ok and c.problem.title == "The API key was refused", c.tool
        assert "HTTP 401" in c.problem.explanation
    with pytest.raises(Unauthorized) as no_key:
        await read_endpoint(keyed)
    assert no_key.value.problem.title == "The server wants an API key"


@pytest.mark.asyncio
async def test_a_stopped_server_is_said_for_every_tool():
    root = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachable) as down:
        await read_endpoint(root)
    assert down.value.problem.title == "The server is not running"
    for c in await check_all(Endpoint(root, (ServedModel("demo"),), None)):
        assert not c.ok and c.problem.title == "The server is not running", c.tool
        assert "llmdesk serve" in c.problem.fix and c.requests == ()


@pytest.mark.asyncio
async def test_a_wrong_model_is_said_with_the_served_names(keyed):
    endpoint = await read_endpoint(keyed, KEY)
    for c in await check_all(endpoint, model="no-such-model"):
        assert not c.ok and c.problem.title == "The server has no model 'no-such-model'", c.tool
        assert c.problem.explanation.endswith("It serves demo.")
    claude = await check_tool(endpoint, "claude-code", model="no-such-model")
    assert "The model `no-such-model` does not exist." in claude.problem.explanation  # vLLM's own words


@pytest.mark.asyncio
async def test_without_a_key_the_tools_send_what_their_settings_give(open_server):
    endpoint = await read_endpoint(open_server)
    assert endpoint.api_key is None and endpoint.default_model == "my model"
    for c in await check_all(endpoint):
        assert c.ok, (c.tool, c.problem)


class _OnlyModels(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server with /v1/models and /v1/chat/completions only (no Anthropic, no Responses)."""

    def log_message(self, *args):
        pass

    def _json(self, status: int, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/v1/chat/completions":
            self._json(500, {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}})
        else:
            self._json(404, {"detail": "Not Found"})


@contextlib.contextmanager
def only_models() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OnlyModels)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.asyncio
async def test_a_missing_route_and_another_status_are_said_with_the_servers_words():
    with only_models() as root:
        endpoint = await read_endpoint(root)
        claude = await check_tool(endpoint, "claude-code")
        assert claude.problem.title == "The server has no /v1/messages route"
        assert "HTTP 404" in claude.problem.explanation
        codex = await check_tool(endpoint, "codex")
        assert codex.problem.title == "The server has no /v1/responses route" and "older Codex" in codex.problem.fix
        aider = await check_tool(endpoint, "aider")
        assert aider.problem.title == "The server refused the request (HTTP 500)"
        assert aider.problem.explanation == "/v1/chat/completions: CUDA out of memory"
        assert aider.requests == ("GET /v1/models 200", "POST /v1/chat/completions 500")


# --- the CLI ----------------------------------------------------------------------------------

def llmdesk(*argv: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    import os

    full = {k: v for k, v in os.environ.items() if k != "LLMDESK_API_KEY"}
    return subprocess.run([sys.executable, "-m", "llmdesk", "endpoint", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**full, **(env or {})})


def test_cli_text_names_urls_models_masked_key_and_every_tool(keyed):
    out = llmdesk("--url", keyed, "--api-key", KEY)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"  OpenAI base URL     {keyed}/v1\n" in text
    assert f"  Anthropic base URL  {keyed}  (clients add /v1/messages)\n" in text
    assert "  Models              demo (max_model_len 2,048)\n" in text
    assert "  API key             sek…ests (--show-key prints it)\n" in text
    assert KEY not in text
    assert [line for line in text.splitlines() if line.startswith("== ")] == [
        "== Claude Code ==", "== Codex CLI ==", "== Continue ==", "== Aider ==", "== Open WebUI =="]
    assert f"export ANTHROPIC_BASE_URL={keyed}\n" in text and "Test:" not in text


def test_cli_test_of_one_tool_with_the_key_shown(keyed):
    out = llmdesk("--url", keyed, "--api-key", KEY, "--tool", "claude-code", "--test", "--show-key")
    assert out.returncode == 0, out.stderr
    assert f"export ANTHROPIC_AUTH_TOKEN={KEY}\n" in out.stdout
    assert "== Codex CLI ==" not in out.stdout
    assert "\nTest: ok · " in out.stdout


def test_cli_json_with_tests(keyed):
    out = llmdesk("--url", keyed, "--api-key", KEY, "--json", "--test")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["endpoint"] == {"url": keyed, "openai_base_url": keyed + "/v1", "anthropic_base_url": keyed,
                                "models": [{"id": "demo", "max_model_len": 2048, "parent": None}],
                                "api_key_set": True, "api_key": "sek…ests"}
    assert [t["tool"] for t in data["tools"]] == list(TOOLS)
    for t in data["tools"]:
        assert t["test"]["ok"] and t["test"]["requests"] == REQUESTS[t["tool"]], t
        assert t["snippets"] and t["sources"] and KEY not in json.dumps(t)


def test_cli_failures_exit_1_with_the_problem(keyed):
    wrong = llmdesk("--url", keyed, "--api-key", KEY, "--model", "nope", "--test", "--tool", "aider")
    assert wrong.returncode == 1
    assert "Test: The server has no model 'nope': It serves demo." in wrong.stdout
    no_key = llmdesk("--url", keyed, "--json")
    assert no_key.returncode == 1
    assert json.loads(no_key.stdout)["error"]["title"] == "The server wants an API key"
    down = llmdesk("--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "error: The server is not running" in down.stderr
    assert "llmdesk serve" in down.stderr


def test_cli_finds_the_server_llmdesk_manages_and_its_stored_key(keyed, monkeypatch):
    """No --url: the record of the server llmdesk started; no key: the one llmdesk stored (in the key file of
    this test's LLMDESK_HOME: no keyring, here or in the child)."""
    from llmdesk.core.base import secrets
    from tests.fakes.server_records import write_live_record

    monkeypatch.setattr(secrets, "_usable_keyring", lambda: None)
    write_live_record(int(keyed.rsplit(":", 1)[1]))
    secrets.save_server_api_key(KEY)
    out = llmdesk("--json", env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["endpoint"]["url"] == keyed
