"""A real full disk: a small tmpfs mounted for one test (root only, as on CI), then filled.

    with small_disk(tmp_path / "disk", size_kib=2048) as disk:
        ...write what must be there...
        fill(disk)          # every byte left is taken: the next write gets ENOSPC
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_disk(folder: Path, size_kib: int = 2048) -> Iterator[Path]:
    if not can_mount():
        pytest.skip("a full disk is made with a tmpfs mount, which needs root (CI runs as root)")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(disk: Path) -> None:
    """Take every free byte of the disk (a file named filler at its root)."""
    with open(disk / "filler", "ab", buffering=0) as out:
        block = b"\0" * 4096
        with contextlib.suppress(OSError):
            while True:
                out.write(block)
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0")
    assert shutil.disk_usage(disk).free < 4096
