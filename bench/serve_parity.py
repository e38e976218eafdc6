"""Throughput and start-up: raw `vllm serve` against `llmdesk serve`, same model, same flags (GPU host).

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 bench/serve_parity.py \
        --model /srv/models/llama-3.2-1b --out $OUT/parity --watched

Both servers run at once on the same GPU (each with --gpu-memory-utilization 0.4, the only flag
changed from the defaults, the same for both), and the benchmark runs alternate between them, round
after round, in alternating order. A test at one time on one card has the same card, clocks and host
load for both; two starts one after the other on one card differed by 10 s and repeats at one
concurrency by 1.6x in earlier runs, which hid any difference. The raw server gets exactly the argv
and environment llmdesk builds (core/launch.build_vllm_command, child_environment), started the same
way (own process group), so the only difference is llmdesk's supervision: reading the log, health
polling, the pid file.

Throughput: vLLM's own benchmark (`vllm bench serve`'s code, vllm.benchmarks.serve, run in this
process so that vLLM is imported once, not per run): random 256 in / 128 out, --ignore-eos, a warm-up
of `concurrency` requests. --watched adds a run against llmdesk while `llmdesk metrics --watch
--interval 1` (the Dashboard's scrape, parse and NVML sampling) runs beside it.

Start-up: raw cold (fills vLLM's compile cache), then llmdesk, then (--restart-raw) raw again, each
with the other server idle beside it; --startup-rounds times only start-ups, each server alone.
llmdesk's own overhead is also measured directly: from its launch to its vLLM child existing, and
from the first /health 200 (a 50 ms poller) to the URL that `llmdesk serve` prints. Writes
parity.json (startup.json) and a log per server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmdesk.core.server.launch import LaunchConfig, build_vllm_command, child_environment  # noqa: E402
from tests.fakes.standin_server import free_port  # noqa: E402

PROMPTS = {1: 32, 16: 256, 64: 768}
UTILISATION = 0.4


class HealthPoller:
    """Notes when /health first answers 200, polling every 50 ms from the moment it is made."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/health"
        self.first_ok: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=1) as http:
            while not self._stop.is_set() and self.first_ok is None:
                try:
                    if http.get(self.url).status_code == 200:
                        self.first_ok = time.monotonic()
                except httpx.HTTPError:
                    pass
                self._stop.wait(0.05)

    def wait(self, proc: subprocess.Popen, limit_s: float = 900) -> float:
        end = time.monotonic() + limit_s
        while self.first_ok is None:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            if time.monotonic() > end:
                raise RuntimeError("server never became healthy")
            time.sleep(0.05)
        self._stop.set()
        return self.first_ok


def boot_clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_start(pid: int) -> float:
    """A process's start on boot_clock(), to 1/CLK_TCK s (/proc/PID/stat field 22)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def stop(proc: subprocess.Popen) -> None:
    """One SIGINT to the leader (vLLM, or llmdesk which then stops its vLLM), then the group is killed."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(3)  # GPU memory back before the next start


def start_raw(model: str, name: str, log: Path) -> tuple[subprocess.Popen, int, float, HealthPoller]:
    port = free_port()
    config = LaunchConfig(model=model, served_model_name=name, port=port, gpu_memory_utilization=UTILISATION)
    argv = build_vllm_command(config, python=sys.executable)
    env = child_environment(config, os.environ)  # exactly what llmdesk's supervisor gives its child
    poller = HealthPoller(port)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return proc, port, t0, poller


def start_llmdesk(model: str, name: str, log: Path, extra: tuple[str, ...] = (),
                  runtime: str = sys.executable) -> tuple[subprocess.Popen, int, dict]:
    port = free_port()
    argv = [sys.executable, "-m", "llmdesk", "serve", model, "--served-model-name", name, "--port", str(port),
            "--gpu-memory-utilization", str(UTILISATION), "--runtime", runtime, *extra]
    poller = HealthPoller(port)
    t0, t0_boot = time.monotonic(), boot_clock()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, start_new_session=True)
    spawned = None
    while spawned is None and proc.poll() is None:
        kids = child_pids(proc.pid)
        if kids:
            spawned = process_start(kids[0])
        time.sleep(0.01)
    while True:
        line = proc.stdout.readline()
        if line.startswith("http"):
            printed = time.monotonic()
            break
        if not line and proc.poll() is not None:
            raise RuntimeError(f"llmdesk serve exited with {proc.returncode}; see {log}")
    health = poller.wait(proc)
    return proc, port, {"launch_to_ready_s": round(printed - t0, 2),
                        "launch_to_vllm_spawned_s": round(spawned - t0_boot, 3) if spawned else None,
                        "health_to_ready_printed_s": round(printed - health, 3),
                        "launch_to_first_health_s": round(health - t0, 2)}


class Bench:
    """vLLM's own serving benchmark, imported once and run in this process."""

    def __init__(self, model: str, name: str, out: Path):
        from vllm.benchmarks.serve import add_cli_args, main
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        self.parser = FlexibleArgumentParser()
        add_cli_args(self.parser)
        self.main = main
        self.model, self.name, self.out = model, name, out

    def run(self, port: int, concurrency: int, tag: str, seed: int = 0) -> dict:
        argv = ["--backend", "vllm", "--model", self.model, "--served-model-name", self.name, "--host", "127.0.0.1",
                "--port", str(port), "--dataset-name", "random", "--random-input-len", "256",
                "--random-output-len", "128", "--ignore-eos", "--num-prompts", str(PROMPTS[concurrency]),
                "--max-concurrency", str(concurrency), "--num-warmups", str(concurrency), "--seed", str(seed),
                "--disable-tqdm", "--percentile-metrics", "ttft,tpot,itl,e2el"]
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            data = self.main(self.parser.parse_args(argv))
        (self.out / f"{tag}-c{concurrency}.log").write_text(captured.getvalue())
        keys = ("output_throughput", "request_throughput", "median_ttft_ms", "median_tpot_ms", "completed",
                "duration")
        return {k: data.get(k) for k in keys}


@contextlib.contextmanager
def watched(port: int, out: Path):
    """`llmdesk metrics --watch --interval 1 --json` against the server: what the Dashboard costs it."""
    path = out / "watcher.jsonl"
    with open(path, "a") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "llmdesk", "metrics", "--url", f"http://127.0.0.1:{port}",
                                 "--watch", "--interval", "1", "--json"], stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
        time.sleep(2)  # its first scrape in before the bench starts
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def paired_ratios(runs: dict, c: int, top: str, bottom: str) -> list[float]:
    """top/bottom throughput for each round in which both ran (the two ran back to back)."""
    a, b = runs.get(f"{top}-c{c}", []), runs.get(f"{bottom}-c{c}", [])
    return [x["output_throughput"] / y["output_throughput"] for x, y in zip(a, b)]


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


# Student's t at 97.5% by degrees of freedom (scipy is not in the GPU host's set); between and past the
# listed ones the next lower entry is used, which errs on the wide side
T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 11: 2.20,
        12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12, 17: 2.11, 18: 2.10, 19: 2.09, 20: 2.09, 25: 2.06, 30: 2.04}


def ratio_interval(ratios: list[float]) -> tuple[float, float] | None:
    """95% confidence interval of the geometric-mean ratio (t-interval on the logs of paired ratios)."""
    if len(ratios) < 2:
        return None
    logs = [math.log(r) for r in ratios]
    df = len(logs) - 1
    t = T975[max(k for k in T975 if k <= df)]
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    centre = statistics.fmean(logs)
    return math.exp(centre - half), math.exp(centre + half)


def summarise(runs: dict, concurrency: list[int]) -> dict:
    summary: dict = {}
    pairs: dict[str, list[float]] = {"llmdesk/raw": [], "watched/llmdesk": []}
    for c in concurrency:
        tput = {tag: [r["output_throughput"] for r in runs.get(f"{tag}-c{c}", [])]
                for tag in ("raw", "llmdesk", "llmdesk-watched")}
        row = {f"{tag}_median": round(statistics.median(v), 1) for tag, v in tput.items() if v}
        row.update({f"{tag}_best": round(max(v), 1) for tag, v in tput.items() if v})
        for key, top, bottom in (("llmdesk/raw", "llmdesk", "raw"), ("watched/llmdesk", "llmdesk-watched", "llmdesk")):
            ratios = paired_ratios(runs, c, top, bottom)
            if ratios:
                row[f"{key} per round"] = [round(r, 4) for r in ratios]
                row[f"{key} geomean"] = round(geomean(ratios), 4)
                interval = ratio_interval(ratios)
                if interval:
                    row[f"{key} ci95"] = [round(v, 4) for v in interval]
                pairs[key] += ratios
        summary[f"c{c}"] = row
    for key, ratios in pairs.items():
        if ratios:  # the spread of the pairs is what any claim about the ratio has to beat
            summary[f"{key} all pairs"] = {"n": len(ratios), "geomean": round(geomean(ratios), 4),
                                           "min": round(min(ratios), 4), "max": round(max(ratios), 4)}
            interval = ratio_interval(ratios)
            if interval:
                summary[f"{key} all pairs"]["ci95"] = [round(v, 4) for v in interval]
    return summary


def server_log_of(llmdesk_stderr: Path) -> Path | None:
    """The vLLM log `llmdesk serve` names on its "ready — log: PATH" line."""
    for line in llmdesk_stderr.read_text().splitlines():
        if "log: " in line:
            return Path(line.split("log: ", 1)[1].strip())
    return None


def llmdesk_own_s(start: dict) -> float:
    """llmdesk's part of a launch to ready: launch to vLLM spawned, plus first /health 200 to URL printed."""
    return start["launch_to_vllm_spawned_s"] + start["health_to_ready_printed_s"]


def startup_only(a: argparse.Namespace, out: Path) -> dict:
    """Launch-to-ready alone on the GPU: raw cold (fills the compile caches), then raw and llmdesk by turns.

    Raw goes first after the cold start: on an H200 the start after the cold one still spends 12-17 s in
    vLLM's kernel warm-up, whoever makes it, and later ones about 1 s, so that start is not a fair sample.
    """
    result: dict = {"model": a.model, "utilisation": UTILISATION, "starts": []}
    raw, _, t0, poller = start_raw(a.model, a.name, out / "start-raw-cold.log")
    try:
        result["raw_cold_launch_to_ready_s"] = round(poller.wait(raw) - t0, 2)
    finally:
        stop(raw)
    print(f"raw (cold) ready in {result['raw_cold_launch_to_ready_s']} s", flush=True)
    for i in range(a.startup_rounds):
        for tag in ("raw", "llmdesk") if i % 2 == 0 else ("llmdesk", "raw"):
            log = out / f"start-{tag}-{i}.log"
            if tag == "raw":
                proc, _, t0, poller = start_raw(a.model, a.name, log)
                try:
                    entry = {"launch_to_ready_s": round(poller.wait(proc) - t0, 2)}
                finally:
                    stop(proc)
            else:
                proc, _, entry = start_llmdesk(a.model, a.name, log)
                stop(proc)
                server_log = server_log_of(log)
                if server_log and server_log.exists():
                    (out / f"start-llmdesk-{i}-vllm.log").write_text(server_log.read_text())
            result["starts"].append({"server": tag, "round": i, **entry})
            print(f"start {i} {tag}: {entry}", flush=True)
            (out / "startup.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default="parity")
    ap.add_argument("--out", required=True)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every run's prompt count (longer runs)")
    ap.add_argument("--watched", action="store_true", help="also bench llmdesk while `llmdesk metrics --watch` runs")
    ap.add_argument("--restart-raw", action="store_true", help="finally restart raw (warm) to time its start")
    ap.add_argument("--budget-s", type=float, default=540, help="skip what would not finish within this")
    ap.add_argument("--startup-rounds", type=int, default=0,
                    help="only time start-ups: raw cold, then this many rounds of llmdesk and raw, each alone")
    a = ap.parse_args()
    for c in PROMPTS:
        PROMPTS[c] = max(c, round(PROMPTS[c] * a.scale))
    began = time.monotonic()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.startup_rounds:
        print(json.dumps(startup_only(a, out), indent=1))
        return 0
    result: dict = {"model": a.model, "utilisation_each": UTILISATION, "prompts": PROMPTS, "runs": {},
                    "order": []}

    def save() -> None:
        result["summary"] = summarise(result["runs"], a.concurrency)
        (out / "parity.json").write_text(json.dumps(result, indent=1))

    raw, raw_port, t0, poller = start_raw(a.model, a.name, out / "raw.log")
    servers = [raw]
    try:
        bench = Bench(a.model, a.name, out)  # vLLM's import overlaps the server's start
        result["raw_cold_launch_to_ready_s"] = round(poller.wait(raw) - t0, 2)
        print(f"raw (cold) ready in {result['raw_cold_launch_to_ready_s']} s", flush=True)
        desk, desk_port, timing = start_llmdesk(a.model, a.name, out / "llmdesk.log")
        servers.append(desk)
        result["llmdesk"] = timing
        print(f"llmdesk ready: {timing}", flush=True)
        ports = {"raw": raw_port, "llmdesk": desk_port}
        per_round = None
        for r in range(a.rounds):
            started = time.monotonic()
            if per_round and time.monotonic() - began + per_round > a.budget_s - (70 if a.restart_raw else 0):
                print(f"round {r} skipped: out of time", flush=True)
                break
            for c in a.concurrency:
                order = ["raw", "llmdesk"] if (r + c) % 2 == 0 else ["llmdesk", "raw"]
                if a.watched:
                    order.append("llmdesk-watched")
                for tag in order:
                    port = ports["raw" if tag == "raw" else "llmdesk"]
                    with watched(port, out) if tag == "llmdesk-watched" else contextlib.nullcontext():
                        # one prompt set per round and concurrency, the same for every server in it: no
                        # round finds the previous one's prompts in the prefix cache
                        run = bench.run(port, c, f"{tag}-r{r}", seed=100 * r + c)
                    result["runs"].setdefault(f"{tag}-c{c}", []).append(run)
                    result["order"].append(f"{tag}-c{c}-r{r}")
                    print(f"round {r} c={c} {tag}: {run['output_throughput']:.0f} tok/s", flush=True)
                save()
            per_round = time.monotonic() - started
        if a.restart_raw and time.monotonic() - began < a.budget_s - 70:
            stop(raw)
            servers.remove(raw)
            raw, raw_port, t0, poller = start_raw(a.model, a.name, out / "raw-warm.log")
            servers.append(raw)
            result["raw_warm_launch_to_ready_s"] = round(poller.wait(raw) - t0, 2)
            print(f"raw (warm) ready in {result['raw_warm_launch_to_ready_s']} s", flush=True)
    finally:
        for proc in servers:
            stop(proc)
        save()
    print(json.dumps({k: result.get(k) for k in ("summary", "llmdesk", "raw_cold_launch_to_ready_s",
                                                 "raw_warm_launch_to_ready_s")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
