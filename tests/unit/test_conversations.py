"""core/chat/conversations.py: the SQLite store of saved chats, its exports and imports."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading

import pytest

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.chat.conversations import (EXPORT_FORMAT, SCHEMA_VERSION, Conversation, ConversationNotFound,
                                             ConversationStore, Message, auto_title, default_path, to_markdown)

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
STATS = {"ttft_s": 0.25, "tokens_per_s": 42.0, "prompt_tokens": 20, "completion_tokens": 6, "finish_reason": "stop"}


class Clock:
    """One second later at every reading, so that 'newest first' never depends on timer resolution."""

    def __init__(self, start: float = T0):
        self.now = start - 1

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "chats.sqlite3", clock=Clock()) as s:
        yield s


def snapshot(store: ConversationStore) -> dict:
    return store.export_json()


def raw_count(store: ConversationStore, table: str) -> int:
    with sqlite3.connect(store.path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- conversations ------------------------------------------------------------------------------

def test_default_file_is_in_the_data_folder(isolated_dirs):
    assert default_path() == isolated_dirs / "data" / "conversations.sqlite3"
    with ConversationStore() as s:
        assert s.path == paths.data_dir() / "conversations.sqlite3" and s.path.exists()
        assert s.notice is None


def test_create_and_get_round_trip(store):
    cid = store.create("Plans", model="demo", system_prompt="Be brief.", params={"temperature": 0.2, "stop": ["##"]},
                       base_url="http://127.0.0.1:8000/v1")
    assert cid == 1
    c = store.get(cid)
    assert c == Conversation(id=1, title="Plans", created=T0, updated=T0, model="demo",
                             base_url="http://127.0.0.1:8000/v1", system_prompt="Be brief.",
                             params={"temperature": 0.2, "stop": ["##"]}, messages=[])
    assert store.create() == 2
    assert store.get(2).title == "New chat" and store.get(2).model is None and store.get(2).params == {}


def test_an_untitled_chat_is_named_by_its_first_question_only(store):
    cid = store.create()
    store.add_message(cid, "assistant", "Hello, how can I help?")
    assert store.get(cid).title == "New chat"
    store.add_message(cid, "user", "How do I serve Llama 3.1 8B on two RTX 4090 cards with a long context?")
    store.add_message(cid, "user", "Second question")
    assert store.get(cid).title == "How do I serve Llama 3.1 8B on two RTX 4090…"
    titled = store.create("Mine")
    store.add_message(titled, "user", "Something else")
    assert store.get(titled).title == "Mine"


def test_unknown_ids_are_bad_input_naming_the_id(store):
    for call in (lambda: store.get(99), lambda: store.rename(99, "x"), lambda: store.delete(99),
                 lambda: store.update_settings(99, model="m"), lambda: store.add_message(99, "user", "hi")):
        with pytest.raises(ConversationNotFound) as exc:
            call()
        assert isinstance(exc.value, BadInput) and exc.value.problem.title == "No chat 99"
    assert raw_count(store, "messages") == 0


def test_rename_changes_the_title_but_not_the_order(store):
    a = store.create("A")
    b = store.create("B")
    store.rename(a, "  Renamed  ")
    assert store.get(a).title == "Renamed"
    assert [s.id for s in store.list()] == [b, a]
    with pytest.raises(BadInput):
        store.rename(a, "   ")
    assert store.get(a).title == "Renamed"


def test_delete_removes_the_chat_and_its_messages(store):
    a = store.create("A")
    b = store.create("B")
    store.add_message(a, "user", "one")
    store.add_message(a, "assistant", "two")
    store.add_message(b, "user", "kept")
    store.delete(a)
    assert [s.id for s in store.list()] == [b]
    assert raw_count(store, "messages") == 1
    with pytest.raises(ConversationNotFound):
        store.get(a)
    assert store.create("C") == 3  # ids are never reused: a stale id cannot open another chat


def test_update_settings_changes_only_what_is_given(store):
    cid = store.create("S", model="a", system_prompt="sys", params={"top_p": 0.9}, base_url="http://h/v1")
    store.update_settings(cid, model="b")
    c = store.get(cid)
    assert (c.model, c.system_prompt, c.params, c.base_url) == ("b", "sys", {"top_p": 0.9}, "http://h/v1")
    store.update_settings(cid, system_prompt="", params={"temperature": 1.0, "excluded_message_ids": [4]},
                          base_url=None)
    c = store.get(cid)
    assert (c.model, c.system_prompt, c.params, c.base_url) == (
        "b", "", {"temperature": 1.0, "excluded_message_ids": [4]}, None)
    assert c.updated == T0  # settings do not move a chat up the list


# --- messages -----------------------------------------------------------------------------------

def test_messages_round_trip_in_order(store):
    cid = store.create("M")
    u = store.add_message(cid, "user", "Why is the sky blue?")
    a = store.add_message(cid, "assistant", "Rayleigh scattering.", reasoning="Physics.", stats=STATS)
    s = store.add_message(cid, "system", "Note", state="error")
    assert u == Message(id=1, role="user", content="Why is the sky blue?", reasoning="", stats=None,
                        state="complete", created=T0 + 1)
    assert a == Message(id=2, role="assistant", content="Rayleigh scattering.", reasoning="Physics.", stats=STATS,
                        state="complete", created=T0 + 2)
    assert store.get(cid).messages == [u, a, s]
    assert store.get(cid).updated == T0 + 3


def test_add_message_rejects_unknown_roles_and_states(store):
    cid = store.create("M")
    with pytest.raises(ValueError):
        store.add_message(cid, "robot", "x")
    with pytest.raises(ValueError):
        store.add_message(cid, "user", "x", state="done")
    assert store.get(cid).messages == []


def test_update_message_saves_a_finished_stream(store):
    cid = store.create("M")
    store.add_message(cid, "user", "Tell me a story")
    m = store.add_message(cid, "assistant", "", state="interrupted")
    updated = store.update_message(m.id, content="Once upon", reasoning="plot", stats=STATS, state="stopped")
    assert updated == Message(id=m.id, role="assistant", content="Once upon", reasoning="plot", stats=STATS,
                              state="stopped", created=m.created)
    assert store.get(cid).messages[1] == updated
    assert store.get(cid).updated == T0 + 3  # moved up by the change
    assert store.update_message(m.id, stats=None).stats is None
    assert store.update_message(m.id).content == "Once upon"  # nothing given, nothing changed
    with pytest.raises(ConversationNotFound):
        store.update_message(999, content="x")
    with pytest.raises(ValueError):
        store.update_message(m.id, state="finished")


def test_truncate_from_deletes_that_message_and_all_later_ones(store):
    cid = store.create("T")
    other = store.create("Other")
    ids = [store.add_message(cid, role, f"m{i}").id
           for i, role in enumerate(["user", "assistant", "user", "assistant"])]
    keep = store.add_message(other, "user", "elsewhere").id
    assert store.truncate_from(cid, ids[2]) == 2
    assert [m.id for m in store.get(cid).messages] == ids[:2]
    with pytest.raises(ConversationNotFound):
        store.truncate_from(other, ids[0])  # a message of another chat: nothing is deleted
    assert [m.id for m in store.get(cid).messages] == ids[:2]
    assert [m.id for m in store.get(other).messages] == [keep]
    assert store.truncate_from(cid, ids[0]) == 2 and store.get(cid).messages == []


# --- list and search ----------------------------------------------------------------------------

def test_list_is_newest_first_with_counts_and_previews(store):
    a = store.create("First", model="demo")
    b = store.create("Second")
    store.add_message(b, "user", "hello")
    store.add_message(a, "user", "A question\nwith   two lines")
    long_reply = "word " * 40
    store.add_message(a, "assistant", long_reply)
    rows = store.list()
    assert [(r.id, r.title, r.model, r.message_count) for r in rows] == [(a, "First", "demo", 2),
                                                                      (b, "Second", None, 1)]
    assert rows[0].updated == T0 + 4 and rows[1].updated == T0 + 2
    assert rows[0].preview == ("word " * 16).strip() + "…" and len(rows[0].preview) == 80
    assert rows[1].preview == "hello"
    assert store.create("Empty") == 3 and store.list()[0].preview == ""
    assert rows[0].as_dict()["message_count"] == 2


def test_search_matches_title_or_content_ignoring_case(store):
    a = store.create("Serving Llama")
    b = store.create("Cooking")
    c = store.create("Travel")
    store.add_message(b, "user", "How long do I boil an egg?")
    store.add_message(c, "user", "Grüße aus MÜNCHEN und Köln")
    assert [r.id for r in store.list("llama")] == [a]
    assert [r.id for r in store.list("BOIL")] == [b]
    assert [r.id for r in store.list("münchen")] == [c]
    assert [r.id for r in store.list("GRÜSSE")] == [c]  # casefold: ß is ss
    assert [r.id for r in store.list("  egg  ")] == [b]
    assert store.list("nothing like it") == []
    assert len(store.list("")) == 3
    assert store.list("boil")[0].preview == "How long do I boil an egg?"


def test_search_wildcards_are_literal(store):
    a = store.create("Percent")
    b = store.create("Other")
    store.add_message(a, "user", "a 50% discount on a_b")
    store.add_message(b, "user", "500 items, aXb and a\\b")
    assert [r.id for r in store.list("50%")] == [a]
    assert [r.id for r in store.list("a_b")] == [a]
    assert [r.id for r in store.list("%")] == [a]
    assert [r.id for r in store.list("a\\b")] == [b]


def test_search_preview_shows_the_match(store):
    cid = store.create("Long")
    store.add_message(cid, "user", "x " * 100 + "the needle is here " + "y " * 100)
    store.add_message(cid, "assistant", "last reply")
    preview = store.list("needle")[0].preview
    assert preview.startswith("…") and preview.endswith("…") and "the needle is here" in preview
    assert store.list()[0].preview == "last reply"


# --- titles -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, title", [
    ("Hello there", "Hello there"),
    ("  \n\n  What   is vLLM?\nMore lines", "What is vLLM?"),
    ("# A heading\nbody", "A heading"),
    ("```python\nprint('hi')\n```", "print('hi')"),
    ("How do I serve Llama 3.1 8B on two RTX 4090 cards with a long context?",
     "How do I serve Llama 3.1 8B on two RTX 4090…"),
    ("x" * 60, "x" * 47 + "…"),
    ("Exactly forty-eight characters long, you see it.", "Exactly forty-eight characters long, you see it."),
    ("Forty-seven characters and then, right on the edge x", "Forty-seven characters and then, right on the…"),
    ("", "New chat"),
    ("   \n  ", "New chat"),
])
def test_auto_title(text, title):
    assert auto_title(text) == title
    assert ConversationStore.auto_title(text) == title
    assert len(auto_title(text)) <= 48


# --- per-model parameters -----------------------------------------------------------------------

def test_model_params_presets(store):
    assert store.model_params("demo") is None
    store.set_model_params("demo", {"temperature": 0.4, "max_tokens": 9})
    store.set_model_params("other", {})
    assert store.model_params("demo") == {"temperature": 0.4, "max_tokens": 9}
    assert store.model_params("other") == {}
    store.set_model_params("demo", {"top_p": 0.5})
    assert store.model_params("demo") == {"top_p": 0.5}
    store.set_model_params("demo", None)
    assert store.model_params("demo") is None and store.model_params("other") == {}


# --- export -------------------------------------------------------------------------------------

def small_conversation(store: ConversationStore) -> int:
    cid = store.create("vLLM basics", model="demo", system_prompt="Be brief.",
                       params={"temperature": 0.2, "max_tokens": 64, "stop": ["###"], "excluded_message_ids": [3]},
                       base_url="http://127.0.0.1:8000/v1")
    store.add_message(cid, "user", "What is vLLM?")
    store.add_message(cid, "assistant", "A fast inference engine.\n", reasoning="The user asks what vLLM is.\n",
                      stats=STATS)
    store.add_message(cid, "user", "And PagedAttention?")
    store.add_message(cid, "assistant", "It pages the KV", state="stopped")
    return cid


def test_markdown_export(store):
    text = store.to_markdown(store.get(small_conversation(store)))
    assert text == """\
# vLLM basics

- Model: `demo`
- Server: http://127.0.0.1:8000/v1
- Started: 2023-11-14 22:13 UTC
- Parameters: temperature=0.2, max_tokens=64, stop=["###"]

## System prompt

Be brief.

## User

What is vLLM?

## Assistant

<details>
<summary>Reasoning</summary>

The user asks what vLLM is.

</details>

A fast inference engine.

*250 ms to first token · 42.0 tokens/s · 20 prompt + 6 reply tokens*

## User

And PagedAttention?

## Assistant

It pages the KV

*Stopped before the end; this is the part received.*
"""


def test_markdown_of_a_bare_conversation():
    c = Conversation(id=1, title="Empty", created=T0, updated=T0)
    assert to_markdown(c) == "# Empty\n\n- Started: 2023-11-14 22:13 UTC\n"


def test_json_export_then_import_is_equal_except_ids(store):
    first = small_conversation(store)
    second = store.create("Second")
    store.add_message(second, "user", "Hi")
    original = store.get(first)
    exported = store.export_json()
    assert exported["format"] == EXPORT_FORMAT and exported["version"] == 1
    assert [c["id"] for c in exported["conversations"]] == [first, second]
    data = json.loads(json.dumps(exported))  # through a file's worth of JSON
    new_ids = store.import_json(data)
    assert new_ids == [3, 4]

    def without_ids(c: dict) -> dict:
        return {**c, "id": None, "messages": [{**m, "id": None} for m in c["messages"]]}

    again = store.export_json(new_ids)["conversations"]
    assert [without_ids(c) for c in again] == [without_ids(c) for c in exported["conversations"]]
    assert store.get(first) == original  # never overwritten
    assert len(store.list()) == 4
    assert store.import_json(store.to_json(store.get(first))) == [5]  # one conversation, no envelope
    assert store.get(5).messages[1].stats == STATS


def test_export_of_chosen_ids_and_unknown_ids(store):
    a = store.create("A")
    store.create("B")
    assert [c["title"] for c in store.export_json([a])["conversations"]] == ["A"]
    assert store.export_json([])["conversations"] == []
    with pytest.raises(ConversationNotFound):
        store.export_json([a, 42])


# --- import -------------------------------------------------------------------------------------

def test_import_openai_style_messages(store):
    data = {"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarise PagedAttention in one line, please, for my notes today"},
        {"role": "assistant", "content": [{"type": "text", "text": "KV cache"}, {"type": "text", "text": "in pages."}],
         "reasoning_content": "short"},
        {"role": "user", "content": "Thanks"},
    ], "model": "gpt-x"}
    (cid,) = store.import_json(data)
    c = store.get(cid)
    assert c.title == "Summarise PagedAttention in one line, please…"
    assert c.system_prompt == "You are terse." and c.model == "gpt-x" and c.params == {}
    assert [(m.role, m.content, m.reasoning, m.state) for m in c.messages] == [
        ("user", "Summarise PagedAttention in one line, please, for my notes today", "", "complete"),
        ("assistant", "KV cache\nin pages.", "short", "complete"),
        ("user", "Thanks", "", "complete")]
    assert c.created == c.updated == T0  # the clock's first reading, at import


def test_import_a_bare_list_of_messages_and_developer_role(store):
    (cid,) = store.import_json([{"role": "developer", "content": "Rules"}, {"role": "user", "content": "Go"},
                                {"role": "assistant", "content": None}])
    c = store.get(cid)
    assert c.system_prompt == "Rules" and [(m.role, m.content) for m in c.messages] == [("user", "Go"),
                                                                                        ("assistant", "")]
    assert c.title == "Go"


def test_import_keeps_a_system_message_when_the_prompt_is_given(store):
    (cid,) = store.import_json({"title": "T", "system_prompt": "P", "messages": [
        {"role": "system", "content": "mid-chat note"}, {"role": "user", "content": "x"}]})
    c = store.get(cid)
    assert c.system_prompt == "P" and [m.role for m in c.messages] == ["system", "user"]


def test_import_of_an_empty_export_creates_nothing(store):
    assert store.import_json({"format": EXPORT_FORMAT, "version": 1, "conversations": []}) == []
    assert store.list() == []


GOOD = {"title": "Good", "messages": [{"role": "user", "content": "fine"}]}


@pytest.mark.parametrize("data, says", [
    ({"format": "something.else", "version": 1, "conversations": []}, "its format is 'something.else'"),
    ({"format": EXPORT_FORMAT, "version": "1", "conversations": []}, "no valid version number"),
    ({"format": EXPORT_FORMAT, "version": 1}, "no list of conversations"),
    ({"format": EXPORT_FORMAT, "version": 1, "conversations": [GOOD, {"messages": [{"role": "robot", "content": "x"}]}]},
     "Conversation 2, message 1: role 'robot' is not one llmdesk keeps (user, assistant, system, tool)"),
    ({"format": EXPORT_FORMAT, "version": 1, "conversations": [GOOD, "nope"]}, "Conversation 2: it is not a JSON object"),
    ({"messages": "hello"}, "messages must be a list"),
    ({"messages": [{"role": "user", "content": 3}]}, "message 1: content must be text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "it has a 'image_url' part; only text can be imported"),
    ({"messages": [{"role": "user", "content": "x", "state": "done"}]}, "state 'done' is not one of"),
    ({"messages": [{"role": "user", "content": "x", "stats": [1]}]}, "stats must be an object"),
    ({"messages": [], "params": [1]}, "params must be an object"),
    ({"messages": [], "title": 5}, "title must be text"),
    ({"messages": [], "created": "yesterday"}, "created must be a time in seconds since 1970"),
    ({"messages": [{"role": "user", "content": "x", "created": True}]}, "created must be a time in seconds since 1970"),
    ({"conversations": []}, "neither an llmdesk export nor a conversation"),
    ([1, 2], "neither an llmdesk export nor a conversation"),
    ("text", "neither an llmdesk export nor a conversation"),
    ([], "neither an llmdesk export nor a conversation"),
])
def test_bad_imports_change_nothing(store, data, says):
    small_conversation(store)
    before = snapshot(store)
    with pytest.raises(BadInput) as exc:
        store.import_json(data)
    assert says in exc.value.problem.explanation
    assert exc.value.problem.explanation.endswith("Nothing was imported.")
    assert snapshot(store) == before
    assert raw_count(store, "conversations") == 1 and raw_count(store, "messages") == 4


def test_an_export_from_a_newer_llmdesk_is_refused(store):
    with pytest.raises(BadInput) as exc:
        store.import_json({"format": EXPORT_FORMAT, "version": 2, "conversations": [GOOD]})
    assert exc.value.problem.title == "Made by a newer llmdesk"
    assert store.list() == []


def test_a_failure_while_writing_the_import_rolls_it_all_back(store):
    small_conversation(store)
    before = snapshot(store)
    with pytest.raises(TypeError):  # a value JSON cannot hold, found only while writing the second one
        store.import_json([GOOD, {"messages": [], "params": {"x": object()}}])
    assert snapshot(store) == before


# --- the file -----------------------------------------------------------------------------------

def test_data_survives_reopening_and_the_file_is_versioned_wal(tmp_path):
    path = tmp_path / "c.sqlite3"
    with ConversationStore(path) as s:
        cid = s.create("Kept")
        s.add_message(cid, "user", "still here")
        s.set_model_params("demo", {"seed": 1})
    with ConversationStore(path) as s:
        assert s.get(cid).messages[0].content == "still here" and s.model_params("demo") == {"seed": 1}
        assert s.notice is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("content, why", [
    (b"this is not a database at all" * 50, "is not a database;"),
    (b"x", "is not a database;"),
    (b"SQLite format 3\x00" + b"\xff" * 200, "is not a readable database;"),  # SQLite's header, then garbage
])
def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path, content, why):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(content)
    if why == "is not a database;":
        (tmp_path / "c.sqlite3-wal").write_bytes(b"stale")
    with ConversationStore(path) as s:
        assert s.notice is not None and s.notice.title == "Saved chats could not be read"
        moved = sorted(tmp_path.glob("c.sqlite3.corrupt-*"))
        assert moved[0].read_bytes() == content  # nothing the user had is lost
        if why == "is not a database;":
            assert [m.name for m in moved] == [moved[0].name, moved[0].name + "-wal"]
            assert moved[1].read_bytes() == b"stale"  # a stale WAL would be replayed into the new file
        assert moved[0].name in s.notice.explanation and f"c.sqlite3 {why}" in s.notice.explanation
        assert s.list() == [] and s.create("Fresh") == 1
    with ConversationStore(path) as s:
        assert s.notice is None and [r.title for r in s.list()] == ["Fresh"]


def test_someone_elses_database_is_moved_aside_not_used(tmp_path):
    path = tmp_path / "c.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE conversations (x)")
    with ConversationStore(path) as s:
        assert s.notice is not None and "not one of llmdesk's chats" in s.notice.explanation
        assert s.create("Mine") == 1
    assert len(list(tmp_path.glob("c.sqlite3.corrupt-*"))) == 1


def test_a_store_from_a_newer_llmdesk_is_not_touched(tmp_path):
    path = tmp_path / "c.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(ProblemError) as exc:
        ConversationStore(path)
    assert exc.value.problem.title == "Saved chats from a newer llmdesk" and "schema 7" in exc.value.problem.explanation
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_a_full_disk_is_a_plain_problem_and_nothing_half_written(store):
    cid = store.create("Full")
    store.add_message(cid, "user", "small")
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own "disk is full"
    with pytest.raises(ProblemError) as exc:
        store.add_message(cid, "assistant", "x" * 200_000)
    assert exc.value.problem.title == "The disk is full"
    assert "Free some disk space" in exc.value.problem.fix
    assert [m.content for m in store.get(cid).messages] == ["small"]
    assert store.get(cid).updated == T0 + 1  # the conversation's update was rolled back with it


def test_a_read_only_file_is_a_plain_problem(store):
    cid = store.create("RO")
    store._conn.close()
    store._conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None,
                                  check_same_thread=False)
    with pytest.raises(ProblemError) as exc:
        store.add_message(cid, "user", "hi")
    assert exc.value.problem.title == "The saved chats cannot be written"
    assert store.get(cid).title == "RO"  # reading still works


def test_a_folder_that_cannot_be_made_is_a_plain_problem(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ProblemError) as exc:
        ConversationStore(blocker / "sub" / "c.sqlite3")
    assert exc.value.problem.title == "The saved chats cannot be opened"


# --- threads ------------------------------------------------------------------------------------

def test_many_threads_share_one_store(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    shared = store.create("Shared")
    errors: list[BaseException] = []
    made: list[int] = []

    def work(n: int) -> None:
        try:
            own = store.create(f"Thread {n}")
            made.append(own)
            for i in range(25):
                store.add_message(shared, "user", f"t{n}-{i}")
                store.add_message(own, "assistant", f"own {i}")
                store.list("t")
                store.get(own)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    messages = store.get(shared).messages
    assert len(messages) == 200 and len({m.id for m in messages}) == 200
    assert sorted(m.content for m in messages) == sorted(f"t{n}-{i}" for n in range(8) for i in range(25))
    assert all(len(store.get(c).messages) == 25 for c in made)
    store.close()


@pytest.mark.asyncio
async def test_the_gui_way_through_to_thread(tmp_path):
    store = await asyncio.to_thread(ConversationStore, tmp_path / "c.sqlite3")
    cid = await asyncio.to_thread(store.create, "Async")
    await asyncio.gather(*(asyncio.to_thread(store.add_message, cid, "user", str(i)) for i in range(20)))
    assert sorted(int(m.content) for m in (await asyncio.to_thread(store.get, cid)).messages) == list(range(20))
    store.close()
