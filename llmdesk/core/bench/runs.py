"""Saved benchmark runs: one JSON file per run under the app's data folder (`bench/<id>.json`, private),
listed newest first, compared level by level, and exported as JSON (vLLM's key names) or CSV (one
row per level).

Files are read as untrusted: a run that is not JSON, not a run, or too big is skipped by `list_runs`
(and named in its `unreadable` list), never a crash.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.base.paths import data_dir, write_private_json
from llmdesk.core.bench.saturation import load_of
from llmdesk.core.bench.sweep import BenchRun

MAX_RUN_BYTES = 20 * 1024 * 1024
_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9]{6}$")
# The columns of a CSV export and of `llmdesk bench compare`, in order: (key, distribution part or None).
CSV_COLUMNS = (
    ("concurrency", None), ("rate", None), ("completed", None), ("failed", None), ("duration", None),
    ("request_throughput", None), ("output_throughput", None), ("total_token_throughput", None),
    ("request_goodput", None),
    *((metric, part) for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms") for part in ("mean", "p50", "p90", "p99")),
    ("mean_watts", None), ("energy_j_per_output_token", None), ("output_tokens_per_wh", None),
    ("cost_per_million_output_tokens", None),
)


def runs_dir() -> Path:
    return data_dir() / "bench"


def run_file(run_id: str) -> Path:
    if not _ID.match(run_id or ""):
        raise BadInput(Problem("No such benchmark run", f"{run_id!r} is not a run id.",
                               "See `llmdesk bench list` for the saved runs."))
    return runs_dir() / f"{run_id}.json"


def save_run(run: BenchRun) -> Path:
    path = run_file(run.id)
    write_private_json(path, run.as_dict())
    return path


@dataclass(frozen=True)
class RunListing:
    runs: list[BenchRun]
    unreadable: list[str]


def list_runs() -> RunListing:
    runs, unreadable = [], []
    folder = runs_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        run = _read(path)
        if run is None:
            unreadable.append(path.name)
        else:
            runs.append(run)
    runs.sort(key=lambda r: r.id, reverse=True)
    return RunListing(runs, unreadable)


def load_run(ref: str) -> BenchRun:
    """A run by id, by unique name, or by its place in `list_runs` (1 is the newest)."""
    listing = list_runs()
    if ref.isdigit() and 1 <= int(ref) <= len(listing.runs) and len(ref) < 6:
        return listing.runs[int(ref) - 1]
    by_id = [r for r in listing.runs if r.id == ref]
    by_name = [r for r in listing.runs if r.name == ref]
    found = by_id or by_name
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise BadInput(Problem(f"Several runs are called {ref!r}", "Their ids: " + ", ".join(r.id for r in found),
                               "Name the run by its id."))
    raise BadInput(Problem("No such benchmark run", f"No saved run has the id or name {ref!r}.",
                           "See `llmdesk bench list` for the saved runs."))


def delete_run(run_id: str) -> None:
    run_file(run_id).unlink(missing_ok=True)


def _read(path: Path) -> BenchRun | None:
    try:
        if path.stat().st_size > MAX_RUN_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not _ID.match(str(data.get("id"))) or not isinstance(data.get("levels"), list):
            return None
        run = BenchRun.from_dict(data)
        if not all(isinstance(level, dict) for level in run.levels):
            return None
        run.name = str(run.name)[:200]
        return run
    except (OSError, ValueError, TypeError):
        return None


def column_name(key: str, part: str | None) -> str:
    """A level figure's flat name: `output_throughput`, `ttft_ms_p99`."""
    return key if part is None else f"{key}_{part}"


def level_row(level: dict) -> dict[str, object]:
    row: dict[str, object] = {}
    for key, part in CSV_COLUMNS:
        value = level.get(key)
        if part is not None:
            value = value.get(part) if isinstance(value, dict) else None
        row[column_name(key, part)] = value
    return row


def to_csv(run: BenchRun) -> str:
    out = io.StringIO()
    rows = [level_row(level) for level in run.levels]
    writer = csv.DictWriter(out, fieldnames=[column_name(key, part) for key, part in CSV_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return out.getvalue()


def _csv_value(value: object) -> object:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: quote text that does.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def compare(runs: Sequence[BenchRun], metric: str = "output_throughput", part: str | None = None) -> dict:
    """One metric of several runs side by side, per load level: {"loads": [...], "runs": [{name, values}]}."""
    loads = sorted({load_of(level) for run in runs for level in run.levels})
    table = []
    for run in runs:
        by_load = {load_of(level): level for level in run.levels}
        values = []
        for load in loads:
            value = (by_load.get(load) or {}).get(metric)
            if part is not None and isinstance(value, dict):
                value = value.get(part)
            values.append(value if isinstance(value, (int, float)) else None)
        table.append({"id": run.id, "name": run.name, "values": values})
    return {"metric": column_name(metric, part), "loads": loads, "runs": table}
