"""Runs a benchmark on its own thread and event loop, so that the window's painting never delays the
load generator's timing and 64 streams never make the window stutter; its events come back to the
window's loop (call_soon_threadsafe), where the page coalesces them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from llmdesk.core.bench.sweep import BenchConfig, BenchRun


class BenchRunner:
    def __init__(self, config: BenchConfig, on_event: Callable[[str, dict], None], name: str | None = None):
        self.config = config
        self.name = name
        self._on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_asked = threading.Event()

    async def run(self) -> BenchRun:
        """Awaited on the window's loop; the run itself happens on a worker thread."""
        window_loop = asyncio.get_running_loop()

        def emit(kind: str, data: dict) -> None:
            window_loop.call_soon_threadsafe(self._on_event, kind, data)

        async def main() -> BenchRun:
            from llmdesk.core.bench.sweep import run_bench

            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            if self._stop_asked.is_set():
                self._stop.set()
            return await run_bench(self.config, name=self.name, stop=self._stop, on_event=emit)

        def on_thread() -> BenchRun:
            # A plain asyncio loop: qasync.run sets a policy whose loops are Qt's, which cannot run off the
            # GUI thread ("Event loop stopped before Future completed").
            with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
                return runner.run(main())

        return await asyncio.to_thread(on_thread)

    def stop(self) -> None:
        """Abort the level in flight; the run comes back with its finished levels, marked stopped."""
        self._stop_asked.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the run's loop has just closed: nothing left to stop
                pass
