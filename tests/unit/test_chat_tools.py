"""Tools and structured output in the chat core, without a server: core/chat/tools.py, core/chat/structured.py,
the request messages of a turn that called tools (session.py), and saved chats that keep the calls and
their results (conversations.py, with files of the schema before them)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.chat import structured as st
from llmdesk.core.chat.conversations import ConversationStore, to_markdown
from llmdesk.core.chat.session import Turn, request_messages
from llmdesk.core.chat.tools import (ToolCall, ToolCallAccumulator, assistant_message, calls_from_openai,
                                     check_arguments, check_tool_choice, choice_after_results, parse_tools, tool_message)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}


# --- tool definitions ---------------------------------------------------------------------------

def test_parse_tools_takes_lists_bare_functions_and_text():
    assert parse_tools([WEATHER]) == [WEATHER]
    bare = {"name": "now", "parameters": {"type": "object", "properties": {}}}
    assert parse_tools(json.dumps({"tools": [bare]})) == [{"type": "function", "function": bare}]
    assert parse_tools({"name": "ping"}) == [{"type": "function", "function": {
        "name": "ping", "parameters": {"type": "object", "properties": {}}}}]


@pytest.mark.parametrize("data, says", [
    ("{not json", "not JSON"),
    ([], "expected a non-empty list of tools"),
    ([3], "tool 1 is not an object"),
    ([{"type": "retrieval", "function": {"name": "x"}}], "only \"function\" tools are sent"),
    ([{"name": "has space"}], "the name 'has space' must be 1 to 64 letters"),
    ([{"name": "a"}, {"name": "a"}], "two tools are called 'a'"),
    ([{"name": "a", "description": 7}], "description must be text"),
    ([{"name": "a", "parameters": {"type": "objekt"}}], "tool 'a''s parameters is not a valid JSON schema at type"),
    ([{"name": "a", "parameters": {"type": "object", "properties": {"n": {"minimum": "zero"}}}}],
     "not a valid JSON schema at properties/n/minimum"),
    ([{"name": "a", "parameters": {"type": "string"}}], "parameters must describe an object"),
    ([{"name": "a", "parameters": []}], "must be a JSON schema (an object)"),
])
def test_malformed_tools_are_bad_input_that_says_what(data, says):
    with pytest.raises(BadInput) as caught:
        parse_tools(data, "tools.json")
    assert says in caught.value.problem.explanation and caught.value.problem.explanation.startswith("tools.json: ")


def test_tool_choice():
    tools = parse_tools([WEATHER])
    assert check_tool_choice(None, tools) is None and check_tool_choice("required", tools) == "required"
    assert check_tool_choice("get_weather", tools) == {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(BadInput, match="Unknown tool choice"):
        check_tool_choice("get_time", tools)


# --- streamed calls -----------------------------------------------------------------------------

def test_fragments_are_merged_by_index_as_vllm_streams_them():
    acc = ToolCallAccumulator()
    assert not acc.feed(None) and acc.calls == []
    acc.feed([{"index": 0, "id": "chatcmpl-tool-1", "type": "function", "function": {"name": "get_weather"}}])
    acc.feed([{"index": 0, "function": {"arguments": '{"city": '}}])
    acc.feed([{"index": 1, "id": "chatcmpl-tool-2", "type": "function", "function": {"name": "get_weather"}}])
    acc.feed([{"index": 0, "function": {"arguments": '"Paris"}'}}, {"index": 1, "function": {"arguments": "{}"}}])
    assert acc.calls == [ToolCall("chatcmpl-tool-1", "get_weather", '{"city": "Paris"}'),
                         ToolCall("chatcmpl-tool-2", "get_weather", "{}")]
    assert acc.calls[0].parsed_arguments() == ({"city": "Paris"}, None)
    assert acc.calls[0].shown() == 'get_weather({"city": "Paris"})'
    lone = ToolCallAccumulator()
    lone.feed([{"function": {"name": "f", "arguments": "{"}}])  # no index, no id: a server that leaves them out
    assert lone.calls == [ToolCall("call_0", "f", "{")] and "not JSON" in lone.calls[0].parsed_arguments()[1]


def test_arguments_are_checked_against_the_tools_schema():
    tools = parse_tools([WEATHER])
    assert check_arguments(tools, ToolCall("1", "get_weather", '{"city": "Paris"}')) is None
    assert "not one of the tools" in check_arguments(tools, ToolCall("1", "get_time", "{}"))
    assert "not JSON" in check_arguments(tools, ToolCall("1", "get_weather", '{"city": '))
    why = check_arguments(tools, ToolCall("1", "get_weather", '{"days": "two"}'))
    assert why.startswith("the arguments do not match the tool's parameters: ")
    assert "'city' is a required property" in why and "$.days: 'two' is not of type 'integer'" in why


def test_arguments_cut_at_max_tokens_say_so_first():
    """Real vLLM, tiny random Llama, named tool choice: spaces to max tokens, the arguments empty (H100)."""
    tools = parse_tools([WEATHER])
    why = check_arguments(tools, ToolCall("1", "get_weather", ""), "length")
    assert why.startswith("the reply stopped at max tokens before any arguments came")
    assert "VLLM_ENFORCE_STRICT_TOOL_CALLING=0" in why  # vLLM 0.26's strict calls ignore compact JSON (H100)
    why = check_arguments(tools, ToolCall("1", "get_weather", '{"city": "Par'), "length")
    assert why.startswith("the reply stopped at max tokens before the call's arguments were complete (")
    assert "not JSON" in why
    assert check_arguments(tools, ToolCall("1", "get_weather", '{"city": "Paris"}'), "length") is None
    assert not check_arguments(tools, ToolCall("1", "get_weather", ""), "stop").startswith("the reply stopped")


def test_messages_back_to_the_server():
    call = ToolCall("c1", "get_weather", '{"city": "Paris"}')
    assert assistant_message("", [call]) == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert tool_message("c1", {"temp_c": 18}) == {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18}'}
    assert tool_message("c1", "sunny") == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    turns = [Turn("user", "Weather in Paris?"), Turn("assistant", "", tool_calls=(call,)),
             Turn("tool", "sunny", tool_call_id="c1"), Turn("assistant", "It is sunny.")]
    assert request_messages("Be brief.", turns) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
        assistant_message("", [call]), {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."}]


def test_calls_from_openai_is_tolerant():
    assert calls_from_openai(None) == [] and calls_from_openai([1, {"function": {}}]) == []
    assert calls_from_openai([{"id": "a", "name": "f", "arguments": {"x": 1}}]) == [ToolCall("a", "f", '{"x": 1}')]


# --- structured output ----------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
          "required": ["city", "temp_c"], "additionalProperties": False}


def test_request_fields_are_vllms():
    assert st.json_schema(SCHEMA, name="weather").request_fields() == {
        "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}}
    assert st.regex(r"\d+").request_fields() == {"structured_outputs": {"regex": r"\d+"}}
    assert st.choice("yes, no ,maybe").request_fields() == {"structured_outputs": {"choice": ["yes", "no", "maybe"]}}
    assert st.choice("a,b\nc").choices == ("a,b", "c")  # one per line when there are lines
    whole = {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}
    assert st.json_schema(json.dumps(whole)).name == "w"


@pytest.mark.parametrize("make, says", [
    (lambda: st.json_schema("{oops"), "could not be read as JSON"),
    (lambda: st.json_schema([1]), "must be a JSON object"),
    (lambda: st.json_schema({"type": "objct"}), "is not a valid JSON schema at type"),
    (lambda: st.regex(""), "is empty"),
    (lambda: st.regex("(unclosed"), "does not compile"),
    (lambda: st.choice(" , "), "at least one option"),
    (lambda: st.choice(["a", "a"]), "repeat"),
])
def test_bad_constraints_are_bad_input(make, says):
    with pytest.raises(BadInput) as caught:
        make()
    assert says in caught.value.problem.explanation


def test_replies_are_checked():
    schema = st.json_schema(SCHEMA)
    good = schema.check('{"city": "Paris", "temp_c": 18}')
    assert good.ok and good.value == {"city": "Paris", "temp_c": 18} and good.line() == "Matches the JSON schema"
    bad = schema.check('{"city": "Paris", "temp_c": "warm", "extra": 1}')
    assert not bad.ok and bad.title == "Does not match the JSON schema"
    assert "$.temp_c: 'warm' is not of type 'integer'" in bad.detail and "extra" in bad.detail
    assert schema.check('{"city": "Paris"}').detail == "$: 'temp_c' is a required property"
    not_json = schema.check("Sure! Here it is: {")
    assert not not_json.ok and not_json.title == "Not JSON" and "could not be read as JSON" in not_json.detail
    assert st.regex(r"\d{4}").check("2026").ok
    near = st.regex(r"\d{4}").check("2026\n")
    assert not near.ok and "after trimming" in near.detail
    assert not st.regex(r"\d{4}").check("20x6").ok
    assert st.choice("yes,no").check("no").ok
    wrong = st.choice("yes,no").check("maybe")
    assert not wrong.ok and wrong.line() == "Does not match one of the choices: 'maybe' is not one of yes, no"


def test_a_reply_cut_at_max_tokens_is_called_cut_off_and_spaces_get_the_compact_json_fix():
    schema = st.json_schema(SCHEMA)
    spaces = "{" + " " * 600  # what the tiny random Llama wrote under a JSON schema on real vLLM (H100)
    assert schema.check(spaces).title == "Not JSON"  # nothing says it stopped early
    filled = schema.check(spaces, "length")
    assert not filled.ok and filled.title == "Cut off: the model wrote spaces"
    assert filled.detail.endswith("compact JSON: --structured-outputs-config '{\"backend\": \"xgrammar\", "
                                  "\"disable_any_whitespace\": true}' in the Server page's Extra field "
                                  "(llmdesk serve MODEL -- …)")
    indented = '{\n' + " " * 40 + '"city": "Par'  # deep indentation cut short: not a reply of spaces
    assert schema.check(indented, "length").title == "Cut off at max tokens"
    cut = schema.check('{"city": "Par', "length")
    assert not cut.ok and cut.line() == "Cut off at max tokens: the reply stopped before it was complete; allow " \
        "more tokens"
    assert "could not be read as JSON" in cut.errors[0]  # what was wrong with the part that came, kept
    assert schema.check('{"city": "Paris", "temp_c": 18}', "length").ok  # complete is complete
    assert st.regex(r"a+").check("a" + " " * 40, "length").title == "Cut off at max tokens"


def test_kept_with_a_conversation_and_read_back_tolerantly():
    for made in (st.json_schema(SCHEMA), st.regex("a+"), st.choice("x,y")):
        assert st.from_dict(made.as_dict()) == made
    assert st.from_dict(None) is None and st.from_dict({"kind": "regex", "regex": "("}) is None
    assert st.from_dict({"kind": "other"}) is None


# --- saved chats ----------------------------------------------------------------------------------

CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_a_tool_round_trip_is_saved_exported_and_imported(tmp_path):
    with ConversationStore(tmp_path / "c.sqlite3") as store:
        cid = store.create("Weather", params={"tools": [WEATHER]})
        store.add_message(cid, "user", "Weather in Paris?")
        store.add_message(cid, "assistant", "", tool_calls=[CALL])
        store.add_message(cid, "tool", '{"temp_c": 18}', tool_call_id="c1")
        store.add_message(cid, "assistant", "18 degrees.")
        chat = store.get(cid)
        assert [(m.role, m.tool_calls, m.tool_call_id) for m in chat.messages] == [
            ("user", None, None), ("assistant", [CALL], None), ("tool", None, "c1"), ("assistant", None, None)]
        assert chat.params["tools"] == [WEATHER]
        exported = store.export_json([cid])
        assert exported["conversations"][0]["messages"][1]["tool_calls"] == [CALL]
        assert "tool_calls" not in exported["conversations"][0]["messages"][0]  # nothing added where there is none
        text = to_markdown(chat)
        assert "## Tool result (`c1`)" in text and "Called `get_weather` (`c1`) with:" in text
        again = store.get(store.import_json(exported)[0])
        assert [(m.role, m.tool_calls, m.tool_call_id) for m in again.messages] == [
            (m.role, m.tool_calls, m.tool_call_id) for m in chat.messages]


def test_openai_style_messages_with_tool_calls_are_imported(tmp_path):
    data = {"messages": [{"role": "user", "content": "Paris?"},
                         {"role": "assistant", "content": None, "tool_calls": [CALL]},
                         {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                         {"role": "assistant", "content": "Sunny."}]}
    with ConversationStore(tmp_path / "c.sqlite3") as store:
        chat = store.get(store.import_json(data)[0])
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.messages[1].tool_calls == [CALL] and chat.messages[2].tool_call_id == "c1"


@pytest.mark.parametrize("message, says", [
    ({"role": "assistant", "content": "", "tool_calls": "call it"}, "tool_calls must be a list of calls"),
    ({"role": "assistant", "content": "", "tool_calls": [{"id": "x"}]}, "each of tool_calls needs a function name"),
    ({"role": "tool", "content": "x", "tool_call_id": 5}, "tool_call_id must be text"),
])
def test_bad_tool_fields_refuse_the_import(tmp_path, message, says):
    with ConversationStore(tmp_path / "c.sqlite3") as store, pytest.raises(BadInput) as caught:
        store.import_json({"messages": [{"role": "user", "content": "q"}, message]})
    assert says in caught.value.problem.explanation


V1_SCHEMA = (
    "CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, created REAL NOT NULL, "
    "updated REAL NOT NULL, model TEXT, base_url TEXT, system_prompt TEXT NOT NULL DEFAULT '', "
    "params TEXT NOT NULL DEFAULT '{}')",
    "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id INTEGER NOT NULL "
    "REFERENCES conversations(id) ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL, "
    "reasoning TEXT NOT NULL DEFAULT '', stats TEXT, state TEXT NOT NULL DEFAULT 'complete', created REAL NOT NULL)",
    "CREATE INDEX messages_by_conversation ON messages(conversation_id, id)",
    "CREATE INDEX conversations_by_update ON conversations(updated DESC, id DESC)",
    "CREATE TABLE model_params (model TEXT PRIMARY KEY, params TEXT NOT NULL, updated REAL NOT NULL)",
)


def write_v1_file(path) -> None:
    """A file as llmdesk wrote it before tool calls were kept (schema 1)."""
    with sqlite3.connect(path) as conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO conversations (title, created, updated, params) VALUES ('Old', 1, 2, '{}')")
        conn.execute("INSERT INTO messages (conversation_id, role, content, created) VALUES (1, 'user', 'hi', 1)")
        conn.execute("INSERT INTO messages (conversation_id, role, content, created) VALUES (1, 'assistant', 'yo', 2)")
        conn.execute("PRAGMA user_version = 1")


def test_a_file_of_the_schema_before_is_upgraded_in_place(tmp_path):
    path = tmp_path / "c.sqlite3"
    write_v1_file(path)
    with ConversationStore(path) as store:
        assert store.notice is None
        old = store.get(1)
        assert [(m.role, m.content, m.tool_calls) for m in old.messages] == [("user", "hi", None),
                                                                            ("assistant", "yo", None)]
        store.add_message(1, "assistant", "", tool_calls=[CALL])
        store.add_message(1, "tool", "sunny", tool_call_id="c1")
        assert store.get(1).messages[-1].tool_call_id == "c1"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_an_old_file_on_a_full_disk_is_still_read(tmp_path, monkeypatch):
    """Read-only (no room to upgrade it): the messages show, without tool calls it never had."""
    from llmdesk.core.chat import conversations

    path = tmp_path / "c.sqlite3"
    write_v1_file(path)
    store = ConversationStore.__new__(ConversationStore)
    store.path, store.notice, store.read_only = path, None, None
    store._clock, store._message_columns = (lambda: 3.0), conversations._MESSAGE_COLUMNS
    import threading

    store._lock = threading.Lock()
    store._conn = store._connect_read_only()
    try:
        assert [m.content for m in store.get(1).messages] == ["hi", "yo"]
        assert store.read_only is not None
    finally:
        store._conn.close()


def test_unreadable_stored_calls_read_as_none(tmp_path):
    path = tmp_path / "c.sqlite3"
    with ConversationStore(path) as store:
        cid = store.create("x")
        store.add_message(cid, "assistant", "", tool_calls=[CALL])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE messages SET tool_calls = '{broken'")
    with ConversationStore(path) as store:
        assert store.get(cid).messages[0].tool_calls is None


def test_a_forced_choice_is_not_forced_again_with_the_results():
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert [choice_after_results(c) for c in ("required", named, "auto", "none", None)] == [
        "auto", "auto", "auto", "none", None]


def test_a_forced_call_streamed_by_real_vllm_accumulates_to_valid_arguments():
    # 25 chunks vLLM 0.26.0 streamed on an H100 (tests/data/gpu-e2e/SOURCES.md)
    from pathlib import Path

    chunks = json.loads((Path(__file__).resolve().parents[1] / "data" / "gpu-e2e" / "h100-tools-named-chunks.json")
                        .read_text())
    accumulator = ToolCallAccumulator()
    finish = None
    for chunk in chunks:
        choice = chunk["choices"][0]
        accumulator.feed(choice["delta"].get("tool_calls"))
        finish = choice["finish_reason"] or finish
    tools = parse_tools([{"name": "get_weather", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["city", "unit"],
        "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]},
                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}])
    [call] = accumulator.calls
    assert call.name == "get_weather" and call.id.startswith("chatcmpl-tool-") and finish == "stop"
    assert call.parsed_arguments() == ({"city": "Paris", "unit": "celsius"}, None)
    assert check_arguments(tools, call, finish) is None
