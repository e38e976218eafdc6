"""Hugging Face Hub: search, one model's details, and its quantized variants with fit verdicts.

Built on huggingface_hub (1.x or 2.x). Every function that touches the network BLOCKS: the UI
runs them in a thread (`asyncio.to_thread`), the CLI calls them directly. Failures come out as
`ProblemError`s (see `hub_errors`); `evaluate_variants` never raises for one bad variant, it
returns that variant with its `problem`. Honours HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_OFFLINE
the way huggingface_hub does. The pure parts (query parameters, summaries, card heads, name
matching, ranking) are plain functions, tested without a network.

Two things about the Hub's model list that shape this module (shared reference hub.md 1.4):
- On the wire, `limit` is the PAGE size (at most 1000; the next page comes from the `Link:
  rel="next"` header). `HfApi.list_models(limit=N)` also cuts the iterator at N on the client,
  so through it there is no "pages of 50, as many as the user scrolls". `search_models` therefore
  follows the pages itself with huggingface_hub's own HTTP helpers, one page per request, only
  when the caller iterates that far.
- `list_models` retries network errors 5 times with back-off (about 23 s before an offline
  search fails, with a warning on stderr each time); the pager here does not retry network
  errors (one retry on 429/5xx), so an offline search says so at once.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from llmdesk.core.architectures import is_served_by_vllm
from llmdesk.core.errors import BadInput, Problem, ProblemError, problem_from_exception
from llmdesk.core.fit import (VERDICT_FITS, VERDICT_NEEDS_TP, VERDICT_NO, VERDICT_SHORTER, VERDICT_UNSUPPORTED,
                              FitReport, LaunchSettings, ModelSpec, plan_fit)
from llmdesk.core.gpus import GpuInfo
from llmdesk.core.model_config import BadModelConfig, geometry_from_config, text_config
from llmdesk.core.model_source import check_architecture, load_model_spec, read_json
from llmdesk.core.quant import QuantFormat, detect_format
from llmdesk.core.secrets import load_hf_token

log = logging.getLogger("llmdesk.hub")

# --- errors -------------------------------------------------------------------------------------


class hub_errors:
    """Turn huggingface_hub's exceptions into Problems a person can act on.

    `with hub_errors("org/name"):` around calls about one repo; `with hub_errors():` around a
    listing (search), where a 404/401 is not about a missing repo."""

    def __init__(self, repo_id: str | None = None):
        self.repo_id = repo_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, ProblemError):
            return False
        from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                            LocalEntryNotFoundError, OfflineModeIsEnabled,
                                            RepositoryNotFoundError)

        repo = self.repo_id
        if isinstance(exc, GatedRepoError) and repo:
            raise ProblemError(Problem(
                f"{repo} is gated", "Its authors ask you to accept their terms before downloading it, "
                "and llmdesk has no Hugging Face token that was granted access.",
                f"Request access on https://huggingface.co/{repo}, then add your token "
                "(Settings, or the HF_TOKEN environment variable).")) from exc
        if isinstance(exc, RepositoryNotFoundError) and repo:
            raise BadInput(Problem(
                f"No model called {repo}", "The Hugging Face Hub has no such repository, or it is "
                "private and your token cannot see it.", "Check the spelling (owner/name).")) from exc
        if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
            raise BadModelConfig(Problem(f"{repo or 'The repository'} is missing a file",
                                         str(exc).splitlines()[0], None)) from exc
        if isinstance(exc, OfflineModeIsEnabled):
            raise ProblemError(Problem(
                "Hugging Face access is switched off", "HF_HUB_OFFLINE=1 is set, so llmdesk does not "
                "contact the Hub.", "Unset HF_HUB_OFFLINE to search and download; local models still "
                "work.")) from exc
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, HfHubHTTPError) and status == 401:
            raise ProblemError(Problem(
                "Hugging Face refused the token", "The Hub answered 401: the token llmdesk sent is "
                "invalid or expired.", "Replace the token (Settings, or HF_TOKEN), or remove it to "
                "browse public models.")) from exc
        if isinstance(exc, HfHubHTTPError) and status == 429:
            raise ProblemError(Problem(
                "Hugging Face is limiting requests", "The Hub answered 429 (too many requests).",
                "Wait a minute and try again; signed-in users (with a token) get higher limits.")) from exc
        if isinstance(exc, (HfHubHTTPError, OSError, LocalEntryNotFoundError, RepositoryNotFoundError)) \
                or type(exc).__module__.startswith(("httpx", "requests")):
            raise ProblemError(Problem(
                "Could not reach the Hugging Face Hub", str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "Check the network connection (or a proxy) and try again; local models still work.")) from exc
        return False


def _token(token: str | None) -> str | None:
    """The token to send: the caller's, else the one llmdesk stores (HF_TOKEN, keyring, token file),
    which huggingface_hub alone would not find in the keyring."""
    return token or load_hf_token().token


# --- listing: one page per request, lazily ------------------------------------------------------

MAX_PAGE_SIZE = 1000  # the Hub refuses larger pages
_WIRE_SORT = {"downloads": "downloads", "likes": "likes", "trending_score": "trendingScore",
              "last_modified": "lastModified"}
# What a search row shows, and nothing more: with `expand`, the Hub sends only these (plus id).
SEARCH_EXPAND = ("author", "downloads", "likes", "lastModified", "gated", "pipeline_tag", "library_name",
                 "tags", "safetensors", "gguf", "config", "trendingScore")


def list_pages(params: Mapping[str, Any], *, token: str | None = None) -> Iterator[dict]:
    """GET /api/models with `params` (lists become repeated keys, as huggingface_hub sends them),
    then each `Link: rel="next"` page, fetched only when the iteration reaches it. Yields the raw
    JSON objects; errors are huggingface_hub's (wrap the iteration in `hub_errors()`)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

    from llmdesk import __version__

    headers = build_hf_headers(token=_token(token), library_name="llmdesk", library_version=__version__)
    url: str | None = f"{constants.ENDPOINT}/api/models"
    query: Mapping[str, Any] | None = params
    while url:
        # One retry on a busy Hub (429/5xx); none on network errors: offline must say so at once.
        response = http_backoff("GET", url, params=query, headers=headers, max_retries=1, base_wait_time=0.5,
                                max_wait_time=1, retry_on_exceptions=(),
                                retry_on_status_codes=(429, 500, 502, 503, 504))
        hf_raise_for_status(response)
        yield from response.json()
        url, query = response.links.get("next", {}).get("url"), None  # the next URL carries the query


# --- search -------------------------------------------------------------------------------------

SORTS = {"downloads": "downloads", "likes": "likes", "trending": "trending_score", "updated": "last_modified"}


@dataclass(frozen=True)
class SearchQuery:
    """A search of text-generation models.

    limit: the most results the iterator yields (None: until the Hub runs out); page_size: models
    per request to the Hub. min_params/max_params: billions of parameters, filtered by the Hub
    (`num_parameters=min:6B,max:128B`) on its own count: stored safetensors elements or GGUF
    parameters, so a 4-bit repo counts as about a quarter of its real parameters there.

    vllm_only is decided here, on the client, from the architecture in each model's config digest
    (`expand=config`) and its tags: a model is dropped when its architecture is not in vLLM 0.26's
    registry, or when it is GGUF-only or MLX (core vLLM 0.26 cannot load those). A model that
    states no architecture is kept (its variants view will judge it). The Hub's own `apps=vllm`
    filter is not used: it is a loose rule of the Hub's web UI (library and pipeline tag, GGUF
    included), not vLLM's model registry, and would only add a dependency on a server-side list.
    Because filtering is client-side, a page may yield fewer rows than page_size; the next page
    is then fetched as the caller iterates.
    """

    text: str = ""
    sort: str = "downloads"  # a key of SORTS
    author: str | None = None
    min_params: float | None = None
    max_params: float | None = None
    vllm_only: bool = True
    gated: bool | None = None  # None: both; False: open models only; True: gated only
    limit: int | None = 50
    page_size: int = 50

    def validate(self) -> None:
        if self.sort not in SORTS:
            raise _bad_query(f"Sort '{self.sort}' is not one of {', '.join(SORTS)}.", "Use downloads, likes, "
                             "trending or updated.")
        for name in ("min_params", "max_params"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise _bad_query(f"{name} must be a positive number of billions (got {value}).", None)
        if self.min_params is not None and self.max_params is not None and self.min_params > self.max_params:
            raise _bad_query(f"The parameter range is empty: min {self.min_params:g}B is above max "
                             f"{self.max_params:g}B.", "Swap the two numbers.")
        if self.limit is not None and self.limit < 1:
            raise _bad_query(f"limit must be 1 or more (got {self.limit}).", None)
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise _bad_query(f"page_size must be 1 to {MAX_PAGE_SIZE} (got {self.page_size}).", None)

    def params(self) -> dict[str, Any]:
        """The /api/models query string (pure)."""
        params: dict[str, Any] = {"pipeline_tag": "text-generation", "sort": _WIRE_SORT[SORTS[self.sort]]}
        if self.text.strip():
            params["search"] = self.text.strip()
        if self.author:
            params["author"] = self.author
        if self.gated is not None:
            params["gated"] = "true" if self.gated else "false"
        if bounds := num_parameters_filter(self.min_params, self.max_params):
            params["num_parameters"] = bounds
        params["limit"] = self.page_size  # per page on the Hub; the total is cut on this side
        params["expand"] = list(SEARCH_EXPAND)
        return params


def num_parameters_filter(min_billions: float | None, max_billions: float | None) -> str | None:
    """The Hub's parameter-range filter: (6, 128) -> "min:6B,max:128B"; fractions go in millions."""
    def bound(value: float) -> str:
        return f"{int(value)}B" if float(value).is_integer() else f"{round(value * 1000)}M"

    parts = [f"{key}:{bound(value)}" for key, value in (("min", min_billions), ("max", max_billions))
             if value is not None]
    return ",".join(parts) or None


@dataclass(frozen=True)
class ModelSummary:
    """One search row. parameters is the Hub's count (safetensors elements, or GGUF parameters):
    packed quantized weights count several to an element, so a 7B AWQ repo shows about 2B."""

    repo_id: str
    author: str | None
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool
    license: str | None
    parameters: int | None
    pipeline_tag: str | None
    architecture: str | None
    tags: tuple[str, ...] = ()

    @property
    def served_by_vllm(self) -> bool | None:
        """True/False when known from the architecture and tags; None when the repo states neither."""
        tags = {t.lower() for t in self.tags}
        if "mlx" in tags or ("gguf" in tags and "safetensors" not in tags):
            return False
        if self.architecture:
            return is_served_by_vllm(self.architecture)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "author": self.author, "downloads": self.downloads, "likes": self.likes,
                "last_modified": self.last_modified.isoformat() if self.last_modified else None,
                "gated": self.gated, "license": self.license, "parameters": self.parameters,
                "pipeline_tag": self.pipeline_tag, "architecture": self.architecture,
                "served_by_vllm": self.served_by_vllm, "tags": list(self.tags)}


def summary_from_info(info: Any) -> ModelSummary:
    """A ModelSummary from huggingface_hub's ModelInfo (from a list or from model_info)."""
    repo_id = info.id
    config = info.config if isinstance(info.config, Mapping) else {}
    architectures = config.get("architectures") or []
    gguf = info.gguf if isinstance(getattr(info, "gguf", None), Mapping) else {}
    parameters = info.safetensors.total if info.safetensors else gguf.get("total")
    return ModelSummary(
        repo_id=repo_id, author=info.author or (repo_id.split("/")[0] if "/" in repo_id else None),
        downloads=int(info.downloads or 0), likes=int(info.likes or 0), last_modified=info.last_modified,
        gated=bool(info.gated), license=_license(info), parameters=int(parameters) if parameters else None,
        pipeline_tag=info.pipeline_tag,
        architecture=architectures[0] if architectures and isinstance(architectures[0], str) else None,
        tags=tuple(info.tags or ()))


def _license(info: Any) -> str | None:
    card = info.card_data
    name = getattr(card, "license_name", None) if card is not None else None
    for tag in info.tags or ():
        if tag.startswith("license:"):
            value = tag.removeprefix("license:")
            return name if value == "other" and name else value
    value = getattr(card, "license", None) if card is not None else None
    if isinstance(value, list):
        value = value[0] if value else None
    return name if value == "other" and name else value


def search_models(query: SearchQuery, *, token: str | None = None) -> Iterator[ModelSummary]:
    """Text-generation models matching `query`, best first by its sort. Lazy: nothing is fetched
    until the first `next()`, and each further Hub page only when the iteration reaches it, so the
    UI takes rows as the user scrolls (`itertools.islice(it, 50)` per scroll). BLOCKING per page:
    iterate in a thread. A bad query raises BadInput at once; network trouble raises ProblemError
    during the iteration."""
    query.validate()
    return _search(query, token)


def _search(query: SearchQuery, token: str | None) -> Iterator[ModelSummary]:
    from huggingface_hub import ModelInfo

    def rows() -> Iterator[ModelSummary]:
        with hub_errors():
            for item in list_pages(query.params(), token=token):
                item.setdefault("siblings", None)
                summary = summary_from_info(ModelInfo(**item))
                if query.vllm_only and summary.served_by_vllm is False:
                    continue
                yield summary

    return itertools.islice(rows(), query.limit) if query.limit else rows()


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

    api = HfApi(token=_token(token))
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


# --- variants -----------------------------------------------------------------------------------

RELATION_BASE = "base"
RELATION_LINEAGE = "quantized (lineage)"
RELATION_NAME = "name match"
VERDICT_UNKNOWN = "unknown"  # a variant that could not be judged (gated, unreadable config, network)
VERDICT_ORDER = (VERDICT_FITS, VERDICT_SHORTER, VERDICT_NEEDS_TP, VERDICT_NO, VERDICT_UNSUPPORTED, VERDICT_UNKNOWN)
_RELATION_ORDER = {RELATION_BASE: 0, RELATION_LINEAGE: 1, RELATION_NAME: 2}

# Words that may follow a base model's name in a quantized copy's name (hub.md 2.1), split on
# "-", "_" and ".": at least one marker, and nothing but markers and modifiers.
QUANT_MARKERS = frozenset({
    "awq", "gptq", "fp8", "int4", "int8", "w4a16", "w8a8", "w8a16", "w4a8", "w4a4", "nvfp4", "fp4", "mxfp4",
    "mxfp8", "bnb", "nf4", "gguf", "2bit", "3bit", "4bit", "5bit", "6bit", "8bit", "mlx", "exl2", "exl3",
    "quantized", "int4wo", "marlin"})
QUANT_MODIFIERS = frozenset({"dynamic", "static", "block", "unsloth", "bf16", "fp16", "i1", "gemm", "gemv",
                             "g128", "g64", "g32", "kv", "ct", "mixed"})
_SEPARATORS = re.compile(r"[-_.]")
NAME_SCAN = 100  # how many search hits (by downloads) the name fallback looks through


def quant_suffix(base_name: str, candidate_name: str) -> str | None:
    """The quantization suffix when `candidate_name` is `base_name` plus only quantization words
    ("Qwen2.5-7B-Instruct" + "-GPTQ-Int4"), compared without case; None otherwise (pure). Names are
    the part after "owner/"."""
    if not candidate_name.lower().startswith(base_name.lower()):
        return None
    rest = candidate_name[len(base_name):]
    if not rest or rest[0] not in "-_.":
        return None
    words = [w for w in _SEPARATORS.split(rest.lower()) if w]
    if not words or not any(w in QUANT_MARKERS for w in words):
        return None
    return rest if all(w in QUANT_MARKERS or w in QUANT_MODIFIERS for w in words) else None


def find_variant_ids(base_repo_id: str, *, token: str | None = None, limit: int = 40) -> list[tuple[str, str]]:
    """(repo_id, relation) for the base and its quantized copies, at most `limit` in all: the base
    itself, the repos that declare it as their quantization base (tag `base_model:quantized:<base>`,
    most downloaded first), then repos found by searching the base's name whose id is the base name
    plus a quantization suffix (for repos whose card declares no lineage). BLOCKING.
    An unknown repo raises BadInput; no network, ProblemError."""
    from huggingface_hub import HfApi

    token = _token(token)
    with hub_errors(base_repo_id):
        base = HfApi(token=token).model_info(base_repo_id).id  # the Hub's spelling of the id
    found: dict[str, str] = {base: RELATION_BASE}
    with hub_errors():
        lineage = {"filter": f"base_model:quantized:{base}", "sort": "downloads", "limit": min(limit, 100),
                   "expand": ["downloads"]}
        for item in itertools.islice(list_pages(lineage, token=token), max(0, limit - 1)):
            found.setdefault(item["id"], RELATION_LINEAGE)
        name = base.split("/")[-1]
        if len(found) < limit:
            by_name = {"search": name, "sort": "downloads", "limit": NAME_SCAN, "expand": ["downloads"]}
            for item in itertools.islice(list_pages(by_name, token=token), NAME_SCAN):
                repo = item["id"]
                if repo not in found and quant_suffix(name, repo.split("/")[-1]):
                    found[repo] = RELATION_NAME
                    if len(found) >= limit:
                        break
    return list(found.items())


@dataclass(frozen=True)
class Variant:
    """One variant judged for some GPUs. spec/report are None when it could not be read or
    judged; then `problem` says why (gated, unreadable config, network, a format or architecture
    vLLM 0.26 cannot serve). `format`/`weights_bytes` are kept even without a spec where the file
    list told them (GGUF repos have no config.json)."""

    repo_id: str
    relation: str  # RELATION_BASE | RELATION_LINEAGE | RELATION_NAME
    spec: ModelSpec | None = None
    report: FitReport | None = None
    problem: Problem | None = None
    format: QuantFormat | None = None
    weights_bytes: int | None = None
    unsupported: bool = False  # known not servable by vLLM 0.26 (format or architecture)

    @property
    def checkpoint_format(self) -> QuantFormat | None:
        return self.spec.checkpoint_format if self.spec else self.format

    @property
    def format_label(self) -> str:
        fmt = self.checkpoint_format
        return fmt.label if fmt else "unknown format"

    @property
    def bits(self) -> float | None:
        fmt = self.checkpoint_format
        return fmt.bits if fmt else None

    @property
    def size_bytes(self) -> int | None:
        return self.spec.weights_bytes if self.spec else self.weights_bytes

    @property
    def servable(self) -> bool:
        """vLLM 0.26 can load this checkpoint (format and architecture), whether or not it fits."""
        return self.spec is not None and not self.unsupported

    @property
    def verdict(self) -> str:
        if self.report is not None:
            return self.report.verdict
        return VERDICT_UNSUPPORTED if self.unsupported else VERDICT_UNKNOWN

    def as_dict(self) -> dict[str, Any]:
        fmt, report = self.checkpoint_format, self.report
        return {
            "repo_id": self.repo_id, "relation": self.relation, "format": self.format_label,
            "format_key": fmt.key if fmt else None, "bits": fmt.bits if fmt else None,
            "size_bytes": self.size_bytes, "servable": self.servable, "verdict": self.verdict,
            "summary": report.summary if report else (self.problem.title if self.problem else None),
            "tensor_parallel_size": report.tensor_parallel_size if report else None,
            "max_model_len": report.max_model_len if report else None,
            "max_concurrency": round(report.max_concurrency, 2) if report else None,
            "kv_cache_tokens": report.kv_cache_tokens if report else None,
            "problem": self.problem.as_dict() if self.problem else None,
            "report": report.as_dict() if report else None,
        }


Loader = Callable[..., ModelSpec]


def evaluate_variants(ids: Sequence[tuple[str, str]], gpus: Sequence[GpuInfo], settings: LaunchSettings, *,
                      token: str | None = None, load: Loader = load_model_spec) -> list[Variant]:
    """One Variant per (repo_id, relation), in the same order. Each spec is read with
    `load(repo_id, token=token, allow_unknown_architecture=True)` (default: config.json and the
    Hub's metadata, no weights), then judged with plan_fit. BLOCKING: up to 8 repos are read at
    once in worker threads. Never raises for a variant: gated repos, unreadable configs, network
    errors, GGUF/MLX/EXL2 and architectures vLLM 0.26 lacks become Variants with a `problem`."""
    if not ids:
        return []
    token = _token(token)  # once, not once per thread
    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        return list(pool.map(lambda pair: _evaluate(pair[0], pair[1], gpus, settings, token, load), ids))


def refit_variants(variants: Sequence[Variant], gpus: Sequence[GpuInfo], settings: LaunchSettings) -> list[Variant]:
    """The same variants judged for other GPUs or settings, from their kept specs: no network (pure).
    Variants without a spec (or not servable) come back unchanged."""
    return [_judge(v.repo_id, v.relation, v.spec, gpus, settings) if v.servable and v.spec else v
            for v in variants]


def _evaluate(repo_id: str, relation: str, gpus: Sequence[GpuInfo], settings: LaunchSettings,
              token: str | None, load: Loader) -> Variant:
    try:
        spec = load(repo_id, token=token, allow_unknown_architecture=True)
    except BadModelConfig as exc:  # e.g. no config.json: a GGUF repo shows its format from its files
        return _from_files(repo_id, relation, exc.problem, token) or Variant(repo_id, relation, problem=exc.problem)
    except ProblemError as exc:
        return Variant(repo_id, relation, problem=exc.problem)
    except Exception as exc:  # noqa: BLE001 - one broken variant must not hide the others
        log.warning("reading variant %s failed", repo_id, exc_info=True)
        return Variant(repo_id, relation, problem=problem_from_exception(exc, f"reading {repo_id}"))
    return _judge(repo_id, relation, spec, gpus, settings)


def _judge(repo_id: str, relation: str, spec: ModelSpec, gpus: Sequence[GpuInfo],
           settings: LaunchSettings) -> Variant:
    fmt = spec.checkpoint_format
    if not fmt.served_by_vllm:
        return Variant(repo_id, relation, spec=spec, problem=_not_served(fmt), unsupported=True)
    try:
        check_architecture(spec.geometry.architecture)
    except ProblemError as exc:
        return Variant(repo_id, relation, spec=spec, problem=exc.problem, unsupported=True)
    try:
        return Variant(repo_id, relation, spec=spec, report=plan_fit(spec, gpus, settings))
    except ProblemError as exc:
        return Variant(repo_id, relation, spec=spec, problem=exc.problem)
    except Exception as exc:  # noqa: BLE001
        log.warning("judging variant %s failed", repo_id, exc_info=True)
        return Variant(repo_id, relation, spec=spec, problem=problem_from_exception(exc, f"judging {repo_id}"))


def _from_files(repo_id: str, relation: str, problem: Problem, token: str | None) -> Variant | None:
    """A repo without a usable config.json: its format and size from its file list, if that names
    a format vLLM cannot serve (GGUF). None when the files tell nothing more."""
    from huggingface_hub import HfApi

    try:
        with hub_errors(repo_id):
            info = HfApi(token=_token(token)).model_info(repo_id, files_metadata=True)
    except ProblemError:
        return None
    files = {s.rfilename: int(s.size or 0) for s in info.siblings or ()}
    fmt = detect_format({}, file_names=list(files))
    if fmt.served_by_vllm:
        return None
    quant_files = [n for n in files if n.endswith(".gguf") and not n.rsplit("/", 1)[-1].startswith("mmproj")]
    one_kind = len({detect_format({}, file_names=[n]).label for n in quant_files}) == 1
    size = sum(files[n] for n in quant_files) if quant_files and one_kind else None
    return Variant(repo_id, relation, problem=_not_served(fmt), format=fmt, weights_bytes=size, unsupported=True)


def _not_served(fmt: QuantFormat) -> Problem:
    return Problem(f"vLLM 0.26 cannot serve {fmt.label}", fmt.not_served_reason or
                   f"vLLM 0.26 has no loader for {fmt.label}.",
                   "Pick a safetensors variant of this model (BF16, FP8, AWQ, GPTQ…).")


def rank_variants(variants: Sequence[Variant]) -> tuple[list[Variant], Variant | None]:
    """Best fit first, and the one to recommend.

    Order: by verdict — fits, fits_shorter_context, needs_tensor_parallel, does_not_fit,
    unsupported, unknown. Within a verdict:
    - fits / fits_shorter_context: longer usable context (max_model_len) first; then higher
      quality per byte: more weight bits first (BF16 > FP8 > 4-bit: each of them fits, so the
      better one wins), and at equal bits the smaller checkpoint (less overhead per weight, more
      room for the KV cache); then more concurrent requests;
    - needs_tensor_parallel: fewer GPUs needed first, then longer context, then more bits;
    - does_not_fit: the smallest checkpoint first (the nearest to fitting);
    - unsupported / unknown: as found (base, lineage, name matches).
    Remaining ties: the base, then lineage, then name matches, then the repo id.

    Recommended: the first variant that fits with the full context; if none does, the first that
    fits with a shorter context (its badge says so); None when nothing runs on these GPUs.
    Pure."""
    position = {id(v): i for i, v in enumerate(variants)}

    def key(v: Variant) -> tuple:
        verdict = v.verdict
        order = VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER)
        report = v.report
        context = report.max_model_len if report else 0
        bits = v.bits or 0
        size = v.size_bytes if v.size_bytes is not None else math.inf
        concurrency = report.max_concurrency if report else 0
        tail = (_RELATION_ORDER.get(v.relation, 3), v.repo_id)
        if verdict in (VERDICT_FITS, VERDICT_SHORTER):
            return (order, -context, -bits, size, -concurrency, *tail)
        if verdict == VERDICT_NEEDS_TP:
            return (order, report.tensor_parallel_size, -context, -bits, size, *tail)
        if verdict == VERDICT_NO:
            return (order, size, *tail)
        return (order, position[id(v)], *tail)

    ranked = sorted(variants, key=key)
    pick = next((v for v in ranked if v.verdict == VERDICT_FITS), None) or \
        next((v for v in ranked if v.verdict == VERDICT_SHORTER), None)
    return ranked, pick


def _bad_query(what: str, fix: str | None) -> BadInput:
    return BadInput(Problem("Impossible search", what, fix))


__all__ = [
    "SORTS", "SearchQuery", "ModelSummary", "search_models", "summary_from_info", "num_parameters_filter",
    "ModelDetail", "model_detail", "card_head", "base_models_of",
    "Variant", "find_variant_ids", "evaluate_variants", "refit_variants", "rank_variants", "quant_suffix",
    "hub_errors", "list_pages", "VERDICT_UNKNOWN", "VERDICT_ORDER",
    "RELATION_BASE", "RELATION_LINEAGE", "RELATION_NAME",
]
