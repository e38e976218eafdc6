"""A model's quantized variants on the Hugging Face Hub (lineage, else name matching), each judged
by the fit engine for the given GPUs, and ranked with a recommended pick.

BLOCKS on the network (run it in a thread). `evaluate_variants` never raises for one bad variant,
it returns that variant with its `problem`. The pure parts (name matching, ranking) are plain
functions, tested without a network.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from llmdesk.core.base.errors import Problem, ProblemError, problem_from_exception
from llmdesk.core.fit.format_measurements import MEASURED_CONCURRENCY, MUCH_SLOWER, speed_ratio
from llmdesk.core.fit.memory_model import (VERDICT_FITS, VERDICT_NEEDS_TP, VERDICT_NO, VERDICT_SHORTER,
                                           VERDICT_UNSUPPORTED, FitReport, LaunchSettings, ModelSpec, plan_fit)
from llmdesk.core.fit.model_config import BadModelConfig
from llmdesk.core.fit.quant import QuantFormat, detect_format
from llmdesk.core.hub.access import check_repo_id, hub_errors, hub_token
from llmdesk.core.hub.model_source import check_architecture, load_model_spec
from llmdesk.core.hub.search import list_pages
from llmdesk.core.machine.gpus import GpuInfo

log = logging.getLogger(__name__)


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

    check_repo_id(base_repo_id)
    token = hub_token(token)
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
    rank_note: str = ""  # why the ranking put it where it is, when measured speed moved it or could have

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
            "rank_note": self.rank_note or None,
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
    token = hub_token(token)  # once, not once per thread
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
            info = HfApi(token=hub_token(token)).model_info(repo_id, files_metadata=True)
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
    Speed, where measured for these GPUs' generation (format_measurements): among variants with the
    same verdict and context, one that runs much slower than another (below MUCH_SLOWER of its output
    tokens/s at 1 or at 64 requests) goes right after the first such faster one, with a rank_note; when
    every one is much slower than some other (each format wins at one load), the order stays and
    the notes say what each trades.

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

    ranked = _speed_ordered(sorted(variants, key=key))
    pick = next((v for v in ranked if v.verdict == VERDICT_FITS), None) or \
        next((v for v in ranked if v.verdict == VERDICT_SHORTER), None)
    return ranked, pick


def _speed_ordered(ranked: list[Variant]) -> list[Variant]:
    """Within each run of variants with one verdict and context, much slower ones moved by measured speed."""
    out: list[Variant] = []
    for (verdict, _), group in itertools.groupby(ranked, key=lambda v: (v.verdict, v.report and v.report.max_model_len)):
        run = list(group)
        out += _by_speed(run) if verdict in (VERDICT_FITS, VERDICT_SHORTER) and len(run) > 1 else run
    return out


def _by_speed(run: list[Variant]) -> list[Variant]:
    def much_slower(v: Variant, than: Sequence[Variant]) -> tuple[float, int, Variant] | None:
        """The first of `than` that v is much slower than: (v's speed ratio, at which concurrency, that one)."""
        for w in than:
            found = [(r, c, w) for c in MEASURED_CONCURRENCY if (r := _ratio(v, w, c)) is not None and r < MUCH_SLOWER]
            if found:
                return min(found, key=lambda f: f[0])
        return None

    slower = {id(v): found for v in run if (found := much_slower(v, run))}
    if not slower:
        return run
    fast = [v for v in run if id(v) not in slower]
    slow = [v for v in run if id(v) in slower]
    behind = {id(v): much_slower(v, fast) for v in slow}  # the first faster one now ahead of it, if any
    noted = {id(v): replace(v, rank_note=_slow_note(v, *(behind[id(v)] or slower[id(v)]),
                                                    first=not fast and v is run[0])) for v in slow}
    if not fast:  # each wins at some load: the order stays, the notes say what each trades
        return [noted[id(v)] for v in run]
    if fast[0] is not run[0]:
        passed = [v for v in run[:run.index(fast[0])] if id(v) in slower]
        noted[id(fast[0])] = replace(fast[0], rank_note=(
            f"Ranked ahead of {_names(passed)}: more precise, but much slower on these GPUs ({_measured(passed[0])})."))
    # each much slower one right after the first faster one it was measured against; the rest keep their order
    place = {id(v): (run.index(v), 0, 0) for v in fast}
    for v in slow:
        ahead = behind[id(v)]
        place[id(v)] = (run.index(ahead[2]) if ahead else len(run), 1, run.index(v))
    return [noted.get(id(v), v) for v in sorted(run, key=lambda v: place[id(v)])]


def _ratio(v: Variant, w: Variant, concurrency: int) -> float | None:
    a = v.report.measured if v.report else None
    b = w.report.measured if w.report else None
    return speed_ratio(a, b, concurrency) if a and b and v is not w else None


def _slow_note(v: Variant, ratio: float, concurrency: int, faster: Variant, *, first: bool) -> str:
    requests = "1 request" if concurrency == 1 else f"{concurrency} concurrent requests"
    head = ("Ranked first for precision, though" if first else "Ranked lower:")
    return (f"{head} {_short(v)} gives {ratio:.2f}× the output tokens/s of {_short(faster)} at {requests} "
            f"({_measured(v)}).")


def _short(v: Variant) -> str:
    return v.format_label.split(" (")[0]


def _names(variants: Sequence[Variant]) -> str:
    return ", ".join(dict.fromkeys(_short(v) for v in variants))


def _measured(v: Variant) -> str:
    m = v.report.measured
    return f"vLLM 0.26 on {m.card.removeprefix('NVIDIA ')}, {m.shape} shape, measured {m.date}"

