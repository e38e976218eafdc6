"""#20 on the GPU host: the command `llmdesk serve MODEL … --print-command` prints, started raw by a shell,
reaches /health and logs the same KV-cache size as `llmdesk serve MODEL …` with the same options.

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 tests/gpu/print_command_check.py \\
        --model /srv/models/llama-3.1-8b --out $OUT/printcmd

Writes printcmd.json (both KV-cache sizes, the times to /health, the printed line) and both logs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.serve_parity import HealthPoller, server_log_of, start_llmdesk, stop  # noqa: E402
from tests.fakes.standin_server import free_port  # noqa: E402

KV = re.compile(r"GPU KV cache size: ([\d,]+) tokens")
OPTIONS = ["--served-model-name", "parity", "--gpu-memory-utilization", "0.85", "--max-model-len", "4096"]


def kv_tokens(log: Path) -> int | None:
    found = KV.findall(log.read_text(errors="replace")) if log and log.exists() else []
    return int(found[-1].replace(",", "")) if found else None


def raw_start(printed: str, port: int, log: Path, tag: str, result: dict) -> None:
    """The printed line started by a shell, to /health; its KV-cache size from its log."""
    poller = HealthPoller(port)
    t0 = time.monotonic()
    raw = subprocess.Popen(["bash", "-c", "exec " + printed], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        result[f"{tag}_health_s"] = round(poller.wait(raw) - t0, 1)
        result[f"{tag}_kv_tokens"] = kv_tokens(log)
    except RuntimeError as exc:
        result[f"{tag}_error"] = str(exc)
    finally:
        stop(raw)
    print(f"{tag}: {result.get(f'{tag}_kv_tokens')} tokens, /health after {result.get(f'{tag}_health_s')} s", flush=True)


def llmdesk_start(a: argparse.Namespace, out: Path, result: dict) -> None:
    """`llmdesk serve` with the same options (start_llmdesk passes the name, the port and the share)."""
    import shutil

    import bench.serve_parity as parity

    parity.UTILISATION = 0.85
    proc = None
    try:
        proc, _, start = start_llmdesk(a.model, "parity", out / "llmdesk.stderr", extra=("--max-model-len", "4096"),
                                       runtime=a.runtime)
        result["llmdesk_health_s"] = start["launch_to_first_health_s"]
        log = server_log_of(out / "llmdesk.stderr")
        result["llmdesk_kv_tokens"] = kv_tokens(log)
        if log and log.exists():
            shutil.copy(log, out / "llmdesk-vllm.log")
    except RuntimeError as exc:
        result["llmdesk_error"] = str(exc)
    finally:
        if proc is not None:
            stop(proc)
    print(f"llmdesk: {result.get('llmdesk_kv_tokens')} tokens", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runtime", default=sys.executable, help="the Python with vLLM (a stand-in's for a dry run)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": a.model, "options": OPTIONS, "date": time.strftime("%Y-%m-%d")}
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    result["gpu"] = scan.gpus[0].name if scan.gpus else None
    port = free_port()
    printed = subprocess.run([sys.executable, "-m", "llmdesk", "serve", a.model, *OPTIONS, "--port", str(port),
                              "--runtime", a.runtime, "--print-command"], capture_output=True, text=True,
                             timeout=120)
    result["print_command_exit"] = printed.returncode
    result["printed"] = printed.stdout.strip()
    if printed.returncode != 0:
        result["error"] = printed.stderr[-2000:]
        (out / "printcmd.json").write_text(json.dumps(result, indent=1))
        return 1
    # The first start on a fresh host fills torch.compile's and vLLM's caches and leaves the KV cache a
    # little smaller (0.45% for the 8B on an H100); so a cold raw start first, then llmdesk, then raw again,
    # and llmdesk is compared with the warm raw start.
    for tag in ("raw_cold", "raw"):
        if tag == "raw":
            llmdesk_start(a, out, result)
        raw_start(result["printed"], port, out / f"{tag}.log", tag, result)
    raw_kv, ours = result.get("raw_kv_tokens"), result.get("llmdesk_kv_tokens")
    result["same_kv_cache"] = raw_kv is not None and raw_kv == ours
    (out / "printcmd.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1), flush=True)
    return 0 if result["same_kv_cache"] else 1


if __name__ == "__main__":
    sys.exit(main())
