"""Where a vLLM start-up's seconds go, and how long the next one will take.

A ``TimelineRecorder`` is fed every log line with the moment llmdesk read it; at ready it gives a
``StartupTimeline``: seconds per phase (``diagnose.Phase``, from llmdesk's own clock, so the silent
parts — imports, the kernel warm-up — are counted too), vLLM's own figures from its log, and whether
torch.compile ran (cold cache) or loaded its result from vLLM's compile cache (warm).

``StartupHistory`` keeps, per launch configuration, the last timeline and the last of each cache
state; ``estimate`` turns it into the phases to expect now, after looking whether the compile cache
that the last start used is still on disk. Pure apart from that look and the JSON file the
supervisor keeps (``supervisor.py``).

Where only the other cache state was seen, the compile and the kernel warm-up are scaled by what they took
warm against cold on an H100 (WARM_SHARES); the other phases are taken as they were.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmdesk.core.server.diagnose import Phase, phase_of

WARM = "warm"
COLD = "cold"
# A phase's seconds with the compile cache warm / cold, where only the other state was seen. The 8B shape on an
# H100, two runs (2026-12-07): compiling 1.5 / 11.2 and 1.6 / 12.1 s; the kernel warm-up after the graphs
# (inductor's set-up, Triton's kernels) 7.4 / 12.3 and 7.8 / 14.4 s. The other phases do not follow the cache.
WARM_SHARES = {Phase.COMPILING: 0.13, Phase.WARMING_UP: 0.57}

# vLLM's own figures (vllm.md §4.3), seconds
_FIGURES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("weights_s", r"Loading weights took ([\d.]+) s"),
    ("model_loading_s", r"Model loading took [\d.]+ GiB (?:memory )?and ([\d.]+) s"),
    ("dynamo_s", r"Dynamo bytecode transform time: ([\d.]+) s"),
    ("compile_s", r"torch\.compile t(?:ook|akes) ([\d.]+) s in total"),
    ("profiling_s", r"Initial profiling/warmup run took ([\d.]+) s"),
    ("graphs_s", r"Graph capturing finished in ([\d.]+) sec"),
    ("engine_init_s", r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s"),
))
_CACHE_HIT = re.compile(r"Directly load the compiled graph|Directly load AOT compilation")
_CACHE_MISS = re.compile(r"Compiling a graph for compile range")
_CACHE_DIR = re.compile(r"Using cache directory: (\S+) for vLLM's torch\.compile")


@dataclass(frozen=True)
class StartupTimeline:
    total_s: float
    phases: tuple[tuple[Phase, float], ...]  # in the order they came; a phase seen twice is summed
    compile_cache: str | None = None  # WARM, COLD, or None (no torch.compile: eager, or it failed before)
    compile_cache_dir: str | None = None
    figures: Mapping[str, float] = field(default_factory=dict)  # vLLM's own, see _FIGURES
    preloaded: bool = False  # vLLM was imported before Start (core/server/preload.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))

    def seconds(self, phase: Phase) -> float:
        return sum(s for p, s in self.phases if p is phase)

    def summary(self) -> str:
        """One line for people: 'starting 16.5 s · … · compiling 3.4 s (cache warm) · …'."""
        parts = []
        for phase, seconds in self.phases:
            note = f" (cache {self.compile_cache})" if phase is Phase.COMPILING and self.compile_cache else ""
            if phase is Phase.STARTING and self.preloaded:
                note = " (vLLM preloaded)"
            parts.append(f"{phase.value} {seconds:.1f} s{note}")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"total_s": round(self.total_s, 2), "phases": [[p.value, round(s, 2)] for p, s in self.phases],
                "compile_cache": self.compile_cache, "compile_cache_dir": self.compile_cache_dir,
                "figures": dict(self.figures), "preloaded": self.preloaded}

    @classmethod
    def from_json(cls, data: object) -> StartupTimeline | None:
        """None for anything that is not a timeline this version wrote (the file is the user's to break)."""
        if not isinstance(data, dict):
            return None
        try:
            phases = tuple((Phase(name), float(seconds)) for name, seconds in data.get("phases") or ())
            figures = {str(k): float(v) for k, v in (data.get("figures") or {}).items()}
            cache = data.get("compile_cache")
            cache_dir = data.get("compile_cache_dir")
            return cls(float(data["total_s"]), phases, cache if cache in (WARM, COLD) else None,
                       cache_dir if isinstance(cache_dir, str) else None, figures, data.get("preloaded") is True)
        except (KeyError, TypeError, ValueError):
            return None


class TimelineRecorder:
    """Fed each line as it arrives (``line``), closed at ready (``finish``)."""

    def __init__(self, started_at: float):
        self.started_at = started_at
        self._phase = Phase.STARTING
        self._since = started_at
        self._spans: list[tuple[Phase, float]] = []
        self._figures: dict[str, float] = {}
        self._cache: str | None = None
        self._cache_dir: str | None = None
        self.preloaded = False  # set by the supervisor when a preloaded vLLM took the start

    @property
    def phase(self) -> Phase:
        return self._phase

    def line(self, text: str, at: float) -> bool:
        """Take one line read at ``at``; True when it began a new phase (``phase`` is that phase)."""
        phase = phase_of(text)
        began = phase is not None and phase is not Phase.READY and phase is not self._phase
        if began:
            self._spans.append((self._phase, max(0.0, at - self._since)))
            self._phase, self._since = phase, at
        if "took" in text or "time:" in text or "finished in" in text:
            for name, pattern in _FIGURES:
                if (m := pattern.search(text)) and name not in self._figures:
                    self._figures[name] = float(m.group(1))
        if _CACHE_HIT.search(text):
            self._cache = WARM
        elif _CACHE_MISS.search(text) and self._cache is None:
            self._cache = COLD
        elif (m := _CACHE_DIR.search(text)) and self._cache_dir is None:
            self._cache_dir = m.group(1)
        return began

    def finish(self, at: float) -> StartupTimeline:
        """The timeline up to ``at``, the phase under way counted up to then."""
        spans = [*self._spans, (self._phase, max(0.0, at - self._since))]
        merged: dict[Phase, float] = {}
        for phase, seconds in spans:
            merged[phase] = merged.get(phase, 0.0) + seconds
        return StartupTimeline(max(0.0, at - self.started_at), tuple(merged.items()), self._cache, self._cache_dir,
                               self._figures, self.preloaded)


def timeline_of_log(lines: Iterable[tuple[float, str]]) -> StartupTimeline | None:
    """A timeline from (arrival time, line) pairs of a recorded run, up to its "Application startup
    complete" (or its last line); None when there are none."""
    recorder: TimelineRecorder | None = None
    last = 0.0
    for at, text in lines:
        if recorder is None:
            recorder = TimelineRecorder(at)
        last = at
        if phase_of(text) is Phase.READY:
            break
        recorder.line(text, at)
    return recorder.finish(last) if recorder is not None else None


def vllm_cache_root(env: Mapping[str, str]) -> Path:
    """Where vLLM keeps torch_compile_cache/ (vllm.md §5: VLLM_CACHE_ROOT, else $XDG_CACHE_HOME/vllm)."""
    if env.get("VLLM_CACHE_ROOT"):
        return Path(env["VLLM_CACHE_ROOT"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "vllm"


def cache_on_disk(cache_dir: str | None, env: Mapping[str, str]) -> bool | None:
    """Whether the compile cache a start used is still there (True/False), or None when no start told
    where it was. With no compile cache folder at all, the next start compiles: False."""
    if cache_dir:
        try:
            return any(Path(cache_dir).expanduser().iterdir())
        except OSError:
            return False
    if not (vllm_cache_root(env) / "torch_compile_cache").is_dir():
        return False
    return None


@dataclass(frozen=True)
class StartupEstimate:
    """The phases to expect and their seconds; ``compile_cache`` is what the compile phase is expected
    to do (WARM: load from the cache, COLD: compile, None: unknown or no compile)."""

    phases: tuple[tuple[Phase, float], ...]
    compile_cache: str | None
    basis: str  # for people: what the estimate comes from

    @property
    def total_s(self) -> float:
        return sum(s for _, s in self.phases)

    def left_s(self, phase: Phase | None, in_phase_s: float) -> float:
        """Seconds still to come while ``phase`` has lasted ``in_phase_s``: the rest of it (never below a
        second while it lasts) and every phase after it."""
        order = [p for p, _ in self.phases]
        if phase is None or phase not in order:
            return self.total_s
        i = order.index(phase)
        rest = max(1.0, self.phases[i][1] - in_phase_s)
        return rest + sum(s for _, s in self.phases[i + 1:])

    def describe(self, phase: Phase, seconds: float) -> str:
        note = f" (compile cache {self.compile_cache})" if phase is Phase.COMPILING and self.compile_cache else ""
        return f"{phase.value} ~{seconds:.0f} s{note}"


@dataclass
class StartupHistory:
    """Per launch configuration: the last timeline, and the last one with a warm and with a cold cache."""

    last: StartupTimeline | None = None
    last_total_s: float | None = None  # from files of earlier versions, which kept only the total
    by_cache: dict[str, StartupTimeline] = field(default_factory=dict)

    def add(self, timeline: StartupTimeline) -> None:
        self.last = timeline
        self.last_total_s = timeline.total_s
        if timeline.compile_cache:
            self.by_cache[timeline.compile_cache] = timeline

    def to_json(self) -> dict[str, Any]:
        return {"last": self.last.to_json() if self.last else None, "last_total_s": self.last_total_s,
                "by_cache": {k: v.to_json() for k, v in self.by_cache.items()}}

    @classmethod
    def from_json(cls, data: object) -> StartupHistory:
        if isinstance(data, int | float) and not isinstance(data, bool):  # before 2026-12-07: the total alone
            return cls(last_total_s=float(data))
        if not isinstance(data, dict):
            return cls()
        by_cache = {k: t for k, v in (data.get("by_cache") or {}).items()
                    if k in (WARM, COLD) and (t := StartupTimeline.from_json(v)) is not None}
        last = StartupTimeline.from_json(data.get("last"))
        total = data.get("last_total_s")
        return cls(last, float(total) if isinstance(total, int | float) else (last.total_s if last else None),
                   by_cache)

    def estimate(self, cache_now: bool | None, *, compiles: bool = True) -> StartupEstimate | None:
        """What the next start should take. ``cache_now``: whether the last start's compile cache is still
        on disk (``cache_on_disk``); ``compiles``: False with --enforce-eager / -O0."""
        if self.last is None:
            if self.last_total_s is None:
                return None
            return StartupEstimate(((Phase.STARTING, self.last_total_s),), None, "the last start of this configuration")
        expect = None
        if compiles and self.last.compile_cache:
            expect = WARM if cache_now else COLD if cache_now is False else self.last.compile_cache
        base = self.by_cache.get(expect) if expect else None
        base = base or self.last
        phases = list(base.phases)
        basis = "the last start of this configuration"
        if expect and base.compile_cache != expect:  # only the other cache state was seen
            phases = [(p, s * (WARM_SHARES.get(p, 1.0) if expect == WARM else 1 / WARM_SHARES.get(p, 1.0)))
                      for p, s in phases]
            basis += f" (compile cache then {base.compile_cache}, now {expect})"
        elif expect:
            basis += f" with the compile cache {expect}"
        return StartupEstimate(tuple(phases), expect, basis)


def progress_text(estimate: StartupEstimate | None, so_far: StartupTimeline | None, phase: Phase | None,
                  in_phase_s: float, elapsed_s: float) -> tuple[str, str]:
    """(headline, phases) for a start under way, e.g. ("Starting: compiling (21 s, about 14 s left)",
    "✓ starting 9 s · ✓ starting the engine 8 s · ▸ compiling 4 s of ~3 s (compile cache warm) · …").
    ``so_far``: the phases finished, with their seconds (a recorder's finish at the current phase's start)."""
    current = phase or Phase.STARTING
    if estimate is None:
        headline = f"Starting: {current.value} ({elapsed_s:.0f} s; the first start of these settings here, so no " \
                   "estimate yet)"
    else:
        headline = f"Starting: {current.value} ({elapsed_s:.0f} s, about {estimate.left_s(current, in_phase_s):.0f} s left)"
    done = [(p, s) for p, s in (so_far.phases if so_far else ()) if p is not current]
    parts = [f"✓ {p.value} {s:.0f} s" for p, s in done]
    expected = dict(estimate.phases) if estimate else {}
    note = f" (compile cache {estimate.compile_cache})" if estimate and estimate.compile_cache else ""
    if current in expected:
        parts.append(f"▸ {current.value} {in_phase_s:.0f} s of ~{expected[current]:.0f} s"
                     + (note if current is Phase.COMPILING else ""))
    else:
        parts.append(f"▸ {current.value} {in_phase_s:.0f} s")
    seen = {p for p, _ in done} | {current}
    parts += [estimate.describe(p, s) for p, s in (estimate.phases if estimate else ()) if p not in seen]
    return headline, " · ".join(parts)
