"""A paused (pausing, resuming, awake) server's state in words, from the sleep gate's snapshot — the same for
the Server page's state line and `llmdesk server status|pause|resume`. Pure."""

from __future__ import annotations

from typing import Any, Mapping

_WHY = {"idle": " after its idle time", "request": " for a request", "control": " from the command line"}


def sleep_text(sleep: Mapping[str, Any], resume: str = "press Resume") -> str:
    """``sleep``: the gate's snapshot (plus the supervisor's gpu_freed_bytes, when it measured them);
    ``resume``: how this reader resumes it ("press Resume", "run llmdesk server resume")."""
    state = sleep.get("state")
    flight = sleep.get("in_flight") or 0
    last_pause, last_resume = sleep.get("last_pause") or {}, sleep.get("last_resume") or {}
    if state == "awake":
        text = "Awake" + (f", {flight} request(s) in flight" if flight else "")
        took = last_resume.get("seconds")
        return text + (f"; last resume took {took:.1f} s" if took is not None else "")
    why = _WHY.get(sleep.get("reason") or last_pause.get("reason") or "", "")
    if state == "pausing":
        return f"Pausing{why}: " + (f"waiting for {flight} request(s) in flight to finish…" if flight
                                    else "freeing the GPU…")
    if state == "resuming":
        return f"Resuming{why}: loading the model back onto the GPU…"
    took = last_pause.get("seconds")
    text = f"Paused{why}" + (f" in {took:.1f} s" if took is not None else "")
    freed = sleep.get("gpu_freed_bytes")
    if freed:
        text += f": {freed / 1024**3:.1f} GiB of GPU memory freed"
    if sleep.get("wake_on_request"):
        return text + f". The next request wakes it; or {resume}."
    return text + f". Requests are refused (503) until you {resume}."
