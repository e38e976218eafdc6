"""The conversation store under attack from the outside: several processes opening a store that does
not exist yet, all at the same moment, and a disk that is full (a real one: a small tmpfs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.chat.conversations import ConversationStore
from tests.fakes.full_disk import fill, small_disk

ROOT = Path(__file__).resolve().parents[2]

# Each process waits for the same moment, opens the store and saves one chat.
OPENER = """
import sys, time, json
from pathlib import Path
from llmdesk.core.chat.conversations import ConversationStore
path, at, me = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
while time.time() < at:
    pass
try:
    store = ConversationStore(path)
    cid = store.create("from " + me)
    store.add_message(cid, "user", "hello from " + me)
    print(json.dumps({"ok": True, "notice": store.notice.title if store.notice else None}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {getattr(exc, 'problem', exc)}"}))
"""

PROCESSES, TRIALS = 6, 8


def test_first_opens_at_the_same_moment_all_succeed_and_nothing_is_moved_aside(tmp_path):
    failures = []
    for trial in range(TRIALS):
        path = tmp_path / f"trial-{trial}" / "conversations.sqlite3"
        at = time.time() + 1.5  # after every interpreter has started
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(path), str(at), f"p{i}"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(PROCESSES)]
        results = [json.loads(p.communicate(timeout=60)[0] or '{"ok": false, "error": "no output"}') for p in procs]
        failures += [r for r in results if not r["ok"] or r["notice"]]
        assert list(path.parent.glob("*.corrupt-*")) == [], f"trial {trial}: a store was moved aside"
        with ConversationStore(path) as store:
            assert sorted(c.title for c in store.list()) == sorted(f"from p{i}" for i in range(PROCESSES))
    assert failures == []


# --- a full disk --------------------------------------------------------------------------------

@pytest.fixture
def full_store(isolated_dirs):
    """A store with two chats in llmdesk's data folder, on a disk that is then filled to the last byte.
    The store is closed, so SQLite removed its shared-memory file, which a reader must make again."""
    with small_disk(isolated_dirs / "data") as disk:
        path = disk / "conversations.sqlite3"
        with ConversationStore(path) as store:
            for title in ("First", "Second"):
                cid = store.create(title)
                store.add_message(cid, "user", f"{title} question")
        assert not path.with_name(path.name + "-shm").exists()
        fill(disk)
        yield path


def test_saved_chats_can_be_read_on_a_full_disk(full_store):
    store = ConversationStore(full_store)
    assert [c.title for c in store.list()] == ["Second", "First"]
    assert [c.title for c in store.list("first")] == ["First"]  # search works too
    assert store.get(store.list()[0].id).messages[0].content == "Second question"
    assert store.notice is not None and store.notice.title == "The disk is full"
    assert str(full_store.parent) in store.notice.explanation and "read but not changed" in store.notice.explanation


def test_writing_on_a_full_disk_names_the_cause_and_the_folder(full_store):
    store = ConversationStore(full_store)
    with pytest.raises(ProblemError) as exc:
        store.create("Third")
    assert exc.value.problem.title == "The disk is full"
    assert str(full_store.parent) in exc.value.problem.explanation
    assert "disk I/O error" not in exc.value.problem.explanation
    os.remove(full_store.parent / "filler")  # space again: saving works without reopening anything
    cid = store.create("Third")
    store.add_message(cid, "user", "saved")
    assert store.read_only is None and [c.title for c in ConversationStore(full_store).list()][0] == "Third"


def test_a_store_that_another_process_keeps_open_is_read_with_its_latest_chats(full_store):
    """Another llmdesk has the store open: its shared memory exists, so reading sees the WAL."""
    os.remove(full_store.parent / "filler")
    writer = ConversationStore(full_store)
    cid = writer.create("Third")
    writer.add_message(cid, "user", "in the journal only")
    fill(full_store.parent)
    reader = ConversationStore(full_store)
    assert [c.title for c in reader.list()][0] == "Third"
    writer.close()


def test_llmdesk_chats_lists_and_shows_on_a_full_disk(full_store):
    listed = subprocess.run([sys.executable, "-m", "llmdesk", "chats", "--json"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [c["title"] for c in json.loads(listed.stdout)] == ["Second", "First"]
    assert "The disk is full" in listed.stderr and "Traceback" not in listed.stderr
    added = subprocess.run([sys.executable, "-m", "llmdesk", "chats", "rename", "1", "New"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode != 0 and "The disk is full" in added.stderr and "Traceback" not in added.stderr


def test_a_log_on_a_full_disk_prints_no_traceback(isolated_dirs, capfd):
    import logging

    from llmdesk.core.base.app_log import setup_logging

    with small_disk(isolated_dirs / "log", size_kib=256) as disk:
        assert setup_logging() is not None
        fill(disk)
        try:
            for i in range(200):
                logging.getLogger("llmdesk.test").warning("line %d %s", i, "x" * 200)
        finally:
            for handler in [h for h in logging.getLogger().handlers if getattr(h, "_llmdesk", False)]:
                logging.getLogger().removeHandler(handler)
                handler.close()
    assert "Traceback" not in capfd.readouterr().err
