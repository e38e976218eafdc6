"""The benchmark's load generator: its CPU time per streamed token, against the stand-in vLLM.

    python bench/loadgen_cpu.py [--concurrency 16,64] [--output-len 256] [--rate 2000] [--prompts N]
                                [--runs 3] [--profile]

The stand-in vLLM (tests/fakes/vllm_standin, a Python ThreadingHTTPServer) runs in its own process
group, so its CPU is NOT counted; it streams one server-sent event per token at ``--rate`` tokens/s per
request (first token after one interval). The load generator (``run_level`` of
llmdesk/core/bench/loadgen.py) runs in this process; this process's CPU time
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

vLLM's own bench client (``vllm bench serve``) is not measured: vllm is not importable in this
project's environment (a 3.8 GB install, left out of it), and aiohttp, which its request functions
use, is not installed either, so no replica of its request loop is run here. Its client needs no GPU,
so it could be measured against the same stand-in from a managed vLLM runtime.

``--profile`` runs one extra level per case under cProfile and prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="16,64", help="comma-separated levels (default 16,64)")
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--rate", type=int, default=2000, help="the stand-in's tokens/s per request (default 2000)")
    parser.add_argument("--prompts", type=int, help="requests per level (default 1024, at least 4 × concurrency)")
    parser.add_argument("--runs", type=int, default=3, help="measured levels per case; the median is reported")
    parser.add_argument("--profile", action="store_true", help="profile one more level per case (cProfile)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"httpx {httpx.__version__}")
    print(f"server: stand-in vLLM in its own process (its CPU is NOT counted), {args.rate} tokens/s per "
          f"request, output {args.output_len} tokens, completions endpoint, streamed with usage")
    print(f"measured: this process's CPU time (user+sys, time.process_time) over run_level only; "
          f"median of {args.runs} runs after one warm-up level")
    print()
    header = (f"{'concurrency':>11}{'requests':>9}{'tokens':>9}{'wall s':>8}{'tokens/s':>10}{'asked':>9}"
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
            print(f"{c:>11}{prompts:>9}{tokens:>9,}{wall:>8.2f}{tokens / wall:>10,.0f}{args.rate * c:>9,}"
                  f"{cpu:>8.2f}{us:>10.1f}{cpu / wall * 100:>7.0f}%  "
                  f"{' '.join(f'{v:.1f}' for v in per_token)}  {'PASS' if ok else 'FAIL'}")
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
