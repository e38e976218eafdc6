"""`llmdesk metrics`: the server's live figures (tokens/s, queue, KV cache, latencies) and the GPUs'."""

from __future__ import annotations

import argparse
import os
import sys

from llmdesk.commands import EXIT_OK, add_json_flag, add_url_option, number, print_json
from llmdesk.core.base.errors import BadInput, Problem

MIN_INTERVAL_S, MAX_INTERVAL_S = 0.25, 5.0
NONE = "—"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "metrics", help="live tokens/s, queue, KV cache, latencies and GPUs of the running server",
        description="Reads the server's /metrics twice, INTERVAL apart, and prints what happened in "
                    "between: prompt and generation tokens/s, requests running and waiting, KV-cache "
                    "usage, prefix-cache hit rate, preemptions, finished requests, time to first token, "
                    "inter-token and end-to-end latency (p50/p95), and the GPUs when the server runs on "
                    "this machine. With --watch, refreshes every INTERVAL until Ctrl-C; latencies then "
                    "cover the last 60 s. Figures the server does not give read — (null in JSON).")
    add_url_option(parser)
    parser.add_argument("--api-key", metavar="K", default=os.environ.get("LLMDESK_API_KEY"),
                        help="API key, if a proxy in front of the server wants one for /metrics "
                             "(default: $LLMDESK_API_KEY)")
    parser.add_argument("--interval", type=number(0.05, 3600), default=1.0, metavar="S",
                        help=f"seconds between scrapes, {MIN_INTERVAL_S}–{MAX_INTERVAL_S:g} (default 1)")
    parser.add_argument("--watch", action="store_true",
                        help="keep refreshing until Ctrl-C (with --json: one JSON object per line)")
    parser.add_argument("--csv", metavar="FILE", help="with --watch: write every scrape's figures to FILE at the end")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.server.endpoint import default_base_url, normalise_base_url

    if not MIN_INTERVAL_S <= args.interval <= MAX_INTERVAL_S:
        raise BadInput(Problem("Impossible interval",
                               f"--interval must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S:g} seconds.", None))
    if args.csv and not args.watch:
        raise BadInput(Problem("--csv needs --watch", "A single reading has no history to write.",
                               "Add --watch, or leave --csv out."))
    if args.csv:
        check_writable(args.csv)  # found now, not after an hour of watching when every figure would be lost
    url = normalise_base_url(args.url) if args.url else default_base_url()
    if not args.watch:
        return asyncio.run(_once(args, url))
    try:
        return asyncio.run(_watch(args, url))
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        if not args.json:
            print()
        return EXIT_OK


async def _once(args: argparse.Namespace, url: str) -> int:
    import asyncio

    from llmdesk.core.metrics.scraper import MetricsScraper
    from llmdesk.core.metrics.window import MetricsWindow

    async with MetricsScraper(url, args.api_key) as scraper, _Gpus(scraper.root_url) as gpus:
        window = MetricsWindow()
        window.add(await scraper.scrape())
        warm = asyncio.create_task(gpus.sample())  # NVML's first start is the slow part
        await asyncio.sleep(args.interval)
        snap = window.add(await scraper.scrape())
        await warm
        scan = await gpus.sample()
    if args.json:
        print_json(_json(scraper.root_url, snap, scan))
    else:
        print(render_text(scraper.root_url, snap, scan))
    return EXIT_OK


async def _watch(args: argparse.Namespace, url: str) -> int:
    """Refresh until SIGINT/SIGTERM, which cancel whatever is in flight (a scrape included) and end it cleanly."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # no loop signals here: Ctrl-C arrives as KeyboardInterrupt
            pass
    try:
        await _watch_loop(args, url)
    except asyncio.CancelledError:
        if not stopping:
            raise
        if not args.json:
            print()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return EXIT_OK


async def _watch_loop(args: argparse.Namespace, url: str) -> None:
    import asyncio
    import json

    from llmdesk.core.base.errors import ProblemError
    from llmdesk.core.metrics.scraper import MetricsScraper
    from llmdesk.core.metrics.window import MetricsWindow

    loop = asyncio.get_running_loop()
    tty = sys.stdout.isatty() and not args.json
    window = MetricsWindow()
    async with MetricsScraper(url, args.api_key) as scraper, _Gpus(scraper.root_url) as gpus:
        try:
            window.add(await scraper.scrape())  # a wrong URL fails at once rather than showing dashes forever
            problem = None
            while True:
                due = loop.time() + args.interval
                scan = await gpus.sample()
                snap = window.latest
                if args.json:
                    data = _json(scraper.root_url, snap, scan)
                    data["problem"] = problem.as_dict() if problem else None
                    print(json.dumps(data), flush=True)
                else:
                    frame = render_text(scraper.root_url, snap, scan, problem=problem, watch=True,
                                        window_s=window.window_s, smooth_s=window.smooth_s)
                    sys.stdout.write(("\x1b[H\x1b[J" if tty else "\n") + frame + "\n")
                    sys.stdout.flush()
                await asyncio.sleep(max(0.0, due - loop.time()))
                try:
                    window.add(await scraper.scrape())
                    problem = None
                except ProblemError as exc:  # the server may come back (a restart): say so and keep trying
                    problem = exc.problem
        finally:
            if args.csv:
                window.to_csv(args.csv)


class _Gpus:
    """This machine's GPUs, read only when the server runs here (a remote server's GPUs are not ours)."""

    def __init__(self, root_url: str):
        import httpx

        host = httpx.URL(root_url).host
        self.local = host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.")
        self._sampler = None

    async def __aenter__(self) -> _Gpus:
        if self.local:
            from llmdesk.core.machine.gpus import GpuSampler

            self._sampler = GpuSampler()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._sampler is not None:
            self._sampler.close()

    async def sample(self):
        import asyncio

        return None if self._sampler is None else await asyncio.to_thread(self._sampler.sample)


def _json(root: str, snap, scan) -> dict:
    data = {"url": root, **snap.as_dict()}
    data["gpus"] = None if scan is None else [gpu.as_dict() for gpu in scan.gpus]
    data["gpu_problem"] = scan.problem.as_dict() if scan is not None and scan.problem else None
    return data


# --- text -------------------------------------------------------------------------------------

def render_text(root: str, snap, scan, *, problem: Problem | None = None, watch: bool = False,
                window_s: float = 60.0, smooth_s: float = 10.0) -> str:
    models = ", ".join(snap.models) or NONE
    if watch:
        span = f"rates over the last {_secs(snap.interval_s)} ({smooth_s:g} s average), the rest over {window_s:g} s"
    else:
        span = f"over {_secs(snap.interval_s)}"
    lines = [f"vLLM at {root} · {models} · {span}"]
    if problem is not None:
        lines.append(f"  ! {problem.title}: {problem.explanation} (still trying; figures below are from before)")

    def rate(v, avg=None) -> str:
        text = f"{v:,.1f} tok/s" if v is not None else NONE
        return text + (f"   ({_num(avg, ',.1f')} avg)" if watch else "")

    finished = f"{_num(snap.requests_finished, 'd')} finished"
    reasons = ", ".join(f"{k} {v}" for k, v in snap.finished_by_reason.items() if v)
    if reasons:
        finished += f" ({reasons})"
    capacity = snap.kv_cache_capacity_tokens
    lines += [
        f"  {'Generation':<14}{rate(snap.generation_tokens_per_s, snap.generation_tokens_per_s_avg)}",
        f"  {'Prompt':<14}{rate(snap.prompt_tokens_per_s, snap.prompt_tokens_per_s_avg)}",
        f"  {'Requests':<14}{_num(snap.requests_running, 'd')} running · {_num(snap.requests_waiting, 'd')} waiting"
        f" · {finished}",
        f"  {'KV cache':<14}{_pct(snap.kv_cache_usage)} used"
        + (f" of {capacity:,} tokens" if capacity is not None else ""),
        f"  {'Prefix cache':<14}{_pct(snap.prefix_cache_hit_rate)} hits",
        f"  {'Preemptions':<14}{_num(snap.preemptions, 'd')} ({_num(snap.preemptions_total, 'd')} since start)",
        f"  {'TTFT':<14}{_latency(snap.ttft_p50_s, snap.ttft_p95_s, snap.ttft_mean_s)}",
        f"  {'ITL':<14}{_latency(snap.itl_p50_s, snap.itl_p95_s, snap.itl_mean_s)}",
        f"  {'End to end':<14}{_latency(snap.e2e_p50_s, snap.e2e_p95_s, snap.e2e_mean_s)}",
    ]
    if snap.lora_adapters_running or snap.lora_adapters_waiting:
        lines.append(f"  {'LoRA':<14}running {', '.join(snap.lora_adapters_running) or NONE}"
                     f" · waiting {', '.join(snap.lora_adapters_waiting) or NONE}")
    if len(snap.models) > 1:
        for name, m in snap.models.items():
            lines.append(f"  {'Model ' + name:<14}{rate(m['generation_tokens_per_s'])} generation · "
                         f"{_num(m['requests_running'], 'd')} running · {_num(m['requests_waiting'], 'd')} waiting · "
                         f"TTFT p50 {_time(m['ttft_p50_s'])}")
    if scan is not None:
        lines += _gpu_lines(scan)
    return "\n".join(lines)


def _gpu_lines(scan) -> list[str]:
    from llmdesk.core.base.units import GIB

    if not scan.gpus:
        why = scan.problem.title if scan.problem else "none found"
        return [f"  {'GPUs':<14}{NONE} ({why})"]
    out = []
    for gpu in scan.gpus:
        bits = [gpu.name, f"{_num(gpu.utilization_percent, 'd')} % busy",
                f"{gpu.memory_used_bytes / GIB:.1f} / {gpu.memory_total_bytes / GIB:.1f} GiB",
                f"{_num(gpu.temperature_c, 'd')} °C",
                f"{_num(gpu.power_draw_w, '.0f')} / {_num(gpu.power_limit_w, '.0f')} W"]
        out.append(f"  {'GPU ' + str(gpu.index):<14}" + " · ".join(bits))
    if scan.problem:
        out.append(f"  {'':<14}{scan.problem.title}: {scan.problem.explanation}")
    return out


def _num(v, spec: str) -> str:
    return NONE if v is None else format(v, spec)


def _pct(v) -> str:
    return NONE if v is None else f"{v * 100:.1f} %"


def _secs(v) -> str:
    if v is None:
        return NONE
    return f"{v:.2f} s" if v < 1 else f"{v:.1f} s"


def _time(v) -> str:
    if v is None:
        return NONE
    if v < 0.01:
        return f"{v * 1000:.1f} ms"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    return f"{v:.2f} s"


def _latency(p50, p95, mean) -> str:
    if p50 is None and mean is None:
        return NONE
    return f"p50 {_time(p50)} · p95 {_time(p95)} · mean {_time(mean)}"


def check_writable(name: str) -> None:
    """BadInput unless FILE can be written (its folder exists and takes files); nothing is left behind."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(name).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BadInput(Problem(f"{path} is a folder", "--csv takes the name of a file to write.", None))
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".llmdesk-csv-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInput(Problem(f"Cannot write {path}", f"{folder}: {exc.strerror or exc}.",
                               "Give a file in a folder you can write to.")) from None
