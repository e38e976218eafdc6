"""Background work started by the GUI: strong references, and failures sent to the presenter.

Every async action of the UI goes through TaskRunner.run(), so no failure is silent
(qasync's asyncSlot keeps no reference to its task and would let errors vanish).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from llmdesk.ui.problems import ProblemPresenter

log = logging.getLogger(__name__)


class TaskRunner:
    def __init__(self, presenter: ProblemPresenter):
        self.presenter = presenter
        self._tasks: set[asyncio.Task] = set()

    def run(self, coro: Coroutine[Any, Any, Any], doing: str) -> asyncio.Task | None:
        """Start `coro`; `doing` completes "Something went wrong while …" if it fails.
        Only with the loop running: a task made before would sit on another loop, never to run.
        After the loop has gone (a timer firing during shutdown) the work is dropped."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            log.info("not %s: the event loop is not running", doing)
            return None
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, doing))
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait for the tasks running now (screenshots and tests want a settled window)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _finished(self, task: asyncio.Task, doing: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.presenter.show_exception(exc, doing)
