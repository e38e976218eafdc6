"""A model's chat template and the facts that name its family (architecture, model_type, name),
read from a model folder or from a repo already in the Hugging Face cache; never the network.

``server.tool_parsers.match_parsers(**chat_facts(source).match_args())`` then says which vLLM
parsers fit. Where transformers and vLLM look for the template: ``chat_template.jinja`` beside the
tokenizer (newer checkpoints), else ``tokenizer_config.json``'s ``chat_template`` (a string, or a
list of named templates of which "default" is used). ``--chat-template FILE`` replaces both.
Blocking I/O: the UI calls this in a thread.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

_CACHE_FOLDER = re.compile(r"models--([^/\\]+?)--([^/\\]+)")


@dataclass(frozen=True)
class ChatFacts:
    architecture: str = ""
    model_type: str = ""
    name: str = ""  # the repo id and/or the folder's name, as one string the family rules look into
    chat_template: str | None = None  # None: not read; "": the model has none
    template_source: str = ""  # where it came from (a path), for the notes
    tool_use_template: bool = False  # tokenizer_config.json names a "tool_use" template besides "default"
    tokens_present: frozenset[str] | None = None  # which of the tokens looked for the tokenizer has; None: not read

    def match_args(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "model_type": self.model_type, "name": self.name,
                "chat_template": self.chat_template, "tokens_present": self.tokens_present}


def chat_facts(source: str, *, chat_template_file: str | None = None, look_for: Iterable[str] = ()) -> ChatFacts:
    """What can be known offline about ``source`` (a folder or a repo id); a template given with
    ``--chat-template FILE`` wins over the model's; ``look_for``: tokens whose presence in the tokenizer
    matters (a tool-call parser's). Never raises: what cannot be read stays unknown."""
    folder, name = _where(source)
    config = _json(folder / "config.json") if folder is not None else {}
    architectures = config.get("architectures") if isinstance(config.get("architectures"), list) else []
    architecture = str(architectures[0]) if architectures else ""
    model_type = str(config.get("model_type") or "")
    given = config.get("_name_or_path")
    if isinstance(given, str) and given and given not in name:
        name = f"{name} {given}".strip()
    template: str | None = None
    where = ""
    tool_use = False
    if chat_template_file:
        template, where = _text(Path(chat_template_file).expanduser()), chat_template_file
    elif folder is not None:
        template, where, tool_use = _model_template(folder)
    tokens = _tokens_present(folder, tuple(look_for)) if folder is not None and look_for else None
    return ChatFacts(architecture, model_type, name, template, where, tool_use, tokens)


def _tokens_present(folder: Path, tokens: tuple[str, ...]) -> frozenset[str] | None:
    """Which of ``tokens`` the tokenizer has: tokenizer_config.json's added tokens, else anywhere in
    tokenizer.json (its vocabulary or added tokens, as JSON strings). None without a tokenizer.json: a
    sentencepiece or Mistral (tekken) tokenizer is not read, so nothing is said about it."""
    tokenizer = folder / "tokenizer.json"
    try:
        if not tokenizer.is_file() or tokenizer.stat().st_size > TOKENIZER_READ_LIMIT:
            return None
        text = tokenizer.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    added = _json(folder / "tokenizer_config.json").get("added_tokens_decoder")
    present = {str(v.get("content")) for v in added.values() if isinstance(v, dict)} if isinstance(added, dict) \
        else set()
    return frozenset(t for t in tokens if t in present or json.dumps(t) in text
                     or json.dumps(t, ensure_ascii=False) in text)


TOKENIZER_READ_LIMIT = 64 << 20  # a tokenizer.json is 2-20 MB; anything far larger is not one to read whole


def _where(source: str) -> tuple[Path | None, str]:
    """The folder holding the model's files (None when they are not here) and its name."""
    path = Path(source).expanduser()
    if path.is_dir():
        m = _CACHE_FOLDER.search(str(path.resolve()))
        name = f"{m.group(1)}/{m.group(2)}" if m else path.resolve().name
        return path, name
    if path.is_file() and path.name == "config.json":
        return path.parent, path.parent.resolve().name
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        return _cached_snapshot(source), source
    return None, source


def _cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an odd repo id or cache: the family comes from the name alone
        log.debug("no cached snapshot of %s", repo_id, exc_info=True)
        return None
    return Path(config).parent if isinstance(config, str) else None


def _model_template(folder: Path) -> tuple[str | None, str, bool]:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return _text(jinja), str(jinja), False
    tokenizer_config = folder / "tokenizer_config.json"
    if not tokenizer_config.is_file():
        # A cached repo may simply not have the tokenizer files yet: unknown, not "none".
        return (None, "", False) if "snapshots" in folder.parts else ("", str(tokenizer_config), False)
    data = _json(tokenizer_config)
    value = data.get("chat_template")
    if isinstance(value, str):
        return value, str(tokenizer_config), False
    if isinstance(value, list):  # [{"name": "default", "template": …}, {"name": "tool_use", …}]
        named = {item.get("name"): item.get("template") for item in value if isinstance(item, dict)}
        default = named.get("default")
        return (default if isinstance(default, str) else ""), str(tokenizer_config), "tool_use" in named
    return "", str(tokenizer_config), False


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
