"""One model on the Hugging Face Hub: its summary, the head of its card, architecture, context
length, files and the base models it derives from. BLOCKS on the network (run it in a thread)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.fit.model_config import geometry_from_config, text_config
from llmdesk.core.hub.model_source import read_json

from llmdesk.core.hub.access import hub_errors, hub_token
from llmdesk.core.hub.search import ModelSummary, summary_from_info


# --- one model ----------------------------------------------------------------------------------

CARD_LINES = 60


@dataclass(frozen=True)
class ModelDetail:
    summary: ModelSummary
    card_markdown: str  # the card's head: front matter stripped, at most CARD_LINES lines
    architecture: str | None
    context_length: int | None
    files: tuple[tuple[str, int], ...]  # (path, bytes) as the Hub lists them
    base_models: tuple[str, ...]  # what the card says this model derives from
    card_problem: Problem | None = None  # why the card or config could not be read (gated, say)

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.as_dict(), "card_markdown": self.card_markdown,
                "architecture": self.architecture, "context_length": self.context_length,
                "files": [{"path": p, "size": s} for p, s in self.files], "base_models": list(self.base_models),
                "card_problem": self.card_problem.as_dict() if self.card_problem else None}


def model_detail(repo_id: str, *, token: str | None = None) -> ModelDetail:
    """The model's metadata, the head of its card (README.md) and its context length (config.json),
    a few KB in all. BLOCKING. A gated repo's card and config may be unreadable without access:
    the detail then comes without them and says why in card_problem."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token(token))
    with hub_errors(repo_id):
        info = api.model_info(repo_id, files_metadata=True)
    summary = summary_from_info(info)
    files = tuple((s.rfilename, int(s.size or 0)) for s in info.siblings or ())
    names = {name for name, _ in files}
    card, config, problem = "", None, None
    try:
        with hub_errors(info.id):
            if "README.md" in names:
                card = card_head(_read_text(api.hf_hub_download(info.id, "README.md", revision=info.sha)))
            if "config.json" in names:
                config = read_json(Path(api.hf_hub_download(info.id, "config.json", revision=info.sha)))
    except ProblemError as exc:
        problem = exc.problem
    gguf = info.gguf if isinstance(getattr(info, "gguf", None), Mapping) else {}
    architecture = summary.architecture or _config_architecture(config)
    return ModelDetail(summary=summary, card_markdown=card, architecture=architecture,
                       context_length=_context_length(config) or gguf.get("context_length"), files=files,
                       base_models=base_models_of(info.card_data, summary.tags), card_problem=problem)


def card_head(text: str, max_lines: int = CARD_LINES) -> str:
    """The start of a model card: YAML front matter removed, at most max_lines lines, and a code
    fence left open by the cut closed again (pure)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
        if end is not None:
            lines = lines[end + 1:]
    while lines and not lines[0].strip():
        lines.pop(0)
    head = lines[:max_lines]
    while head and not head[-1].strip():
        head.pop()
    if sum(1 for line in head if line.lstrip().startswith(("```", "~~~"))) % 2:
        head.append("```")
    return "\n".join(head)


def base_models_of(card_data: Any, tags: Iterable[str]) -> tuple[str, ...]:
    """The repos a model derives from: the card's `base_model` (str or list), else the Hub's
    `base_model:[relation:]ID` tags (pure)."""
    value = getattr(card_data, "base_model", None) if card_data is not None else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value:
        return tuple(str(v) for v in value)
    found: list[str] = []
    for tag in tags:
        if tag.startswith("base_model:"):
            repo = tag.removeprefix("base_model:").split(":")[-1]
            if repo not in found:
                found.append(repo)
    return tuple(found)


def _config_architecture(config: Mapping[str, Any] | None) -> str | None:
    architectures = (config or {}).get("architectures") or []
    return architectures[0] if architectures and isinstance(architectures[0], str) else None


def _context_length(config: Mapping[str, Any] | None) -> int | None:
    if not config:
        return None
    try:
        return geometry_from_config(config).max_position_embeddings
    except ProblemError:
        value = text_config(config).get("max_position_embeddings")
        return value if isinstance(value, int) and value > 0 else None


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace")

