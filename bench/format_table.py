"""Write llmdesk/core/fit/format_measurements.json from the GPU host's #21 runs (no GPU needed):

    python bench/format_table.py --speed docs/gpu-runs/2026-12-06-h100-format-speed.json --runs tests/data/vllm-runs \\
        --kernel-log fp8-block=docs/gpu-runs/2026-12-06-h100-l8b8l-fp8-block-cut-off.log \\
        --out llmdesk/core/fit/format_measurements.json

(tests/unit/test_format_measurements.py runs exactly this and compares with the bundled file.)

--speed: bench/format_speed.py's folder or JSON (format-speed.json and each server's log): output tokens/s at
1 and 64 requests and the kernels vLLM picked. Given again, a later run of the same card model adds the formats
the earlier ones lack, each with its run's date and the BF16 speed of that run (which it must have measured):
the fit compares such formats through BF16 (format_measurements.speed_ratio). --runs: fit-run records (NAME.json + NAME.log from
tests/gpu/fit_runs.py) of the same card: the kernels of the formats without a speed run. Each format is
named the way the fit names it (detect_format on the checkpoint's config), so the fit finds its row.
The card's compute capability comes from the records. An existing entry for another capability is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "gpu"))

from llmdesk.core.fit.format_measurements import format_id  # noqa: E402
from llmdesk.core.fit.quant import detect_format  # noqa: E402
from llmdesk.core.fit.vllm_kernel_log import kernel_choices  # noqa: E402

SHAPE = "Llama-3.1-8B"


def speed_format_id(name: str) -> str:
    """format_speed.py's names (bf16, fp8, awq, gptq4, w8a8) as the fit names them."""
    if name == "bf16":
        return format_id(detect_format({"torch_dtype": "bfloat16"}))
    from make_quant_checkpoint import quantization_config

    quant, dtype = quantization_config(name)
    return format_id(detect_format({"quantization_config": quant, "torch_dtype": dtype}))


def from_speed(folder: Path) -> tuple[dict, dict]:
    """(card facts, format id -> {kernels, tokens_per_s, bf16_tokens_per_s}) of one format_speed.py run (its folder
    or its JSON)."""
    run = json.loads((folder if folder.is_file() else folder / "format-speed.json").read_text())
    speeds = {name: {"1": round(entry["c1"]["output_throughput"], 1), "64": round(entry["c64"]["output_throughput"], 1)}
              for name, entry in run["formats"].items() if "c1" in entry and "c64" in entry}  # else it did not run
    formats = {}
    for name, entry in run["formats"].items():
        if name in speeds:
            formats[speed_format_id(name)] = {"kernels": [k for k, _ in entry.get("kernels", [])],
                                              "tokens_per_s": speeds[name], "measured_as": name,
                                              **({"bf16_tokens_per_s": speeds["bf16"]} if "bf16" in speeds else {})}
    return {"card": run["gpu"], "date": run["date"]}, formats


def with_later_run(card: dict, formats: dict, later: Path) -> None:
    """Adds the formats of a later run of the same card model that `formats` lacks, dated, bridged by its BF16."""
    later_card, later_formats = from_speed(later)
    if later_card["card"] != card["card"]:
        raise SystemExit(f"{later}: measured on {later_card['card']}, not {card['card']}: runs of one card model only")
    for key, entry in later_formats.items():
        if key not in formats:
            if "bf16_tokens_per_s" not in entry:
                raise SystemExit(f"{later}: no BF16 in that run to compare {entry['measured_as']} through")
            formats[key] = {**entry, "date": later_card["date"]}


def from_runs(folder: Path, card: str) -> tuple[str | None, dict]:
    """(compute capability "9.0", format id -> {kernels}) of the fit-run records made on `card`."""
    capability, formats = None, {}
    for record_path in sorted(folder.glob("*.json")):
        record = json.loads(record_path.read_text())
        if record.get("gpu", {}).get("name") != card:
            continue
        capability = ".".join(map(str, record["gpu"]["compute_capability"]))
        log = record_path.with_suffix(".log")
        kernels = [c.kernel for c in kernel_choices(log.read_text(errors="replace"))] if log.exists() else []
        fmt = detect_format(record["config"])
        if kernels and fmt.vllm_quantization and not (record.get("args") and "--quantization" in record["args"]):
            formats.setdefault(format_id(fmt), {"kernels": kernels, "measured_as": record["name"],
                                                **({"date": record["date"]} if record.get("date") else {})})
    return capability, formats


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", required=True, type=Path, action="append",
                    help="a format_speed.py run; again for a later run of the same card model (formats it adds)")
    ap.add_argument("--runs", type=Path, help="fit-run records of the same card (kernels of more formats)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--capability", help="the card's compute capability, e.g. 9.0, when no record names it")
    ap.add_argument("--kernel-log", action="append", default=[], metavar="FORMAT=LOG",
                    help="the kernels of a make_quant_checkpoint.py format from a start-up log without a record "
                         "(a run cut off after loading), e.g. fp8-block=docs/gpu-runs/….log")
    a = ap.parse_args()
    card, formats = from_speed(a.speed[0])
    for later in a.speed[1:]:
        with_later_run(card, formats, later)
    capability = a.capability
    if a.runs:
        found, kernels_only = from_runs(a.runs, card["card"])
        capability = capability or found
        for key, entry in kernels_only.items():
            if entry.get("date") == card["date"]:  # the entry's own date: only where it differs
                entry.pop("date")
            formats.setdefault(key, entry)
    for item in a.kernel_log:
        name, _, log = item.partition("=")
        kernels = [c.kernel for c in kernel_choices(Path(log).read_text(errors="replace"))]
        if kernels:
            formats.setdefault(speed_format_id(name), {"kernels": kernels, "measured_as": Path(log).name})
    if not capability:
        raise SystemExit("no record names the card's compute capability: pass --capability")
    table = json.loads(a.out.read_text()) if a.out.exists() else {}
    table = table if isinstance(table, dict) else {}
    table["source"] = ("bench/format_table.py from bench/format_speed.py (speed, kernels) and tests/gpu/fit_runs.py "
                       "records (kernels), vLLM 0.26.0")
    table.setdefault("capabilities", {})[capability] = {**card, "shape": SHAPE, "formats": dict(sorted(formats.items()))}
    a.out.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    for key, entry in sorted(formats.items()):
        speed = entry.get("tokens_per_s", {})
        print(f"{key:<18} {', '.join(entry['kernels']) or '(no kernel line)':<60} "
              f"c1 {speed.get('1', '—')}  c64 {speed.get('64', '—')}  {entry.get('date', card['date'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
