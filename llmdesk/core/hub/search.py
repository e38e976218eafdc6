"""Hugging Face Hub search: text-generation models, one page per request, as the user scrolls.

Built on huggingface_hub (1.x or 2.x). Every function that touches the network BLOCKS: the UI
runs them in a thread (`asyncio.to_thread`), the CLI calls them directly. Failures come out as
`ProblemError`s (see `hub.access.hub_errors`). Honours HF_ENDPOINT, HF_TOKEN, HF_HOME and
HF_HUB_OFFLINE the way huggingface_hub does. The pure parts (query parameters, summaries) are plain
functions, tested without a network.

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
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.fit.architectures import is_served_by_vllm

from llmdesk.core.hub.access import hub_errors, hub_token


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

    headers = build_hf_headers(token=hub_token(token), library_name="llmdesk", library_version=__version__)
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



def _bad_query(what: str, fix: str | None) -> BadInput:
    return BadInput(Problem("Impossible search", what, fix))

