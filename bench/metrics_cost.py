"""What watching the server costs: CPU of scrape + parse + derive at 1 Hz, and the time of one parse.

    python bench/metrics_cost.py [--seconds 60] [--interval 1] [--url URL]

Without --url it starts the stand-in vLLM (tests/fakes/vllm_standin, in its own process, as a real
server is), whose /metrics is the real tiny-metrics-before.txt (45 KB). This process then does what
the Metrics page does: every interval, MetricsScraper.scrape() on an asyncio loop and
MetricsWindow.add(); its CPU time (time.process_time, all threads) over the run is the cost. An idle
loop waking at the same rate is measured first, for comparison. Then the real after-benchmark
sample of the 1B model (50 KB, the biggest) is parsed many times, with the default family filter
and without it, and MetricsWindow.add is timed with 15 minutes of history; if NVML answers,
GpuSampler.sample() is timed too. Goal: scraping at 1 Hz under 1 % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmdesk.core.metrics.scrape import parse_metrics  # noqa: E402
from llmdesk.core.metrics.scraper import MetricsScraper  # noqa: E402
from llmdesk.core.metrics.window import MetricsWindow  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "metrics" / "llama1b-metrics-after-bench.txt"
GOAL_PERCENT = 1.0


@contextlib.contextmanager
def standin() -> Iterator[str]:
    from tests.fakes.standin_server import running_standin

    with tempfile.TemporaryDirectory() as folder, running_standin(Path(folder)) as root:
        yield root


async def idle_loop(seconds: float, interval: float) -> tuple[float, float]:
    """CPU and wall seconds of a loop that only wakes up every interval."""
    loop = asyncio.get_running_loop()
    cpu0, wall0 = time.process_time(), time.monotonic()
    end = loop.time() + seconds
    while loop.time() < end:
        await asyncio.sleep(interval)
    return time.process_time() - cpu0, time.monotonic() - wall0


async def watch(url: str, seconds: float, interval: float) -> tuple[float, float, list[float], int]:
    """CPU and wall seconds of scraping every interval, the CPU of each tick, and the number of ticks."""
    loop = asyncio.get_running_loop()
    window = MetricsWindow()
    ticks: list[float] = []
    async with MetricsScraper(url) as scraper:
        window.add(await scraper.scrape())  # connection set up and modules imported outside the count
        cpu0, wall0 = time.process_time(), time.monotonic()
        end = loop.time() + seconds
        while loop.time() < end:
            due = loop.time() + interval
            t0 = time.process_time()
            window.add(await scraper.scrape())
            ticks.append(time.process_time() - t0)
            await asyncio.sleep(max(0.0, due - loop.time()))
        return time.process_time() - cpu0, time.monotonic() - wall0, ticks, len(window)


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.2f} ms "
            f"(min {min(values) * 1000:.2f}, max {max(values) * 1000:.2f}, n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the 1 Hz run (default 60)")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--url", help="a running vLLM server instead of the stand-in")
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    idle_cpu, idle_wall = asyncio.run(idle_loop(min(10.0, args.seconds), args.interval))
    print(f"idle asyncio loop waking every {args.interval:g} s: {idle_cpu / idle_wall * 100:.3f} % of one core")

    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(standin())
        cpu, wall, ticks, kept = asyncio.run(watch(url, args.seconds, args.interval))
    percent = cpu / wall * 100
    print(f"scrape + parse + derive every {args.interval:g} s for {wall:.1f} s against "
          f"{'the stand-in vLLM' if not args.url else args.url}: {len(ticks)} scrapes, "
          f"CPU {cpu * 1000:.0f} ms = {percent:.3f} % of one core; per scrape CPU {ms(ticks)}")

    text = SAMPLE.read_text(encoding="utf-8")
    print(f"real sample {SAMPLE.name} ({len(text) / 1000:.1f} kB, {text.count(chr(10))} lines):")
    parse_metrics(text)
    print(f"  parse_metrics (the families the figures use): {ms(timed(lambda: parse_metrics(text), 200))}")
    print(f"  parse_metrics(only=None) (every family):      {ms(timed(lambda: parse_metrics(text, only=None), 50))}")

    scrape = parse_metrics(text, at=0.0)
    window = MetricsWindow()
    for t in range(900):
        window.add(dataclasses.replace(scrape, time=float(t)))
    state = {"t": 900.0}

    def add_one() -> None:
        window.add(dataclasses.replace(scrape, time=state["t"]))
        state["t"] += 1.0

    print(f"  MetricsWindow.add with 15 min of history:      {ms(timed(add_one, 200))}")

    # Every 0.25 s for a minute, then the server restarts: the next 200 scrapes' 60 s windows span it.
    idle = parse_metrics((SAMPLE.parent / "llama1b-metrics-idle.txt").read_text(encoding="utf-8"), at=0.0)
    window = MetricsWindow()
    for k in range(241):
        window.add(dataclasses.replace(scrape if k < 240 else idle, time=k * 0.25))
    state = {"t": 60.25}

    def add_after_restart() -> None:
        window.add(dataclasses.replace(idle, time=state["t"]))
        state["t"] += 0.25

    print(f"  MetricsWindow.add at 0.25 s, restart in window: {ms(timed(add_after_restart, 200))}")
    from llmdesk.core.machine.gpus import GpuSampler

    with GpuSampler() as sampler:
        first = sampler.sample()
        if first.gpus:
            print(f"GpuSampler.sample() on {len(first.gpus)} × {first.gpus[0].name}: "
                  f"{ms(timed(sampler.sample, 100))}")
        else:
            print(f"GpuSampler.sample(): no GPU here ({first.problem.title if first.problem else 'none'})")
    met = percent < GOAL_PERCENT
    print(f"goal: watching at 1 Hz under {GOAL_PERCENT:g} % of one core: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
