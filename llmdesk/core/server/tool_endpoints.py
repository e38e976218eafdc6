"""What each tool needs to use the endpoint: Claude Code, Codex CLI, Continue, Aider and Open WebUI.

Given where the server is (its root URL), what it serves (``/v1/models``: base models and LoRA
adapters, with vLLM's ``max_model_len``) and its API key, ``tool_settings`` gives one tool's base
URLs, the settings in the tool's own format (shell lines, Codex's TOML, Continue's YAML), how to use
them and what to watch out for. The sources of every setting are listed in docs/endpoint.md.

Pure: no I/O. Every value is quoted for the format it lands in (a served name is whatever the user
typed, and a pasted line must never run anything but the assignment it shows), and a control
character never reaches the text raw: it is written as an escape, so a name cannot rewrite what a
terminal shows. The key stays a ``$LLMDESK_API_KEY`` reference unless the caller asks to show it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from llmdesk.core.base.errors import BadInput, Problem

KEY_ENV = "LLMDESK_API_KEY"
# A tool that will not start without some key gets this when the server wants none (vLLM without
# --api-key ignores the header).
PLACEHOLDER_KEY = "llmdesk"
CODEX_PROVIDER = "llmdesk"  # Codex reserves openai, ollama and lmstudio for its own providers
# llmdesk's own bar: Claude Code's system prompt and tool definitions alone take many thousand
# tokens of every request, and it compacts a conversation long before a 200k-token window fills.
CLAUDE_CODE_MIN_CONTEXT = 32_768
WIRE_APIS = ("responses", "chat")

TOOLS: dict[str, str] = {
    "claude-code": "Claude Code",
    "codex": "Codex CLI",
    "continue": "Continue",
    "aider": "Aider",
    "open-webui": "Open WebUI",
}

SOURCES: dict[str, tuple[str, ...]] = {
    "claude-code": ("https://code.claude.com/docs/en/llm-gateway",
                    "https://code.claude.com/docs/en/env-vars",
                    "https://code.claude.com/docs/en/model-config"),
    "codex": ("https://developers.openai.com/codex/config-advanced",),
    "continue": ("https://docs.continue.dev/customize/model-providers/top-level/openai",),
    "aider": ("https://aider.chat/docs/llms/openai-compat.html",),
    "open-webui": ("https://docs.openwebui.com/getting-started/env-configuration/",
                   "https://docs.vllm.ai/en/v0.9.0/deployment/frameworks/open-webui.html"),
}


# --- what the server is -----------------------------------------------------------------------

@dataclass(frozen=True)
class ServedModel:
    id: str
    max_model_len: int | None = None
    parent: str | None = None  # the base model's name when this is a LoRA adapter (vLLM's "parent")

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None

    def as_dict(self) -> dict:
        return {"id": self.id, "max_model_len": self.max_model_len, "parent": self.parent}


@dataclass(frozen=True)
class Endpoint:
    root_url: str  # http://127.0.0.1:8000: where /health is, and the Anthropic-style base
    models: tuple[ServedModel, ...] = ()
    api_key: str | None = None  # the key that worked (None: the server wants none, or it is not known)

    @property
    def openai_url(self) -> str:
        return self.root_url + "/v1"

    @property
    def anthropic_url(self) -> str:
        """Anthropic clients add /v1/messages themselves, so their base is the root."""
        return self.root_url

    def model(self, name: str) -> ServedModel | None:
        return next((m for m in self.models if m.id == name), None)

    @property
    def default_model(self) -> str | None:
        """The first base model (vLLM lists the served name first), else the first of any."""
        base = [m for m in self.models if not m.is_adapter] or list(self.models)
        return base[0].id if base else None

    def as_dict(self, *, show_key: bool = False) -> dict:
        return {"url": self.root_url, "openai_base_url": self.openai_url, "anthropic_base_url": self.anthropic_url,
                "models": [m.as_dict() for m in self.models], "api_key_set": self.api_key is not None,
                "api_key": self.api_key if show_key else (mask_key(self.api_key) if self.api_key else None)}


def models_from_listing(data: object) -> tuple[ServedModel, ...]:
    """``GET /v1/models``'s body as ServedModels; entries without a usable id are skipped."""
    entries = data.get("data") if isinstance(data, dict) else None
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            continue
        length = entry.get("max_model_len")
        parent = entry.get("parent")
        out.append(ServedModel(entry["id"], length if isinstance(length, int) and length > 0 else None,
                               parent if isinstance(parent, str) and parent else None))
    return tuple(out)


def mask_key(key: str) -> str:
    return f"{key[:3]}…{key[-4:]}" if len(key) > 10 else "…"


# --- what each tool gets ----------------------------------------------------------------------

@dataclass(frozen=True)
class Snippet:
    label: str  # where it goes: "shell", "~/.codex/config.toml", …
    language: str  # "sh", "toml" or "yaml"
    text: str


@dataclass(frozen=True)
class ToolSettings:
    tool: str
    title: str
    model: str
    openai_url: str
    anthropic_url: str | None  # only for tools that speak the Anthropic Messages API
    snippets: tuple[Snippet, ...]
    how_to_use: str
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    wire_api: str | None = None  # Codex only
    key_shown: bool = False

    @property
    def text(self) -> str:
        """Every snippet, each under a comment naming where it goes (what Copy puts on the clipboard)."""
        parts = []
        for s in self.snippets:
            parts.append(f"# {s.label}\n{s.text}" if len(self.snippets) > 1 else s.text)
        return "\n\n".join(parts)

    def as_dict(self) -> dict:
        return {"tool": self.tool, "title": self.title, "model": self.model, "openai_base_url": self.openai_url,
                "anthropic_base_url": self.anthropic_url, "wire_api": self.wire_api,
                "snippets": [{"label": s.label, "language": s.language, "text": s.text} for s in self.snippets],
                "how_to_use": self.how_to_use, "notes": list(self.notes), "sources": list(self.sources),
                "key_shown": self.key_shown}


@dataclass
class _Key:
    """How the key is written in each format, and what to say about it."""
    shell: str | None  # a shell word: "$LLMDESK_API_KEY" in double quotes, the key quoted, or None (no key)
    literal: str | None  # the key itself when shown
    needs_env: bool  # the user must set LLMDESK_API_KEY first
    notes: list[str] = field(default_factory=list)


def _key(endpoint: Endpoint, show_key: bool) -> _Key:
    if endpoint.api_key is None:
        return _Key(None, None, False)
    if show_key:
        return _Key(sh(endpoint.api_key), endpoint.api_key, False)
    return _Key(f'"${KEY_ENV}"', None, True,
                [f"The key is read from ${KEY_ENV}: set it to the server's key in that shell first "
                 "(`llmdesk endpoint --show-key` prints it, or the Server page's API key field)."])


def tool_settings(endpoint: Endpoint, tool: str, *, model: str | None = None, show_key: bool = False,
                  wire_api: str = "responses") -> ToolSettings:
    """One tool's settings for `endpoint`; `model` defaults to the endpoint's first base model."""
    if tool not in TOOLS:
        raise BadInput(Problem(f"No tool {tool!r}", f"llmdesk knows {', '.join(TOOLS)}.", "Pick one of those."))
    if wire_api not in WIRE_APIS:
        raise BadInput(Problem(f"No wire API {wire_api!r}", "Codex speaks `responses` (or `chat`, before 2026).",
                               "Use responses."))
    name = model or endpoint.default_model
    if not name:
        raise BadInput(Problem("The server serves no model", f"{endpoint.openai_url}/models lists none.",
                               "Start a server with a model first."))
    _check_text(name, "model name")
    if endpoint.api_key is not None:
        _check_text(endpoint.api_key, "API key")
    served = endpoint.model(name)
    key = _key(endpoint, show_key)
    build = {"claude-code": _claude_code, "codex": _codex, "continue": _continue, "aider": _aider,
             "open-webui": _open_webui}[tool]
    snippets, how, notes, anthropic = build(endpoint, name, served, key, wire_api)
    first = []  # what is wrong before what to do
    if served is None:
        first.append(f"The server does not list {printable(name)}: it serves "
                     f"{', '.join(printable(m.id) for m in endpoint.models) or 'nothing'}.")
    elif served.is_adapter:
        notes.append(f"{printable(name)} is a LoRA adapter on {printable(served.parent)}: vLLM answers with "
                     "the adapter applied.")
    return ToolSettings(tool, TOOLS[tool], name, endpoint.openai_url, anthropic, tuple(snippets), how,
                        tuple(first + key.notes + notes), SOURCES[tool], wire_api if tool == "codex" else None,
                        key_shown=show_key and endpoint.api_key is not None)


def all_tool_settings(endpoint: Endpoint, *, model: str | None = None, show_key: bool = False,
                      wire_api: str = "responses") -> list[ToolSettings]:
    return [tool_settings(endpoint, t, model=model, show_key=show_key, wire_api=wire_api) for t in TOOLS]


def _context_note(served: ServedModel | None, tool: str) -> list[str]:
    if served is None or served.max_model_len is None:
        return []
    length = served.max_model_len
    if tool == "claude-code" and length < CLAUDE_CODE_MIN_CONTEXT:
        return [f"Context too small for Claude Code: vLLM serves {printable(served.id)} with max_model_len "
                f"{length:,} tokens. Claude Code's system prompt and tool definitions alone take many thousand "
                f"tokens of every request; restart the server with --max-model-len {CLAUDE_CODE_MIN_CONTEXT:,} "
                "or more (llmdesk warns below that), if the GPU has room for it."]
    return [f"vLLM serves {printable(served.id)} with max_model_len {length:,} tokens (prompt and reply together)."]


_TOOLS_NOTE = ("{tool} sends tool definitions with its requests: start vLLM with tool calling on "
               "(--enable-auto-tool-choice and the --tool-call-parser for this model), or vLLM answers 400 "
               "to them.")


def _claude_code(endpoint, name, served, key: _Key, wire_api):
    token = key.shell or PLACEHOLDER_KEY
    lines = [f"export ANTHROPIC_BASE_URL={sh(endpoint.anthropic_url)}",
             f"export ANTHROPIC_AUTH_TOKEN={token}",
             f"export ANTHROPIC_MODEL={sh(name)}",
             f"export ANTHROPIC_DEFAULT_OPUS_MODEL={sh(name)}",
             f"export ANTHROPIC_DEFAULT_SONNET_MODEL={sh(name)}",
             f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={sh(name)}",
             f"export ANTHROPIC_SMALL_FAST_MODEL={sh(name)}",
             "unset ANTHROPIC_API_KEY"]
    notes = ["ANTHROPIC_AUTH_TOKEN is sent as `Authorization: Bearer`, the only form vLLM checks; ANTHROPIC_API_KEY "
             "is sent as `x-api-key`, which vLLM refuses with 401 when it has a key (hence the unset)."]
    if key.shell is None:
        notes.append(f"The server wants no key; ANTHROPIC_AUTH_TOKEN={PLACEHOLDER_KEY} only keeps Claude Code "
                     "from asking you to log in.")
    notes.append("ANTHROPIC_DEFAULT_*_MODEL point every model alias (opus, sonnet, haiku and background tasks) at the "
                 "served model; ANTHROPIC_SMALL_FAST_MODEL does the same for Claude Code before 2.0.")
    notes += _context_note(served, "claude-code")
    notes.append(_TOOLS_NOTE.format(tool="Claude Code"))
    how = "Paste into the shell, then run `claude` in your project; `/status` shows the base URL it uses."
    return [Snippet("shell", "sh", "\n".join(lines))], how, notes, endpoint.anthropic_url


def _codex(endpoint, name, served, key: _Key, wire_api):
    lines = [f"model = {toml_str(name)}",
             f"model_provider = {toml_str(CODEX_PROVIDER)}",
             "",
             f"[model_providers.{CODEX_PROVIDER}]",
             f"name = {toml_str('llmdesk (vLLM)')}",
             f"base_url = {toml_str(endpoint.openai_url)}"]
    if endpoint.api_key is not None:
        lines.append(f"env_key = {toml_str(KEY_ENV)}")
    lines.append(f"wire_api = {toml_str(wire_api)}")
    snippets = [Snippet("~/.codex/config.toml", "toml", "\n".join(lines))]
    if key.literal is not None:
        snippets.append(Snippet("shell", "sh", f"export {KEY_ENV}={key.shell}"))
    notes = ["`model` and `model_provider` are top-level keys: put them above the first [table] of config.toml."]
    if wire_api == "responses":
        notes.append("Codex speaks the Responses API (POST /v1/responses), which vLLM serves.")
    else:
        notes.append('wire_api = "chat" (POST /v1/chat/completions) is for Codex releases before February 2026; '
                     "newer ones refuse it and want responses.")
    notes += _context_note(served, "codex")
    notes.append(_TOOLS_NOTE.format(tool="Codex"))
    how = "Add to ~/.codex/config.toml, then run `codex` in your project."
    return snippets, how, notes, None


def _continue(endpoint, name, served, key: _Key, wire_api):
    lines = ["name: llmdesk", "version: 0.0.1", "schema: v1", "models:",
             f"  - name: {yaml_str(name + ' (llmdesk)')}",
             "    provider: openai",
             f"    model: {yaml_str(name)}",
             f"    apiBase: {yaml_str(endpoint.openai_url)}"]
    notes = []
    if key.literal is not None:
        lines.append(f"    apiKey: {yaml_str(key.literal)}")
    elif key.needs_env:
        lines.append(f'    apiKey: "${{{{ secrets.{KEY_ENV} }}}}"')
        key.notes.clear()  # Continue's own way replaces the shell's, said below
        notes.append(f"Continue reads ${{{{ secrets.{KEY_ENV} }}}} from ~/.continue/.env (a line {KEY_ENV}=the key), "
                     "not from the shell's environment; `llmdesk endpoint --show-key` prints the key.")
    if served is not None and served.max_model_len is not None:
        lines += ["    defaultCompletionOptions:", f"      contextLength: {served.max_model_len}"]
    notes += _context_note(served, "continue")
    how = "Put this in ~/.continue/config.yaml (or add its model to the models: list there), then pick the model in Continue."
    return [Snippet("~/.continue/config.yaml", "yaml", "\n".join(lines))], how, notes, None


def _aider(endpoint, name, served, key: _Key, wire_api):
    lines = [f"export OPENAI_API_BASE={sh(endpoint.openai_url)}",
             f"export OPENAI_API_KEY={key.shell or PLACEHOLDER_KEY}",
             f"aider --model {sh('openai/' + name)}"]
    notes = ["The openai/ prefix tells Aider to use the OpenAI-compatible API at OPENAI_API_BASE. Aider does not "
             "know this model's context window or price, and says so when it starts; that warning is harmless."]
    if key.shell is None:
        notes.append(f"The server wants no key; OPENAI_API_KEY={PLACEHOLDER_KEY} is only there because the client "
                     "wants one.")
    notes += _context_note(served, "aider")
    how = "Paste into the shell in your project folder; the last line starts Aider."
    return [Snippet("shell", "sh", "\n".join(lines))], how, notes, None


def _open_webui(endpoint, name, served, key: _Key, wire_api):
    value = key.shell or PLACEHOLDER_KEY
    pip = [f"export OPENAI_API_BASE_URL={sh(endpoint.openai_url)}", f"export OPENAI_API_KEY={value}",
           "open-webui serve"]
    docker = ["docker run -d --network=host \\",
              f"  -e OPENAI_API_BASE_URL={sh(endpoint.openai_url)} \\",
              f"  -e OPENAI_API_KEY={value} \\",
              "  -v open-webui:/app/backend/data --name open-webui ghcr.io/open-webui/open-webui:main"]
    notes = ["Open WebUI lists every model the server serves (LoRA adapters included) and talks to them over "
             "/v1/chat/completions; pick the model in its chat.",
             "OPENAI_API_BASE_URL and OPENAI_API_KEY are read at Open WebUI's first start only; later, change the "
             "connection under Admin Panel › Settings › Connections.",
             "--network=host lets the container reach a server that listens on this computer only; Open WebUI is "
             "then at http://localhost:8080."]
    notes += _context_note(served, "open-webui")
    how = "Either start Open WebUI with these variables (pip install open-webui), or run the container; then open it."
    return [Snippet("shell (pip install open-webui)", "sh", "\n".join(pip)),
            Snippet("shell (Docker)", "sh", "\n".join(docker))], how, notes, None


# --- quoting ----------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def printable(text: str | None) -> str:
    """`text` for a line a person reads: control characters written as escapes, never raw."""
    if text is None:
        return ""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def _check_text(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(Problem(f"The {what} cannot be written down", f"{printable(ascii(value))} holds a lone "
                               "surrogate, which no config file or shell can carry.",
                               "Serve the model under another name.")) from None
    if "\x00" in value:
        raise BadInput(Problem(f"The {what} cannot be written down", "It holds a NUL character, which no "
                               "environment variable can carry.", "Serve the model under another name."))


def sh(value: str) -> str:
    """One shell word that is exactly `value`. Plain text is single-quoted (shlex); text with control
    characters is ANSI-C quoted ($'…', bash/zsh/ksh) so that no newline or escape sequence is written raw.
    Inside $'…' a quote is written as \\x27, so bash's history expansion still sees a quoted region."""
    if not _CONTROL.search(value):
        return shlex.quote(value)
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\x27")
        elif _CONTROL.match(ch):  # as UTF-8 bytes: bash reads \u only in a UTF-8 locale, \x in any
            out.append("".join(f"\\x{byte:02x}" for byte in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


_TOML_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def toml_str(value: str) -> str:
    """A TOML basic string that is exactly `value`."""
    out = []
    for ch in value:
        if ch in _TOML_SHORT:
            out.append(_TOML_SHORT[ch])
        elif _CONTROL.match(ch):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_YAML_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\", "\x00": "\\0",
               "\u2028": "\\L", "\u2029": "\\P", "\x85": "\\N",
               # Continue replaces ${{ … }} in its config file before reading the YAML: a name holding
               # "${{ secrets.X }}" would pull a secret into the request. \x24 reads back as "$".
               "$": "\\x24"}


def yaml_str(value: str) -> str:
    """A YAML double-quoted scalar that is exactly `value` (in YAML 1.1 and 1.2 readers alike)."""
    out = []
    for ch in value:
        if ch in _YAML_SHORT:
            out.append(_YAML_SHORT[ch])
        elif _CONTROL.match(ch):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
