"""Where llmdesk keeps its files. LLMDESK_HOME puts them all under one folder (tests, portable use)."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import platformdirs

from llmdesk import APP_ID

APP_NAME = "llmdesk"
log = logging.getLogger(__name__)


def _root_override() -> Path | None:
    home = os.environ.get("LLMDESK_HOME")
    return Path(home).expanduser() if home else None


def _dir(kind: str) -> Path:
    root = _root_override()
    if root is not None:
        return root / kind
    finder = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "state": platformdirs.user_state_dir,
        "cache": platformdirs.user_cache_dir,
        "log": platformdirs.user_log_dir,
    }[kind]
    return Path(finder(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """User choices (settings.json)."""
    return _dir("config")


def data_dir() -> Path:
    """Things the user would miss: conversations, managed runtimes."""
    return _dir("data")


def state_dir() -> Path:
    """What the app remembers by itself: window geometry, recents, pid files."""
    return _dir("state")


def cache_dir() -> Path:
    return _dir("cache")


def log_dir() -> Path:
    return _dir("log")


def hf_home() -> Path:
    """HF_HOME, resolved the way huggingface_hub resolves it (without importing it)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface")
    return Path(home).expanduser()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved the way huggingface_hub resolves it (without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return hf_home() / "hub"


_SNAPSHOT_PATH = re.compile(r"(?:^|/)models--(?P<owner>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<rev>[^/]+)/?$")


def hf_snapshot_of(path: str) -> tuple[str, str] | None:
    """``…/models--org--name/snapshots/<rev>``, a model folder of a Hugging Face cache -> ("org/name", rev);
    None for any other path."""
    m = _SNAPSHOT_PATH.search(path.strip().replace("\\", "/"))
    return (f"{m['owner']}/{m['name']}", m["rev"]) if m else None


PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) readable by this user only: chats, logs and the server
    record say what a person asked and ran."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    _restrict(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Restrict an existing file of llmdesk's to this user."""
    _restrict(path, PRIVATE_FILE)
    return path


def open_private(path: Path, mode: str = "a"):
    """open() for a text file only this user can read, created so from the start (no window where it is 0644)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC), PRIVATE_FILE)
    _restrict(path, PRIVATE_FILE)
    return os.fdopen(fd, mode, encoding="utf-8")


def write_private_json(path: Path, value: object) -> None:
    """`value` as JSON in a private file, whole or not at all: written beside it, then renamed over it."""
    import json

    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "w") as out:
        out.write(json.dumps(value, indent=2))
    os.replace(tmp, path)


def _restrict(path: Path, wanted: int) -> None:
    try:
        if path.stat().st_mode & 0o777 & ~wanted:
            path.chmod(wanted)
    except OSError:
        pass  # not ours (a shared folder) or gone: nothing to tighten


FULL_BELOW_BYTES = 1024 * 1024


def nearest_existing(path: Path) -> Path:
    """`path`, or the nearest of its parents that exists (a folder not made yet lives on its disk)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Bytes this user may still write on the disk holding `path` (or its nearest existing parent)."""
    try:
        stats = os.statvfs(nearest_existing(path))
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def disk_is_full(path: Path) -> bool:
    """Less than 1 MiB free for this user: too little for SQLite's shared memory file or a log line."""
    free = free_bytes(path)
    return free is not None and free < FULL_BELOW_BYTES


def desktop_file_name() -> str:
    return APP_ID


def move_aside(path: Path, reason: str) -> Path | None:
    """An unreadable file renamed out of the way (`NAME.corrupt-YYYYmmdd-HHMMSS`): never read again, never
    lost. Where it went, or None when it could not be moved."""
    moved_to = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        path.replace(moved_to)
    except OSError:
        log.exception("could not move %s aside", path)
        return None
    log.warning("moved unreadable %s to %s: %s", path, moved_to, reason)
    return moved_to
