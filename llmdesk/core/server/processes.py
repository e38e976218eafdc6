"""Processes on this machine as the supervisor needs them: who is alive, which process group a server
left, whether a process id still names the process we started, and who listens on a port.

A process id alone is not an identity: the kernel reuses ids, and a stale record once made `serve`
signal an unrelated process. `process_start(pid)` (boot id + start time, from /proc) is recorded
beside every id, and `is_same_process` compares both. Where /proc is missing the checks fall back
to "alive" and "its command line mentions vllm".
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_PROC = Path("/proc")


def has_proc() -> bool:
    return _PROC.is_dir()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3, the state, is [0])."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When `pid` started, as '<boot id>:<clock ticks since boot>'; None if unknown (no /proc, gone)."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19]}"  # field 22, starttime


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    if has_proc():
        fields = _stat_fields(pid)
        return fields is not None and fields[0] not in ("Z", "X")
    return True


def is_same_process(pid: int | None, start: str | None) -> bool:
    """`pid` is alive and is the process that had start time `start` (when one was recorded)."""
    if not isinstance(pid, int) or pid <= 0 or not pid_alive(pid):
        return False
    return start is None or process_start(pid) == start


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the process group `pgid`."""
    if has_proc():
        members = []
        for entry in os.listdir(_PROC):
            if entry.isdigit():
                fields = _stat_fields(int(entry))
                if fields and len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                    members.append(int(entry))
        return members
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        return [pgid]
    return [pgid]


def looks_like_vllm(pids: list[int]) -> bool:
    if not has_proc():
        return True
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"vllm" in (_PROC / str(pid) / "cmdline").read_bytes().lower():
                return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is the tenth field
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def group_listens_on(pgid: int, port: int) -> bool | None:
    """A process of group `pgid` holds the listening socket of `port`: the server that answers there is
    the one we started, not another that took the port first. None where this cannot be seen (no /proc)."""
    if not has_proc() or not (_PROC / "net" / "tcp").exists():
        return None
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in group_members(pgid):
        fd_dir = _PROC / str(pid) / "fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                if os.readlink(fd_dir / name) in wanted:
                    return True
    return False


__all__ = ["group_listens_on", "group_members", "has_proc", "is_same_process", "looks_like_vllm", "pid_alive",
           "process_start", "signal_group", "signal_pid"]
