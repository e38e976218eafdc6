"""Throughput and start-up: raw `vllm serve` against `llmdesk serve`, same model, same flags (GPU host).

    source /srv/site/env.sh && PYTHONPATH=$PWD:$PYTHONPATH python3 bench/serve_parity.py \
        --model /srv/models/llama-3.2-1b --out $OUT/parity

Order: raw (cold: fills vLLM's compile cache), llmdesk, raw again; start-up and throughput are
compared between llmdesk and the second raw run, both warm. The raw server gets exactly the argv
llmdesk builds (core/launch.build_vllm_command), started the same way (own process group), so
the difference is llmdesk's supervision: reading the log, health polling, the pid file.
Launch-to-ready: spawn -> first /health 200 seen by a 50 ms poller (raw), spawn -> the URL that
`llmdesk serve` prints when its supervisor says ready (llmdesk). Throughput: vLLM's own
`vllm bench serve` (random 256-in/128-out, --ignore-eos) at each concurrency; --watched also
benches llmdesk while /metrics is scraped and parsed at 1 Hz (the Dashboard's load). Writes parity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmdesk.core.launch import LaunchConfig, build_vllm_command  # noqa: E402

PROMPTS = {1: 48, 16: 384, 64: 768}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(root: str, proc: subprocess.Popen, limit_s: float = 900) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        try:
            if httpx.get(root + "/health", timeout=1).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("server never became healthy")


def stop(proc: subprocess.Popen) -> None:
    """One SIGINT to the leader (vLLM, or llmdesk which then stops its vLLM), then the group is killed."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    time.sleep(3)  # GPU memory back before the next start


def start_raw(model: str, name: str, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    argv = build_vllm_command(LaunchConfig(model=model, served_model_name=name, port=port), python=sys.executable)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    ready = wait_health(f"http://127.0.0.1:{port}", proc)
    return proc, ready - t0


def start_llmdesk(model: str, name: str, port: int, log: Path) -> tuple[subprocess.Popen, float, float]:
    argv = [sys.executable, "-m", "llmdesk", "serve", model, "--served-model-name", name, "--port", str(port),
            "--runtime", sys.executable]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, start_new_session=True)
    while True:
        line = proc.stdout.readline()
        if line.startswith("http"):
            printed = time.monotonic()
            break
        if not line and proc.poll() is not None:
            raise RuntimeError(f"llmdesk serve exited with {proc.returncode}; see {log}")
    health = wait_health(f"http://127.0.0.1:{port}", proc)
    return proc, printed - t0, health - t0


class Watcher:
    """What the Dashboard does to the server: scrape and parse /metrics every second (issue #7)."""

    def __init__(self, port: int):
        import threading

        self.url = f"http://127.0.0.1:{port}/metrics"
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from llmdesk.core.metrics import MetricsWindow, parse_metrics

        window = MetricsWindow()
        with httpx.Client(timeout=5) as http:
            while not self._stop.wait(1.0):
                window.add(parse_metrics(http.get(self.url).text, at=time.monotonic()))
                self.scrapes += 1

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def bench(model: str, name: str, port: int, concurrency: int, out: Path, tag: str) -> dict:
    filename = f"{tag}-c{concurrency}.json"
    argv = ["vllm", "bench", "serve", "--backend", "vllm", "--model", model, "--served-model-name", name,
            "--host", "127.0.0.1", "--port", str(port), "--dataset-name", "random", "--random-input-len", "256",
            "--random-output-len", "128", "--ignore-eos", "--num-prompts", str(PROMPTS[concurrency]),
            "--max-concurrency", str(concurrency), "--seed", "0", "--save-result", "--result-dir", str(out),
            "--result-filename", filename, "--disable-tqdm"]
    with open(out / f"{tag}-c{concurrency}.log", "w") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=True)
    data = json.loads((out / filename).read_text())
    return {k: data.get(k) for k in ("output_throughput", "request_throughput", "median_ttft_ms", "median_tpot_ms",
                                     "completed", "duration")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default="parity")
    ap.add_argument("--out", required=True)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--servers", nargs="+", default=["llmdesk", "raw"], help="which to start, in order")
    ap.add_argument("--skip-cold", action="store_true", help="no cold raw start first (compile cache warm)")
    ap.add_argument("--watched", action="store_true",
                    help="also bench the llmdesk server while /metrics is scraped at 1 Hz (tag llmdesk-watched)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": a.model, "runs": {}}

    if not a.skip_cold:
        port = free_port()
        proc, cold = start_raw(a.model, a.name, port, out / "raw-cold.log")
        result["raw_cold_launch_to_ready_s"] = round(cold, 2)
        stop(proc)
        print(f"raw (cold) ready in {cold:.1f} s", flush=True)

    for tag in a.servers:
        port = free_port()
        if tag == "llmdesk":
            proc, ready, health = start_llmdesk(a.model, a.name, port, out / "llmdesk.log")
            result["llmdesk_launch_to_ready_s"] = round(ready, 2)
            result["llmdesk_launch_to_health_s"] = round(health, 2)
        else:
            proc, ready = start_raw(a.model, a.name, port, out / "raw.log")
            result["raw_launch_to_ready_s"] = round(ready, 2)
        print(f"{tag} ready in {ready:.1f} s", flush=True)
        try:
            for c in a.concurrency:
                runs = [bench(a.model, a.name, port, c, out, f"{tag}-r{r}") for r in range(a.repeats)]
                result["runs"][f"{tag}-c{c}"] = runs
                if a.watched and tag == "llmdesk":
                    with Watcher(port) as watcher:
                        watched = [bench(a.model, a.name, port, c, out, f"watched-r{r}") for r in range(a.repeats)]
                    result["runs"][f"llmdesk-watched-c{c}"] = watched
                    print(f"llmdesk watched ({watcher.scrapes} scrapes) c={c}: "
                          + ", ".join(f"{r['output_throughput']:.0f}" for r in watched) + " tok/s", flush=True)
                print(f"{tag} c={c}: " + ", ".join(f"{r['output_throughput']:.0f}" for r in runs) + " tok/s",
                      flush=True)
        finally:
            stop(proc)

    (out / "parity.json").write_text(json.dumps(result, indent=1))
    if set(a.servers) != {"raw", "llmdesk"}:
        return 0
    summary = {}
    for c in a.concurrency:
        best = {tag: max(r["output_throughput"] for r in result["runs"][f"{tag}-c{c}"]) for tag in ("raw", "llmdesk")}
        summary[f"c{c}"] = {**best, "ratio": round(best["llmdesk"] / best["raw"], 4)}
    result["summary"] = summary
    result["startup_overhead_s"] = round(result["llmdesk_launch_to_ready_s"] - result["raw_launch_to_ready_s"], 2)
    (out / "parity.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({"summary": summary, "startup_overhead_s": result["startup_overhead_s"],
                      "raw_launch_to_ready_s": result["raw_launch_to_ready_s"],
                      "llmdesk_launch_to_ready_s": result["llmdesk_launch_to_ready_s"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
