"""Structured output: ask vLLM to constrain a reply (a JSON schema, a regular expression or a list of
choices) and check what comes back (pure).

vLLM 0.26 takes the constraint in the request body: ``response_format: {"type": "json_schema",
"json_schema": {"name": …, "schema": {…}}}`` (OpenAI's field, which vLLM turns into
``structured_outputs.json``), or its own ``structured_outputs: {"regex": …}`` / ``{"choice": […]}``
(``vllm/entrypoints/openai/chat_completion/protocol.py``, ``vllm/sampling_params.py``
StructuredOutputsParams). Only one kind at a time. The reply is checked here whatever the server
did: a server without guided decoding, a reasoning model that ran out of tokens, or a stand-in told
to break the schema all give a reply that does not fit, and that is said plainly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.chat.tools import check_schema, compact_json_hint, describe_errors

KINDS = ("json_schema", "regex", "choice")
_SPACE_FILL = re.compile(r"\s{32}\Z")  # to the end: an indented JSON cut short ends in text, not in a run of spaces
KIND_LABELS = {"json_schema": "JSON schema", "regex": "regular expression", "choice": "one of the choices"}
# verdict titles a caller tells apart (the CLI words them as sentences)
NOT_JSON, CUT_OFF, CUT_OFF_SPACES = "Not JSON", "Cut off at max tokens", "Cut off: the model wrote spaces"


@dataclass(frozen=True)
class Structured:
    kind: str  # json_schema | regex | choice
    schema: Any = None
    pattern: str = ""
    choices: tuple[str, ...] = ()
    name: str = "reply"  # response_format's json_schema.name

    def request_fields(self) -> dict[str, Any]:
        """What goes into the request body (top level; as ``extra_body`` for the OpenAI client)."""
        if self.kind == "json_schema":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": self.name, "schema": self.schema}}}
        if self.kind == "regex":
            return {"structured_outputs": {"regex": self.pattern}}
        return {"structured_outputs": {"choice": list(self.choices)}}

    def describe(self) -> str:
        if self.kind == "json_schema":
            return "a JSON schema"
        if self.kind == "regex":
            return f"the regular expression {self.pattern}"
        return "one of " + ", ".join(self.choices)

    def as_dict(self) -> dict[str, Any]:
        """The shape kept with a conversation's settings (``from_dict`` reads it back)."""
        if self.kind == "json_schema":
            return {"kind": self.kind, "schema": self.schema, "name": self.name}
        if self.kind == "regex":
            return {"kind": self.kind, "regex": self.pattern}
        return {"kind": self.kind, "choices": list(self.choices)}

    def check(self, reply: str, finish_reason: str | None = None) -> Verdict:
        return check_reply(self, reply, finish_reason)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    title: str  # "Matches the JSON schema" / "Does not match the JSON schema"
    detail: str = ""  # what is wrong, in a line
    value: Any = None  # the parsed JSON where there is one
    errors: tuple[str, ...] = field(default_factory=tuple)

    def line(self) -> str:
        return self.title + (f": {self.detail}" if self.detail else "")

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "title": self.title, "detail": self.detail}


def _bad(title: str, explanation: str, fix: str) -> BadInput:
    return BadInput(Problem(title, explanation, fix))


def json_schema(schema: Any, where: str = "The JSON schema", name: str = "reply") -> Structured:
    """From a parsed schema or its JSON text; BadInput when it is not JSON or not a valid JSON schema."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise _bad("The JSON schema is not JSON", f"{where} could not be read as JSON ({exc}).",
                       'Give a JSON schema such as {"type": "object", "properties": {"answer": {"type": "string"}}}.'
                       ) from None
    if isinstance(schema, dict) and schema.get("type") == "json_schema" and isinstance(schema.get("json_schema"), dict):
        # a whole response_format was given: take its schema and name
        inner = schema["json_schema"]
        name = inner.get("name") if isinstance(inner.get("name"), str) else name
        schema = inner.get("schema")
    if not isinstance(schema, dict):
        raise _bad("Not a JSON schema", f"{where} must be a JSON object, not {type(schema).__name__}.",
                   'Give a JSON schema such as {"type": "object", "properties": {"answer": {"type": "string"}}}.')
    if (why := check_schema(schema, where)) is not None:
        raise _bad("Not a valid JSON schema", why + ".", "Fix the schema (it is checked against its own meta-schema).")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        name = "reply"
    return Structured("json_schema", schema=schema, name=name)


def regex(pattern: str) -> Structured:
    if not pattern:
        raise _bad("Empty regular expression", "The regular expression is empty.", "Type a pattern, e.g. \\d{4}-\\d{2}.")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _bad("Not a regular expression", f"{pattern!r} does not compile: {exc}.",
                   "Fix the pattern (the reply must match all of it).") from None
    return Structured("regex", pattern=pattern)


def choice(choices: Sequence[str] | str) -> Structured:
    """From a list, or text with one choice per line or separated by commas."""
    if isinstance(choices, str):
        parts = choices.splitlines() if "\n" in choices.strip() else choices.split(",")
        choices = [p.strip() for p in parts]
    cleaned = [c for c in choices if isinstance(c, str) and c != ""]
    if not cleaned:
        raise _bad("No choices", "A choice needs at least one option.", "Give options such as yes,no,maybe.")
    if len(set(cleaned)) != len(cleaned):
        raise _bad("A choice is repeated", f"The choices {cleaned} repeat one.", "List each option once.")
    return Structured("choice", choices=tuple(cleaned))


def from_dict(data: Any) -> Structured | None:
    """Tolerant: what a conversation kept; None when it is missing or no longer valid."""
    if not isinstance(data, dict):
        return None
    try:
        if data.get("kind") == "json_schema":
            return json_schema(data.get("schema"), name=str(data.get("name") or "reply"))
        if data.get("kind") == "regex":
            return regex(str(data.get("regex") or ""))
        if data.get("kind") == "choice" and isinstance(data.get("choices"), list):
            return choice([str(c) for c in data["choices"]])
    except BadInput:
        return None
    return None


def filled_with_spaces(text: str) -> bool:
    """A reply ending in a long run of whitespace: the grammar's freedom between JSON fields, not an answer."""
    return _SPACE_FILL.search(text) is not None


def check_reply(structured: Structured, reply: str, finish_reason: str | None = None) -> Verdict:
    """Whether the reply fits; one that does not and stopped at max tokens ("length") says it was cut off."""
    verdict = _fits(structured, reply)
    if verdict.ok or finish_reason != "length":
        return verdict
    if structured.kind == "json_schema" and filled_with_spaces(reply):
        return Verdict(False, CUT_OFF_SPACES, "the model filled the reply with the spaces "
                       "JSON allows between fields until max tokens; " + compact_json_hint(),
                       verdict.value, verdict.errors)
    return Verdict(False, CUT_OFF, "the reply stopped before it was complete; allow more tokens",
                   verdict.value, verdict.errors or (verdict.detail,))


def _fits(structured: Structured, reply: str) -> Verdict:
    label = KIND_LABELS[structured.kind]
    good, bad = f"Matches {'the ' if structured.kind != 'choice' else ''}{label}", \
        f"Does not match {'the ' if structured.kind != 'choice' else ''}{label}"
    if structured.kind == "json_schema":
        try:
            value = json.loads(reply)
        except ValueError as exc:
            text = reply.strip()
            shown = (text[:60] + "…") if len(text) > 60 else text
            return Verdict(False, NOT_JSON, f"the reply could not be read as JSON ({exc}): {shown!r}")
        from jsonschema import validators

        validator = validators.validator_for(structured.schema)(structured.schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            return Verdict(False, bad, describe_errors(errors), value,
                           tuple(describe_errors([e]) for e in errors))
        return Verdict(True, good, "", value)
    if structured.kind == "regex":
        if re.fullmatch(structured.pattern, reply):
            return Verdict(True, good)
        near = " (it would after trimming the spaces around it)" if re.fullmatch(structured.pattern, reply.strip()) else ""
        return Verdict(False, bad, f"{_short(reply)} is not a full match of {structured.pattern}{near}")
    if reply in structured.choices:
        return Verdict(True, good, "", reply)
    near = " (it is after trimming the spaces around it)" if reply.strip() in structured.choices else ""
    return Verdict(False, bad, f"{_short(reply)} is not one of {', '.join(structured.choices)}{near}")


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")
