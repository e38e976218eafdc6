"""Tool calls and structured output on real vLLM 0.26, started by `llmdesk serve` on the tiny random-weight
Llama (shared/tools/make_tiny_llama.py).

The tiny model's own chat template has no tools, so the server gets llmdesk's small tool-capable
Llama-3 template (tests/data/chat_templates/llmdesk-llama3-json-tools.jinja) with `--chat-template`
after `--`, and `--tool-call-parser auto` must then pick llama3_json from it (server/tool_parsers.py). Its
tokenizer gets `<|python_tag|>` (tests/gpu/add_special_token.py): vLLM's llama3_json parser looks it up for
every chat request, and without it every request failed with HTTP 500 (H100, 2026-12-07).
Random weights never call a tool on their own, so the calls are forced: a named function and
tool_choice "required" make vLLM constrain the output to the tool's JSON schema (guided decoding).
The parameters are enums and the server keeps JSON compact (no free whitespace, which random weights
filled to max tokens on 2026-12-07), so a forced call is short whatever the weights. Compact JSON reaches
a forced call only with VLLM_ENFORCE_STRICT_TOOL_CALLING=0: vLLM 0.26's default (strict) forces a Llama
call with xgrammar's built-in "llama" structural tag, whose JSON keeps its free whitespace whatever
--structured-outputs-config says (H100, 2026-12-07, third run: the JSON-schema reply came compact, the
forced calls' arguments were spaces again). Without strict mode vLLM constrains a named call to the tool's
parameters and "required" to a list of calls, its other documented path.

Checked: the call comes back whole through core/chat/client.py's accumulator (the same arguments as the
non-streamed answer), its arguments fit the tool's schema, the result goes back as a "tool" message
and vLLM renders it and answers; a JSON schema, a choice and a regex constrain the reply and
core/chat/structured.py finds it valid; `llmdesk chat --tools/--tool-results/--json-schema` exit 0; a
server started with `--tool-call-parser none` refuses tools in vLLM's words, which the client turns
into ToolsNotEnabled. vLLM's raw streamed chunks go to `$OUT/tools-structured.json` so the stand-in
(tests/fakes/vllm_standin/site/vllm/_standin_toolcalls.py) can be held to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import httpx

from llmdesk.core.chat import structured as st
from llmdesk.core.chat.client import ChatClient, ChatParams, ToolsNotEnabled
from llmdesk.core.chat.tools import COMPACT_JSON_OPTIONS, check_arguments, parse_tools, tool_message
from tests.fakes.standin_server import free_port
from tests.gpu.add_special_token import add_special_token
from tests.gpu.conftest import ROOT, model_dir

TEMPLATE = ROOT / "tests" / "data" / "chat_templates" / "llmdesk-llama3-json-tools.jinja"
TOOLS = parse_tools([
    {"name": "get_weather", "description": "The weather now in a city",
     "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                    "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]},
                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
    {"name": "get_time", "description": "The time now",
     "parameters": {"type": "object", "additionalProperties": False, "required": ["zone"],
                    "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}}},
])
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer", "digit"],
          "properties": {"answer": {"type": "string", "enum": ["yes", "no"]},
                         "digit": {"type": "integer", "enum": list(range(10))}}}
GREEDY = ChatParams(max_tokens=200, temperature=0.0)
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def serve(model: str, port: int, out_dir, name: str, *options: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmdesk", "serve", model, "--served-model-name", "tiny", "--port", str(port),
         "--runtime", sys.executable, "--enforce-eager", *options],
        stdout=subprocess.PIPE, stderr=open(out_dir / f"{name}.stderr", "w"), text=True, start_new_session=True,
        cwd=ROOT, env=env)


def wait_url(proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("http"):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError("llmdesk serve printed no URL")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(10)


async def stream(client: ChatClient, messages: list[dict], **kwargs) -> dict:
    text = "".join([d.content async for d in client.stream("tiny", messages, GREEDY, **kwargs)])
    calls = client.last_tool_calls
    return {"text": text, "finish": client.last_stats.finish_reason, "completion_tokens":
            client.last_stats.completion_tokens, "calls": [c.as_openai() for c in calls], "_calls": calls}


async def raw_stream(url: str, body: dict) -> list[dict]:
    """vLLM's own chunks of a streamed request, for the stand-in's sake."""
    chunks = []
    async with httpx.AsyncClient(timeout=300) as http, http.stream(
            "POST", url.rstrip("/") + "/chat/completions",
            json={"model": "tiny", "stream": True, "temperature": 0.0, "max_tokens": 200, **body}) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line[6:] != "[DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


async def probe(url: str) -> dict:
    """Every step on its own: one that fails (vLLM's HTTP 500 to a named tool choice, 2026-12-07) is
    recorded as {"failed": ...} and the others still run, so one GPU run tells all."""
    out: dict = {}
    question = [{"role": "user", "content": "What is the weather in Paris?"}]

    async def step(name: str, make) -> None:
        try:
            out[name] = await make()
        except Exception as exc:  # kept for the report; the test's assertions name the step
            problem = getattr(exc, "problem", None)
            out[name] = {"failed": f"{type(exc).__name__}: {exc}",
                         "problem": problem.as_dict() if problem is not None else None}

    async with ChatClient(url) as client:
        async def forced(choice) -> dict:
            reply = await stream(client, question, tools=TOOLS, tool_choice=choice)
            reply["check"] = [check_arguments(TOOLS, c) for c in reply.pop("_calls")]
            return reply

        async def whole(choice) -> dict:
            async with httpx.AsyncClient(timeout=300) as http:
                resp = await http.post(url.rstrip("/") + "/chat/completions", json={
                    "model": "tiny", "messages": question, "tools": TOOLS, "tool_choice": choice,
                    "temperature": 0.0, "max_tokens": 200})
            body = resp.json()
            if resp.status_code != 200:
                return {"failed": f"HTTP {resp.status_code}", "body": body}
            return body["choices"][0]

        async def chunks(choice) -> list:
            return (await raw_stream(url, {"messages": question, "tools": TOOLS, "tool_choice": choice}))[:40]

        await step("named", lambda: forced(NAMED))
        await step("required", lambda: forced("required"))
        await step("named_whole", lambda: whole(NAMED))
        await step("required_whole", lambda: whole("required"))
        await step("named_raw_chunks", lambda: chunks(NAMED))

        async def round_trip() -> dict:
            # the call and its result go back, vLLM renders them with the template and answers
            made = out.get("named", {}).get("calls") or out.get("required", {}).get("calls")
            call = made[0]
            history = [*question, {"role": "assistant", "content": None, "tool_calls": [call]},
                       tool_message(call["id"], {"temp_c": 18, "sky": "clear"})]
            back = await stream(client, history, tools=TOOLS)
            back.pop("_calls")
            back["sent"] = history[1:]
            return back

        await step("after_result", round_trip)

        for name, shape in (("json_schema", st.json_schema(SCHEMA)), ("choice", st.choice(["alpha", "beta"])),
                            ("regex", st.regex(r"[0-9]{3}-[a-z]{2}"))):
            async def constrained(shape=shape) -> dict:
                reply = await stream(client, [{"role": "user", "content": "Answer."}], structured=shape)
                reply.pop("_calls")
                reply["verdict"] = shape.check(reply["text"]).as_dict()
                return reply

            await step(name, constrained)
    return out


def test_tool_call_round_trip_and_structured_replies(gpu_env, report, out_dir, tmp_path):
    # the tiny tokenizer has no <|python_tag|>, which vLLM's llama3_json parser needs for every chat request
    model = str(add_special_token(model_dir("tiny"), tmp_path / "tiny-python-tag", "<|python_tag|>"))
    port = free_port()
    # compact JSON: random weights under vLLM's JSON grammar wrote spaces between fields to max tokens (H100,
    # 2026-12-07), so the forced call's arguments never came; the grammar without free whitespace leaves
    # only the enum values to choose
    # and strict tool calling off through llmdesk's own --env (the Server page's Environment field)
    proc = serve(model, port, out_dir, "tools-serve", "--tool-call-parser", "auto",
                 "--env", "VLLM_ENFORCE_STRICT_TOOL_CALLING=0", "--", "--chat-template", str(TEMPLATE),
                 *COMPACT_JSON_OPTIONS)
    try:
        url = wait_url(proc, 600)
        result = asyncio.run(probe(url))
        files = {}
        for name, value in {"tools": TOOLS, "results": {"get_weather": {"temp_c": 18}}, "schema": SCHEMA}.items():
            files[name] = tmp_path / f"{name}.json"
            files[name].write_text(json.dumps(value))
        chat = [sys.executable, "-m", "llmdesk", "chat", "--url", url, "--model", "tiny", "--max-tokens", "200",
                "--temperature", "0"]
        tool_cli = subprocess.run([*chat, "--tools", str(files["tools"]), "--tool-choice", "get_weather",
                                   "--tool-results", str(files["results"]), "Weather in Oslo?"],
                                  capture_output=True, text=True, timeout=300, cwd=ROOT)
        schema_cli = subprocess.run([*chat, "--json-schema", str(files["schema"]), "Answer."],
                                    capture_output=True, text=True, timeout=300, cwd=ROOT)
        result["cli"] = {"tools": {"exit": tool_cli.returncode, "stdout": tool_cli.stdout[-2000:],
                                   "stderr": tool_cli.stderr[-2000:]},
                         "json_schema": {"exit": schema_cli.returncode, "stdout": schema_cli.stdout[-2000:],
                                         "stderr": schema_cli.stderr[-2000:]}}
    finally:
        serve_exit = stop(proc)
    serve_err = (out_dir / "tools-serve.stderr").read_text(errors="replace")
    result["serve_exit"] = serve_exit
    result["serve_note"] = [line for line in serve_err.splitlines() if line.startswith(("note:", "warning:"))]
    (out_dir / "tools-structured.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    report.add("tools_structured", named=result["named"], required=result["required"],
               named_whole=result["named_whole"], required_whole=result["required_whole"],
               after_result={k: result["after_result"].get(k) for k in ("finish", "completion_tokens", "failed")},
               **{name: result[name].get("verdict", result[name]) for name in ("json_schema", "choice", "regex")},
               cli_exit={k: v["exit"] for k, v in result["cli"].items()}, serve_note=result["serve_note"])
    failed = {name: value["failed"] for name, value in result.items()
              if isinstance(value, dict) and "failed" in value}
    assert not failed, failed  # each step's error; vLLM's own words are in $OUT/logs

    assert "note: Llama 3.1+ — tool calls: llama3_json, reasoning: none" in result["serve_note"], serve_err[-3000:]
    named = result["named"]
    assert len(named["calls"]) == 1 and named["calls"][0]["function"]["name"] == "get_weather", named
    assert named["check"] == [None], named  # the arguments fit the tool's schema
    whole_args = result["named_whole"]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(whole_args) == json.loads(named["calls"][0]["function"]["arguments"])
    required = result["required"]
    # "required" is a list of calls with no upper bound: greedy random weights may go on listing calls until max
    # tokens, so only the last one may be cut off
    complete = required["check"][:-1] if required["finish"] == "length" else required["check"]
    assert required["calls"] and required["check"][0] is None and all(c is None for c in complete), required
    assert result["after_result"]["finish"] in ("stop", "length")
    for name in ("json_schema", "choice", "regex"):
        assert result[name]["verdict"]["ok"], (name, result[name])
    assert result["cli"]["tools"]["exit"] == 0, result["cli"]["tools"]
    assert "[tool call] get_weather(" in result["cli"]["tools"]["stderr"]
    assert result["cli"]["json_schema"]["exit"] == 0, result["cli"]["json_schema"]


def test_a_server_without_a_tool_parser_refuses_tools_in_vllms_words(gpu_env, report, out_dir):
    model = str(model_dir("tiny"))
    proc = serve(model, free_port(), out_dir, "tools-off-serve", "--tool-call-parser", "none")

    async def run(url: str) -> dict:
        out = {}
        async with ChatClient(url) as client:
            for choice in ("auto", "required"):
                try:
                    await stream(client, [{"role": "user", "content": "Weather?"}], tools=TOOLS,
                                 tool_choice=choice)
                    out[choice] = None
                except ToolsNotEnabled as exc:
                    out[choice] = exc.problem.as_dict()
        return out

    try:
        result = asyncio.run(run(wait_url(proc, 600)))
    finally:
        code = stop(proc)
    report.add("tools_refused_without_parser", serve_exit=code, **result)
    assert result["auto"] is not None and '"auto" tool choice requires --enable-auto-tool-choice and ' \
        '--tool-call-parser to be set' in result["auto"]["explanation"]
    assert result["required"] is not None and \
        'tool_choice="required" requires --tool-call-parser to be set' in result["required"]["explanation"]
