"""Where llmdesk keeps its files. LLMDESK_HOME puts them all under one folder (tests, portable use)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from llmdesk import APP_ID

APP_NAME = "llmdesk"


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


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved the way huggingface_hub resolves it (without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface")
    return Path(hf_home).expanduser() / "hub"


def desktop_file_name() -> str:
    return APP_ID
