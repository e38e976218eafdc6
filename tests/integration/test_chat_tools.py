"""Tool calls and structured output through core/chat/client.py and `llmdesk chat`, against the stand-in vLLM
(tests/fakes/vllm_standin/site/vllm/_standin_toolcalls.py answers as vLLM 0.26 does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmdesk.core.chat import structured as st
from llmdesk.core.chat.client import ChatClient, ToolsNotEnabled
from llmdesk.core.chat.conversations import ConversationStore
from llmdesk.core.chat.tools import assistant_message, parse_tools, tool_message
from tests.fakes.standin_server import running_standin

ROOT = Path(__file__).resolve().parents[2]
TOOLS = parse_tools([
    {"name": "get_weather", "description": "The weather now",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
])
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
          "required": ["city", "temp_c"]}
TOOL_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "llama3_json")


@pytest.fixture(scope="module")
def tools_server(tmp_path_factory):
    with running_standin(tmp_path_factory.mktemp("tools-on"), "ok", *TOOL_FLAGS) as root:
        yield root


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    with running_standin(tmp_path_factory.mktemp("tools-off"), "ok") as root:
        yield root


@pytest.fixture(scope="module")
def breaking_server(tmp_path_factory):
    with running_standin(tmp_path_factory.mktemp("breaks"), "ok", *TOOL_FLAGS,
                         env={"FAKE_VLLM_BREAK_STRUCTURED": "1"}) as root:
        yield root


async def collect(client, messages, **kwargs):
    deltas = [d async for d in client.stream("demo", messages, **kwargs)]
    return "".join(d.content for d in deltas), deltas


# --- the client -----------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_a_tool_call_round_trip(tools_server):
    async with ChatClient(tools_server) as client:
        messages = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
        text, deltas = await collect(client, messages, tools=TOOLS)
        assert text == "" and client.last_stats.finish_reason == "tool_calls"
        [call] = client.last_tool_calls
        assert call.id.startswith("chatcmpl-tool-") and call.name == "get_weather"
        assert json.loads(call.arguments) == {"city": "Paris"}
        snapshots = [d.tool_calls for d in deltas if d.tool_calls]
        assert len(snapshots) > 2, "the arguments come in pieces, as vLLM streams them"
        assert snapshots[0][0].arguments == "" and snapshots[-1][0].arguments == call.arguments
        messages += [assistant_message(text, [call]), tool_message(call.id, {"temp_c": 18})]
        text, _ = await collect(client, messages, tools=TOOLS)
        assert text == 'Result: {"temp_c": 18}' and client.last_stats.finish_reason == "stop"
        assert client.last_tool_calls == []


@pytest.mark.asyncio
async def test_parallel_calls_and_tool_choice(tools_server):
    async with ChatClient(tools_server) as client:
        await collect(client, [{"role": "user", "content": "get_time in Tokyo, then get_weather in Oslo"}], tools=TOOLS)
        assert [c.name for c in client.last_tool_calls] == ["get_time", "get_weather"]
        assert len({c.id for c in client.last_tool_calls}) == 2
        await collect(client, [{"role": "user", "content": "Hello"}], tools=TOOLS, tool_choice="required")
        assert [c.name for c in client.last_tool_calls] == ["get_weather"]
        await collect(client, [{"role": "user", "content": "Hello"}], tools=TOOLS,
                      tool_choice={"type": "function", "function": {"name": "get_time"}})
        assert [c.name for c in client.last_tool_calls] == ["get_time"]
        assert client.last_stats.finish_reason == "stop"  # vLLM: a named function finishes with "stop"
        text, _ = await collect(client, [{"role": "user", "content": "get_weather please"}], tools=TOOLS,
                                tool_choice="none")
        assert text and client.last_tool_calls == []


@pytest.mark.asyncio
async def test_a_server_without_tool_calling_refuses_in_vllms_words(plain_server):
    async with ChatClient(plain_server) as client:
        with pytest.raises(ToolsNotEnabled) as caught:
            await collect(client, [{"role": "user", "content": "get_weather in Paris"}], tools=TOOLS)
        problem = caught.value.problem
        assert problem.title == "The server was started without tool calling"
        assert '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set' \
            in problem.explanation
        assert "--tool-call-parser auto" in problem.fix
        with pytest.raises(ToolsNotEnabled) as caught:
            await collect(client, [{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="required")
        assert 'tool_choice="required" requires --tool-call-parser to be set' in caught.value.problem.explanation
        text, _ = await collect(client, [{"role": "user", "content": "no tools"}])  # the same server chats on
        assert text


@pytest.mark.asyncio
async def test_structured_output_is_asked_for_and_checked(tools_server):
    async with ChatClient(tools_server) as client:
        schema = st.json_schema(SCHEMA)
        text, _ = await collect(client, [{"role": "user", "content": "The weather in Rome"}], structured=schema)
        verdict = schema.check(text)
        assert verdict.ok and verdict.value == {"city": "Rome", "temp_c": 3}
        choice = st.choice(["yes", "no"])
        text, _ = await collect(client, [{"role": "user", "content": "ok?"}], structured=choice)
        assert text == "yes" and choice.check(text).ok
        pattern = st.regex(r"\d{4}-\d{2}-\d{2}")
        text, _ = await collect(client, [{"role": "user", "content": "a date"}], structured=pattern)
        assert pattern.check(text).ok


@pytest.mark.asyncio
async def test_a_reply_that_breaks_the_schema_is_reported(breaking_server):
    async with ChatClient(breaking_server) as client:
        schema = st.json_schema(SCHEMA)
        text, _ = await collect(client, [{"role": "user", "content": "The weather in Rome"}], structured=schema)
        verdict = schema.check(text)
        assert not verdict.ok and verdict.title == "Does not match the JSON schema"
        assert verdict.detail == "$: 'city' is a required property"
        choice = st.choice(["yes", "no"])
        text, _ = await collect(client, [{"role": "user", "content": "ok?"}], structured=choice)
        assert not choice.check(text).ok


def test_the_stand_in_refuses_what_vllm_refuses(tools_server):
    def post(body):
        return httpx.post(tools_server + "/v1/chat/completions", json={"model": "demo", **body}, timeout=10)

    user = [{"role": "user", "content": "hi"}]
    r = post({"messages": user, "tools": []})
    assert r.status_code == 400 and "`tools` must not be an empty array" in r.json()["error"]["message"]
    r = post({"messages": user, "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert r.status_code == 400 and "does not match any of the specified `tools`" in r.json()["error"]["message"]
    r = post({"messages": user, "structured_outputs": {"regex": "a", "choice": ["a"]}})
    assert r.status_code == 400 and "only use one kind of constraints" in r.json()["error"]["message"]
    whole = post({"messages": [{"role": "user", "content": "get_weather for Paris"}], "tools": TOOLS})
    message = whole.json()["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert whole.json()["choices"][0]["finish_reason"] == "tool_calls"


# --- llmdesk chat ---------------------------------------------------------------------------------

def cli(*argv: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", "chat", "--no-stats", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, input=stdin, env=env)


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, value in {"tools": TOOLS, "results": {"get_weather": {"temp_c": 18}}, "schema": SCHEMA,
                        "bad_tools": [{"name": "get weather"}], "bad_schema": {"type": "objekt"}}.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(value))
    (tmp_path / "broken.json").write_text("[{")
    paths["broken"] = tmp_path / "broken.json"
    return paths


def test_cli_tool_results_from_a_file(tools_server, files):
    res = cli("--url", tools_server, "--tools", str(files["tools"]), "--tool-results", str(files["results"]),
              "What is the weather in Paris? Use get_weather.")
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'Result: {"temp_c": 18}\n'
    assert '[tool call] get_weather({"city": "Paris"})' in res.stderr
    assert '[tool result] get_weather: {"temp_c": 18}' in res.stderr


def test_cli_tool_results_from_stdin(tools_server, files):
    res = cli("--url", tools_server, "--tools", str(files["tools"]), "Weather in Oslo? get_weather", stdin="rain\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Result: rain\n" and "result of get_weather> rain" in res.stderr
    res = cli("--url", tools_server, "--tools", str(files["tools"]), "Weather in Oslo? get_weather", stdin="")
    assert res.returncode == 1 and "No result for get_weather" in res.stderr
    res = cli("--url", tools_server, "--tools", str(files["tools"]), "--tool-results", str(files["results"]),
              "--tool-choice", "get_time", "Hello")
    assert res.returncode == 1 and "has no result for 'get_time'" in res.stderr


def test_cli_a_forced_tool_choice_forces_the_first_call_only(tools_server, files):
    """Forced again after the result, vLLM could only call again, 8 rounds and exit 1 (H100, 2026-12-07)."""
    for choice in ("get_weather", "required"):
        res = cli("--url", tools_server, "--tools", str(files["tools"]), "--tool-results", str(files["results"]),
                  "--tool-choice", choice, "Hello")
        assert res.returncode == 0, res.stderr
        assert res.stdout == 'Result: {"temp_c": 18}\n' and res.stderr.count("[tool call]") == 1, res.stderr


def test_cli_a_structured_reply_cut_at_max_tokens_says_so(tools_server, files):
    res = cli("--url", tools_server, "--json-schema", str(files["schema"]), "--max-tokens", "3", "The weather in Rome")
    assert res.returncode == 1 and res.stdout == '{"city": "Rom\n'
    assert "The reply was cut off at max tokens" in res.stderr and "raise --max-tokens" in res.stderr
    assert "What came: the reply could not be read as JSON (Unterminated string" in res.stderr


def test_cli_saves_the_calls_and_results(tools_server, files, tmp_path):
    env = {**__import__("os").environ, "LLMDESK_HOME": str(tmp_path / "home")}
    res = cli("--url", tools_server, "--save", "--tools", str(files["tools"]), "--tool-results", str(files["results"]),
              "What is the weather in Paris? Use get_weather.", env=env)
    assert res.returncode == 0, res.stderr
    with ConversationStore(tmp_path / "home" / "data" / "conversations.sqlite3") as store:
        [summary] = store.list()
        chat = store.get(summary.id)
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.messages[1].tool_calls[0]["function"]["name"] == "get_weather"
    assert chat.messages[2].tool_call_id == chat.messages[1].tool_calls[0]["id"]
    assert chat.messages[3].content == 'Result: {"temp_c": 18}' and chat.params["tools"] == TOOLS


def test_cli_structured_output(tools_server, breaking_server, files):
    res = cli("--url", tools_server, "--json-schema", str(files["schema"]), "The weather in Rome")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"city": "Rome", "temp_c": 3}
    assert "[structured output: matches the JSON schema]" in res.stderr
    res = cli("--url", tools_server, "--choice", "yes,no", "ok?")
    assert (res.returncode, res.stdout) == (0, "yes\n")
    res = cli("--url", tools_server, "--regex", r"\d+", "a number")
    assert res.returncode == 0 and res.stdout.strip().isdigit()
    res = cli("--url", breaking_server, "--json-schema", str(files["schema"]), "The weather in Rome")
    assert res.returncode == 1
    assert "error: The reply does not match the JSON schema\n  $: 'city' is a required property." in res.stderr
    res = cli("--url", breaking_server, "--choice", "yes,no", "ok?")
    assert res.returncode == 1 and "'none of these' is not one of yes, no" in res.stderr


def test_cli_bad_input_exits_2_before_sending(tools_server, files):
    for argv, says in (
            (("--tools", str(files["bad_tools"])), "the name 'get weather' must be 1 to 64 letters"),
            (("--tools", str(files["broken"])), "The tools file is not JSON"),
            (("--tools", str(files["tools"]) + ".missing"), "Cannot read the tools file"),
            (("--json-schema", str(files["bad_schema"])), "is not a valid JSON schema at type"),
            (("--regex", "(oops"), "does not compile"),
            (("--tool-results", str(files["results"])), "--tool-results without --tools"),
            (("--tools", str(files["tools"]), "--tool-choice", "fly"), "Unknown tool choice"),
            (("--tools", str(files["tools"]), "--tool-results", str(files["schema"]), "--json-schema",
              str(files["schema"]), "--choice", "a"), "not allowed with argument"),
    ):
        res = cli("--url", tools_server, *argv, "Hello")
        assert res.returncode == 2, (argv, res.stderr)
        assert says in res.stderr and "Traceback" not in res.stderr, res.stderr
    res = cli("--url", tools_server, "--tools", str(files["tools"]), stdin="the prompt on stdin")
    assert res.returncode == 2 and "Nowhere to read tool results from" in res.stderr


def test_cli_says_when_the_server_has_no_tool_calling(plain_server, files):
    res = cli("--url", plain_server, "--tools", str(files["tools"]), "--tool-results", str(files["results"]),
              "get_weather in Paris")
    assert res.returncode == 1
    assert "error: The server was started without tool calling" in res.stderr
    assert "--enable-auto-tool-choice and --tool-call-parser to be set" in res.stderr
