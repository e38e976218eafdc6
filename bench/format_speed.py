"""Output tokens/s of one model shape in several checkpoint formats, on one card in one run (#21: speed
enters the pick). GPU host:

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 bench/format_speed.py \\
        --base /srv/models/llama-3.1-8b --work /srv/llmdesk/speed --out $OUT/format-speed

For each format (default BF16, FP8, AWQ 4-bit, GPTQ 4-bit, W8A8 INT8): the checkpoint is made from the
base's config by tests/gpu/make_quant_checkpoint.py (BF16 is the base itself), one raw `vllm serve`
with llmdesk's argv is started on it (--max-model-len 4096, --gpu-memory-utilization 0.85), llmdesk's
benchmark (core/bench, as `llmdesk bench`) runs concurrency 1 and 64 with random 256 in / 128 out, the
server stops, the checkpoint is deleted (the host's disk holds one beside the base). Every figure is in
format-speed.json with the card, and each server's log is kept (its kernel choice lines included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_parity import llmdesk_level, start_server  # noqa: E402
from bench.serve_parity import stop  # noqa: E402

FORMATS = ("bf16", "fp8", "awq", "gptq4", "w8a8")
LEVELS = {1: 32, 64: 256}


def make(base: Path, fmt: str, work: Path) -> Path:
    if fmt == "bf16":
        return base
    out = work / f"q-{fmt}"
    subprocess.run([sys.executable, str(ROOT / "tests" / "gpu" / "make_quant_checkpoint.py"), "--base", str(base),
                    "--format", fmt, "--out", str(out)], check=True, capture_output=True, text=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="a BF16 checkpoint (config, tokenizer and weights)")
    ap.add_argument("--work", required=True, help="where the quantized checkpoints are made, one at a time")
    ap.add_argument("--out", required=True)
    ap.add_argument("--formats", nargs="+", default=list(FORMATS))
    a = ap.parse_args()
    base, work, out = Path(a.base), Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    from llmdesk.core.fit.vllm_kernel_log import kernel_choices
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    result: dict = {"base": str(base), "gpu": scan.gpus[0].name if scan.gpus else None, "driver": scan.driver_version,
                    "date": time.strftime("%Y-%m-%d"), "levels": LEVELS, "formats": {}}

    def save() -> None:
        (out / "format-speed.json").write_text(json.dumps(result, indent=1))

    for fmt in a.formats:
        entry: dict = result["formats"].setdefault(fmt, {})
        folder = None
        try:
            t0 = time.monotonic()
            folder = make(base, fmt, work)
            entry["make_s"] = round(time.monotonic() - t0, 1)
            log = out / f"server-{fmt}.log"
            server, port, started, poller = start_server(str(folder), "speed", log)
            try:
                entry["ready_s"] = round(poller.wait(server) - started, 1)
                for c, prompts in LEVELS.items():
                    level = llmdesk_level(port, "speed", c, prompts, 7 + c, None)
                    entry[f"c{c}"] = {k: level.get(k) for k in ("output_throughput", "median_ttft_ms",
                                                                 "median_tpot_ms", "completed")}
                    print(f"{fmt} c={c}: {level['output_throughput']:.0f} output tok/s", flush=True)
            finally:
                stop(server)
            entry["kernels"] = [[k.kernel, k.used_for] for k in kernel_choices(log.read_text(errors="replace"))]
        except Exception as exc:  # a format vLLM refuses is a result too
            entry["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            print(f"{fmt}: {entry['error']}", flush=True)
        finally:
            if folder is not None and folder != base:
                shutil.rmtree(folder, ignore_errors=True)
            save()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
