"""Tools (OpenAI function definitions) for a chat, the calls a model makes, and their results (pure).

    tools = parse_tools(text, "tools.json")        # BadInput naming what is wrong (a CLI exits 2)
    acc = ToolCallAccumulator()
    acc.feed(delta["tool_calls"])                   # streamed fragments, merged by index
    acc.calls                                       # [ToolCall(id, name, arguments)]
    assistant_message(content, calls), tool_message(call.id, result)   # what goes back to the server

vLLM streams a call as its id, type and name first, then the arguments in pieces
(``{"index": 0, "function": {"arguments": "{\\"city\\": "}}``); the finish reason is "tool_calls".
Each tool's ``parameters`` is a JSON schema, checked against its meta-schema with ``jsonschema``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
TOOL_CHOICES = ("auto", "required", "none")


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str = ""  # JSON text as the model wrote it (it may not parse)

    def parsed_arguments(self) -> tuple[Any, str | None]:
        """(value, None) when the arguments are JSON, else (None, why not)."""
        if not self.arguments.strip():
            return {}, None
        try:
            return json.loads(self.arguments), None
        except ValueError as exc:
            return None, f"the arguments are not JSON ({exc})"

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    def shown(self) -> str:
        """``get_weather({"city": "Paris"})`` for a terminal or a card's title."""
        return f"{self.name}({self.arguments})"


def calls_from_openai(items: Any) -> list[ToolCall]:
    """Tolerant: stored or imported ``tool_calls`` (OpenAI's shape, or flat {id, name, arguments})."""
    out: list[ToolCall] = []
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        function = item.get("function") if isinstance(item.get("function"), dict) else item
        name, arguments = function.get("name"), function.get("arguments", "")
        if not isinstance(name, str):
            continue
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out.append(ToolCall(str(item.get("id") or ""), name, arguments))
    return out


class ToolCallAccumulator:
    """Merges streamed ``delta.tool_calls`` fragments into whole calls, by their index."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, Any]] = {}

    def feed(self, fragments: Any) -> bool:
        """True when something changed."""
        changed = False
        if not isinstance(fragments, list):
            return False
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index", position)
            if not isinstance(index, int):
                continue
            part = self._parts.setdefault(index, {"id": "", "name": "", "arguments": []})
            if isinstance(fragment.get("id"), str) and fragment["id"]:
                part["id"] = fragment["id"]
            function = fragment.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str) and function["name"]:
                    # vLLM sends the name once; some servers repeat it whole, none split it
                    part["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    part["arguments"].append(function["arguments"])
            changed = True
        return changed

    @property
    def calls(self) -> list[ToolCall]:
        return [ToolCall(p["id"] or f"call_{i}", p["name"], "".join(p["arguments"]))
                for i, p in sorted(self._parts.items())]


# --- tool definitions ---------------------------------------------------------------------------

def _bad(where: str, what: str) -> BadInput:
    return BadInput(Problem("The tool definitions are not usable", f"{where}: {what}.",
                            'Give a JSON list of OpenAI function tools: [{"type": "function", "function": '
                            '{"name": "get_weather", "description": "…", "parameters": {"type": "object", '
                            '"properties": {"city": {"type": "string"}}, "required": ["city"]}}}].'))


def check_schema(schema: Any, where: str) -> str | None:
    """Why ``schema`` is not a valid JSON schema (its meta-schema's verdict), or None."""
    from jsonschema import exceptions, validators

    if not isinstance(schema, dict | bool):
        return f"{where} must be a JSON schema (an object), not {type(schema).__name__}"
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return f"{where} is not a valid JSON schema{f' at {path}' if path else ''}: {exc.message}"
    return None


def parse_tools(data: Any, where: str = "The tools") -> list[dict[str, Any]]:
    """OpenAI function tools from JSON text or parsed JSON: a list of {"type": "function", "function": {…}}
    (bare {name, parameters} definitions are wrapped). BadInput names the first problem."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise _bad(where, f"not JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise _bad(where, "expected a non-empty list of tools")
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        at = f"tool {i + 1}"
        if not isinstance(item, dict):
            raise _bad(where, f"{at} is not an object")
        if "function" in item:
            if item.get("type", "function") != "function":
                raise _bad(where, f"{at} has type {item.get('type')!r}; only \"function\" tools are sent")
            function = item["function"]
        else:
            function = item
        if not isinstance(function, dict):
            raise _bad(where, f"{at}: function must be an object")
        name = function.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise _bad(where, f"{at}: the name {name!r} must be 1 to 64 letters, digits, _ or -")
        if name in seen:
            raise _bad(where, f"two tools are called {name!r}")
        seen.add(name)
        at = f"tool {name!r}"
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(where, f"{at}: description must be text")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if (why := check_schema(parameters, f"{at}'s parameters")) is not None:
            raise _bad(where, why)
        if isinstance(parameters, dict) and parameters.get("type", "object") != "object":
            raise _bad(where, f"{at}: parameters must describe an object (\"type\": \"object\")")
        clean: dict[str, Any] = {"name": name}
        if description:
            clean["description"] = description
        clean["parameters"] = parameters
        if isinstance(function.get("strict"), bool):
            clean["strict"] = function["strict"]
        tools.append({"type": "function", "function": clean})
    return tools


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def check_tool_choice(choice: str | None, tools: Sequence[Mapping[str, Any]]) -> str | dict | None:
    """The request's tool_choice: auto, required, none, or a tool's name (a named function)."""
    if choice is None or choice == "":
        return None
    if choice in TOOL_CHOICES:
        return choice
    if choice in tool_names(tools):
        return {"type": "function", "function": {"name": choice}}
    raise BadInput(Problem("Unknown tool choice", f"{choice!r} is neither auto, required, none nor one of the tools "
                           f"({', '.join(tool_names(tools)) or 'none given'}).", "Use one of those."))


def choice_after_results(choice: str | dict | None) -> str | dict | None:
    """The tool_choice for a request that carries tool results back. "required" or a named function is
    guided decoding in vLLM: it forces a call whatever came before, so forcing again would loop until the
    round limit (seen on an H100, 2026-12-07). The forced call is made; now the model may answer (auto)."""
    return "auto" if choice == "required" or isinstance(choice, dict) else choice


# vLLM's JSON grammar (structured replies; tool calls only without strict mode) allows any whitespace between
# fields, and a model can fill a whole reply with it up to max tokens (the tiny random Llama on an H100,
# 2026-12-07; small models in the wild). These server options keep JSON compact; vLLM 0.26 takes them with
# the xgrammar or guidance backend only.
COMPACT_JSON_OPTIONS = ("--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}')


def compact_json_hint() -> str:
    return (f"start the server with compact JSON: {COMPACT_JSON_OPTIONS[0]} '{COMPACT_JSON_OPTIONS[1]}' in the "
            "Server page's Extra field (llmdesk serve MODEL -- …)")


def check_arguments(tools: Sequence[Mapping[str, Any]], call: ToolCall, finish_reason: str | None = None) -> str | None:
    """Why a call does not fit its tool (unknown tool, arguments not JSON or not matching the schema), or None.
    A reply that stopped at max tokens ("length") cut its arguments off: said first, as the likely cause."""
    from jsonschema import validators

    tool = next((t for t in tools if t["function"]["name"] == call.name), None)
    if tool is None:
        return f"the model called {call.name!r}, which is not one of the tools"
    value, why = call.parsed_arguments()
    if why is None:
        schema = tool["function"].get("parameters") or {}
        validator = validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        why = "the arguments do not match the tool's parameters: " + describe_errors(errors) if errors else None
    if why is None or finish_reason != "length":
        return why
    if not call.arguments.strip():
        # what vLLM 0.26 streams when a model fills a forced call with the whitespace its grammar allows
        return ("the reply stopped at max tokens before any arguments came: raise max tokens; a model that fills "
                "a forced call with spaces needs VLLM_ENFORCE_STRICT_TOOL_CALLING=0 in the Server page's "
                "Environment field (llmdesk serve --env …; vLLM 0.26's strict calls keep JSON's free spaces); then "
                + compact_json_hint())
    return f"the reply stopped at max tokens before the call's arguments were complete ({why})"


def describe_errors(errors: Iterable[Any], limit: int = 3) -> str:
    """jsonschema errors as ``$.age: 'x' is not of type 'integer'``, the first few."""
    errors = list(errors)
    shown = []
    for error in errors[:limit]:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        shown.append(f"{path}: {error.message}")
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(shown) + more


# --- messages -----------------------------------------------------------------------------------

def assistant_message(content: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
    """The assistant turn that called tools, as it goes back to the server (content may be empty)."""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [c.as_openai() for c in calls]
    return message


def tool_message(call_id: str, result: Any) -> dict[str, Any]:
    """A tool's result: role "tool" with the call's id; a value that is not text is sent as JSON."""
    content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call_id, "content": content}
