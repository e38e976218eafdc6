"""The app's log file: where tracebacks go instead of the user's face."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
from pathlib import Path

from llmdesk.core.base import paths

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log every request at INFO: the /health poll alone was 289 of 300 lines while serving.
_ROUTINE = ("httpx", "httpcore", "urllib3", "filelock")


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Each log file (the first and every one after a rollover) readable by this user only."""

    def _open(self):
        stream = super()._open()
        paths.private_file(Path(self.baseFilename))
        return stream

    def handleError(self, record: logging.LogRecord) -> None:
        # A full disk would otherwise print a traceback on the terminal for every line logged.
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the last flush on a full disk
            super().close()


def log_file() -> Path:
    return paths.log_dir() / "llmdesk.log"


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Log to a rotating file; returns its path, or None if the folder cannot be written."""
    root = logging.getLogger()
    path = log_file()
    for handler in [h for h in root.handlers if getattr(h, "_llmdesk", False)]:
        if Path(handler.baseFilename) == path:
            return path
        root.removeHandler(handler)  # the log folder moved (LLMDESK_HOME changed)
        handler.close()
    try:
        paths.private_dir(path.parent)
        handler = _PrivateRotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler._llmdesk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in _ROUTINE:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return path
