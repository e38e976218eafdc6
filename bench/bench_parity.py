"""llmdesk's benchmark against `vllm bench serve` 0.26.0, side by side on one server (GPU host), and the
energy check (#19's goals).

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 bench/bench_parity.py \
        --model /srv/models/llama-3.1-8b --out $OUT/bench-parity

One raw `vllm serve` (llmdesk's argv and environment, --gpu-memory-utilization 0.85 and
--max-model-len 4096: the model's own 131,072 tokens do not fit an H100's KV cache); at each
concurrency (1, 16, 64) vLLM's own benchmark (its code, imported once and run in this process) and
llmdesk's sweep (core/bench, the code behind `llmdesk bench` and the Benchmark page) send the same
workload: random 256 in / 128 out, --ignore-eos, the same prompt count, a warm-up of `concurrency`
requests. They run back to back, in alternating order, round after round, so both meet the same
card, clocks and server state; a first pass at c=64 warms the server (CUDA graphs, caches) and is
not counted. Compared per round: output throughput, median TTFT and median TPOT; goal ±3%.

A third client, "vllm-noenv", is vLLM's own benchmark again with one change: its aiohttp session made
with trust_env=False, as llmdesk's is. vLLM's session has trust_env=True, so aiohttp looks up the
proxy settings and ~/.netrc for every request inside the span vLLM times as TTFT (~0.55 ms a request
on the development VM against a stand-in, i.e. 3% of an 8B's TTFT at concurrency 1). The three
clients run back to back in an order that rotates with the round and the level.

Energy: each llmdesk level reads GPU 0's total-energy counter (NVML) before and after, and samples
its power every 100 ms meanwhile; the counter's joules / seconds must agree with the sampled mean
power within 5%. Writes bench-parity.json and the server's log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve_parity import HealthPoller, stop  # noqa: E402
from llmdesk.core.server.launch import LaunchConfig, build_vllm_command, child_environment  # noqa: E402
from tests.fakes.standin_server import free_port  # noqa: E402

PROMPTS = {1: 32, 16: 256, 64: 768}
CLIENTS = ("vllm", "llmdesk", "vllm-noenv")
INPUT, OUTPUT = 256, 128
KEYS = {"output_throughput": ("output_throughput", None), "median_ttft_ms": ("ttft_ms", "p50"),
        "median_tpot_ms": ("tpot_ms", "p50"), "p99_ttft_ms": ("ttft_ms", "p99"), "p99_tpot_ms": ("tpot_ms", "p99"),
        "median_itl_ms": ("itl_ms", "p50"), "request_throughput": ("request_throughput", None),
        "completed": ("completed", None), "duration": ("duration", None),
        "total_input_tokens": ("total_input_tokens", None), "total_output_tokens": ("total_output_tokens", None)}


def start_server(model: str, name: str, log: Path, tensor_parallel_size: int = 1, quantization: str | None = None):
    import os
    import subprocess

    port = free_port()
    config = LaunchConfig(model=model, served_model_name=name, port=port, gpu_memory_utilization=0.85,
                          max_model_len=4096, tensor_parallel_size=tensor_parallel_size, quantization=quantization)
    argv = build_vllm_command(config, python=sys.executable)
    env = child_environment(config, os.environ)
    poller = HealthPoller(port)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return proc, port, t0, poller


class VllmBench:
    """vLLM's own serving benchmark, imported once and run in this process."""

    def __init__(self, model: str, name: str, out: Path):
        from vllm.benchmarks.serve import add_cli_args, main
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        self.parser = FlexibleArgumentParser()
        add_cli_args(self.parser)
        self.main = main
        self.model, self.name, self.out = model, name, out

    def run(self, port: int, concurrency: int, prompts: int, tag: str, seed: int, trust_env: bool = True) -> dict:
        argv = ["--backend", "vllm", "--model", self.model, "--served-model-name", self.name, "--host", "127.0.0.1",
                "--port", str(port), "--dataset-name", "random", "--random-input-len", str(INPUT),
                "--random-output-len", str(OUTPUT), "--ignore-eos", "--num-prompts", str(prompts),
                "--max-concurrency", str(concurrency), "--num-warmups", str(concurrency), "--seed", str(seed),
                "--disable-tqdm", "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
                "--temperature", "0", "--save-detailed"]  # detailed: each request's TTFT comes back
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured), _sessions_trusting_env(trust_env):
            data = self.main(self.parser.parse_args(argv))
        (self.out / f"{tag}.log").write_text(captured.getvalue())
        out = {k: data.get(k) for k in KEYS}
        out["ttfts_ms"] = [round(t * 1000, 3) for t in data.get("ttfts") or []]  # each request's, to see the shape
        return out


@contextlib.contextmanager
def _sessions_trusting_env(trust_env: bool):
    """vLLM's benchmark with its aiohttp sessions' trust_env forced (False: as llmdesk's session)."""
    import aiohttp

    if trust_env:
        yield
        return
    made = aiohttp.ClientSession.__init__

    def init(self, *args, **kwargs):
        kwargs["trust_env"] = False
        made(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = init
    try:
        yield
    finally:
        aiohttp.ClientSession.__init__ = made


def llmdesk_level(port: int, name: str, concurrency: int, prompts: int, seed: int, meter) -> dict:
    from llmdesk.core.bench.sweep import BenchConfig, run_bench
    from llmdesk.core.bench.workload import Workload

    config = BenchConfig(f"http://127.0.0.1:{port}", model=name, concurrencies=(concurrency,),
                         workload=Workload(input_len=INPUT, output_len=OUTPUT, prompts=prompts, warmups=concurrency,
                                           seed=seed))
    run = asyncio.run(run_bench(config, energy_meter=meter))
    level = run.levels[0]
    out = {}
    for key, (field, part) in KEYS.items():
        value = level.get(field)
        out[key] = value.get(part) if part else value
    energy = level.get("energy") or {}
    out["energy"] = energy
    out["energy_j_per_output_token"] = level.get("energy_j_per_output_token")
    out["output_tokens_per_wh"] = level.get("output_tokens_per_wh")
    out["kv_cache_peak"] = (level.get("server") or {}).get("kv_cache_peak")
    if energy.get("sampled_mean_watts"):
        out["counter_vs_sampled_power"] = energy["mean_watts"] / energy["sampled_mean_watts"] - 1
    return out


COMPARISONS = (("llmdesk", "vllm"), ("llmdesk", "vllm-noenv"), ("vllm-noenv", "vllm"))


def summarise(runs: dict, concurrencies: list[int]) -> dict:
    """Per level: each client's median over the rounds, and for each pair the per-round difference
    (first against second) and its median."""
    summary = {}
    for c in concurrencies:
        row: dict = {}
        for key in ("output_throughput", "median_ttft_ms", "median_tpot_ms"):
            entry: dict = {client: statistics.median(r[key] for r in runs[f"{client}-c{c}"])
                           for client in CLIENTS if runs.get(f"{client}-c{c}")}
            for a, b in COMPARISONS:
                pairs = list(zip(runs.get(f"{a}-c{c}", []), runs.get(f"{b}-c{c}", [])))
                ratios = [x[key] / y[key] - 1 for x, y in pairs if y.get(key) and x.get(key) is not None]
                if ratios:
                    entry[f"{a} vs {b}"] = {"per_round": [round(r, 4) for r in ratios],
                                            "median": round(statistics.median(ratios), 4)}
            row[key] = entry
        ours = runs.get(f"llmdesk-c{c}", [])
        row["energy_counter_vs_sampled_power"] = [round(d["counter_vs_sampled_power"], 4) for d in ours
                                                  if d.get("counter_vs_sampled_power") is not None]
        row["energy_j_per_output_token"] = [d.get("energy_j_per_output_token") for d in ours]
        if row["output_throughput"]:
            summary[f"c{c}"] = row
    return summary


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default="bench")
    ap.add_argument("--out", required=True)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every run's prompt count")
    ap.add_argument("--budget-s", type=float, default=1500, help="skip rounds that would not finish within this")
    ap.add_argument("--tensor-parallel-size", type=int, default=1, help="#24: the server on this many GPUs")
    ap.add_argument("--quantization", default=None, help="e.g. fp8 (on the fly)")
    a = ap.parse_args()
    prompts = {c: max(c, round(PROMPTS.get(c, 4 * c) * a.scale)) for c in a.concurrency}
    began = time.monotonic()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from llmdesk.core.bench.energy import EnergyMeter
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    result: dict = {"model": a.model, "input_len": INPUT, "output_len": OUTPUT, "prompts": prompts,
                    "gpu": scan.gpus[0].name if scan.gpus else None, "driver": scan.driver_version,
                    "tensor_parallel_size": a.tensor_parallel_size, "quantization": a.quantization,
                    "date": time.strftime("%Y-%m-%d"), "runs": {}, "order": []}

    def save() -> None:
        result["summary"] = summarise(result["runs"], a.concurrency)
        (out / "bench-parity.json").write_text(json.dumps(result, indent=1))

    server, port, t0, poller = start_server(a.model, a.name, out / "server.log", a.tensor_parallel_size,
                                            a.quantization)
    meter = EnergyMeter(list(range(a.tensor_parallel_size)))  # every card of the server
    try:
        vllm_bench = VllmBench(a.model, a.name, out)
        result["server_ready_s"] = round(poller.wait(server) - t0, 1)
        print(f"server ready in {result['server_ready_s']} s", flush=True)
        warm = llmdesk_level(port, a.name, 64, 256, 999, meter)
        print(f"warm-up pass: {warm['output_throughput']:.0f} tok/s", flush=True)
        per_round = None
        for r in range(a.rounds):
            started = time.monotonic()
            if per_round and time.monotonic() - began + per_round > a.budget_s:
                print(f"round {r} skipped: out of time", flush=True)
                break
            for i, c in enumerate(a.concurrency):
                shift = (r + i) % len(CLIENTS)
                for tag in CLIENTS[shift:] + CLIENTS[:shift]:
                    seed = 1000 * r + 100 * CLIENTS.index(tag) + c  # no two runs share prompts (prefix cache)
                    if tag.startswith("vllm"):
                        run = vllm_bench.run(port, c, prompts[c], f"{tag}-c{c}-r{r}", seed, trust_env=tag == "vllm")
                    else:
                        run = llmdesk_level(port, a.name, c, prompts[c], seed, meter)
                    result["runs"].setdefault(f"{tag}-c{c}", []).append(run)
                    result["order"].append(f"{tag}-c{c}-r{r}")
                    print(f"round {r} c={c} {tag}: {run['output_throughput']:.0f} tok/s, TTFT p50 "
                          f"{run['median_ttft_ms']:.1f} ms, TPOT p50 {run['median_tpot_ms']:.2f} ms"
                          + (f", {run['energy_j_per_output_token']:.4f} J/token, counter vs sampled power "
                             f"{run.get('counter_vs_sampled_power', float('nan')):+.2%}" if tag == "llmdesk"
                             and run.get("energy_j_per_output_token") else ""), flush=True)
                save()
            per_round = time.monotonic() - started
    finally:
        meter.close()
        stop(server)
        save()
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
