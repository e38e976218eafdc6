"""How llmdesk starts itself as a child process: `python -m llmdesk …` from a Python install, the
bundle's own executable when frozen (PyInstaller), where `-m` does not exist."""

from __future__ import annotations

import sys


def llmdesk_argv(*args: str) -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "llmdesk", *args]
