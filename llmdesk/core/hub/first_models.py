"""A first model for a new user: a short list of small, ungated instruct models that vLLM 0.26 serves,
each judged by the fit engine for this machine's GPUs, the best that fits put first.

"Best" is the largest that fits with at least FIRST_CONTEXT tokens of context: a bigger model
answers better, and a first chat needs no long context. Judging needs each model's config from
the Hub (a few KB each, cached); a model that cannot be judged is listed with its problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.fit.memory_model import (VERDICT_FITS, VERDICT_SHORTER, FitReport, LaunchSettings, ModelSpec,
                                           plan_fit)
from llmdesk.core.machine.gpus import GpuInfo

FIRST_CONTEXT = 8192
# Ungated (no Hugging Face token needed), chat-tuned, Apache-2.0, smallest first.
CANDIDATES = (
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen2.5-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-14B-Instruct-AWQ",
    "Qwen/Qwen2.5-32B-Instruct-AWQ",
)


@dataclass(frozen=True)
class Suggestion:
    repo_id: str
    report: FitReport | None
    problem: Problem | None = None

    @property
    def fits(self) -> bool:
        return (self.report is not None and self.report.verdict in (VERDICT_FITS, VERDICT_SHORTER)
                and self.report.max_model_len >= FIRST_CONTEXT and self.report.tensor_parallel_size == 1)

    @property
    def summary(self) -> str:
        if self.report is None:
            return self.problem.title if self.problem else "could not be judged"
        return self.report.summary


def suggest_first_models(gpus: Sequence[GpuInfo], load_spec: Callable[[str], ModelSpec],
                         candidates: Sequence[str] = CANDIDATES) -> list[Suggestion]:
    """Every candidate judged for one of `gpus` (a first model runs on one GPU); those that fit first,
    largest first, then the rest. Blocking: one Hub request per candidate not in the cache."""
    judged = []
    for repo_id in candidates:
        try:
            spec = load_spec(repo_id)
            report = plan_fit(spec, list(gpus[:1]), LaunchSettings(max_model_len=None))
        except ProblemError as exc:
            judged.append(Suggestion(repo_id, None, exc.problem))
            continue
        judged.append(Suggestion(repo_id, report))
    fitting = sorted((s for s in judged if s.fits), key=lambda s: s.report.weights_bytes, reverse=True)
    return fitting + [s for s in judged if not s.fits]
