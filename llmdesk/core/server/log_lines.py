"""vLLM's log lines, read and shortened for a narrow pane.

Every line vLLM 0.26 prints starts with ``(APIServer pid=845) INFO 11-27 22:32:58 [api_server.py:677] ``:
about 60 characters that are the same on every line, so a log pane beside the launch form showed only
them. ``compact`` keeps what a person reads — the time, the level when it is not INFO, the process when it
is not the API server, and the message (its first LONGEST characters); the whole line stays in the log file
and in what is copied.
"""

from __future__ import annotations

import re

# (APIServer pid=845) / (EngineCore_DP0 pid=12) / (Worker_TP1 pid=77)
_PROCESS = re.compile(r"^\((?P<process>[^)]*?)\s*pid=\d+\)\s?")
_RECORD = re.compile(r"^(?P<level>INFO|WARNING|ERROR|DEBUG|CRITICAL) \d\d-\d\d (?P<time>\d\d:\d\d:\d\d)"
                     r"(?:\.\d+)? \[[^\]]*\]\s?")
# uvicorn's own lines: "INFO:     127.0.0.1:53358 - "GET /v1/models HTTP/1.1" 200 OK"
_UVICORN = re.compile(r"^(?P<level>INFO|WARNING|ERROR|CRITICAL|DEBUG):\s+")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, where a runtime forces them (VLLM_LOGGING_COLOR=1)
_QUIET_PROCESS = "APIServer"  # the main process: most lines; the others are named
# vLLM's engine config is one line of ~3,000 characters: wrapped whole it filled the pane while starting
LONGEST = 240


def message_of(line: str) -> str:
    """The message alone, without the process and the level, date and source of vLLM's logger."""
    text = _PROCESS.sub("", line.strip(), count=1)
    return _RECORD.sub("", text.lstrip(), count=1).strip()


def compact(line: str) -> str:
    """``08:00:00 Starting vLLM server…``, ``22:34:27 ERROR [EngineCore_DP0] CUDA out of memory…``: the line
    as a person reads it. A line that is not vLLM's logger's (a traceback, a warning of Python's) comes
    unchanged but for the process tag."""
    text = _ANSI.sub("", line.rstrip("\r\n"))
    process = ""
    if found := _PROCESS.match(text):
        process = found.group("process")
        text = text[found.end():]
    if "\r" in text:  # a progress bar redrawn in place (tqdm through a pipe): what a terminal would show
        text = next((part for part in reversed(text.split("\r")) if part.strip()), "")
    record = _RECORD.match(text) or _UVICORN.match(text)
    parts = []
    if record:
        if "time" in record.groupdict():
            parts.append(record.group("time"))
        if record.group("level") != "INFO":
            parts.append(record.group("level"))
        text = text[record.end():]
    if process and process != _QUIET_PROCESS:
        parts.append(f"[{process}]")
    if len(text) > LONGEST:
        text = f"{text[:LONGEST]}… (+{len(text) - LONGEST:,} characters)"
    parts.append(text)
    return " ".join(parts)
