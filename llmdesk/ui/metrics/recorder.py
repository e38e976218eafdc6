"""What the Dashboard watches: one loop that scrapes vLLM's /metrics and samples this computer's GPUs.

The loop lives outside the TaskRunner on purpose: it runs for as long as the page records, and
the runner's "pending" count is what screenshots and tests wait on to call the window settled.
Its failures still reach the problem banner; expected ones (no server, not vLLM, a typo in the
URL) are kept as ``problem`` for the page to show in place, and the next tick tries again.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.machine.gpus import GpuScan

log = logging.getLogger(__name__)

KEEP_S = 900.0  # the longest chart range


@dataclass(frozen=True)
class Target:
    """Where to scrape: ``url`` (root or /v1); None when there is nothing to watch, ``why`` says so."""

    url: str | None
    api_key: str | None = None
    app_server: bool = False  # the server this app runs (as opposed to a typed URL)
    why: Problem | None = None
    offer_server_page: bool = False  # the app's server is not running (yet): the Server page is where to go


def is_local_url(url: str) -> bool:
    """Whether a server URL is on this computer (so this computer's GPUs are the server's)."""
    import httpx

    try:
        host = httpx.URL(url if "://" in url else "http://" + url).host
    except (httpx.InvalidURL, ValueError):
        return True
    return host in ("localhost", "::1", "0.0.0.0", "") or host.startswith("127.")


class GpuHistory:
    """Utilisation and memory of each GPU at every sample, for ``keep_s``; NaN where a GPU gave none."""

    def __init__(self, keep_s: float = KEEP_S):
        self.keep_s = keep_s
        self.times: list[float] = []
        self.util: list[tuple[float, ...]] = []  # per sample: one value per GPU (percent)
        self.memory_used: list[tuple[float, ...]] = []  # bytes
        self.names: tuple[str, ...] = ()
        self.memory_total: tuple[int, ...] = ()
        self.latest: GpuScan | None = None

    def add(self, at: float, scan: GpuScan) -> None:
        self.latest = scan
        if not scan.gpus:
            return
        names = tuple(g.name for g in scan.gpus)
        if names != self.names:  # GPUs came or went: the columns no longer line up
            self.clear()
            self.names = names
        self.memory_total = tuple(g.memory_total_bytes for g in scan.gpus)
        self.times.append(at)
        self.util.append(tuple(math.nan if g.utilization_percent is None else float(g.utilization_percent)
                               for g in scan.gpus))
        self.memory_used.append(tuple(float(g.memory_used_bytes) for g in scan.gpus))
        old = bisect.bisect_left(self.times, at - self.keep_s)
        if old > 64:  # in batches: deleting from the front of a list moves all of it
            del self.times[:old], self.util[:old], self.memory_used[:old]

    def clear(self) -> None:
        self.times.clear()
        self.util.clear()
        self.memory_used.clear()
        self.names = ()
        self.memory_total = ()

    def since(self, start: float) -> int:
        return bisect.bisect_left(self.times, start)

    def __len__(self) -> int:
        return len(self.times)


class MetricsRecorder(QObject):
    """Scrapes every ``interval_s`` while started; keeps the figures (MetricsWindow) and the GPUs.

    ``target()`` is asked at every tick, so a server that starts, stops or moves is followed. A new
    server root starts a new MetricsWindow: counters of two servers do not make one rate."""

    ticked = Signal()  # after every tick: new figures, a new problem, or both

    def __init__(self, target: Callable[[], Target], sampler, interval_s: float = 1.0,
                 on_crash: Callable[[BaseException], None] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        from llmdesk.core.metrics.window import MetricsWindow

        self._target = target
        self.sampler = sampler  # .sample() -> GpuScan (in a worker thread), .close()
        self.interval_s = interval_s
        self._on_crash = on_crash
        self.window = MetricsWindow(keep_s=KEEP_S)
        self.window_url: str | None = None  # the root URL the window's figures come from
        self.generation = 0  # grows when the window is replaced, so charts know to start over
        self.gpus = GpuHistory()
        self.target: Target | None = None
        self.problem: Problem | None = None  # why the last tick has no new figures
        self.ticks = 0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None

    # -- control --

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Start the loop (nothing if it runs); False when no event loop runs yet."""
        if self.running:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run())
        self._task.add_done_callback(self._finished)
        return True

    def stop(self) -> None:
        """Stop scraping; the figures are kept. The connection is closed as the loop ends."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def wake(self) -> None:
        """Tick now (a new URL or interval should not wait out the old interval)."""
        if self._wake is not None:
            self._wake.set()

    def set_interval(self, seconds: float) -> None:
        self.interval_s = seconds
        self.wake()

    async def aclose(self) -> None:
        """Stop, close the connection and release NVML (for the end of the app)."""
        task = self._task
        self.stop()
        if task is not None:
            await asyncio.wait([task])  # its end closes the connection; how it ended does not matter here
        close = getattr(self.sampler, "close", None)
        if close is not None:
            await asyncio.to_thread(close)

    # -- the loop --

    async def _run(self) -> None:
        # The connection belongs to this run: a stop and a quick restart give two runs for a moment,
        # and the ending one must not close the connection the new one uses.
        loop = asyncio.get_running_loop()
        wake = self._wake
        conn = _Connection()
        try:
            while True:
                started = loop.time()
                wake.clear()
                await self._tick(conn)
                self.ticks += 1
                self.ticked.emit()
                delay = self.interval_s - (loop.time() - started)
                if delay > 0 and not wake.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wake.wait(), delay)
        finally:
            await conn.close()

    async def _tick(self, conn: _Connection) -> None:
        gpus = asyncio.ensure_future(asyncio.to_thread(self.sampler.sample)) if self.sampler is not None else None
        try:
            await self._scrape(conn)
            if gpus is not None:
                self.gpus.add(time.monotonic(), await gpus)
        finally:
            if gpus is not None and not gpus.done():
                gpus.cancel()  # the worker thread finishes its sample on its own

    async def _scrape(self, conn: _Connection) -> None:
        from llmdesk.core.metrics.scraper import MetricsScraper
        from llmdesk.core.metrics.window import MetricsWindow

        try:
            target = self._target()
        except ProblemError as exc:  # a URL that is not one
            self.target, self.problem = None, exc.problem
            await conn.close()
            return
        self.target = target
        if target.url is None:
            self.problem = target.why
            await conn.close()
            return
        scraper = conn.scraper
        if scraper is None or (scraper.root_url, scraper.api_key) != _identity(target):
            await conn.close()
            scraper = conn.scraper = MetricsScraper(target.url, target.api_key)
            if scraper.root_url != self.window_url:
                if self.window_url is not None:
                    self.window = MetricsWindow(keep_s=KEEP_S)
                    self.generation += 1
                self.window_url = scraper.root_url
        try:
            scrape = await scraper.scrape()
        except ProblemError as exc:
            self.problem = exc.problem
            return
        self.window.add(scrape)
        self.problem = None

    def _finished(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("the dashboard's loop failed", exc_info=exc)
            if self._on_crash is not None:
                self._on_crash(exc)


class _Connection:
    """The scraper of one run of the loop."""

    def __init__(self):
        self.scraper = None

    async def close(self) -> None:
        scraper, self.scraper = self.scraper, None
        if scraper is not None:
            try:
                await scraper.aclose()
            except Exception:  # a connection that is already gone has nothing left to close
                log.debug("closing the metrics connection", exc_info=True)


def _identity(target: Target) -> tuple[str, str | None]:
    from llmdesk.core.server.endpoint import root_url

    return root_url(target.url), target.api_key or None
