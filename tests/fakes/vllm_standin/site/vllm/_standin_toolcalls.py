"""Tool calls and structured outputs of the stand-in's /v1/chat/completions, as vLLM 0.26 does them.

What vLLM does, from its source (``vllm/renderers/online_renderer.py``,
``vllm/entrypoints/openai/chat_completion/{protocol,serving}.py``, ``vllm/tool_parsers/llama_tool_parser.py``):

- ``tools`` without ``tool_choice`` means "auto". "auto" needs the server started with
  ``--enable-auto-tool-choice`` (and so ``--tool-call-parser``), else 400
  ``"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set``;
  "required" or a named function need a loaded parser (vLLM loads it only with auto tool choice
  on), else 400 ``tool_choice="required" requires --tool-call-parser to be set``. An empty
  ``tools`` list, a named function that is not among the tools and structured outputs together
  with a named function are refused with vLLM's words.
- A streamed call: one delta ``{"tool_calls": [{"index": 0, "id": "chatcmpl-tool-…", "type":
  "function", "function": {"name": …}}]}``, then the arguments in pieces ``{"tool_calls":
  [{"index": 0, "function": {"arguments": …}}]}``; the finish reason is "tool_calls" (but "stop"
  for a named function). Not streamed: ``message.tool_calls`` and ``content`` null.
- Structured outputs: ``response_format`` {type: json_schema, json_schema: {name, schema}} or
  {type: json_object}, or ``structured_outputs`` {json | regex | choice} (one kind only).

When the stand-in calls a tool: tool_choice is "required" or a named function (whatever the last
message, tool results too, as vLLM's guided decoding does), or the last message is the user's and
its text names a tool (every tool it names, in order: parallel calls).
Arguments are an instance of the tool's parameters schema; strings take the last capitalised word
of the user's text that does not start a sentence ("… in Paris? Use get_weather." -> "Paris"); the
schema's enum, const, minimum and minLength are honoured, maxLength and the rest are not. After tool results it answers "Result: …" with them.
A structured reply is an instance of the schema, the first choice, or a string the regex matches.

``FAKE_VLLM_BREAK_STRUCTURED=1`` makes structured replies break their constraint (a required
property missing or of the wrong type, a choice that is not one, text the regex does not match), to
test the client's validation. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field

try:  # Python 3.11+
    import re._parser as _sre_parse  # type: ignore[import-not-found]
    import re._constants as _sre_const  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_constants as _sre_const  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_TOKEN_RE = re.compile(r"\s*\S{1,4}|\s+")


@dataclass
class Plan:
    error: str | None = None
    calls: list[dict] = field(default_factory=list)  # [{"id", "name", "arguments"}]
    text: str | None = None  # the reply's text when the stand-in decides it
    named: bool = False  # a named function: vLLM's finish reason stays "stop"

    def pieces(self) -> list:
        """The stream's pieces: str for content, dict for a tool_calls delta."""
        if self.calls:
            out: list = []
            for i, call in enumerate(self.calls):
                out.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                            "function": {"name": call["name"]}}]})
                out += [{"tool_calls": [{"index": i, "function": {"arguments": part}}]}
                        for part in _TOKEN_RE.findall(call["arguments"])]
            return out
        return _TOKEN_RE.findall(self.text or "") or [""]

    @property
    def finish(self) -> str | None:
        return ("stop" if self.named else "tool_calls") if self.calls else None


def plan(body: dict, args) -> Plan | None:
    """None when the request has neither tools nor structured outputs (the usual words reply)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    structured = _structured(body)
    if isinstance(structured, str):
        return Plan(error=structured)
    if tools == []:
        return Plan(error="`tools` must not be an empty array. Either provide at least one tool or omit the "
                          "field entirely.")
    if choice is None and tools:
        choice = "auto"
    if choice not in (None, "none") and not tools:
        return Plan(error="When using `tool_choice`, `tools` must be set.")
    named = choice if isinstance(choice, dict) else None
    if named is not None:
        name = (named.get("function") or {}).get("name")
        if not any((t.get("function") or {}).get("name") == name for t in tools):
            return Plan(error="The tool specified in `tool_choice` does not match any of the specified `tools`")
        if structured is not None:
            return Plan(error="You can only either use constraints for structured outputs or tools, not both.")
    parser = bool(getattr(args, "enable_auto_tool_choice", False) and getattr(args, "tool_call_parser", None))
    if tools and choice not in (None, "none") and not parser:
        if choice == "auto" and not getattr(args, "enable_auto_tool_choice", False):
            return Plan(error='"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')
        if choice != "auto":
            desc = f'function "{named["function"]["name"]}"' if named else f'"{choice}"'
            return Plan(error=f"tool_choice={desc} requires --tool-call-parser to be set")
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    user_text = _text(last.get("content")) if last.get("role") == "user" else ""
    # a forced choice ("required", a named function) is guided decoding in vLLM: it calls again whatever came
    # before, tool results included (a client that keeps forcing loops: seen on an H100, 2026-12-07)
    forced = choice == "required" or named is not None
    if tools and choice not in (None, "none") and (last.get("role") == "user" or forced):
        wanted = _tools_asked(tools, user_text, choice)
        if wanted:
            calls = [{"id": "chatcmpl-tool-" + secrets.token_hex(16), "name": t["function"]["name"],
                      "arguments": json.dumps(_instance(t["function"].get("parameters") or {}, user_text))}
                     for t in wanted]
            return Plan(calls=calls, named=named is not None)
    if last.get("role") == "tool":
        results = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            results.insert(0, _text(m.get("content")))
        if structured is None:
            return Plan(text="Result: " + "; ".join(results))
    if structured is not None:
        return Plan(text=_structured_reply(structured, _last_user_text(messages)))
    return None


def _tools_asked(tools: list, text: str, choice) -> list:
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return [t for t in tools if t["function"]["name"] == name]
    lowered = text.lower()
    named = sorted((lowered.find(t["function"]["name"].lower()), i) for i, t in enumerate(tools)
                   if t["function"]["name"].lower() in lowered)
    asked = [tools[i] for _, i in named]
    if not asked and choice == "required":
        asked = tools[:1]
    return asked


def _structured(body: dict):
    """("json", schema) | ("regex", pattern) | ("choice", list) | None, or an error message."""
    rf = body.get("response_format")
    so = body.get("structured_outputs")
    if isinstance(so, dict):
        kinds = [k for k in ("json", "regex", "choice") if so.get(k) is not None]
        if len(kinds) > 1:
            return "You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice')."
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        inner = rf.get("json_schema")
        if not isinstance(inner, dict):
            return "When response_format type is 'json_schema', the 'json_schema' field must be provided."
        schema = inner.get("schema", inner.get("json_schema"))
        return ("json", schema if isinstance(schema, dict) else {})
    if isinstance(rf, dict) and rf.get("type") == "json_object":
        return ("json", {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})
    if isinstance(so, dict):
        if so.get("json") is not None:
            schema = so["json"]
            if isinstance(schema, str):
                try:
                    schema = json.loads(schema)
                except ValueError:
                    return "Invalid JSON schema in structured_outputs.json"
            return ("json", schema if isinstance(schema, dict) else {})
        if so.get("regex") is not None:
            return ("regex", str(so["regex"]))
        if isinstance(so.get("choice"), list):
            return ("choice", [str(c) for c in so["choice"]])
    return None


def _structured_reply(structured, prompt: str) -> str:
    kind, spec = structured
    broken = os.environ.get("FAKE_VLLM_BREAK_STRUCTURED") == "1"
    if kind == "choice":
        return "none of these" if broken else (spec[0] if spec else "")
    if kind == "regex":
        return "!!! not that" if broken else _regex_instance(spec)
    value = _instance(spec, prompt)
    if broken:
        value = _break(spec, value)
    return json.dumps(value, indent=None)


def _break(schema: dict, value):
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict) and schema["properties"]:
        required = schema.get("required") or []
        if required and required[0] in value:
            del value[required[0]]
            return value
        key = next(iter(schema["properties"]))
        value[key] = [] if schema["properties"][key].get("type") != "array" else "not a list"
        return value
    return {"unexpected": True} if not isinstance(value, dict) else "not an object"


def _instance(schema, prompt: str):
    """A value that fits a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _instance(schema[key][0], prompt)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _instance(sub, prompt) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 1))
        return [_instance(schema.get("items") or {}, prompt) for _ in range(count)]
    if kind == "integer":
        if "minimum" in schema:
            return int(schema["minimum"])
        return int(schema["exclusiveMinimum"]) + 1 if "exclusiveMinimum" in schema else 3
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if isinstance(schema.get("pattern"), str):
        return _regex_instance(schema["pattern"])
    word = _word(prompt)
    return word + "x" * max(0, int(schema.get("minLength") or 0) - len(word))


def _word(prompt: str) -> str:
    """The last capitalised word that does not start a sentence ("What … in Paris? Use it." -> "Paris")."""
    capitals = [m.group() for m in re.finditer(r"\b[A-Z][a-zA-Z]+\b", prompt)
                if prompt[:m.start()].rstrip()[-1:] not in ("", ".", "?", "!")]
    return capitals[-1] if capitals else "demo"


def _regex_instance(pattern: str) -> str:
    """A string the pattern fully matches, from Python's own regex parser (common constructs)."""
    try:
        tree = _sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001 - an odd pattern: answer something
        return "demo"
    return _gen(tree)


def _gen(items) -> str:
    c = _sre_const
    out = []
    for op, arg in items:
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is c.ANY:
            out.append("a")
        elif op is c.IN:
            out.append(_class(arg))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, _high, sub = arg
            out.append(_gen(sub) * low)
        elif op is c.SUBPATTERN:
            out.append(_gen(arg[-1]))
        elif op is c.BRANCH:
            out.append(_gen(arg[1][0]))
        elif op is c.CATEGORY:
            out.append(_category(arg))
        # AT (anchors) and the rest add nothing
    return "".join(out)


def _class(items) -> str:
    c = _sre_const
    negate = any(op is c.NEGATE for op, _ in items)
    if negate:
        return "a" if not any(op is c.LITERAL and arg == ord("a") for op, arg in items) else "b"
    for op, arg in items:
        if op is c.LITERAL:
            return chr(arg)
        if op is c.RANGE:
            return chr(arg[0])
        if op is c.CATEGORY:
            return _category(arg)
    return "a"


def _category(arg) -> str:
    name = str(arg)
    if "DIGIT" in name:
        return "1" if "NOT" not in name else "a"
    if "SPACE" in name:
        return " " if "NOT" not in name else "a"
    if "WORD" in name:
        return "a" if "NOT" not in name else " "
    return "a"


def _text(content) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _last_user_text(messages: list) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return _text(m.get("content"))
    return ""
