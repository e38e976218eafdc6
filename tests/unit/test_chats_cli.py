"""`llmdesk chats` (every subcommand) and `llmdesk chat --save`; the app's folders are per test (conftest)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmdesk import cli
from llmdesk.core.base import paths
from llmdesk.core.base.errors import Problem
from llmdesk.core.chat.client import Delta, ReplyStats, StreamInterrupted
from llmdesk.core.chat.conversations import EXPORT_FORMAT, ConversationStore, to_json, to_markdown
from llmdesk.core.server.endpoint import ServerUnreachable, normalise_base_url

ROOT = Path(__file__).resolve().parents[2]
STATS = {"ttft_s": 0.05, "tokens_per_s": 100.0, "prompt_tokens": 9, "completion_tokens": 3, "finish_reason": "stop"}


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(["chats", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_chats():
    with ConversationStore() as store:
        first = store.create("First", model="demo", system_prompt="Be brief.", params={"temperature": 0.5})
        store.add_message(first, "user", "What is a KV cache?")
        store.add_message(first, "assistant", "Keys and values kept per token.", stats=STATS)
        second = store.create("Second")
        store.add_message(second, "user", "Plan a trip to Lyon")
    return first, second


def stored(conversation_id: int):
    with ConversationStore() as store:
        return store.get(conversation_id)


def all_ids() -> list[int]:
    with ConversationStore() as store:
        return [r.id for r in store.list()]


# --- list ---------------------------------------------------------------------------------------

def test_list_when_empty(capsys):
    assert run(capsys) == (0, "No saved chats yet. Chat on the Chat page, or with `llmdesk chat --save`.\n", "")
    code, out, _ = run(capsys, "--json")
    assert code == 0 and json.loads(out) == []


def test_list_newest_first(capsys, two_chats):
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    assert out.splitlines() == ["ID  UPDATED   MESSAGES  MODEL  TITLE",
                                " 2  just now         1  -      Second",
                                " 1  just now         2  demo   First"]
    code, out, _ = run(capsys, "--json")
    rows = json.loads(out)
    assert [(r["id"], r["title"], r["message_count"], r["model"], r["preview"]) for r in rows] == [
        (2, "Second", 1, None, "Plan a trip to Lyon"),
        (1, "First", 2, "demo", "Keys and values kept per token.")]


def test_list_search(capsys, two_chats):
    code, out, _ = run(capsys, "--search", "KV CACHE", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [1]
    code, out, _ = run(capsys, "--search", "lyon")
    assert code == 0 and out.splitlines()[1:] == [" 2  just now         1  -      Second"]
    assert run(capsys, "--search", "paris") == (0, "No saved chat matches 'paris'.\n", "")


# --- show ---------------------------------------------------------------------------------------

def test_show_markdown_and_json(capsys, two_chats):
    code, out, _ = run(capsys, "show", "1")
    assert code == 0 and out == to_markdown(stored(1))
    assert "## Assistant\n\nKeys and values kept per token.\n\n*50 ms to first token" in out
    code, out, _ = run(capsys, "show", "1", "--json")
    assert code == 0 and json.loads(out) == to_json(stored(1))


def test_show_unknown_id_is_bad_input(capsys):
    code, out, err = run(capsys, "show", "9")
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: No chat 9", "  There is no saved chat with id 9; it may have been deleted.",
                                "  → See the saved chats and their ids with `llmdesk chats`."]
    code, out, _ = run(capsys, "show", "9", "--json")
    assert code == 2 and json.loads(out)["error"]["title"] == "No chat 9"


def test_a_moved_aside_store_is_mentioned(capsys):
    paths.data_dir().mkdir(parents=True)
    (paths.data_dir() / "conversations.sqlite3").write_text("garbage")
    code, out, err = run(capsys)
    assert code == 0 and out.startswith("No saved chats yet.")
    assert err.startswith("note: Saved chats could not be read. conversations.sqlite3 is not a database; "
                          "it was moved to conversations.sqlite3.corrupt-")


# --- export -------------------------------------------------------------------------------------

def test_export_one_as_markdown_to_stdout(capsys, two_chats):
    code, out, _ = run(capsys, "export", "2")
    assert code == 0 and out == to_markdown(stored(2))


def test_export_all_as_markdown_is_oldest_first(capsys, two_chats):
    code, out, _ = run(capsys, "export", "--all")
    assert code == 0 and out == to_markdown(stored(1)) + "\n---\n\n" + to_markdown(stored(2))


def test_export_json_to_a_file_picks_the_format_from_its_name(capsys, two_chats, tmp_path):
    target = tmp_path / "chats.json"
    code, out, err = run(capsys, "export", "--all", "-o", str(target))
    assert (code, out) == (0, "") and err == f"Exported 2 chats to {target}.\n"
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["format"] == EXPORT_FORMAT and data["version"] == 1
    assert [c["title"] for c in data["conversations"]] == ["First", "Second"]
    code, out, _ = run(capsys, "export", "1", "--format", "json")
    assert code == 0 and [c["id"] for c in json.loads(out)["conversations"]] == [1]
    md = tmp_path / "one.txt"
    assert run(capsys, "export", "1", "-o", str(md))[0] == 0
    assert md.read_text(encoding="utf-8") == to_markdown(stored(1))


def test_export_needs_ids_or_all_and_known_ids(capsys, two_chats, tmp_path):
    for argv in (["export"], ["export", "1", "--all"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "error: Which chats?" in err
    code, _, err = run(capsys, "export", "1", "7")
    assert code == 2 and "No chat 7" in err
    code, _, err = run(capsys, "export", "1", "-o", str(tmp_path / "missing" / "x.md"))
    assert code == 1 and "error: Could not write the export" in err and "Traceback" not in err


# --- import -------------------------------------------------------------------------------------

def test_export_then_import_round_trip(capsys, two_chats, tmp_path):
    target = tmp_path / "all.json"
    run(capsys, "export", "--all", "-o", str(target))
    code, out, _ = run(capsys, "import", str(target))
    assert code == 0 and out == "Imported 2 chats:\n  3  First\n  4  Second\n"
    assert [m.content for m in stored(3).messages] == [m.content for m in stored(1).messages]
    assert stored(3).messages[1].stats == STATS and stored(3).system_prompt == "Be brief."
    assert all_ids() == [4, 2, 3, 1]  # imported chats keep their dates; on a tie the later id comes first


def test_import_openai_shape_from_stdin(capsys, monkeypatch):
    data = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi there"},
                         {"role": "assistant", "content": "Hello"}]}
    code, out, _ = run(capsys, "import", "-", "--json", stdin=json.dumps(data), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out) == {"imported": [1]}
    c = stored(1)
    assert (c.title, c.system_prompt, [m.role for m in c.messages]) == ("Hi there", "S", ["user", "assistant"])


def test_import_of_nothing(capsys, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"format": EXPORT_FORMAT, "version": 1, "conversations": []}))
    assert run(capsys, "import", str(empty)) == (0, "Nothing to import: the file holds no chats.\n", "")


def test_bad_imports_are_bad_input_and_import_nothing(capsys, two_chats, tmp_path):
    cases = {"bad.json": ("{not json", "error: Not a JSON file"),
             "tool.json": (json.dumps([{"messages": [{"role": "user", "content": "ok"}]},
                                       {"messages": [{"role": "robot", "content": "x"}]}]),
                           "Conversation 2, message 1: role 'robot' is not one llmdesk keeps"),
             "latin1.json": (None, "error: Cannot read")}
    for name, (text, says) in cases.items():
        path = tmp_path / name
        if text is None:
            path.write_bytes(b'{"messages": "\xe9"}')
        else:
            path.write_text(text, encoding="utf-8")
        code, out, err = run(capsys, "import", str(path))
        assert (code, out) == (2, ""), name
        assert says in err and "Traceback" not in err, err
    code, _, err = run(capsys, "import", str(tmp_path / "nope.json"))
    assert code == 2 and "error: No file" in err
    assert all_ids() == [2, 1]


# --- rm, rename ---------------------------------------------------------------------------------

def test_rm_with_yes(capsys, two_chats):
    assert run(capsys, "rm", "1", "--yes") == (0, "Deleted chat 1 (First).\n", "")
    assert all_ids() == [2]
    code, out, _ = run(capsys, "rm", "2", "-y", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 2} and all_ids() == []


def test_rm_asks_first(capsys, monkeypatch, two_chats):
    code, out, err = run(capsys, "rm", "1", stdin="no\n", monkeypatch=monkeypatch)
    assert (code, out) == (1, "") and "Delete chat 1 ('First', 2 messages)?" in err and "Nothing deleted." in err
    code, _, err = run(capsys, "rm", "1", stdin="", monkeypatch=monkeypatch)
    assert code == 2 and "Add --yes" in err
    assert all_ids() == [2, 1]
    code, out, _ = run(capsys, "rm", "1", stdin="yes\n", monkeypatch=monkeypatch)
    assert code == 0 and all_ids() == [2]
    assert run(capsys, "rm", "1", "-y")[0] == 2


def test_rename(capsys, two_chats):
    assert run(capsys, "rename", "2", "Lyon trip") == (0, "Chat 2 is now called 'Lyon trip'.\n", "")
    assert stored(2).title == "Lyon trip"
    code, out, _ = run(capsys, "rename", "2", "Again", "--json")
    assert code == 0 and json.loads(out) == {"id": 2, "title": "Again"}
    code, _, err = run(capsys, "rename", "2", "  ")
    assert code == 2 and "error: No title" in err and stored(2).title == "Again"
    assert run(capsys, "rename", "5", "x")[0] == 2


def test_help_lists_chats():
    assert "chats" in cli.build_parser().format_help()


# --- llmdesk chat --save ------------------------------------------------------------------------

class FakeClient:
    """Stands in for ChatClient: replies from a script; records the requests."""

    replies: list = []
    requests: list = []

    def __init__(self, base_url: str, api_key: str | None = None):
        self.base_url = normalise_base_url(base_url)
        self.last_stats = None
        self.last_tool_calls = []  # these scripted replies never call tools

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def models(self):
        return ["demo"]

    async def stream(self, model, messages, params):
        FakeClient.requests.append((model, [dict(m) for m in messages], params))
        reply = FakeClient.replies.pop(0)
        self.last_stats = None
        try:
            for item in reply:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.last_stats = ReplyStats(**STATS)


@pytest.fixture
def fake_client(monkeypatch):
    import llmdesk.core.chat.client

    FakeClient.replies, FakeClient.requests = [], []
    monkeypatch.setattr(llmdesk.core.chat.client, "ChatClient", FakeClient)
    return FakeClient


def chat(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["chat", "--url", "http://127.0.0.1:9", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_without_save_stores_nothing(capsys, fake_client):
    fake_client.replies = [[Delta("Hi")]]
    code, out, _ = chat(capsys, "Hello")
    assert (code, out) == (0, "Hi\n")
    assert not (paths.data_dir() / "conversations.sqlite3").exists()


def test_chat_save_one_prompt(capsys, fake_client):
    fake_client.replies = [[Delta(reasoning="Thinking."), Delta("Hel"), Delta("lo!")]]
    code, out, err = chat(capsys, "--save", "--system", "Be brief.", "--temperature", "0.3", "--max-tokens", "5",
                          "Say hello to everyone in the room and then stop talking please")
    assert (code, out) == (0, "Hello!\n")
    assert err.endswith("[saved as chat 1: `llmdesk chats show 1`]\n")
    c = stored(1)
    assert c.title == "Say hello to everyone in the room and then stop…"
    assert (c.model, c.base_url, c.system_prompt, c.params) == (
        "demo", "http://127.0.0.1:9/v1", "Be brief.", {"temperature": 0.3, "max_tokens": 5})
    assert [(m.role, m.content, m.reasoning, m.stats, m.state) for m in c.messages] == [
        ("user", "Say hello to everyone in the room and then stop talking please", "", None, "complete"),
        ("assistant", "Hello!", "Thinking.", STATS, "complete")]


def test_chat_save_interactive_is_one_conversation(capsys, monkeypatch, fake_client):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty("first question\n\nsecond question\n/exit\n"))
    fake_client.replies = [[Delta("one")], [Delta("two")]]
    code, out, err = chat(capsys, "--save")
    assert (code, out) == (0, "one\ntwo\n") and err.count("[saved as chat 1") == 1
    assert [(m.role, m.content) for m in stored(1).messages] == [
        ("user", "first question"), ("assistant", "one"), ("user", "second question"), ("assistant", "two")]
    assert stored(1).title == "first question" and all_ids() == [1]
    assert fake_client.requests[1][1] == [{"role": "user", "content": "first question"},
                                          {"role": "assistant", "content": "one"},
                                          {"role": "user", "content": "second question"}]


def test_chat_save_keeps_a_cut_off_reply(capsys, fake_client):
    cut = StreamInterrupted(Problem("The reply was cut off", "The server closed the stream.", None), "Par", "why")
    fake_client.replies = [[Delta("Par"), cut]]
    code, out, err = chat(capsys, "--save", "Tell me")
    assert code == 1 and out == "Par\n" and "error: The reply was cut off" in err
    m = stored(1).messages[1]
    assert (m.role, m.content, m.reasoning, m.state, m.stats) == ("assistant", "Par", "why", "interrupted", STATS)


def test_chat_save_stores_nothing_when_no_reply_came(capsys, fake_client):
    fake_client.replies = [[ServerUnreachable(Problem("No server at http://127.0.0.1:9/v1", "refused", None))]]
    code, _, err = chat(capsys, "--save", "Anyone?")
    assert code == 1 and "error: No server at" in err
    assert all_ids() == []


def test_chat_save_against_the_stand_in_vllm(tmp_path):
    """The real client, the real server protocol, a separate process: the saved reply is what was printed."""
    import signal
    import socket
    import time

    import httpx

    from tests.fakes.vllm_standin.runtime import make_fake_runtime, serve_argv

    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.001)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(serve_argv(python, "/models/demo", "--served-model-name", "demo", "--host", "127.0.0.1",
                                       "--port", str(port)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "FAKE_VLLM_TOKEN_RATE": "2000"})
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(root + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        res = subprocess.run([sys.executable, "-m", "llmdesk", "chat", "--url", root, "--save", "--max-tokens", "7",
                              "Hello stand-in"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the stand-in's engine child too
        proc.wait(5)
    c = stored(1)
    assert c.title == "Hello stand-in" and c.model == "demo" and c.base_url == root + "/v1"
    assert [m.role for m in c.messages] == ["user", "assistant"]
    assert c.messages[1].content + "\n" == res.stdout
    assert c.messages[1].stats["completion_tokens"] == 7 and c.messages[1].stats["finish_reason"] == "length"
