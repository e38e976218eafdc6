"""A lock file shared by llmdesk processes (and huggingface_hub, which takes the same kind): held
while one of them creates or changes something the others read."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from llmdesk.core.base.errors import Problem, ProblemError


@contextlib.contextmanager
def exclusive(path: Path, wait_s: float, busy: Problem, *, without_lock_ok: bool = False) -> Iterator[bool]:
    """Hold the lock at `path` (a 0600 file, made if missing), waiting up to `wait_s`; ProblemError(busy)
    if another process keeps it longer. Yields True when held. With `without_lock_ok`, a lock file that
    cannot be made (a read-only folder, a full disk: then nothing can be written, so nothing races)
    yields False instead of raising."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=wait_s, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise ProblemError(busy) from None
    except OSError:
        if not without_lock_ok:
            raise
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
