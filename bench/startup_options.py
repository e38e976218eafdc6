"""Where vLLM's start-up seconds go, and what each start-up option buys and costs (#23). GPU host:

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 bench/startup_options.py \\
        --model /srv/models/llama-3.1-8b --work /srv/llmdesk/startup --out $OUT/startup-options

Every start goes through llmdesk's own Supervisor (the code behind the Server page and `llmdesk serve`),
so the phases are the ones the app shows: seconds per phase from llmdesk's clock, vLLM's own figures,
compile cache warm or cold. One vLLM cache folder (VLLM_CACHE_ROOT) is made empty first, so the first
start is cold ("fresh": the page cache is dropped too where the host allows it); then the default
settings twice (warm), each option, and the default once more last (drift). After each start llmdesk's
benchmark (core/bench) measures output tokens/s at concurrency 1 and 64 (random 256 in / 128 out), so
no option is bought with speed. Everything goes to startup-options.json with the card and the date.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_parity import llmdesk_level  # noqa: E402
from tests.fakes.standin_server import free_port  # noqa: E402

LEVELS = {1: 20, 64: 320}  # c=1: 20 replies of 128 tokens (~17 s on an H100); c=64: five rounds
# name -> (LaunchConfig changes, extra vLLM arguments)
OPTIONS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "default": ({}, ()),
    "graphs-16": ({"cudagraph_max_size": 16}, ()),  # one user, a few agents
    "graphs-64": ({"cudagraph_max_size": 64}, ()),  # up to the benchmark's own 64
    "fork": ({"fork_engine": True}, ()),  # the engine core forked from the API server: one import of vLLM
    "fork+graphs-64": ({"fork_engine": True, "cudagraph_max_size": 64}, ()),
    "prefetch": ({}, ("--safetensors-load-strategy", "prefetch")),
    "fastsafetensors": ({}, ("--load-format", "fastsafetensors")),
    "eager": ({"enforce_eager": True}, ()),  # no compile, no graphs: the old "fast start", for contrast
    # vLLM imported before Start (core/server/preload.py): the import is timed, and the idle process's memory
    "preload": ({}, ()),
    "fork+preload": ({"fork_engine": True}, ()),
    "fork+preload+graphs-64": ({"fork_engine": True, "cudagraph_max_size": 64}, ()),  # every saving at once
}
PRELOADED = ("preload", "fork+preload", "fork+preload+graphs-64")
# Most telling first: a device session may end the list early (--budget-s); the default once more in the middle
# tells the drift between starts of the same settings.
DEFAULT_ORDER = ("fresh", "default", "fork+preload", "fork+preload+graphs-64", "preload", "fork", "graphs-16",
                 "default", "eager", "fork+graphs-64", "graphs-64", "prefetch", "fastsafetensors", "default")


def rss_mb(pid: int) -> float | None:
    """Resident memory of one process (the idle preloaded vLLM), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


async def one_start(model: str, option: str, log_dir: Path, *, bench: bool, python: str) -> dict:
    from llmdesk.core.server.launch import LaunchConfig
    from llmdesk.core.server.supervisor import ServerState, Supervisor, start_estimate

    changes, extra = OPTIONS["default" if option == "fresh" else option]
    config = LaunchConfig(model=model, served_model_name="startup", port=free_port(), gpu_memory_utilization=0.85,
                          max_model_len=4096, extra_args=extra, **changes)
    entry: dict = {"option": option, "config": {k: v for k, v in dataclasses.asdict(config).items()
                                                if k in ("cudagraph_max_size", "fork_engine", "enforce_eager",
                                                         "extra_args")}}
    if option == "fresh":
        entry["page_cache_dropped"] = drop_page_cache()
    estimate = await asyncio.to_thread(start_estimate, config, None, option in PRELOADED)
    entry["expected"] = {"total_s": estimate.total_s, "compile_cache": estimate.compile_cache,
                         "basis": estimate.basis} if estimate else None
    sup = Supervisor(python)
    if option in PRELOADED:  # imported while the user would be reading the form: not in launch-to-ready
        t_import = time.monotonic()
        await sup.preload(config)
        ready = await asyncio.wait_for(asyncio.shield(sup._preload.ready), 300)
        entry["preload"] = {"import_s": round(time.monotonic() - t_import, 2), "ready": ready,
                            "idle_rss_mb": rss_mb(sup._preload.proc.pid)}
    t0 = time.monotonic()
    status = await sup.start(config, timeout_s=900)
    entry["launch_to_ready_s"] = round(time.monotonic() - t0, 2)
    if sup.log_path is not None:
        shutil.copy(sup.log_path, log_dir / f"{len(list(log_dir.glob('*.log'))):02d}-{option}.log")
    if status.state is not ServerState.READY:
        entry["error"] = status.diagnosis.problem.title if status.diagnosis else f"state {status.state.value}"
        await sup.stop()
        return entry
    entry["timeline"] = status.timeline.to_json()
    try:
        if bench:
            for c, prompts in LEVELS.items():
                level = await asyncio.to_thread(llmdesk_level, config.port, "startup", c, prompts, 11 + c, None)
                entry[f"c{c}"] = {k: level.get(k) for k in ("output_throughput", "median_ttft_ms", "median_tpot_ms",
                                                             "completed")}
    finally:
        stopped = await sup.stop()
        entry["gpu_memory_released"] = stopped.gpu_memory_released
    return entry


def table(runs: list[dict]) -> str:
    base = next((r for r in runs[1:] if r["option"] == "default" and "c1" in r), None)
    rows = ["| # | option | ready s | " + " | ".join(("starting", "engine", "weights", "compile", "profile", "graphs",
                                                        "warm-up", "API")) + " | cache | c=1 tok/s | c=64 tok/s |",
            "|" + "---|" * 14]
    keys = ("starting", "starting the engine", "loading weights", "compiling", "profiling memory",
            "capturing CUDA graphs", "warming up kernels", "starting the API")
    for i, r in enumerate(runs):
        phases = dict((k, v) for k, v in (r.get("timeline") or {}).get("phases", []))
        speeds = []
        for c in (1, 64):
            value = (r.get(f"c{c}") or {}).get("output_throughput")
            ref = (base or {}).get(f"c{c}", {}).get("output_throughput")
            speeds.append("—" if value is None else f"{value:,.0f}" + (f" ({value / ref - 1:+.1%})" if ref else ""))
        rows.append(f"| {i} | {r['option']} | {r.get('launch_to_ready_s', '—')} | "
                    + " | ".join(f"{phases[k]:.1f}" if k in phases else "—" for k in keys)
                    + f" | {(r.get('timeline') or {}).get('compile_cache') or '—'} | {speeds[0]} | {speeds[1]} |")
    return "\n".join(rows)


async def main_async(a: argparse.Namespace) -> int:
    from llmdesk.core.machine.gpus import scan_gpus

    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    cache = work / "vllm-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    os.environ["VLLM_CACHE_ROOT"] = str(cache)  # inherited by each server (child_environment keeps it)
    os.environ.setdefault("LLMDESK_HOME", str(work / "home"))  # the start history begins empty
    scan = scan_gpus()
    result = {"model": a.model, "gpu": scan.gpus[0].name if scan.gpus else None, "driver": scan.driver_version,
              "date": time.strftime("%Y-%m-%d"), "levels": LEVELS, "runs": []}
    deadline = time.monotonic() + a.budget_s
    for option in a.options:
        if time.monotonic() > deadline:
            result["cut_off_before"] = option
            break
        try:
            entry = await one_start(a.model, option, out, bench=not a.no_bench, python=a.python)
        except Exception as exc:  # noqa: BLE001 - an option vLLM refuses is a result too
            entry = {"option": option, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        result["runs"].append(entry)
        (out / "startup-options.json").write_text(json.dumps(result, indent=1))
        print(f"{option}: ready {entry.get('launch_to_ready_s')} s, "
              f"{(entry.get('timeline') or {}).get('compile_cache')}, "
              f"c1 {(entry.get('c1') or {}).get('output_throughput')}, c64 {(entry.get('c64') or {}).get('output_throughput')}"
              f"{', ' + entry['error'] if 'error' in entry else ''}", flush=True)
    print(table(result["runs"]))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--options", nargs="+", default=list(DEFAULT_ORDER),
                    help=f"in order; 'fresh' is the default with an empty cache ({', '.join(OPTIONS)})")
    ap.add_argument("--budget-s", type=float, default=1500, help="start no option after this many seconds")
    ap.add_argument("--no-bench", action="store_true", help="start-up only")
    ap.add_argument("--python", default=sys.executable, help="the Python with vLLM (default: this one)")
    a = ap.parse_args()
    unknown = set(a.options) - set(OPTIONS) - {"fresh"}
    if unknown:
        ap.error(f"unknown options: {', '.join(sorted(unknown))}")
    return asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())
