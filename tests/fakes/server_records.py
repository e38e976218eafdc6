"""The server records the supervisor leaves in this test's state folder (core/server/records.py)."""

from __future__ import annotations

import json
from pathlib import Path

from llmdesk.core.server.records import records_dir


def record_files() -> list[Path]:
    return sorted(records_dir().glob("*.json")) if records_dir().is_dir() else []


def only_record() -> dict:
    files = record_files()
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def no_records() -> bool:
    return record_files() == []


def write_live_record(port: int, host: str = "127.0.0.1", served_model_name: str = "demo") -> Path:
    """A record of a server that counts as running: it names this test's own process."""
    import os
    import time

    from llmdesk.core.server.records import ServerRecord, record_file
    from llmdesk.core.server.processes import process_start

    me = os.getpid()
    record = ServerRecord(port=port, host=host, owner_pid=me, owner_start=process_start(me), claimed_at=time.time(),
                          served_model_name=served_model_name, pid=me, pid_start=process_start(me),
                          started_at=time.time())
    path = record_file(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.as_dict()))
    return path
