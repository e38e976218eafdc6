"""A benchmark run: one load level after another (a concurrency sweep, or a list of Poisson request
rates) against one server, each level measured by the load generator, the server's /metrics and the
GPUs' energy counters, and the run's saturation found at the end.

Stopping (the `stop` event, set by the Stop button or Ctrl-C) aborts the level in flight and keeps
the finished ones: the run comes back with status "stopped". A server that dies mid-run fails the
level's requests; the run stops there with status "failed" and the problem said, finished levels kept.
Async, no Qt; progress goes to an `on_event` callback that the window coalesces.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.bench.loadgen import Target, run_level
from llmdesk.core.bench.saturation import find_saturation
from llmdesk.core.bench.workload import (Vocabulary, Workload, as_text, check_fits, make_requests, read_vocabulary,
                                         server_stopped)

log = logging.getLogger(__name__)

Event = Callable[[str, dict], None]  # ("level", {...}) when a level starts, ("progress", ...), ("done", level)
MAX_LEVELS = 64
MAX_CONCURRENCY = 100_000


@dataclass
class BenchConfig:
    base_url: str
    model: str | None = None  # None: the first model the server lists
    api_key: str | None = None
    workload: Workload = field(default_factory=Workload)
    concurrencies: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    rates: tuple[float, ...] = ()  # Poisson request rates; when set, `concurrencies` holds at most one cap
    slo_ms: dict[str, float] = field(default_factory=dict)
    measure_energy: bool = True
    gpus: tuple[int, ...] | None = None  # NVML indices; None: every GPU
    max_num_seqs: int | None = None  # the server's, when known: the sweep is capped there

    def check(self) -> None:
        self.workload.check()
        bad = lambda what: BadInput(Problem("This benchmark cannot run", what, "Change the settings and start again."))  # noqa: E731
        if not self.concurrencies and not self.rates:
            raise bad("Give at least one concurrency or request rate.")
        if len(self.concurrencies) > MAX_LEVELS or len(self.rates) > MAX_LEVELS:
            raise bad(f"A run has at most {MAX_LEVELS} levels.")
        if any(not 1 <= c <= MAX_CONCURRENCY for c in self.concurrencies):
            raise bad(f"Concurrencies are from 1 to {MAX_CONCURRENCY:,}.")
        if any(not 0 < r <= 1_000_000 for r in self.rates):
            raise bad("Request rates are above 0 (requests per second).")
        if self.rates and len(self.concurrencies) > 1:
            raise bad("With request rates, give at most one concurrency (the cap on requests in flight).")
        unknown = set(self.slo_ms) - {"ttft", "tpot", "e2el"}
        if unknown or any(not 0 < v < 10**9 for v in self.slo_ms.values()):
            raise bad("Service-level limits are positive milliseconds on ttft, tpot or e2el.")

    def levels(self) -> list[tuple[int | None, float | None]]:
        """(concurrency, rate) per level, in order."""
        if self.rates:
            cap = self.concurrencies[0] if self.concurrencies else None
            return [(cap, r) for r in self.rates]
        return [(c, None) for c in self.concurrencies]


@dataclass
class BenchRun:
    """A run as saved: the levels are plain dicts with vLLM's key names, so old runs load as they were."""

    id: str
    name: str
    started_at: str
    server_url: str
    model: str
    workload: dict
    mode: str  # "concurrency" or "rate"
    slo_ms: dict
    levels: list[dict] = field(default_factory=list)
    status: str = "running"  # running, finished, stopped, failed
    problem: dict | None = None
    notes: list[str] = field(default_factory=list)
    saturation: dict | None = None
    gpus: list[str] = field(default_factory=list)
    energy_source: str | None = None
    cost: dict | None = None  # the cost inputs used for the levels' cost figures
    finished_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict) -> BenchRun:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def saturation_concurrency(self) -> float | None:
        return (self.saturation or {}).get("knee")

    def as_export(self) -> dict[str, Any]:
        """What `--json` and an export give: the saved run and its knee under the issue's key."""
        return {**self.as_dict(), "saturation_concurrency": self.saturation_concurrency}


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S-%f")


async def run_bench(config: BenchConfig, *, name: str | None = None, stop: asyncio.Event | None = None,
                    on_event: Event | None = None, energy_meter=None) -> BenchRun:
    """Measure every level in turn. BadInput before anything is sent when the settings cannot work
    (unknown model, lengths beyond max-model-len); ProblemError when the server is not there."""
    from llmdesk.core.bench.server_watch import ServerWatch
    from llmdesk.core.chat.client import ChatClient

    config.check()
    if config.workload.seed is None:
        import random

        config = dataclasses.replace(config, workload=dataclasses.replace(config.workload, seed=random.randrange(10**6)))
    stop = stop or asyncio.Event()
    emit = on_event or (lambda kind, data: None)
    async with ChatClient(config.base_url, config.api_key, timeout_s=30) as chat:
        served = await chat.models()  # reachability and the API key, with the chat client's messages
    model = config.model or (served[0] if served else None)
    if not model:
        raise ProblemError(Problem("The server serves no model", f"{config.base_url}/models listed none.",
                                   "Wait until the model has loaded."))
    if model not in served:
        raise BadInput(Problem(f"The server does not serve {model!r}",
                               f"It serves: {', '.join(served) or 'nothing'}.", "Pick one of those models."))
    vocabulary = await read_vocabulary(config.base_url, model, api_key=config.api_key)
    check_fits(config.workload, vocabulary)
    levels = config.levels()
    notes: list[str] = []
    if config.max_num_seqs and not config.rates:
        above = [c for c, _ in levels if c and c > config.max_num_seqs]
        if above:
            levels = [(c, r) for c, r in levels if not c or c <= config.max_num_seqs]
            notes.append(f"Left out concurrency {', '.join(map(str, above))}: the server runs at most "
                         f"{config.max_num_seqs} requests at once (max-num-seqs); more would only wait in its queue.")
            if not levels:
                raise BadInput(Problem("Every concurrency is above the server's limit",
                                       f"The server runs at most {config.max_num_seqs} requests at once (max-num-seqs).",
                                       f"Use concurrencies up to {config.max_num_seqs}."))
    run = BenchRun(id=new_run_id(), name=name or _default_name(model, config, levels), started_at=_now(),
                   server_url=config.base_url, model=model, workload=config.workload.as_dict(),
                   mode="rate" if config.rates else "concurrency", slo_ms=dict(config.slo_ms), notes=notes)
    meter = energy_meter
    if _is_local(config.base_url):
        run.gpus = await asyncio.to_thread(_gpu_names, config.gpus)
        if meter is None and config.measure_energy:
            meter = _energy_meter(config.gpus)
    else:
        run.notes.append("Energy is not measured: the server is on another machine.")
    watch = ServerWatch(config.base_url, config.api_key)
    target = Target(config.base_url, model, config.workload.endpoint, config.api_key)
    try:
        for index, (concurrency, rate) in enumerate(levels):
            if stop.is_set():
                run.status = "stopped"
                break
            emit("level", {"index": index, "count": len(levels), "concurrency": concurrency, "rate": rate})
            try:
                level = await _measure_level(config, target, vocabulary, index, concurrency, rate, watch, meter, stop,
                                             emit)
            except ProblemError as exc:  # the server went away between levels: keep those finished
                run.status, run.problem = "failed", exc.problem.as_dict()
                break
            if level is None:
                run.status = "stopped"
                break
            if level["completed"] == 0:  # not a finished level: say why and keep those before it
                run.status = "failed"
                run.problem = _failed_level_problem(level, config.base_url).as_dict()
                break
            run.levels.append(level)
            run.energy_source = run.energy_source or (level.get("energy") or {}).get("source")
            emit("done", level)
        else:
            run.status = "finished"
    finally:
        await watch.aclose()
        if meter is not None and energy_meter is None:
            meter.close()
    if meter is not None:
        if getattr(meter, "problem", None):
            run.notes.append(f"Energy is not measured: {meter.problem}")
    run.saturation = find_saturation(run.levels, config.slo_ms).as_dict()
    run.finished_at = _now()
    return run


async def _measure_level(config: BenchConfig, target: Target, vocabulary: Vocabulary, index: int,
                         concurrency: int | None, rate: float | None, watch, meter, stop: asyncio.Event,
                         emit: Event) -> dict | None:
    """One level as a dict, or None when the stop event came first: while its prompts were still being
    made (decoding hundreds through the server takes seconds) or with requests in flight (aborted)."""
    workload = config.workload
    fit = workload.endpoint == "completions"
    total = None if workload.duration_s else workload.prompts_for(concurrency or max(1, int(rate or 1)))

    def progress(done: int, sent: int) -> None:
        emit("progress", {"index": index, "finished": done, "sent": sent, "total": total})

    async def level() -> dict:
        warm = make_requests(workload, vocabulary, workload.warmups, level_seed=10_000 + index)
        warm = await as_text(config.base_url, target.model, warm, vocabulary, fit_length=fit)
        if workload.duration_s:  # distinct prompts for as long as the level lasts, made a batch ahead
            requests = _text_batches(config, target.model, workload, vocabulary, index, fit)
        else:
            requests = await as_text(config.base_url, target.model,
                                     make_requests(workload, vocabulary, total, level_seed=index), vocabulary,
                                     fit_length=fit)
        if warm:
            warmed = await run_level(target, warm, concurrency=concurrency or len(warm))  # as vLLM warms up
            if warmed.metrics.completed == 0:  # the server is gone or refuses: no point loading it
                return {"concurrency": concurrency, "rate": rate, **warmed.metrics.as_dict()}
        watch.start()
        if meter is not None:
            meter.start()
        try:
            result = await run_level(target, requests, concurrency=concurrency, rate=rate,
                                     duration_s=workload.duration_s, slo_ms=config.slo_ms or None,
                                     seed=(workload.seed or 0) + index, on_progress=progress)
        finally:
            reading = meter.stop() if meter is not None else None
            server = await watch.stop()
        out = {"concurrency": concurrency, "rate": rate, **result.metrics.as_dict(), "server": server.as_dict()}
        out.update(_energy_figures(reading, result.metrics.total_output_tokens))
        return out

    task = asyncio.ensure_future(level())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


async def _text_batches(config: BenchConfig, model: str, workload: Workload, vocabulary: Vocabulary, index: int,
                        fit: bool):
    """Prompts without end, 64 at a time, the next batch decoded while this one is sent."""
    def batch(n: int):
        ids = make_requests(workload, vocabulary, 64, level_seed=index * 100_000 + n + 1)
        return asyncio.ensure_future(as_text(config.base_url, model, ids, vocabulary, fit_length=fit))

    ahead = batch(0)
    try:
        for n in itertools.count(1):
            current = await ahead
            ahead = batch(n)
            for request in current:
                yield request
    finally:
        ahead.cancel()


def _energy_figures(reading, output_tokens: int) -> dict:
    if reading is None:
        return {"energy": None, "energy_j_per_output_token": None, "output_tokens_per_wh": None, "mean_watts": None}
    return {"energy": reading.as_dict(), "energy_j_per_output_token": reading.per_output_token(output_tokens),
            "output_tokens_per_wh": reading.tokens_per_wh(output_tokens), "mean_watts": reading.mean_watts}


def _energy_meter(gpus: tuple[int, ...] | None):
    from llmdesk.core.bench.energy import EnergyMeter

    return EnergyMeter(gpus)


def _gpu_names(indices: tuple[int, ...] | None) -> list[str]:
    """The cards a figure came from, kept with the run."""
    from llmdesk.core.machine.gpus import scan_gpus

    return [g.name for g in scan_gpus().gpus if indices is None or g.index in indices]


def _failed_level_problem(level: dict, base_url: str) -> Problem:
    errors = level.get("errors") or []
    first = errors[0] if errors else "no reason given"
    if any("Connect" in e or "RemoteProtocol" in e or "ReadError" in e or "mid-reply" in e for e in errors):
        return server_stopped(f"Every request of the last level failed: {first}")
    return Problem("Every request failed", f"The server at {base_url} refused the requests: {first}",
                   "Check the model, the lengths and the API key; the finished levels are kept.")


def _is_local(base_url: str) -> bool:
    import httpx

    from llmdesk.core.server.launch import is_loopback

    host = httpx.URL(base_url if "://" in base_url else "http://" + base_url).host
    return host == "localhost" or is_loopback(host)


def _default_name(model: str, config: BenchConfig, levels: Sequence[tuple[int | None, float | None]]) -> str:
    w = config.workload
    loads = [c for c, _ in levels] if not config.rates else [r for _, r in levels]
    span = f"c{loads[0]}–{loads[-1]}" if not config.rates else f"{loads[0]:g}–{loads[-1]:g} req/s"
    return f"{model.rsplit('/', 1)[-1]} · {w.input_len}/{w.output_len} · {span}"


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


_MAX_NUM_SEQS = re.compile(r"non-default args: \{.*'max_num_seqs': (\d+)")


def max_num_seqs_from_log(path: Path | str | None) -> int | None:
    """The app's server states its non-default arguments in its log; max_num_seqs among them caps the sweep."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in itertools.islice(f, 2000):
                found = _MAX_NUM_SEQS.search(line)
                if found:
                    return int(found.group(1))
    except OSError:
        return None
    return None


def server_max_num_seqs(base_url: str) -> int | None:
    """max-num-seqs of the app's own server at this URL (from its log), None for any other server."""
    from llmdesk.core.server.endpoint import base_url as url_of, normalise_base_url
    from llmdesk.core.server.records import live_records

    wanted = normalise_base_url(base_url)
    for record in live_records():
        if normalise_base_url(url_of(record.host or "", record.port)) == wanted:
            return max_num_seqs_from_log(record.log)
    return None


def config_as_dict(config: BenchConfig) -> dict[str, Any]:
    return {**{k: getattr(config, k) for k in config.__dataclass_fields__}, "workload": config.workload.as_dict()}


def config_from_dict(data: dict[str, Any]) -> BenchConfig:
    """From config_as_dict's JSON; BadInput when it is not a benchmark's settings."""
    try:
        values = {k: v for k, v in data.items() if k in BenchConfig.__dataclass_fields__}
        values["workload"] = Workload.from_dict(dict(values.get("workload") or {}))
        for key in ("concurrencies", "rates", "gpus"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        values["slo_ms"] = dict(values.get("slo_ms") or {})
        config = BenchConfig(**values)
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadInput(Problem("Not a benchmark's settings", str(exc)[:300], None)) from None
    config.check()
    return config
