"""One record for every vLLM server the app starts, so that none is ever left serving with nobody
to find it, and no two of ours fight over a port.

    state_dir()/servers/<port>.json     the server on that port (0600, in a 0700 folder)
    state_dir()/servers/.lock           held while a record is claimed, changed or removed

A start first *claims* its port (a record with no server yet), under the lock, so that two starts
on one port at the same moment cannot both pass: the second finds the first's claim and is refused.
Once vLLM is spawned the record names its process and when that process started, so a reused
process id is never taken for ours. A record whose server is gone, or whose claimer died before
spawning anything, is stale and removed whenever records are read.

A server is *ours* while the llmdesk that started it lives; when that llmdesk died (killed, crashed)
the server is a *leftover*, found at the next start and stopped or taken over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from llmdesk.core.base import locks, paths
from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.server.processes import (group_members, has_proc, is_same_process, looks_like_vllm, pid_alive,
                                           process_start)

log = logging.getLogger(__name__)

LOCK_WAIT_S = 10.0


@dataclass(frozen=True)
class ServerRecord:
    port: int
    host: str
    owner_pid: int  # the llmdesk process that started (or took over) the server
    owner_start: str | None  # processes.process_start(owner_pid) then
    claimed_at: float
    model: str | None = None
    served_model_name: str | None = None
    pid: int | None = None  # vLLM's API server, leader of its own process group; None while claiming
    pid_start: str | None = None
    started_at: float | None = None
    log: str | None = None
    # Sleep mode: vLLM listens on this loopback port, and the sleep gate of the owning llmdesk on `port`;
    # other llmdesk processes (`llmdesk server pause`) reach the gate's control routes with the token.
    vllm_port: int | None = None
    control_token: str | None = None

    @property
    def pgid(self) -> int | None:
        return self.pid

    @property
    def claiming(self) -> bool:
        return self.pid is None

    def owner_alive(self) -> bool:
        return is_same_process(self.owner_pid, self.owner_start)

    def server_alive(self) -> bool:
        """The server we spawned still runs: its leader is the same process, or the leader is gone and
        processes of its group are left (an engine core outlives a killed API server). The kernel never
        hands out an id that is still some group's id, so a group with the leader's id is that server's."""
        if self.pid is None:
            return False
        if pid_alive(self.pid):
            if self.pid_start is not None:
                return process_start(self.pid) == self.pid_start
            return not has_proc() or looks_like_vllm([self.pid])  # recorded without a start time
        return bool(group_members(self.pid))

    def holds_port(self) -> bool:
        """This record keeps its port from other starts: a claim by a living llmdesk, or a live server."""
        return self.owner_alive() if self.claiming else self.server_alive()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def records_dir() -> Path:
    return paths.state_dir() / "servers"


def record_file(port: int) -> Path:
    return records_dir() / f"{int(port)}.json"


class PortClaimed(ProblemError):
    def __init__(self, record: ServerRecord):
        doing = "is starting" if record.claiming else "runs"
        whose = "Another llmdesk" if record.owner_alive() else "An llmdesk that has since stopped"
        if record.owner_pid == os.getpid():
            whose = "This llmdesk"
        super().__init__(Problem(
            f"Port {record.port} is already used by llmdesk",
            f"{whose} (pid {record.owner_pid}) {doing} a vLLM server there"
            + (f" for {record.model}" if record.model else "") + ".",
            "Stop that server first, or choose another port."))
        self.record = record


# --- reading ----------------------------------------------------------------------------------

def _load(path: Path) -> ServerRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(ServerRecord)}
        record = ServerRecord(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None
    ints_ok = isinstance(record.port, int) and isinstance(record.owner_pid, int) and \
        (record.pid is None or (isinstance(record.pid, int) and record.pid > 0))
    return record if ints_ok and path.name == f"{record.port}.json" else None


def _write(record: ServerRecord) -> None:
    paths.write_private_json(record_file(record.port), record.as_dict())


def _locked() -> contextlib.AbstractContextManager[bool]:
    folder = paths.private_dir(records_dir())
    return locks.exclusive(folder / ".lock", LOCK_WAIT_S, Problem(
        "llmdesk's server records are busy", f"Another llmdesk has held {folder / '.lock'} for {LOCK_WAIT_S:g} s.",
        "Try again in a moment."))


def _live_unlocked() -> list[ServerRecord]:
    found = []
    folder = records_dir()
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        record = _load(path)
        if record is not None and record.holds_port():
            found.append(record)
            continue
        log.info("removing the stale server record %s", path.name)
        with contextlib.suppress(OSError):
            path.unlink()
    return found


def live_records() -> list[ServerRecord]:
    """Every server (or claim) of the app that is still there, oldest first; stale records are removed."""
    try:
        with _locked():
            records = _live_unlocked()
    except (OSError, ProblemError):
        return []
    return sorted(records, key=lambda r: r.claimed_at)


def newest_server() -> ServerRecord | None:
    """The server the app started last that is still running (for the default URL of chat and metrics)."""
    running = [r for r in live_records() if not r.claiming]
    return running[-1] if running else None


# --- changing ---------------------------------------------------------------------------------

def claim(host: str, port: int, model: str | None = None, served_model_name: str | None = None) -> ServerRecord:
    """Reserve `port` for a server this process is about to start; PortClaimed if one of ours holds it
    or is claiming it."""
    me = os.getpid()
    record = ServerRecord(port=int(port), host=host, owner_pid=me, owner_start=process_start(me),
                          claimed_at=time.time(), model=model, served_model_name=served_model_name)
    with _locked():
        existing = _load(record_file(port)) if record_file(port).exists() else None
        if existing is not None and existing.holds_port():
            raise PortClaimed(existing)
        _write(record)
    return record


def spawned(record: ServerRecord, pid: int, started_at: float, log_path: Path | None, *,
            vllm_port: int | None = None, control_token: str | None = None) -> ServerRecord:
    """The claimed port's server now runs as process `pid` (behind a sleep gate: vLLM on `vllm_port`)."""
    updated = replace(record, pid=pid, pid_start=process_start(pid), started_at=started_at,
                      log=str(log_path) if log_path else None, vllm_port=vllm_port, control_token=control_token)
    with _locked():
        _write(updated)
    return updated


def adopt(record: ServerRecord) -> ServerRecord:
    """This process takes over a leftover: it is no longer one."""
    me = os.getpid()
    updated = replace(record, owner_pid=me, owner_start=process_start(me))
    with _locked():
        current = _load(record_file(record.port))
        if current is None or current.pid != record.pid:
            raise ProblemError(Problem("That server is gone", f"Nothing of ours runs on port {record.port} now.",
                                       None))
        _write(updated)
    return updated


def release(record: ServerRecord) -> None:
    """Remove the record, if it is still this one (never another start's claim on the same port)."""
    with contextlib.suppress(OSError, ProblemError), _locked():
        current = _load(record_file(record.port))
        if current is not None and current.owner_pid == record.owner_pid and current.claimed_at == record.claimed_at:
            record_file(record.port).unlink()


__all__ = ["PortClaimed", "ServerRecord", "adopt", "claim", "live_records", "newest_server", "record_file",
           "records_dir", "release", "spawned"]
