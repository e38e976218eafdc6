"""Saved conversations of the Chat page and `llmdesk chats`: one SQLite file in the data folder.

    store = ConversationStore()                      # paths.data_dir() / "conversations.sqlite3"
    cid = store.create(title=auto_title(text), model="demo")
    store.add_message(cid, "user", text)
    store.add_message(cid, "assistant", answer, stats=client.last_stats.as_dict())
    store.list("vllm")                               # ConversationSummary, newest first

The GUI calls the store through ``asyncio.to_thread``, so one connection serves every worker
thread, one call at a time (a lock). The `llmdesk` CLI may write the same file while the app runs:
WAL lets it read while the other writes, and a busy file is waited on for a few seconds.

A file that is not a database (or holds someone else's tables) is moved aside, never deleted, and
a fresh one is made; ``store.notice`` then says so once. A disk that is full or read-only raises a
``ProblemError`` with a plain message; nothing here shows a traceback to the user.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmdesk.core.base import locks, paths
from llmdesk.core.base.errors import BadInput, Problem, ProblemError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: messages keep tool calls and results (tool_calls, tool_call_id; role "tool")
OPEN_WAIT_S = 10.0  # another llmdesk creating or upgrading the file takes far less
EXPORT_FORMAT = "llmdesk.conversations"
EXPORT_VERSION = 1
FILE_NAME = "conversations.sqlite3"
ROLES = ("user", "assistant", "system", "tool")
STATES = ("complete", "stopped", "interrupted", "error")
DEFAULT_TITLE = "New chat"
TITLE_CHARS = 48
PREVIEW_CHARS = 80

_SCHEMA = (
    """CREATE TABLE conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        model TEXT,
        base_url TEXT,
        system_prompt TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        reasoning TEXT NOT NULL DEFAULT '',
        stats TEXT,
        state TEXT NOT NULL DEFAULT 'complete',
        created REAL NOT NULL,
        tool_calls TEXT,
        tool_call_id TEXT
    )""",
    "CREATE INDEX messages_by_conversation ON messages(conversation_id, id)",
    "CREATE INDEX conversations_by_update ON conversations(updated DESC, id DESC)",
    """CREATE TABLE model_params (
        model TEXT PRIMARY KEY,
        params TEXT NOT NULL,
        updated REAL NOT NULL
    )""",
)
# From each schema version to the next; a file of version 1 is upgraded in place when opened.
_MIGRATIONS = {
    1: ("ALTER TABLE messages ADD COLUMN tool_calls TEXT", "ALTER TABLE messages ADD COLUMN tool_call_id TEXT"),
}
_MESSAGE_COLUMNS = "id, role, content, reasoning, stats, state, created, tool_calls, tool_call_id"


# --- values -----------------------------------------------------------------------------------

@dataclass
class Message:
    id: int
    role: str  # user | assistant | system
    content: str
    reasoning: str = ""
    stats: dict[str, Any] | None = None  # ReplyStats.as_dict() of core/chat/client.py
    state: str = "complete"  # complete | stopped | interrupted | error
    created: float = 0.0  # epoch seconds
    tool_calls: list[dict[str, Any]] | None = None  # an assistant turn's calls, OpenAI's shape
    tool_call_id: str | None = None  # a "tool" turn: the call it answers


@dataclass
class Conversation:
    id: int
    title: str
    created: float
    updated: float  # when a message was last added or changed; renaming does not move a chat up
    model: str | None = None
    base_url: str | None = None
    system_prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    updated: float
    model: str | None
    message_count: int
    preview: str  # the last message, or with a search the text around the first match

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "updated": self.updated, "model": self.model,
                "message_count": self.message_count, "preview": self.preview}


class ConversationNotFound(BadInput):
    """No conversation (or message) with that id: a stale id from the list, or a typo on the CLI."""


class _Unusable(Exception):
    """The file is there but is not our database: move it aside."""


class _DiskFull(Exception):
    """SQLite could not open the file for writing because the disk is full: read it read-only."""


_UNSET: Any = object()


def default_path() -> Path:
    return paths.data_dir() / FILE_NAME


# --- pure helpers -----------------------------------------------------------------------------

def auto_title(first_user_text: str) -> str:
    """The first line that says something, cut at a word boundary to at most ``TITLE_CHARS``."""
    line = ""
    for raw in (first_user_text or "").splitlines():
        text = " ".join(raw.split()).lstrip("#> ").strip()
        if text and not text.startswith("```"):
            line = text
            break
    if not line:
        return DEFAULT_TITLE
    if len(line) <= TITLE_CHARS:
        return line
    window = line[:TITLE_CHARS - 1]  # room for the ellipsis
    if line[TITLE_CHARS - 1] != " ":
        space = window.rfind(" ")
        if space >= TITLE_CHARS // 2:  # a single very long word is cut where it must be
            window = window[:space]
    return window.rstrip(" ,;:.-–—") + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _preview(text: str, query: str = "") -> str:
    flat = _one_line(text)
    if not query:
        return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1].rstrip() + "…"
    at = flat.lower().find(query.lower())
    if at < 0:
        return _preview(text)
    start = max(0, min(at - 20, len(flat) - PREVIEW_CHARS))
    piece = flat[start:start + PREVIEW_CHARS]
    return ("…" if start else "") + piece + ("…" if start + PREVIEW_CHARS < len(flat) else "")


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _when(epoch: float) -> str:
    # UTC so that an exported file reads the same wherever it is opened.
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _params_text(params: Mapping[str, Any]) -> str:
    """Sampling parameters for the Markdown header; page-internal bookkeeping (lists of ids) is left out."""
    bits = []
    for key, value in params.items():
        shown = (isinstance(value, str | int | float | bool) or
                 (isinstance(value, list) and value and all(isinstance(v, str) for v in value)))
        if shown:
            bits.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    return ", ".join(bits)


_STATE_NOTES = {
    "stopped": "Stopped before the end; this is the part received.",
    "interrupted": "Cut off: the connection or the server failed; this is the part received.",
    "error": "The reply failed.",
}


def to_markdown(conversation: Conversation) -> str:
    """A readable export: title, model, system prompt, then each message under its role."""
    from llmdesk.core.chat.session import stats_text

    c = conversation
    out = [f"# {c.title}", ""]
    if c.model:
        out.append(f"- Model: `{c.model}`")
    if c.base_url:
        out.append(f"- Server: {c.base_url}")
    out.append(f"- Started: {_when(c.created)}")
    if params := _params_text(c.params):
        out.append(f"- Parameters: {params}")
    out.append("")
    if c.system_prompt.strip():
        out += ["## System prompt", "", c.system_prompt.strip("\n"), ""]
    for m in c.messages:
        out += [f"## Tool result (`{m.tool_call_id}`)" if m.role == "tool" and m.tool_call_id else
                f"## {m.role.capitalize()}", ""]
        if m.reasoning.strip():
            out += ["<details>", "<summary>Reasoning</summary>", "", m.reasoning.strip("\n"), "", "</details>", ""]
        if m.content.strip():
            out += [m.content.strip("\n"), ""]
        for call in m.tool_calls or []:
            function = call.get("function") or {}
            out += [f"Called `{function.get('name')}` (`{call.get('id')}`) with:", "", "```json",
                    str(function.get("arguments") or "{}"), "```", ""]
        if note := _STATE_NOTES.get(m.state):
            out += [f"*{note}*", ""]
        if m.role == "assistant" and (line := stats_text(m.stats)):
            out += [f"*{line}*", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def to_json(conversation: Conversation) -> dict[str, Any]:
    """One conversation as plain JSON values; ``import_json`` reads it back (ids are not reused)."""
    c = conversation
    return {"id": c.id, "title": c.title, "created": c.created, "updated": c.updated, "model": c.model,
            "base_url": c.base_url, "system_prompt": c.system_prompt, "params": c.params,
            "messages": [_message_json(m) for m in c.messages]}


def _message_json(m: Message) -> dict[str, Any]:
    out = {"id": m.id, "role": m.role, "content": m.content, "reasoning": m.reasoning, "stats": m.stats,
           "state": m.state, "created": m.created}
    if m.tool_calls:
        out["tool_calls"] = m.tool_calls
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


# --- import parsing (pure; everything is checked before anything is written) --------------------

@dataclass
class _NewMessage:
    role: str
    content: str
    reasoning: str
    stats: dict | None
    state: str
    created: float
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None


@dataclass
class _NewConversation:
    title: str
    created: float
    updated: float
    model: str | None
    base_url: str | None
    system_prompt: str
    params: dict
    messages: list[_NewMessage]


def _bad(where: str, what: str) -> BadInput:
    return BadInput(Problem("Cannot import these chats", f"{where}: {what}. Nothing was imported.",
                            "Use a file exported by llmdesk, or JSON like "
                            '{"messages": [{"role": "user", "content": "…"}]}.'))


def _parse_import(data: Any, now: float) -> list[_NewConversation]:
    if isinstance(data, dict) and "format" in data:
        if data["format"] != EXPORT_FORMAT:
            raise _bad("The file", f"its format is {data['format']!r}, not {EXPORT_FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _bad("The file", "it has no valid version number")
        if version > EXPORT_VERSION:
            raise BadInput(Problem("Made by a newer llmdesk",
                                   f"The file is version {version} of the export format; this llmdesk reads "
                                   f"up to version {EXPORT_VERSION}. Nothing was imported.",
                                   "Update llmdesk, then import it again."))
        items = data.get("conversations")
        if not isinstance(items, list):
            raise _bad("The file", "it has no list of conversations")
        return [_parse_conversation(c, f"Conversation {i + 1}", now) for i, c in enumerate(items)]
    if isinstance(data, dict) and "messages" in data:
        return [_parse_conversation(data, "The conversation", now)]
    if isinstance(data, list) and data and all(isinstance(x, dict) and "role" in x for x in data):
        return [_parse_conversation({"messages": data}, "The conversation", now)]
    if isinstance(data, list) and data and all(isinstance(x, dict) and "messages" in x for x in data):
        return [_parse_conversation(c, f"Conversation {i + 1}", now) for i, c in enumerate(data)]
    raise _bad("The file", "it is neither an llmdesk export nor a conversation with a list of messages")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# An import's times must be real moments: 1e300 or -Infinity broke every listing and export.
LATEST_TIME = 4_102_444_800.0  # 2100-01-01
MAX_NESTING = 20  # stats and params are flat in practice; 100k-deep nesting broke JSON on the way out


def _time(value: Any, where: str, key: str) -> float:
    if not _number(value) or not math.isfinite(value) or not 0 <= value <= LATEST_TIME:
        raise _bad(where, f"{key} must be a time in seconds since 1970, before 2100 (got {value!r:.40})")
    return float(value)


def _depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deeply lists and objects nest in value, counting no further than limit + 1."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list) and level <= limit:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
        elif isinstance(item, dict | list):
            return limit + 1
    return deepest


def _check_text(value: Any, where: str) -> None:
    """Every string in value is storable Unicode (a lone surrogate from JSON is not)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad(where, "it holds text that is not valid Unicode (a lone surrogate)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise _bad(where, "it holds a number that is not finite (NaN or Infinity)")


def parse_import_text(text: str, name: str) -> Any:
    """The JSON of a file to import, or BadInput: NaN and Infinity refused, deep nesting refused."""
    def no_constant(word: str) -> Any:
        raise ValueError(f"{word} is not a number JSON allows")

    try:
        data = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise BadInput(Problem("Not an importable file", f"{name} nests lists or objects too deeply.",
                               "Pick a file exported by llmdesk or a JSON list of messages.")) from None
    except ValueError as exc:
        raise BadInput(Problem("Not a JSON file", f"{name} could not be read as JSON ({exc}).",
                               "Pick a file exported by llmdesk or a JSON list of messages.")) from None
    if _depth(data, MAX_NESTING + 4) > MAX_NESTING + 4:  # envelope, list, conversation, message + content
        raise BadInput(Problem("Not an importable file", f"{name} nests lists or objects too deeply.",
                               "Pick a file exported by llmdesk or a JSON list of messages."))
    return data


def _optional_text(obj: dict, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(where, f"{key} must be text")
    return value


def _content_text(value: Any, where: str) -> str:
    if value is None:  # an assistant turn that only called a tool
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        texts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text") \
                    and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _bad(where, f"it has a {kind!r} part; only text can be imported")
        return "\n".join(texts)
    raise _bad(where, "content must be text")


def _import_calls(value: Any, where: str) -> list[dict] | None:
    """An imported message's tool calls, in OpenAI's shape (flat {id, name, arguments} is taken too)."""
    if value is None or value == []:
        return None
    if not isinstance(value, list) or _depth(value) > MAX_NESTING:
        raise _bad(where, "tool_calls must be a list of calls")
    from llmdesk.core.chat.tools import calls_from_openai

    calls = calls_from_openai(value)
    if len(calls) != len(value):
        raise _bad(where, "each of tool_calls needs a function name")
    return [c.as_openai() for c in calls]


def _parse_conversation(obj: Any, where: str, now: float) -> _NewConversation:
    if not isinstance(obj, dict):
        raise _bad(where, "it is not a JSON object")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list):
        raise _bad(where, "messages must be a list")
    title = _optional_text(obj, "title", where)
    model = _optional_text(obj, "model", where)
    base_url = _optional_text(obj, "base_url", where)
    system_prompt = _optional_text(obj, "system_prompt", where)
    params = obj.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad(where, "params must be an object")
    created = _time(obj.get("created", now), where, "created")
    if _depth(params) > MAX_NESTING:
        raise _bad(where, "params nest too deeply")
    messages: list[_NewMessage] = []
    for j, m in enumerate(raw_messages):
        at = f"{where}, message {j + 1}"
        if not isinstance(m, dict):
            raise _bad(at, "it is not a JSON object")
        role = m.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ROLES:
            raise _bad(at, f"role {role!r} is not one llmdesk keeps ({', '.join(ROLES)})")
        content = _content_text(m.get("content"), at)
        reasoning = m.get("reasoning", m.get("reasoning_content")) or ""
        if not isinstance(reasoning, str):
            raise _bad(at, "reasoning must be text")
        stats = m.get("stats")
        if stats is not None and not isinstance(stats, dict):
            raise _bad(at, "stats must be an object")
        if stats is not None and _depth(stats) > MAX_NESTING:
            raise _bad(at, "stats nest too deeply")
        state = m.get("state", "complete")
        if state not in STATES:
            raise _bad(at, f"state {state!r} is not one of {', '.join(STATES)}")
        m_created = _time(m.get("created", created), at, "created")
        calls = _import_calls(m.get("tool_calls"), at)
        call_id = m.get("tool_call_id")
        if call_id is not None and not isinstance(call_id, str):
            raise _bad(at, "tool_call_id must be text")
        _check_text([content, reasoning, stats, calls, call_id], at)
        messages.append(_NewMessage(role, content, reasoning, stats, state, m_created, calls, call_id))
    if system_prompt is None:
        # OpenAI-style: the system prompt is the leading system message(s).
        lead = []
        while messages and messages[0].role == "system":
            lead.append(messages.pop(0).content)
        system_prompt = "\n\n".join(lead)
    updated = _time(obj.get("updated", max([created, *(m.created for m in messages)])), where, "updated")
    _check_text([title, model, base_url, system_prompt, params], where)
    if not (title or "").strip():
        first_user = next((m.content for m in messages if m.role == "user"), "")
        title = auto_title(first_user) if first_user.strip() else "Imported chat"
    return _NewConversation(title.strip(), float(created), float(updated), model, base_url, system_prompt,
                            params, messages)


# --- the store --------------------------------------------------------------------------------

class ConversationStore:
    """All saved conversations and the per-model parameter presets. Every method may be called from
    any thread; each call is one transaction."""

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else default_path()
        self.notice: Problem | None = None  # set when an unreadable file was moved aside, or the disk is full
        self.read_only: Problem | None = None  # why nothing can be saved (a full disk): every write raises it
        self._clock = clock
        self._lock = threading.Lock()
        self._message_columns = _MESSAGE_COLUMNS
        self._conn = self._open()

    # -- opening --

    def _open(self) -> sqlite3.Connection:
        try:
            paths.private_dir(self.path.parent)
        except OSError as exc:
            raise ProblemError(Problem("The saved chats cannot be opened",
                                       f"The folder {self.path.parent} could not be made ({exc.strerror or exc}).",
                                       "Check the disk's free space and the folder's permissions.")) from None
        # One process at a time creates, upgrades or moves aside the file: two first opens at once
        # would otherwise both create the schema, or one would move aside the file the other just made.
        busy = Problem("The saved chats are busy", f"Another llmdesk has been opening {self.path} for "
                       f"{OPEN_WAIT_S:g} s.", "Try again in a moment.")
        with locks.exclusive(self.path.with_name(self.path.name + ".lock"), OPEN_WAIT_S, busy, without_lock_ok=True):
            try:
                return self._connect()
            except _DiskFull:
                return self._connect_read_only()
            except _Unusable as exc:
                reason = str(exc)
            moved = self._move_aside()
            self.notice = Problem("Saved chats could not be read",
                                  f"{self.path.name} {reason}; it was moved to {moved.name} and a new, empty "
                                  "file was started.",
                                  f"Nothing was deleted: the old file is kept in {self.path.parent}.")
            log.warning("moved unreadable %s to %s: %s", self.path, moved, reason)
            try:
                return self._connect()
            except (_Unusable, _DiskFull) as exc:
                raise ProblemError(Problem("The saved chats cannot be opened", f"{self.path}: {exc}.", None)) from None

    def _connect(self) -> sqlite3.Connection:
        if not _looks_like_sqlite(self.path):
            # Checked before SQLite opens it: closing a connection to a file it cannot read deletes
            # the WAL next to it, which may hold the only copy of the last chats.
            raise _Unusable("is not a database")
        try:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ProblemError(self._problem(exc) or _generic_problem(self.path, exc)) from None
        # This user's only, before anything is written: SQLite gives its WAL and SHM the same mode.
        paths.private_file(self.path)
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            code = getattr(exc, "sqlite_errorcode", None)
            if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                raise _Unusable("is not a readable database" +
                                (" (it is damaged)" if code == sqlite3.SQLITE_CORRUPT else "")) from None
            if code is not None and code & 0xFF in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL) \
                    and paths.disk_is_full(self.path.parent):
                raise _DiskFull(str(exc)) from None
            raise ProblemError(self._problem(exc) or _generic_problem(self.path, exc)) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys = ON")
        self._check_version(conn)
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            # Looked at again under the write lock: another process may have made it meanwhile.
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._check_version(conn)
                if version == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                else:
                    for step in range(version, SCHEMA_VERSION):
                        for statement in _MIGRATIONS[step]:
                            conn.execute(statement)
                if version < SCHEMA_VERSION:
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: a power cut may lose the last write, never the file
        _add_functions(conn)

    def _check_version(self, conn: sqlite3.Connection) -> int:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # reads the header: NOTADB shows here
        if version > SCHEMA_VERSION:
            raise ProblemError(Problem("Saved chats from a newer llmdesk",
                                       f"{self.path} was written by a newer llmdesk (schema {version}; this one "
                                       f"knows up to {SCHEMA_VERSION}).",
                                       "Update llmdesk to open them."))
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise _Unusable("is a database, but not one of llmdesk's chats")
        return version

    def _connect_read_only(self) -> sqlite3.Connection:
        """The disk is full, so SQLite cannot make the shared-memory file a reader of a WAL database
        needs: read the file without it. Read-only goes through the WAL when another llmdesk keeps it
        open; otherwise the file is read as it is (immutable), which misses only changes a crashed
        writer left in the WAL."""
        uri = "file:" + urllib.parse.quote(str(self.path))
        wal = self.path.with_name(self.path.name + "-wal")
        for query, sees_wal in (("?mode=ro", True), ("?immutable=1", False)):
            try:
                conn = sqlite3.connect(uri + query, uri=True, timeout=5, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.Error:
                continue
            try:
                version = self._check_version(conn)
                if version == 0:
                    conn.close()
                    break
                if version < SCHEMA_VERSION:  # cannot be upgraded without room: read what it has
                    self._message_columns = _MESSAGE_COLUMNS.replace("tool_calls, tool_call_id", "NULL, NULL")
                conn.execute("PRAGMA foreign_keys = ON")
                _add_functions(conn)
            except (sqlite3.Error, _Unusable):
                conn.close()
                continue
            missing = "" if sees_wal or _size_or_zero(wal) == 0 else (
                " The last changes, kept in its journal, show once space is free.")
            self.read_only = Problem(
                "The disk is full", f"There is no space left on the disk that holds {self.path.parent}, so saved "
                f"chats can be read but not changed.{missing}",
                "Free some disk space: chats are saved again as soon as there is room.")
            self.notice = self.read_only
            log.warning("disk full: %s opened read-only", self.path)
            return conn
        raise ProblemError(Problem("The disk is full", f"There is no space left on the disk that holds "
                                   f"{self.path.parent}, and {self.path.name} cannot be read without some.",
                                   "Free some disk space, then try again."))

    def _reopen_for_writing(self) -> None:
        """Opened read-only on a full disk: once there is room again, open it as usual."""
        with self._lock:
            if self.read_only is None:
                return
            if paths.disk_is_full(self.path.parent):
                raise ProblemError(self.read_only)
            old, self.read_only, self.notice = self._conn, None, None
            self._conn = self._open()
            old.close()
        if self.read_only is not None:
            raise ProblemError(self.read_only)

    def _move_aside(self) -> Path:
        moved = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.replace(moved)
            # A stale WAL next to a fresh file would be replayed into it.
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(moved.with_name(moved.name + suffix))
        except OSError as exc:
            raise ProblemError(Problem("The saved chats cannot be opened",
                                       f"{self.path} is not a readable database, and it could not be moved "
                                       f"aside ({exc.strerror or exc}).",
                                       "Move or delete the file yourself, then open the Chat page again.")) from None
        return moved

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transactions and errors --

    @contextlib.contextmanager
    def _tx(self, begin: str | None = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One locked call; ``begin`` None for a single read statement, "BEGIN" for a consistent read."""
        if self.read_only is not None and begin == "BEGIN IMMEDIATE":
            self._reopen_for_writing()
        with self._lock:
            conn = self._conn
            try:
                if begin:
                    conn.execute(begin)
                yield conn
                if begin:
                    conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and (problem := self._problem(exc)) is not None:
                    raise ProblemError(problem) from exc
                raise

    def _problem(self, exc: sqlite3.Error) -> Problem | None:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        primary = code & 0xFF  # extended codes carry the primary one in the low byte
        where = str(self.path)
        if primary == sqlite3.SQLITE_FULL:
            return Problem("The disk is full", f"The chat could not be saved: there is no space left for {where}.",
                           "Free some disk space, then try again.")
        if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN,
                       sqlite3.SQLITE_AUTH):
            return Problem("The saved chats cannot be written",
                           f"{where} (or its folder) is read-only or not accessible to you.",
                           "Check the permissions of the file and its folder, or free the disk if it was "
                           "remounted read-only.")
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return Problem("The saved chats are busy", f"Another program is writing to {where}.",
                           "Try again in a moment.")
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return Problem("The saved chats file is damaged", f"SQLite says: {exc}.",
                           f"Close llmdesk and move {where} elsewhere; a new, empty one will be made.")
        if primary == sqlite3.SQLITE_IOERR and paths.disk_is_full(self.path.parent):
            return Problem("The disk is full", f"There is no space left on the disk that holds {where}.",
                           "Free some disk space, then try again.")
        if primary == sqlite3.SQLITE_IOERR:
            return Problem("Could not read or write the saved chats", f"{where}: {exc}.",
                           "Check the disk, then try again.")
        return None

    # -- conversations --

    def create(self, title: str | None = None, *, model: str | None = None, system_prompt: str = "",
               params: Mapping[str, Any] | None = None, base_url: str | None = None) -> int:
        """A new, empty conversation; returns its id. Without a title, the first user message names it."""
        now = self._clock()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (title, created, updated, model, base_url, system_prompt, params) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((title or "").strip() or None, now, now, model, base_url, system_prompt or "",
                 _dump(dict(params or {}))))
            return int(cur.lastrowid)

    def get(self, conversation_id: int) -> Conversation:
        with self._tx("BEGIN") as conn:
            row = conn.execute("SELECT id, title, created, updated, model, base_url, system_prompt, params "
                               "FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                raise _not_found(conversation_id)
            messages = [_message(r) for r in conn.execute(
                f"SELECT {self._message_columns} FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,))]
        return Conversation(id=row[0], title=row[1] or DEFAULT_TITLE, created=row[2], updated=row[3], model=row[4],
                            base_url=row[5], system_prompt=row[6], params=_load_dict(row[7]) or {},
                            messages=messages)

    def list(self, search: str = "") -> list[ConversationSummary]:
        """Newest first; ``search`` matches the title or any message's text, ignoring case."""
        query = search.strip()
        sql = ["SELECT c.id, c.title, c.updated, c.model,",
               " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),",
               " (SELECT content FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1)"]
        args: list[Any] = []
        if query:
            if query.isascii():  # LIKE ignores case for ASCII, in C
                match, needle = "{col} LIKE ? ESCAPE '\\'", _like_pattern(query)
            else:
                match, needle = "instr(llmdesk_fold({col}), ?) > 0", query.casefold()
            sql.append(f", (SELECT content FROM messages m WHERE m.conversation_id = c.id AND "
                       f"{match.format(col='m.content')} ORDER BY m.id LIMIT 1) AS hit")
            sql.append(f" FROM conversations c WHERE {match.format(col='c.title')} OR hit IS NOT NULL")
            args = [needle, needle]
        else:
            sql.append(", NULL FROM conversations c")
        sql.append(" ORDER BY c.updated DESC, c.id DESC")
        with self._tx("BEGIN") as conn:
            rows = conn.execute("".join(sql), args).fetchall()
        return [ConversationSummary(id=r[0], title=r[1] or DEFAULT_TITLE, updated=r[2], model=r[3],
                                    message_count=r[4],
                                    preview=_preview(r[6], query) if r[6] is not None else _preview(r[5] or ""))
                for r in rows]

    def rename(self, conversation_id: int, title: str) -> None:
        title = (title or "").strip()
        if not title:
            raise BadInput(Problem("No title", "A chat's title cannot be empty.", "Type a few words."))
        with self._tx() as conn:
            if conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)).rowcount == 0:
                raise _not_found(conversation_id)

    def delete(self, conversation_id: int) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            if conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount == 0:
                raise _not_found(conversation_id)

    def update_settings(self, conversation_id: int, *, model: str | None = _UNSET, system_prompt: str = _UNSET,
                        params: Mapping[str, Any] = _UNSET, base_url: str | None = _UNSET) -> None:
        """Change only what is given (None is a value: no model, no URL)."""
        changes: dict[str, Any] = {}
        if model is not _UNSET:
            changes["model"] = model
        if system_prompt is not _UNSET:
            changes["system_prompt"] = system_prompt or ""
        if params is not _UNSET:
            changes["params"] = _dump(dict(params or {}))
        if base_url is not _UNSET:
            changes["base_url"] = base_url
        with self._tx() as conn:
            sets = ", ".join(f"{k} = ?" for k in changes) or "id = id"
            cur = conn.execute(f"UPDATE conversations SET {sets} WHERE id = ?", (*changes.values(), conversation_id))
            if cur.rowcount == 0:
                raise _not_found(conversation_id)

    # -- messages --

    def add_message(self, conversation_id: int, role: str, content: str, *, reasoning: str = "",
                    stats: Mapping[str, Any] | None = None, state: str = "complete",
                    tool_calls: list[dict[str, Any]] | None = None, tool_call_id: str | None = None) -> Message:
        """``tool_calls``: an assistant turn's calls (OpenAI's shape); ``tool_call_id``: a "tool" turn's call."""
        _check_role_state(role, state)
        now = self._clock()
        with self._tx() as conn:
            if conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id)).rowcount == 0:
                raise _not_found(conversation_id)
            if role == "user":  # an untitled chat takes its title from its first question
                conn.execute("UPDATE conversations SET title = ? WHERE id = ? AND title IS NULL",
                             (auto_title(content), conversation_id))
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, reasoning, stats, state, created, tool_calls, "
                "tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, reasoning or "", _dump_stats(stats), state, now,
                 _dump_calls(tool_calls), tool_call_id))
            return Message(id=int(cur.lastrowid), role=role, content=content, reasoning=reasoning or "",
                           stats=dict(stats) if stats is not None else None, state=state, created=now,
                           tool_calls=list(tool_calls) if tool_calls else None, tool_call_id=tool_call_id)

    def update_message(self, message_id: int, *, content: str | None = None, reasoning: str | None = None,
                       stats: Mapping[str, Any] | None = _UNSET, state: str | None = None) -> Message:
        """Change only what is given (``stats=None`` clears the stats); the chat moves to the top."""
        if state is not None:
            _check_role_state("user", state)
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = content
        if reasoning is not None:
            changes["reasoning"] = reasoning
        if stats is not _UNSET:
            changes["stats"] = _dump_stats(stats)
        if state is not None:
            changes["state"] = state
        with self._tx() as conn:
            found = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if found is None:
                raise _message_not_found(message_id)
            if changes:
                conn.execute(f"UPDATE messages SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                             (*changes.values(), message_id))
                conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (self._clock(), found[0]))
            row = conn.execute(f"SELECT {self._message_columns} FROM messages WHERE id = ?",
                               (message_id,)).fetchone()
        return _message(row)

    def truncate_from(self, conversation_id: int, message_id: int) -> int:
        """Delete that message and every later one (Regenerate, Edit and resend); returns how many."""
        with self._tx() as conn:
            found = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if found is None or found[0] != conversation_id:
                raise _message_not_found(message_id, conversation_id)
            cur = conn.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                               (conversation_id, message_id))
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (self._clock(), conversation_id))
            return cur.rowcount

    # -- per-model parameters --

    def set_model_params(self, model: str, params: Mapping[str, Any] | None) -> None:
        """What new chats with ``model`` start with; None forgets it."""
        with self._tx() as conn:
            if params is None:
                conn.execute("DELETE FROM model_params WHERE model = ?", (model,))
            else:
                conn.execute("INSERT INTO model_params (model, params, updated) VALUES (?, ?, ?) "
                             "ON CONFLICT(model) DO UPDATE SET params = excluded.params, updated = excluded.updated",
                             (model, _dump(dict(params)), self._clock()))

    def model_params(self, model: str) -> dict[str, Any] | None:
        with self._tx(None) as conn:
            row = conn.execute("SELECT params FROM model_params WHERE model = ?", (model,)).fetchone()
        return None if row is None else (_load_dict(row[0]) or {})

    # -- export, import --

    auto_title = staticmethod(auto_title)
    to_markdown = staticmethod(to_markdown)
    to_json = staticmethod(to_json)

    def export_json(self, ids: Iterable[int] | None = None) -> dict[str, Any]:
        """The listed conversations (all when None, oldest first) in llmdesk's export envelope."""
        with self._tx("BEGIN") as conn:
            if ids is None:
                wanted = [r[0] for r in conn.execute("SELECT id FROM conversations ORDER BY id")]
            else:
                wanted = list(ids)
        # Not one snapshot across conversations: each is read whole, which is what matters.
        conversations = [to_json(self.get(i)) for i in wanted]
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "conversations": conversations}

    def import_json(self, data: Any) -> list[int]:
        """New conversations from an export envelope, one conversation, or OpenAI-style
        ``{"messages": [...]}``; never overwrites. All or nothing: bad input raises BadInput first."""
        parsed = _parse_import(data, self._clock())
        ids: list[int] = []
        with self._tx() as conn:
            for c in parsed:
                cur = conn.execute(
                    "INSERT INTO conversations (title, created, updated, model, base_url, system_prompt, params) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (c.title, c.created, c.updated, c.model, c.base_url, c.system_prompt, _dump(c.params)))
                cid = int(cur.lastrowid)
                conn.executemany(
                    "INSERT INTO messages (conversation_id, role, content, reasoning, stats, state, created, "
                    "tool_calls, tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(cid, m.role, m.content, m.reasoning, _dump_stats(m.stats), m.state, m.created,
                      _dump_calls(m.tool_calls), m.tool_call_id) for m in c.messages])
                ids.append(cid)
        return ids


# --- row helpers ------------------------------------------------------------------------------

def _dump(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dump_stats(stats: Mapping[str, Any] | None) -> str | None:
    return None if stats is None else _dump(dict(stats))


def _load_dict(text: str | None) -> dict | None:
    """Tolerant: a value hand-edited into nonsense reads as missing rather than breaking the chat."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("unreadable JSON in the conversation store: %r", text[:200])
        return None
    return value if isinstance(value, dict) else None


def _message(row: tuple) -> Message:
    return Message(id=row[0], role=row[1], content=row[2], reasoning=row[3], stats=_load_dict(row[4]),
                   state=row[5], created=row[6], tool_calls=_load_calls(row[7]),
                   tool_call_id=row[8] if isinstance(row[8], str) else None)


def _dump_calls(calls: list[dict[str, Any]] | None) -> str | None:
    return _dump_list(list(calls)) if calls else None


def _dump_list(value: list) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _load_calls(text: str | None) -> list[dict[str, Any]] | None:
    """Tolerant, as _load_dict: calls in OpenAI's shape, whatever was stored."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("unreadable tool calls in the conversation store: %r", text[:200])
        return None
    from llmdesk.core.chat.tools import calls_from_openai

    calls = [c.as_openai() for c in calls_from_openai(value)]
    return calls or None


def _check_role_state(role: str, state: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, not {state!r}")


def _not_found(conversation_id: int) -> ConversationNotFound:
    return ConversationNotFound(Problem(f"No chat {conversation_id}",
                                        f"There is no saved chat with id {conversation_id}; it may have been deleted.",
                                        "See the saved chats and their ids with `llmdesk chats`."))


def _message_not_found(message_id: int, conversation_id: int | None = None) -> ConversationNotFound:
    where = f" in chat {conversation_id}" if conversation_id is not None else ""
    return ConversationNotFound(Problem(f"No message {message_id}{where}",
                                        f"There is no saved message with id {message_id}{where}.", None))


def _add_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("llmdesk_fold", 1, lambda s: s.casefold() if isinstance(s, str) else s, deterministic=True)


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _looks_like_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return True
    except OSError:
        return True  # let SQLite say what is wrong (permissions...)
    return head in (b"", b"SQLite format 3\x00")


def _generic_problem(path: Path, exc: sqlite3.Error) -> Problem:
    return Problem("The saved chats cannot be opened", f"{path}: {exc}.",
                   "Check the disk and the folder's permissions.")
