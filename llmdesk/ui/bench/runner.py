"""Runs a benchmark in a child process (`llmdesk bench-worker`), so that the load generator never shares
the window's GIL: on a thread of this process, 64 streams and the window's drawing slowed each other
down (a level's end drew in 50-70 ms instead of 20 on two cores). The settings go to the child as
one JSON line on stdin (the API key never in its argv); its events come back as JSON lines and reach
the page on the window's loop. Closing the child's stdin is Stop: it aborts the level in flight and
answers with the finished ones. If the window dies, stdin closes too, and the child stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.base.own_command import llmdesk_argv
from llmdesk.core.bench.sweep import BenchConfig, BenchRun, config_as_dict

log = logging.getLogger(__name__)
MAX_LINE = 16 * 1024 * 1024


class BenchRunner:
    def __init__(self, config: BenchConfig, on_event: Callable[[str, dict], None], name: str | None = None):
        self.config = config
        self.name = name
        self._on_event = on_event
        self._proc: asyncio.subprocess.Process | None = None
        self._stop_asked = False

    async def run(self) -> BenchRun:
        """The run's result; ProblemError (BadInput for impossible settings) when it could not run."""
        proc = await asyncio.create_subprocess_exec(
            *llmdesk_argv("bench-worker"), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=MAX_LINE)
        self._proc = proc
        proc.stdin.write(json.dumps({"config": config_as_dict(self.config), "name": self.name}).encode() + b"\n")
        await proc.stdin.drain()
        if self._stop_asked:
            proc.stdin.close()
        errors = asyncio.ensure_future(proc.stderr.read())
        result: BenchRun | None = None
        problem: ProblemError | None = None
        try:
            async for line in proc.stdout:
                try:
                    message = json.loads(line)
                    kind = message["event"]
                except (ValueError, KeyError, TypeError):
                    continue  # not ours (a library printing): the events are whole JSON lines
                if kind == "run":
                    result = BenchRun.from_dict(message["run"])
                elif kind == "problem":
                    found = Problem(**message["problem"])
                    problem = BadInput(found) if message.get("bad_input") else ProblemError(found)
                else:
                    self._on_event(kind, message.get("data") or {})
        finally:
            if proc.returncode is None and not proc.stdin.is_closing():
                proc.stdin.close()
            await proc.wait()
            stderr = (await errors).decode("utf-8", "replace")
            if stderr.strip():
                log.info("bench worker said: %s", stderr.strip()[-2000:])
        if problem is not None:
            raise problem
        if result is None:
            raise ProblemError(Problem("The benchmark stopped unexpectedly",
                                       f"Its process ended (exit status {proc.returncode}) without a result.",
                                       "The app's log has what it printed; try again."))
        return result

    def stop(self) -> None:
        """Abort the level in flight; the run comes back with its finished levels, marked stopped."""
        self._stop_asked = True
        proc = self._proc
        if proc is not None and proc.returncode is None and not proc.stdin.is_closing():
            proc.stdin.close()
