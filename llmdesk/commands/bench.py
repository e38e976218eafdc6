"""`llmdesk bench`: benchmark a running server (a concurrency sweep or Poisson request rates), and the
saved runs.

    llmdesk bench [--url URL] [--concurrency 1,4,16,64 | --rate R[,R...]] [--input-len N] [--output-len N]
                  [--prompts N | --duration S] [--endpoint chat|completions] [--slo-ttft-ms X] ...
                  [--gpu-cost-per-hour D] [--electricity-per-kwh D] [--save NAME] [--json]
    llmdesk bench list [--json]
    llmdesk bench show RUN [--json]
    llmdesk bench compare RUN RUN... [--metric output_throughput]
    llmdesk bench export RUN [--format json|csv] [-o FILE]
    llmdesk bench rm RUN

Ctrl-C stops the run: the requests in flight are aborted, the finished levels printed (and saved with
--save), and the exit code is 130. Exit 1 when the run failed (the server died, every request was
refused), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, number, print_json, text, whole
from llmdesk.core.base.errors import BadInput, Problem

EXIT_STOPPED = 130
MAX_TOKENS = 10_000_000


def _loads_parse(value: str, parse_one):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or len(items) > 64:
        raise argparse.ArgumentTypeError("give 1 to 64 values separated by commas")
    return tuple(parse_one(v) for v in items)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="benchmark the server: concurrency sweep, saturation, energy and cost",
        description="Loads a running server with vllm bench serve's random workload (prompts of exact token "
                    "lengths, fixed output lengths) one level after another and prints, per level, the "
                    "throughputs, TTFT, TPOT, ITL and end-to-end latency (mean, p50, p90, p99), what the "
                    "server's /metrics showed, the GPUs' energy per token and, with a GPU price, the cost per "
                    "million tokens; then the knee where more load stops paying. Ctrl-C stops and keeps the "
                    "finished levels.")
    parser.add_argument("--url", metavar="URL", help="server root or /v1 base (default: the server llmdesk "
                                                     "manages, else http://127.0.0.1:8000)")
    parser.add_argument("--api-key", metavar="K", default=os.environ.get("LLMDESK_API_KEY"),
                        help="API key the server was started with (default: $LLMDESK_API_KEY)")
    parser.add_argument("--model", metavar="M", type=text(500), help="model to load (default: the first served)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--concurrency", metavar="C,C,...", type=lambda v: _loads_parse(v, whole(1, 100_000)),
                      help="requests in flight per level (default 1,2,4,8,16,32,64, capped at the server's "
                           "max-num-seqs when known)")
    load.add_argument("--rate", metavar="R,R,...", type=lambda v: _loads_parse(v, number(0, 1_000_000, above=True)),
                      help="Poisson request rates per level, requests/s, instead of a concurrency sweep")
    parser.add_argument("--max-concurrency", metavar="C", type=whole(1, 100_000),
                        help="with --rate: at most C requests in flight")
    parser.add_argument("--preset", choices=("chat", "rag", "code", "vllm"),
                        help="workload and limits: chat 512/256 (TTFT ≤ 200 ms, TPOT ≤ 50 ms), rag 2048/256 "
                             "(TTFT ≤ 300 ms, E2E ≤ 3 s), code 1024/64 (E2E ≤ 2 s), vllm 1024/128 (no limits)")
    parser.add_argument("--input-len", metavar="N", type=whole(1, MAX_TOKENS), help="prompt tokens (default 1024)")
    parser.add_argument("--output-len", metavar="N", type=whole(1, MAX_TOKENS), help="reply tokens (default 128)")
    parser.add_argument("--range-ratio", metavar="R", type=number(0, 0.99), help="lengths drawn from L·(1±R)")
    parser.add_argument("--prefix-len", metavar="N", type=whole(0, MAX_TOKENS), help="a shared prefix before every prompt")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--prompts", metavar="N", type=whole(1, 1_000_000),
                       help="requests per level (default 4 × concurrency, at least 16)")
    count.add_argument("--duration", metavar="S", type=number(1, 86_400), help="seconds per level instead")
    parser.add_argument("--warmups", metavar="N", type=whole(0, 1000), help="warm-up requests per level (default 1)")
    parser.add_argument("--endpoint", choices=("completions", "chat"), help="default completions")
    parser.add_argument("--slo-ttft-ms", metavar="X", type=number(0, 1e9, above=True), help="limit on p99 TTFT")
    parser.add_argument("--slo-tpot-ms", metavar="Y", type=number(0, 1e9, above=True), help="limit on p99 TPOT")
    parser.add_argument("--slo-e2e-ms", metavar="Z", type=number(0, 1e9, above=True), help="limit on p99 E2E latency")
    parser.add_argument("--gpu-cost-per-hour", metavar="D", type=number(0, 1e6),
                        help="what one GPU costs an hour (rented); gives the cost per million tokens")
    parser.add_argument("--gpu-count", metavar="N", type=whole(1, 4096), default=1, help="GPUs the server uses")
    parser.add_argument("--electricity-per-kwh", metavar="D", type=number(0, 1e3), default=0.18,
                        help="electricity price (default 0.18)")
    parser.add_argument("--no-energy", action="store_true", help="do not read the GPUs' energy counters")
    parser.add_argument("--save", metavar="NAME", type=text(200), help="save the run under NAME (see `bench list`)")
    parser.add_argument("--json", action="store_true", default=False, help="print machine-readable JSON")
    parser.set_defaults(run=run_bench_command)
    sub = parser.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="the saved runs, newest first")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    listing.set_defaults(run=run_list)
    show = sub.add_parser("show", help="one saved run's levels")
    show.add_argument("ref", metavar="RUN", type=text(200), help="id, name, or number in `bench list`")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    show.set_defaults(run=run_show)
    comp = sub.add_parser("compare", help="saved runs side by side, per load level")
    comp.add_argument("refs", metavar="RUN", nargs="+", type=text(200))
    comp.add_argument("--metric", default="output_throughput",
                      help="a level figure: output_throughput, request_throughput, ttft_ms.p50, tpot_ms.p99, "
                           "e2e_ms.p90, energy_j_per_output_token, ... (default output_throughput)")
    comp.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    comp.set_defaults(run=run_compare)
    export = sub.add_parser("export", help="a saved run as JSON (vLLM's key names) or CSV (a row per level)")
    export.add_argument("ref", metavar="RUN", type=text(200))
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(run=run_export)
    remove = sub.add_parser("rm", help="delete a saved run")
    remove.add_argument("ref", metavar="RUN", type=text(200))
    remove.set_defaults(run=run_rm)

    # The Benchmark page's run, in a process of its own (no shared GIL with the window): the settings
    # come as one JSON line on stdin, the events go out as JSON lines; closing stdin stops the run.
    worker = commands.add_parser("bench-worker")  # no help: left out of `llmdesk --help`
    worker.set_defaults(run=run_worker)


def config_from_args(args: argparse.Namespace):
    from llmdesk.core.bench.presets import DEFAULT_CONCURRENCIES, preset
    from llmdesk.core.bench.sweep import BenchConfig, server_max_num_seqs
    from llmdesk.core.bench.workload import Workload
    from llmdesk.core.server.endpoint import default_base_url, normalise_base_url

    chosen = preset(args.preset) if args.preset else None
    base = chosen.workload if chosen else Workload()
    changes = {"input_len": args.input_len, "output_len": args.output_len, "range_ratio": args.range_ratio,
               "prefix_len": args.prefix_len, "endpoint": args.endpoint, "prompts": args.prompts,
               "duration_s": args.duration, "warmups": args.warmups}
    workload = Workload(**{**base.as_dict(), **{k: v for k, v in changes.items() if v is not None}})
    slo = dict(chosen.slo_ms) if chosen else {}
    for key, value in (("ttft", args.slo_ttft_ms), ("tpot", args.slo_tpot_ms), ("e2el", args.slo_e2e_ms)):
        if value is not None:
            slo[key] = value
    if args.max_concurrency and not args.rate:
        raise BadInput(Problem("--max-concurrency goes with --rate", "It caps requests in flight at a request rate.",
                               "Use --concurrency for a concurrency sweep."))
    url = default_base_url() if args.url is None else normalise_base_url(args.url)
    if args.rate:
        concurrencies, rates = ((args.max_concurrency,) if args.max_concurrency else ()), args.rate
    else:
        concurrencies, rates = args.concurrency or DEFAULT_CONCURRENCIES, ()
    config = BenchConfig(url, model=args.model, api_key=args.api_key or None, workload=workload,
                         concurrencies=concurrencies, rates=rates, slo_ms=slo, measure_energy=not args.no_energy,
                         max_num_seqs=server_max_num_seqs(url))
    config.check()
    return config


def cost_inputs_from_args(args: argparse.Namespace):
    if args.gpu_cost_per_hour is None:
        return None
    from llmdesk.core.bench.cost import CostInputs

    inputs = CostInputs(gpu_per_hour=args.gpu_cost_per_hour, electricity_per_kwh=args.electricity_per_kwh,
                        gpu_count=args.gpu_count)
    inputs.validate()
    return inputs


def run_bench_command(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from llmdesk.core.bench.cost import price_run
    from llmdesk.core.bench.runs import save_run
    from llmdesk.core.bench.sweep import run_bench

    config = config_from_args(args)
    inputs = cost_inputs_from_args(args)
    quiet = args.json

    def on_event(kind: str, data: dict) -> None:
        if quiet:
            return
        if kind == "level":
            load = f"concurrency {data['concurrency']}" if data["rate"] is None else f"{data['rate']:g} requests/s"
            print(f"level {data['index'] + 1}/{data['count']}: {load} …", file=sys.stderr, flush=True)
        elif kind == "done":
            print(f"  {_level_line(data)}", file=sys.stderr, flush=True)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
        try:
            return await run_bench(config, name=args.save, stop=stop, on_event=on_event)
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):
                pass

    run = asyncio.run(main())
    if inputs is not None:
        price_run(run, inputs)
    if args.save:
        path = save_run(run)
        if not quiet:
            print(f"Saved as {run.id} ({path.name}).", file=sys.stderr)
    if quiet:
        print_json(run.as_export())
    else:
        _print_run(run)
    if run.status == "stopped":
        return EXIT_STOPPED
    return EXIT_FAILURE if run.status == "failed" else EXIT_OK


def _level_line(level: dict) -> str:
    load = f"c={level['concurrency']}" if level.get("rate") is None else f"{level['rate']:g} req/s"
    line = (f"{load}: {level['completed']} done, {level['failed']} failed, {level['output_throughput']:,.0f} out tok/s, "
            f"TTFT p50 {level['ttft_ms']['p50']:,.0f} ms, TPOT p50 {level['tpot_ms']['p50']:,.1f} ms")
    if level.get("energy_j_per_output_token") is not None:
        line += f", {level['energy_j_per_output_token']:.3f} J/token"
    return line


def _print_run(run) -> None:
    print(f"{run.name}  ({run.model} at {run.server_url}, {run.status})")
    rows = [("load", "done", "fail", "req/s", "out tok/s", "total tok/s", "TTFT p50", "TTFT p99", "TPOT p50",
             "TPOT p99", "ITL p50", "E2E p50", "KV peak", "J/tok", "$/1M out")]
    for lv in run.levels:
        server = lv.get("server") or {}
        kv = server.get("kv_cache_peak")
        rows.append((
            str(lv["concurrency"]) if lv.get("rate") is None else f"{lv['rate']:g}/s", str(lv["completed"]),
            str(lv["failed"]), f"{lv['request_throughput']:.2f}", f"{lv['output_throughput']:,.1f}",
            f"{lv['total_token_throughput']:,.1f}", f"{lv['ttft_ms']['p50']:,.1f}", f"{lv['ttft_ms']['p99']:,.1f}",
            f"{lv['tpot_ms']['p50']:,.2f}", f"{lv['tpot_ms']['p99']:,.2f}", f"{lv['itl_ms']['p50']:,.2f}",
            f"{lv['e2e_ms']['p50']:,.0f}", "–" if kv is None else f"{kv:.0%}",
            _maybe(lv.get("energy_j_per_output_token"), "{:.3f}"),
            _maybe(lv.get("cost_per_million_output_tokens"), "{:.3f}")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    sat = run.saturation or {}
    print(f"Knee: {_maybe(sat.get('knee'), '{:g}')}. {sat.get('reason', '')}")
    if run.slo_ms:
        limits = ", ".join(f"{k} ≤ {v:g} ms" for k, v in run.slo_ms.items())
        best = sat.get("best_within_limits")
        print(f"Highest load within the limits ({limits}, p99): {'none' if best is None else f'{best:g}'}")
    for note in run.notes:
        print(f"Note: {note}")
    if run.problem:
        print(f"error: {run.problem['title']}\n  {run.problem['explanation']}\n  → {run.problem.get('fix') or ''}",
              file=sys.stderr)
    elif run.status == "stopped":
        print("Stopped: the finished levels are above.", file=sys.stderr)


def _maybe(value, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def run_list(args: argparse.Namespace) -> int:
    from llmdesk.core.bench.runs import list_runs

    listing = list_runs()
    if getattr(args, "json", False):
        print_json({"runs": [{"id": r.id, "name": r.name, "model": r.model, "started_at": r.started_at,
                              "status": r.status, "levels": len(r.levels),
                              "saturation_concurrency": r.saturation_concurrency} for r in listing.runs],
                    "unreadable": listing.unreadable})
        return EXIT_OK
    if not listing.runs:
        print("No saved runs. `llmdesk bench --save NAME` saves one; the Benchmark page saves each run.")
    for number_, r in enumerate(listing.runs, 1):
        print(f"{number_:>3}  {r.id}  {r.status:<8}  {len(r.levels):>2} levels  {r.name}")
    for name in listing.unreadable:
        print(f"unreadable: {name}", file=sys.stderr)
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    from llmdesk.core.bench.runs import load_run

    run = load_run(args.ref)
    if getattr(args, "json", False):
        print_json(run.as_export())
    else:
        _print_run(run)
    return EXIT_OK


def run_compare(args: argparse.Namespace) -> int:
    from llmdesk.core.bench.runs import compare, load_run

    metric, _, part = args.metric.partition(".")
    table = compare([load_run(ref) for ref in args.refs], metric, part or None)
    if getattr(args, "json", False):
        print_json(table)
        return EXIT_OK
    header = ["load"] + [f"{r['name'][:28]} ({r['id'][-6:]})" for r in table["runs"]]
    print(table["metric"])
    rows = [header] + [[f"{load:g}"] + [_maybe(r["values"][i], "{:,.2f}") for r in table["runs"]]
                       for i, load in enumerate(table["loads"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    import json

    from llmdesk.core.bench.runs import load_run, to_csv

    run = load_run(args.ref)
    body = to_csv(run) if args.format == "csv" else json.dumps(run.as_export(), indent=2) + "\n"
    if args.output:
        if os.path.lexists(args.output) and not args.force:
            raise BadInput(Problem(f"{args.output} exists", "Nothing was written.",
                                   "Give another file name, or add --force to replace it."))
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(body)
        except OSError as exc:
            raise BadInput(Problem("Could not write the export", f"{args.output}: {exc.strerror or exc}.",
                                   "Choose a folder you can write to.")) from None
    else:
        sys.stdout.write(body)
    return EXIT_OK


def run_rm(args: argparse.Namespace) -> int:
    from llmdesk.core.bench.runs import delete_run, load_run

    run = load_run(args.ref)
    delete_run(run.id)
    print(f"Deleted {run.id} ({run.name}).")
    return EXIT_OK



def run_worker(args: argparse.Namespace) -> int:
    """Settings in (`{"config": …, "name": …}` on one line), events out, one JSON object a line:
    {"event": "level"|"progress"|"done", "data": …}, then {"event": "run", "run": …} or
    {"event": "problem", "problem": …, "bad_input": …}. End of stdin, SIGINT or SIGTERM stop the run
    and keep the finished levels."""
    import asyncio
    import json
    import signal
    import threading

    from llmdesk.core.base.errors import ProblemError
    from llmdesk.core.bench.sweep import config_from_dict, run_bench

    def emit(value: dict) -> None:
        sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        request = json.loads(sys.stdin.readline() or "{}")
        config = config_from_dict(request.get("config") or {})
    except (ValueError, ProblemError) as exc:
        problem = exc.problem if isinstance(exc, ProblemError) else Problem("Not a benchmark's settings", str(exc), None)
        emit({"event": "problem", "problem": problem.as_dict(), "bad_input": True})
        return EXIT_FAILURE

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def watch_stdin() -> None:  # the window closed our stdin (Stop), or went away
            sys.stdin.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        return await run_bench(config, name=request.get("name"), stop=stop,
                               on_event=lambda kind, data: emit({"event": kind, "data": data}))

    try:
        run = asyncio.run(main())
    except ProblemError as exc:
        emit({"event": "problem", "problem": exc.problem.as_dict(), "bad_input": isinstance(exc, BadInput)})
        return EXIT_FAILURE
    emit({"event": "run", "run": run.as_dict()})
    return EXIT_OK
