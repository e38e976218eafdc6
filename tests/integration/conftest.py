"""Fixtures of the tests that run `llmdesk` as a user does: real processes, real signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

import pytest

from tests.fakes.server_records import record_files


@pytest.fixture
def launched():
    """Processes a test started in their own session (CLIs): their groups are killed at the end,
    whatever happened, and so is every server a record of this test's LLMDESK_HOME still names."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)
    for path in record_files():
        pgid = json.loads(path.read_text()).get("pid")
        if pgid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def groups():
    """pgids to SIGKILL at the end, whatever happened in the test."""
    pgids: list[int] = []
    yield pgids
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
