"""The benchmark's load generator: its CPU time per streamed token, against the stand-in vLLM.

    python bench/loadgen_cpu.py [--concurrency 16,64] [--output-len 256] [--rate 2000] [--prompts N]
                                [--runs 3] [--profile] [--vllm-python PYTHON --tokenizer DIR]

The stand-in vLLM (tests/fakes/vllm_standin, a Python ThreadingHTTPServer) runs in its own process
group, so its CPU is NOT counted; it streams one server-sent event per token at ``--rate`` tokens/s per
request (first token after one interval). The load generator (``run_level`` of
llmdesk/core/bench/loadgen.py, on aiohttp) runs in this process; this process's CPU time
(user + system of all its threads, ``time.process_time``; child processes are not included) over the
``run_level`` call alone, divided by the tokens it streamed (``metrics.total_output_tokens``), is the
figure. Each case (concurrency) runs ``--runs`` times after one warm-up level; the median run is
reported. Goal (the benchmark issue): at most 25 µs per streamed token, so that 10,000 tokens/s
cost at most a quarter of a core; the exit status is 1 when a case misses it.

On a 2-core machine the stand-in shares the cores with the client and is itself the limit of tokens/s
delivered (``--rate`` × concurrency is what is asked; the delivered rate is printed as measured).
CPU per token depends on how many tokens each read from a socket brings: a saturated stand-in (the
default 2,000 tokens/s per request) sends them in bursts, several per read; at a rate it can keep
(e.g. ``--rate 100``) each token arrives alone and wakes the event loop by itself, which costs more
per token. vLLM sends one token per running request per engine step, all at once, which lies between.

``--vllm-python`` (a Python with vLLM installed, e.g. a throwaway venv; it needs no GPU) also measures
vLLM's own bench client, ``vllm bench serve --backend vllm --dataset-name random --random-input-len 32
--random-output-len OUTPUT_LEN --ignore-eos --max-concurrency C --disable-tqdm --tokenizer DIR``
(``--tokenizer``: any local Hugging Face tokenizer folder, e.g. one made by make_tiny_llama.py; the
stand-in ignores the prompt's content), against the same stand-in, after llmdesk's runs of each
case. Its process also imports vllm and torch (seconds of CPU), so its figure is the MARGINAL cost:
the CPU time (user + system, from ``os.wait4``) of a run with 2N prompts minus that of a run with N
(N = ``--prompts``), divided by the extra tokens streamed; ``--runs`` pairs, the median pair is
reported. That difference still holds vLLM's per-prompt work outside its request loop: sampling the
random dataset and, because the stand-in's /tokenize counts differently from the tokenizer (a real
server with the same tokenizer skips it), re-aligning every prompt with a /tokenize and a
/detokenize request. So the child also records its own CPU time (``time.process_time``) inside
vLLM's ``benchmark()`` (the request loop and its metrics, the counterpart of ``run_level``) and
inside the re-alignment; the row gives the marginal figure less the re-alignment, and the
``benchmark()`` figure of the 2N run beside it.

``--profile`` runs one extra level per case under cProfile and prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from llmdesk.core.bench.loadgen import Target, run_level  # noqa: E402
from llmdesk.core.bench.workload import Request  # noqa: E402

GOAL_US = 25.0
PROMPT = list(range(1, 33))  # 32 token ids; the stand-in does not read them


@contextlib.contextmanager
def standin(token_rate: int) -> Iterator[str]:
    from tests.fakes.standin_server import running_standin

    with tempfile.TemporaryDirectory() as folder, \
            running_standin(Path(folder), env={"FAKE_VLLM_TOKEN_RATE": str(token_rate)}) as root:
        yield root


def level(root: str, concurrency: int, prompts: int, output_len: int, profile: cProfile.Profile | None = None):
    """(tokens, wall s, CPU s) of one run_level call."""
    requests = [Request(PROMPT, output_len, len(PROMPT))] * prompts
    target = Target(root, "demo")

    async def go():
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        try:
            result = await run_level(target, requests, concurrency=concurrency)
        finally:
            if profile is not None:
                profile.disable()
        return result, time.perf_counter() - wall0, time.process_time() - cpu0

    result, wall, cpu = asyncio.run(go())
    m = result.metrics
    if m.failed:
        raise SystemExit(f"c={concurrency}: {m.failed} requests failed: {m.errors[:3]}")
    if m.total_output_tokens != prompts * output_len:
        raise SystemExit(f"c={concurrency}: {m.total_output_tokens} tokens streamed, {prompts * output_len} asked")
    return m.total_output_tokens, wall, cpu


# Run in the vLLM Python: `vllm bench serve` with its argv, recording this process's CPU time inside
# benchmark() (the request loop and its metrics) and inside the prompts' re-alignment to the server's
# tokenizer, and the figures benchmark() returns; printed as one JSON line after the marker.
_VLLM_CHILD = r"""
import json, sys, time
import vllm.benchmarks.serve as serve

marks = {"benchmark_cpu": 0.0, "align_cpu": 0.0}

def timed(name, fn):
    async def wrapper(*args, **kwargs):
        cpu0 = time.process_time()
        try:
            result = await fn(*args, **kwargs)
        finally:
            marks[name + "_cpu"] += time.process_time() - cpu0
        if name == "benchmark":
            for key in ("duration", "completed", "failed", "total_output_tokens"):
                marks[key] = result.get(key)
        return result
    return wrapper

serve.benchmark = timed("benchmark", serve.benchmark)
serve._align_prompts_to_server_tokenizer = timed("align", serve._align_prompts_to_server_tokenizer)
sys.argv = ["vllm"] + sys.argv[1:]
from vllm.entrypoints.cli.main import main
try:
    main()
finally:
    print("LOADGEN_CPU " + json.dumps(marks), flush=True)
"""


def vllm_version(python: str) -> str:
    return subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('vllm'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def vllm_level(python: str, tokenizer: str, root: str, concurrency: int, prompts: int, output_len: int) -> dict:
    """One `vllm bench serve` process: its whole CPU time (user + sys) and what the child recorded."""
    argv = [python, "-c", _VLLM_CHILD, "bench", "serve", "--backend", "vllm", "--base-url", root,
            "--model", "demo", "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", "32",
            "--random-output-len", str(output_len), "--ignore-eos", "--num-prompts", str(prompts),
            "--max-concurrency", str(concurrency), "--disable-tqdm"]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    marks = next((json.loads(line.split(" ", 1)[1]) for line in text.splitlines() if line.startswith("LOADGEN_CPU ")),
                 None)
    if proc.returncode != 0 or not marks or marks.get("total_output_tokens") is None:
        raise SystemExit(f"vllm bench serve failed (exit {proc.returncode}):\n{text[-3000:]}")
    if marks["failed"] or marks["total_output_tokens"] != prompts * output_len:
        raise SystemExit(f"vllm c={concurrency}: {marks['failed']} failed, {marks['total_output_tokens']} tokens "
                         f"streamed, {prompts * output_len} asked:\n{text[-3000:]}")
    return {**marks, "cpu": usage.ru_utime + usage.ru_stime}


def vllm_case(python: str, tokenizer: str, root: str, concurrency: int, prompts: int, output_len: int,
              runs: int) -> dict:
    """`runs` pairs of N and 2N prompts; the pair with the median marginal figure (less re-alignment)."""
    pairs = []
    for _ in range(runs):
        small = vllm_level(python, tokenizer, root, concurrency, prompts, output_len)
        big = vllm_level(python, tokenizer, root, concurrency, 2 * prompts, output_len)
        tokens = big["total_output_tokens"] - small["total_output_tokens"]
        cpu = big["cpu"] - small["cpu"]
        align = big["align_cpu"] - small["align_cpu"]
        pairs.append({"tokens": tokens, "cpu": cpu - align, "us": (cpu - align) / tokens * 1e6,
                      "us_whole": cpu / tokens * 1e6,
                      "us_loop": big["benchmark_cpu"] / big["total_output_tokens"] * 1e6,
                      "wall": big["duration"], "big_tokens": big["total_output_tokens"],
                      "loop_cpu": big["benchmark_cpu"]})
    median = sorted(pairs, key=lambda p: p["us"])[len(pairs) // 2]
    loop = sorted(p["us_loop"] for p in pairs)[len(pairs) // 2]
    return {**median, "runs": pairs, "loop_median": loop}


def _listed(case: dict, key: str) -> str:
    return " ".join(f"{run[key]:.1f}" for run in case["runs"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="16,64", help="comma-separated levels (default 16,64)")
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--rate", type=int, default=2000, help="the stand-in's tokens/s per request (default 2000)")
    parser.add_argument("--prompts", type=int, help="requests per level (default 1024, at least 4 × concurrency)")
    parser.add_argument("--runs", type=int, default=3, help="measured levels per case; the median is reported")
    parser.add_argument("--profile", action="store_true", help="profile one more level per case (cProfile)")
    parser.add_argument("--vllm-python", help="a Python with vLLM installed: measure `vllm bench serve` too")
    parser.add_argument("--tokenizer", help="a local tokenizer folder for vLLM's random dataset (with --vllm-python)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.vllm_python and not args.tokenizer:
        parser.error("--vllm-python needs --tokenizer")

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"aiohttp {aiohttp.__version__}" + (f"; vLLM {vllm_version(args.vllm_python)} "
                                             f"({args.vllm_python})" if args.vllm_python else ""))
    print(f"server: stand-in vLLM in its own process (its CPU is NOT counted), {args.rate} tokens/s per "
          f"request, output {args.output_len} tokens, completions endpoint, streamed with usage")
    print(f"measured: this process's CPU time (user+sys, time.process_time) over run_level only; "
          f"median of {args.runs} runs after one warm-up level")
    if args.vllm_python:
        print("vllm bench serve: CPU (user+sys, os.wait4) of a 2N-prompt run minus an N-prompt run, less the "
              "stand-in-only prompt re-alignment, per extra token; median of the pairs; wall and tokens/s of "
              "the 2N run; loop = CPU inside benchmark() of the 2N run per token, median: runs")
    print()
    header = (f"{'client':<8}{'concurrency':>11}{'requests':>9}{'tokens':>9}{'wall s':>8}{'tokens/s':>10}{'asked':>9}"
              f"{'CPU s':>8}{'µs/token':>10}{'core %':>8}  runs (µs/token)")
    print(header)
    failed = False
    profiles: list[tuple[int, cProfile.Profile]] = []
    with standin(args.rate) as root:
        for c in levels:
            prompts = args.prompts or max(1024, 4 * c)
            level(root, c, min(prompts, 2 * c), args.output_len)  # warm-up: connections, imports
            runs = [level(root, c, prompts, args.output_len) for _ in range(args.runs)]
            per_token = [cpu / tokens * 1e6 for tokens, _, cpu in runs]
            tokens, wall, cpu = sorted(runs, key=lambda r: r[2] / r[0])[len(runs) // 2]
            us = cpu / tokens * 1e6
            ok = us <= GOAL_US
            failed |= not ok
            print(f"{'llmdesk':<8}{c:>11}{prompts:>9}{tokens:>9,}{wall:>8.2f}{tokens / wall:>10,.0f}{args.rate * c:>9,}"
                  f"{cpu:>8.2f}{us:>10.1f}{cpu / wall * 100:>7.0f}%  "
                  f"{' '.join(f'{v:.1f}' for v in per_token)}  {'PASS' if ok else 'FAIL'}", flush=True)
            if args.vllm_python:
                v = vllm_case(args.vllm_python, args.tokenizer, root, c, prompts, args.output_len, args.runs)
                print(f"{'vllm':<8}{c:>11}{'+' + str(prompts):>9}{v['tokens']:>9,}{v['wall']:>8.2f}"
                      f"{v['big_tokens'] / v['wall']:>10,.0f}{args.rate * c:>9,}{v['cpu']:>8.2f}{v['us']:>10.1f}"
                      f"{v['loop_cpu'] / v['wall'] * 100:>7.0f}%  {_listed(v, 'us')}  (loop {v['loop_median']:.1f}: "
                      f"{_listed(v, 'us_loop')}; "
                      f"with re-alignment {_listed(v, 'us_whole')})", flush=True)
            if args.profile:
                profile = cProfile.Profile()
                level(root, c, prompts, args.output_len, profile)
                profiles.append((c, profile))
    print()
    for c, profile in profiles:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(f"--- cProfile, concurrency {c} (own time; profiling inflates it) ---")
        print("\n".join(out.getvalue().splitlines()[:45]))
    print(f"goal: at most {GOAL_US:g} µs of the load generator's CPU per streamed token "
          f"(the stand-in's CPU not counted): {'met' if not failed else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
