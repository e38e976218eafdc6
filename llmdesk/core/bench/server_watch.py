"""What the server's own `/metrics` said during a load level: the KV-cache, waiting and running peaks
(sampled every half second) and the counters' increase over the level (preemptions, prefix-cache
queries and hits). These tell *why* a level is slow: a full KV cache, requests queueing, preemption.

A server without vLLM's metrics (another OpenAI-compatible server, or vLLM run with
--disable-log-stats) gives a reading with a problem sentence and no figures; the benchmark goes on.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.metrics.scrape import KV_USAGE, PREEMPTIONS, PREFIX_HITS, PREFIX_QUERIES, RUNNING, WAITING, Scrape
from llmdesk.core.metrics.scraper import MetricsScraper


@dataclass(frozen=True)
class ServerDuringLevel:
    samples: int
    kv_cache_peak: float | None = None  # 0–1
    waiting_peak: float | None = None
    running_peak: float | None = None
    preemptions: float | None = None
    prefix_cache_queries: float | None = None
    prefix_cache_hits: float | None = None
    problem: str | None = None

    @property
    def prefix_hit_rate(self) -> float | None:
        if not self.prefix_cache_queries or self.prefix_cache_hits is None:
            return None
        return self.prefix_cache_hits / self.prefix_cache_queries

    def as_dict(self) -> dict:
        return {**asdict(self), "prefix_hit_rate": self.prefix_hit_rate}


class ServerWatch:
    """`start()` before the level, `await stop()` after it; scrapes on its own task meanwhile."""

    def __init__(self, base_url: str, api_key: str | None = None, *, interval_s: float = 0.5):
        self._scraper = MetricsScraper(base_url, api_key, timeout_s=2.0)
        self._interval_s = interval_s
        self._first: Scrape | None = None
        self._last: Scrape | None = None
        self._peaks: dict[str, float] = {}
        self._samples = 0
        self._problem: str | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._first = self._last = None
        self._peaks, self._samples, self._problem = {}, 0, None
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> ServerDuringLevel:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._sample()  # the counters' value at the end of the level
        first, last = self._first, self._last
        if first is None or last is None:
            return ServerDuringLevel(self._samples, problem=self._problem or "the server's metrics could not be read")

        def increase(names) -> float | None:
            a, b = first.value(names), last.value(names)
            return None if a is None or b is None else max(0.0, b - a)

        return ServerDuringLevel(
            self._samples, kv_cache_peak=self._peaks.get("kv"), waiting_peak=self._peaks.get("waiting"),
            running_peak=self._peaks.get("running"), preemptions=increase(PREEMPTIONS),
            prefix_cache_queries=increase(PREFIX_QUERIES), prefix_cache_hits=increase(PREFIX_HITS),
            problem=self._problem)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._scraper.aclose()

    async def _loop(self) -> None:
        while True:
            await self._sample()
            await asyncio.sleep(self._interval_s)

    async def _sample(self) -> None:
        try:
            scrape = await self._scraper.scrape()
        except ProblemError as exc:
            self._problem = exc.problem.title
            return
        self._samples += 1
        if self._first is None:
            self._first = scrape
        self._last = scrape
        for key, names, average in (("kv", KV_USAGE, True), ("waiting", WAITING, False), ("running", RUNNING, False)):
            value = scrape.value(names, average=average)
            if value is not None:
                self._peaks[key] = max(self._peaks.get(key, value), value)
