"""What the playground sends and shows, apart from Qt: sampling presets, parameters typed as text,
the message list of a request, trimming old turns to fit the context, and the stats line.

The Chat page and ``llmdesk chat`` share these, so a conversation replayed from the CLI sends the
same request the page would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.chat.client import ChatParams, ReplyStats
from llmdesk.core.chat.tools import ToolCall, assistant_message, tool_message

# Named starting points; every field left out keeps the server's default (the model's own
# generation_config.json, which vLLM applies). "Server defaults" sends nothing.
PRESETS: dict[str, ChatParams] = {
    "Server defaults": ChatParams(),
    "Precise": ChatParams(temperature=0.2, top_p=0.9),
    "Balanced": ChatParams(temperature=0.7, top_p=0.95),
    "Creative": ChatParams(temperature=1.0, top_p=1.0, presence_penalty=0.3),
    "Deterministic": ChatParams(temperature=0.0, seed=0),
}

# Field name -> (type, lowest, highest, label). Bounds are the OpenAI / vLLM ones.
PARAM_FIELDS: dict[str, tuple[type, float | None, float | None, str]] = {
    "temperature": (float, 0.0, 2.0, "Temperature"),
    "top_p": (float, 0.0, 1.0, "Top p"),
    "top_k": (int, -1, None, "Top k"),
    "max_tokens": (int, 1, None, "Max tokens"),
    "seed": (int, None, None, "Seed"),
    "presence_penalty": (float, -2.0, 2.0, "Presence penalty"),
    "frequency_penalty": (float, -2.0, 2.0, "Frequency penalty"),
    "repetition_penalty": (float, 0.01, 10.0, "Repetition penalty"),
}


def params_to_dict(params: ChatParams) -> dict[str, Any]:
    """Only what is set (the shape stored with a conversation and in per-model presets)."""
    out = {k: v for k, v in dataclasses.asdict(params).items() if v is not None and v != ()}
    if "stop" in out:
        out["stop"] = list(out["stop"])
    return out


def params_from_dict(data: Mapping[str, Any] | None) -> ChatParams:
    """Tolerant: unknown keys and values of the wrong type are dropped (stored data may be old)."""
    if not data:
        return ChatParams()
    fields: dict[str, Any] = {}
    for name, (kind, _lo, _hi, _label) in PARAM_FIELDS.items():
        value = data.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            fields[name] = kind(value)
    stop = data.get("stop")
    if isinstance(stop, list | tuple):
        fields["stop"] = tuple(str(s) for s in stop if isinstance(s, str) and s)
    return ChatParams(**fields)


def parse_param(name: str, text: str) -> int | float | None:
    """A parameter typed in a field: empty means the server's default; out of range is BadInput."""
    kind, lo, hi, label = PARAM_FIELDS[name]
    text = text.strip()
    if not text:
        return None
    try:
        value = kind(text) if kind is float else int(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise BadInput(Problem(f"{label}: not {what}", f"{text!r} is not {what}.",
                               "Leave it empty for the server's default.")) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"from {lo:g}" if hi is None else f"between {lo:g} and {hi:g}"
        raise BadInput(Problem(f"{label}: out of range", f"{label} must be {span}; {text} is not.",
                               "Leave it empty for the server's default."))
    return value


def parse_stop(text: str) -> tuple[str, ...]:
    """One stop string per line; escapes like ``\\n`` are understood, so a newline can be a stop."""
    out = []
    for line in text.splitlines():
        if line:
            out.append(line.encode("utf-8").decode("unicode_escape") if "\\" in line else line)
    return tuple(out)


def format_param(value: int | float | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Turn:
    """One message as the page holds it; ``excluded`` ones stay on screen but are not sent. An assistant
    turn may carry the tools it called; a "tool" turn is one call's result."""

    role: str
    content: str
    excluded: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


def request_messages(system_prompt: str, turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """The ``messages`` of a chat request: the system prompt (if any), then every included turn.

    Empty assistant turns (a reply stopped before its first token) are left out: some chat
    templates reject two user turns in a row, so they are joined instead. A turn that called tools
    goes as OpenAI's assistant message with ``tool_calls``, a result as role "tool" with its call's id."""
    out: list[dict[str, Any]] = []
    if system_prompt.strip():
        out.append({"role": "system", "content": system_prompt})
    for turn in turns:
        if turn.excluded or turn.role == "system":
            continue
        if turn.role == "assistant" and turn.tool_calls:
            out.append(assistant_message(turn.content, turn.tool_calls))
            continue
        if turn.role == "tool":
            out.append(tool_message(turn.tool_call_id or "", turn.content))
            continue
        if turn.role == "assistant" and not turn.content:
            continue
        if out and out[-1]["role"] == turn.role == "user":
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n\n" + turn.content}
            continue
        out.append({"role": turn.role, "content": turn.content})
    return out


def oldest_droppable(turns: Sequence[Turn]) -> list[int]:
    """Indexes of the oldest included exchange (a user turn and the replies up to the next user
    turn), never the last user turn: the question being asked must stay."""
    included = [i for i, t in enumerate(turns) if not t.excluded and t.role != "system"]
    users = [i for i in included if turns[i].role == "user"]
    if len(users) < 2:
        return []
    start, next_user = users[0], users[1]
    return [i for i in included if start <= i < next_user]


def stats_text(stats: ReplyStats | Mapping[str, Any] | None) -> str:
    """``0.21 s to first token · 84.2 tokens/s · 35 prompt + 120 reply tokens``; empty when unknown."""
    if stats is None:
        return ""
    data = stats.as_dict() if isinstance(stats, ReplyStats) else dict(stats)
    parts = []
    ttft = data.get("ttft_s")
    if isinstance(ttft, int | float):
        parts.append(f"{ttft * 1000:.0f} ms to first token" if ttft < 1 else f"{ttft:.2f} s to first token")
    rate = data.get("tokens_per_s")
    if isinstance(rate, int | float):
        parts.append(f"{rate:.1f} tokens/s")
    prompt, reply = data.get("prompt_tokens"), data.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(reply, int):
        parts.append(f"{prompt:,} prompt + {reply:,} reply tokens")
    elif isinstance(reply, int):
        parts.append(f"{reply:,} reply tokens")
    if data.get("finish_reason") == "length":
        parts.append("stopped at max tokens")
    return " · ".join(parts)
