"""Each tool's request (core/server/tool_check.py, `llmdesk endpoint --test`) against real vLLM 0.26,
started by `llmdesk serve` on the tiny random-weight model with an API key and tool calling off.

Checked: every tool's Test passes (Claude Code's streamed /v1/messages, Codex's /v1/responses and
chat, the OpenAI chat tools); vLLM checks the key as `Authorization: Bearer` only (an `x-api-key`
alone gets 401, which is why the Claude Code settings use ANTHROPIC_AUTH_TOKEN); a request with tools
gets 400 while tool calling is off (the settings' note); a wrong model is named. vLLM's own answers
(non-streamed and streamed /v1/messages, /v1/messages/count_tokens, /v1/responses) are saved to
`$OUT/tool-endpoints.json` beside the report, with whether each has the fields the stand-in
(tests/fakes/vllm_standin/site/vllm/_standin_tools.py) sends, so the stand-in can be held to them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import httpx

from llmdesk.core.server.tool_check import check_all, check_tool, read_endpoint
from llmdesk.core.server.endpoint import Unauthorized
from llmdesk.core.server.tool_endpoints import TOOLS
from tests.fakes.standin_server import free_port
from tests.gpu.conftest import ROOT, model_dir

KEY = "sk-llmdesk-gpu-tools-0123456789"
# The fields the stand-in sends; a real answer with others (or without these) means the stand-in needs a look.
STANDIN_MESSAGE_FIELDS = {"id", "type", "role", "content", "model", "stop_reason", "usage"}
STANDIN_RESPONSE_FIELDS = {"id", "created_at", "incomplete_details", "instructions", "metadata", "model", "object",
                           "output", "parallel_tool_calls", "temperature", "tool_choice", "tools", "top_p",
                           "background", "max_output_tokens", "max_tool_calls", "previous_response_id", "prompt",
                           "reasoning", "service_tier", "status", "text", "top_logprobs", "truncation", "usage",
                           "user", "presence_penalty", "frequency_penalty", "kv_transfer_params",
                           "ec_transfer_params", "input_messages", "output_messages"}
STANDIN_EVENTS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                  "message_delta", "message_stop"]


def _wait_url(proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("http"):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError("llmdesk serve printed no URL")


def _events(text: str) -> list[str]:
    """The SSE event names in order, repeats of one name folded (one delta per token)."""
    names = [line[7:].strip() for line in text.splitlines() if line.startswith("event: ")]
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


async def _probe(url: str) -> dict:
    endpoint = await read_endpoint(url, KEY)
    root = endpoint.root_url
    out: dict = {"endpoint": endpoint.as_dict()}
    try:
        await read_endpoint(url, None)
        out["models_without_key"] = 200
    except Unauthorized as exc:
        out["models_without_key"] = exc.problem.as_dict()
    checks = await check_all(endpoint)
    checks.append(await check_tool(endpoint, "codex", wire_api="chat"))
    out["checks"] = [c.as_dict() for c in checks]
    out["checks_wrong_model"] = [c.as_dict() for c in await check_all(endpoint, model="no-such-model")]

    bearer = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    message = {"model": endpoint.default_model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hello"}]}
    async with httpx.AsyncClient(base_url=root, timeout=120) as http:
        raw: dict = {}
        r = await http.post("/v1/messages", json=message, headers=bearer)
        raw["messages"] = {"status": r.status_code, "body": r.json()}
        r = await http.post("/v1/messages?beta=true", json={**message, "stream": True}, headers=bearer)
        raw["messages_stream"] = {"status": r.status_code, "events": _events(r.text), "text": r.text[:4000]}
        r = await http.post("/v1/messages", json=message,
                            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
        raw["messages_x_api_key_only"] = {"status": r.status_code, "body": r.text[:500]}
        r = await http.post("/v1/messages", json={**message, "model": "no-such-model"}, headers=bearer)
        raw["messages_wrong_model"] = {"status": r.status_code, "body": r.json()}
        tools = [{"name": "read_file", "description": "Read a file",
                  "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
        r = await http.post("/v1/messages", json={**message, "tools": tools}, headers=bearer)
        raw["messages_with_tools_no_parser"] = {"status": r.status_code, "body": r.text[:1000]}
        r = await http.post("/v1/messages/count_tokens", json={"model": endpoint.default_model,
                                                               "messages": message["messages"]}, headers=bearer)
        raw["count_tokens"] = {"status": r.status_code, "body": r.text[:500]}
        r = await http.post("/v1/responses", json={"model": endpoint.default_model, "input": "Hello",
                                                   "max_output_tokens": 8, "store": False}, headers=bearer)
        raw["responses"] = {"status": r.status_code, "body": r.json()}
        r = await http.post("/v1/responses", json={"model": endpoint.default_model, "input": "Hello",
                                                   "max_output_tokens": 8, "stream": True}, headers=bearer)
        raw["responses_stream"] = {"status": r.status_code, "events": _events(r.text), "text": r.text[:4000]}
    out["raw"] = raw
    out["shapes"] = {
        "messages_fields_as_standin": set(raw["messages"]["body"]) == STANDIN_MESSAGE_FIELDS,
        "messages_fields": sorted(raw["messages"]["body"]),
        "messages_events_as_standin": raw["messages_stream"]["events"] == STANDIN_EVENTS,
        "responses_fields_as_standin": set(raw["responses"]["body"]) == STANDIN_RESPONSE_FIELDS,
        "responses_fields": sorted(raw["responses"]["body"]),
    }
    return out


def test_each_tools_request_works_on_real_vllm(gpu_env, report, out_dir):
    model = str(model_dir("tiny"))
    port = free_port()
    env = {**os.environ, "LLMDESK_API_KEY": KEY}
    with open(out_dir / "tool-endpoints-serve.stderr", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmdesk", "serve", model, "--served-model-name", "tiny", "--port", str(port),
             "--runtime", sys.executable, "--tool-call-parser", "none", "--reasoning-parser", "none"],
            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True, env=env, cwd=ROOT)
        try:
            url = _wait_url(proc, 600)
            result = asyncio.run(_probe(url))
            cli = subprocess.run([sys.executable, "-m", "llmdesk", "endpoint", "--url", url, "--json", "--test"],
                                 capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
            result["cli"] = {"exit": cli.returncode, "stderr": cli.stderr[-2000:]}
            (out_dir / "tool-endpoints-cli.json").write_text(cli.stdout, encoding="utf-8")
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(120)
    result["serve_exit"] = code
    (out_dir / "tool-endpoints.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    summary = {}
    for i, c in enumerate(result["checks"]):
        summary[c["tool"] + (" (wire_api chat)" if i == len(TOOLS) else "")] = {
            "ok": c["ok"], "latency_s": c["latency_s"], "requests": c["requests"], "problem": c["problem"]}
    report.add("tool_endpoints", checks=summary,
               shapes=result["shapes"], x_api_key_only=result["raw"]["messages_x_api_key_only"]["status"],
               tools_without_parser=result["raw"]["messages_with_tools_no_parser"]["status"],
               cli_exit=result["cli"]["exit"], serve_exit=code)

    raw = result["raw"]
    for c in result["checks"]:
        assert c["ok"], c
    assert result["cli"]["exit"] == 0, result["cli"]
    assert result["models_without_key"]["title"] == "The server wants an API key"
    assert raw["messages_x_api_key_only"]["status"] == 401  # vLLM checks Bearer only: hence ANTHROPIC_AUTH_TOKEN
    assert raw["messages"]["status"] == 200 and raw["messages"]["body"]["type"] == "message"
    assert raw["messages_stream"]["events"][0] == "message_start" and raw["messages_stream"]["events"][-1] == "message_stop"
    assert raw["messages_wrong_model"]["status"] == 404
    assert raw["messages_with_tools_no_parser"]["status"] == 400
    assert "--enable-auto-tool-choice" in raw["messages_with_tools_no_parser"]["body"]
    assert raw["count_tokens"]["status"] == 200 and "input_tokens" in raw["count_tokens"]["body"]
    assert raw["responses"]["status"] == 200 and raw["responses"]["body"]["object"] == "response"
    for c in result["checks_wrong_model"]:
        assert not c["ok"] and c["problem"]["title"] == "The server has no model 'no-such-model'", c
    assert code == 0
