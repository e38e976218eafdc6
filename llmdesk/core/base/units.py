"""Numbers for people: byte sizes in GiB, as vLLM and nvidia-smi count them."""

from __future__ import annotations

GIB = 1024**3
MIB = 1024**2


def format_gib(n_bytes: int | float, digits: int = 1) -> str:
    return f"{n_bytes / GIB:.{digits}f} GiB"
