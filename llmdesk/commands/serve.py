"""`llmdesk serve SOURCE`: run vLLM headless under the supervisor until Ctrl-C or SIGTERM.

Phases go to stderr with the elapsed time, the ready URL to stdout. Exit 0 after a requested
stop, 1 when the server fails (with the diagnosis), 2 for a bad launch configuration.
Everything after `--` is passed to vLLM as it is.
"""

from __future__ import annotations

import argparse
import os
import sys

from llmdesk.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, MAX_GPUS, MAX_SEQS, load_settings_said, number, whole
from llmdesk.core.base.errors import BadInput, Problem, ProblemError


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", metavar="H", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=whole(1, 65535), default=8000, metavar="P", help="port (default 8000)")
    parser.add_argument("--api-key", metavar="K", default=None,
                        help="require this API key (needed off loopback). Better: $LLMDESK_API_KEY or "
                             "--api-key-stdin, since a key on the command line shows in ps")
    parser.add_argument("--api-key-stdin", action="store_true", help="read the API key from the first line of stdin")
    parser.add_argument("--served-model-name", metavar="N", help="the name clients use")
    parser.add_argument("--revision", metavar="REV", help="a Hub branch, tag or commit of the model")
    parser.add_argument("--gpu-memory-utilization", type=number(0, 1, above=True), metavar="U")
    parser.add_argument("--max-model-len", metavar="L", help="context length in tokens, or auto")
    parser.add_argument("--max-num-seqs", type=whole(1, MAX_SEQS), metavar="S")
    parser.add_argument("--tensor-parallel-size", "-tp", type=whole(1, MAX_GPUS), default=1, metavar="N")
    parser.add_argument("--quantization", "-q", metavar="Q")
    parser.add_argument("--kv-cache-dtype", default="auto", metavar="D")
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--tool-call-parser", default="auto", metavar="NAME|auto|none",
                        help="tool calling (--enable-auto-tool-choice with this parser); auto: the parser of the "
                             "model's family when its chat template takes tools (default auto; see docs/tools.md)")
    parser.add_argument("--reasoning-parser", default="auto", metavar="NAME|auto|none",
                        help="split the model's reasoning into its own field; auto: the model family's (default auto)")
    start = parser.add_argument_group("start-up and pause (docs/startup.md)")
    start.add_argument("--cudagraph-max-size", type=whole(1, 1024), metavar="N",
                       help="capture CUDA graphs for batches up to N requests only (vLLM: min(2 x max-num-seqs, "
                            "512)); fewer start sooner")
    start.add_argument("--fork-engine", action="store_true",
                       help="fork vLLM's engine process from its API server instead of starting it afresh "
                            "(vLLM is imported once)")
    start.add_argument("--sleep-mode", action="store_true",
                       help="allow `llmdesk server pause`: vLLM frees the GPU without stopping (its development "
                            "routes stay behind llmdesk's gate)")
    start.add_argument("--sleep-level", type=whole(1, 2), default=2, metavar="1|2",
                       help="2: a paused model drops its weights and reads them again on resume (default; on an "
                            "H100 an 8B paused in 0.06 s, resumed in 2.2 s); 1: keeps them in CPU memory (resume "
                            "0.6 s, but the first pause copies them: 7 s, later ones 0.4 s)")
    start.add_argument("--idle-pause", type=number(10, 7 * 86_400), metavar="S",
                       help="pause by itself after S seconds without requests (implies --sleep-mode)")
    start.add_argument("--no-wake-on-request", dest="wake_on_request", action="store_false",
                       help="refuse requests to a paused server (503) instead of waking it")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable for the vLLM process (repeatable), e.g. "
                             "VLLM_ENFORCE_STRICT_TOOL_CALLING=0; exports carry it too")
    parser.add_argument("--runtime", metavar="PYTHON", help="a Python with vLLM, used as it is")
    parser.add_argument("--timeout", type=number(0, 86_400, above=True), default=900, metavar="S", help="seconds to wait for ready")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="run a vLLM server for a model until Ctrl-C",
        description="SOURCE is a Hugging Face repo id or a model folder. Arguments after `--` go to vLLM as they are.",
        usage="llmdesk serve SOURCE [options] [-- EXTRA vLLM ARGS]")
    parser.add_argument("source", help="owner/name on the Hub, or a model folder")
    _add_serve_options(parser)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def _split_rest(args: argparse.Namespace, add_options=None) -> list[str]:
    """Options given after SOURCE, and the vLLM arguments after `--`."""
    options = argparse.ArgumentParser(prog="llmdesk serve", add_help=False)
    (add_options or _add_options)(options)
    options.add_argument("extra", nargs="*")
    _, unknown = options.parse_known_args(args.rest, namespace=args)
    return list(args.extra) + unknown


def api_key_from(args: argparse.Namespace) -> str | None:
    """--api-key-stdin, else $LLMDESK_API_KEY, else --api-key (with a warning: ps shows it to every user
    for the server's whole life), else, when listening beyond this computer, the key stored by the app."""
    if args.api_key_stdin:
        key = sys.stdin.readline().strip() if sys.stdin is not None else ""
        if not key:
            raise BadInput(Problem("No API key on stdin", "--api-key-stdin was given but the first line of "
                                   "standard input is empty.", "Pipe the key in: … | llmdesk serve MODEL "
                                   "--api-key-stdin"))
        return key
    if args.api_key:
        print("warning: an API key on the command line shows in ps to every user of this computer while the "
              "server runs; use LLMDESK_API_KEY or --api-key-stdin instead.", file=sys.stderr)
        return args.api_key
    if os.environ.get("LLMDESK_API_KEY"):
        return os.environ["LLMDESK_API_KEY"]
    from llmdesk.core.server.launch import is_loopback

    if not is_loopback(args.host):
        from llmdesk.core.base.secrets import load_server_api_key

        stored = load_server_api_key()
        if stored:
            print("note: using the API key stored by llmdesk (Server page, Generate).", file=sys.stderr)
            return stored
    return None


def build_config(args: argparse.Namespace):
    from llmdesk.core.fit.memory_model import DEFAULT_GPU_MEMORY_UTILIZATION
    from llmdesk.core.server.launch import LaunchConfig

    max_model_len: int | str | None = args.max_model_len
    if isinstance(max_model_len, str) and max_model_len != "auto":
        try:
            max_model_len = int(max_model_len)
        except ValueError:
            raise BadInput(Problem("Invalid context length", f"--max-model-len {max_model_len!r} is not a number.",
                                   "Give a number of tokens, or auto.")) from None
    config = LaunchConfig(
        model=args.source, served_model_name=args.served_model_name, revision=args.revision, host=args.host,
        port=args.port,
        api_key=args.api_key,
        gpu_memory_utilization=(args.gpu_memory_utilization if args.gpu_memory_utilization is not None
                                else DEFAULT_GPU_MEMORY_UTILIZATION),
        max_model_len=max_model_len, max_num_seqs=args.max_num_seqs,
        tensor_parallel_size=args.tensor_parallel_size, quantization=args.quantization,
        kv_cache_dtype=args.kv_cache_dtype, enforce_eager=args.enforce_eager,
        trust_remote_code=args.trust_remote_code, extra_args=tuple(args.extra_args),
        extra_env=tuple(getattr(args, "env", ())),
        cudagraph_max_size=getattr(args, "cudagraph_max_size", None), fork_engine=getattr(args, "fork_engine", False),
        sleep_mode=bool(getattr(args, "sleep_mode", False) or getattr(args, "idle_pause", None)),
        sleep_level=getattr(args, "sleep_level", 2), idle_pause_s=getattr(args, "idle_pause", None),
        wake_on_request=getattr(args, "wake_on_request", True), **parser_fields(args))
    problems = config.validate()
    if problems:
        first = problems[0]
        more = "".join(f"\n  also: {p.title}: {p.explanation}" for p in problems[1:])
        raise BadInput(Problem(first.title, first.explanation + more, first.fix))
    return config


def check_before_launch(config):
    """BadInput for a model source vLLM cannot serve or a context the model does not allow; a
    ProblemError where the fit is sure the weights alone do not fit the GPUs here. Returns the model's
    ModelSpec where it is on disk (None for a repo not downloaded yet)."""
    from llmdesk.core.fit.memory_model import VERDICT_NO, LaunchSettings, check_context_length, plan_fit
    from llmdesk.core.hub.model_source import cached_spec, check_servable

    check_servable(config.model)
    spec = cached_spec(config.model)
    if spec is None:
        return None  # a repo not downloaded yet: vLLM fetches and checks it
    max_model_len = config.max_model_len if isinstance(config.max_model_len, int) else None
    check_context_length(spec, max_model_len)
    from llmdesk.core.machine.gpus import scan_gpus

    gpus = scan_gpus().gpus[:config.tensor_parallel_size]
    if len(gpus) < config.tensor_parallel_size:
        return spec  # no GPUs here (a stand-in runtime, or vLLM will say so itself)
    settings = LaunchSettings(gpu_memory_utilization=config.gpu_memory_utilization, max_model_len=max_model_len,
                              tensor_parallel_size=config.tensor_parallel_size, quantization=config.quantization,
                              kv_cache_dtype=config.kv_cache_dtype, enforce_eager=config.enforce_eager,
                              max_loras=config.max_loras if config.lora_enabled else None,
                              max_lora_rank=config.max_lora_rank)
    report = plan_fit(spec, gpus, settings)
    if report.verdict == VERDICT_NO and report.kv_cache_bytes <= 0:
        raise ProblemError(Problem(f"{spec.name} does not fit these GPUs", report.summary,
                                   "Pick a smaller or quantized variant (llmdesk variants REPO), or more GPUs "
                                   "with --tensor-parallel-size."))
    return spec


def missing_package_for(config, spec, python: str) -> Problem | None:
    """A package the checkpoint's format needs that the runtime lacks (bitsandbytes), said before vLLM's
    long start; None where nothing is needed, or the model (`spec`) is not on disk yet (vLLM will tell)."""
    from llmdesk.core.fit.quant import online_format, runtime_package
    from llmdesk.core.server.runtime import missing_runtime_package

    if spec is None:
        return None
    fmt = online_format(config.quantization, spec.checkpoint_format) if config.quantization else spec.checkpoint_format
    return missing_runtime_package(python, runtime_package(fmt))


def find_python(runtime: str | None) -> str:
    if runtime:
        return runtime  # used as it is, also without a GPU (that is how stand-ins are driven)
    from llmdesk.core.server.runtime import find_vllm_runtime

    settings = load_settings_said()
    search = find_vllm_runtime(settings.runtime_python)
    if search.runtime is None:
        raise ProblemError(search.problem or Problem("vLLM not found", "No Python with vLLM was found.",
                                                     "Install vLLM 0.26 or pass --runtime PYTHON."))
    if search.problem is not None:
        print(f"warning: {search.problem.title}: {search.problem.explanation}", file=sys.stderr)
    if not search.runtime.is_tested:
        print(f"warning: vLLM {search.runtime.vllm_version} is not the tested 0.26.x", file=sys.stderr)
    return search.runtime.python


def config_from_args(args: argparse.Namespace, add_options) -> object:
    """The LaunchConfig of `serve` (and `export`) from their arguments: the options after SOURCE and the
    vLLM arguments after `--`, the API key from where it may come, the checks (exit 2), the warnings."""
    args.extra_args = _split_rest(args, add_options)
    args.api_key = api_key_from(args)
    config = build_config(args)  # exits 2 through BadInput
    for warning in config.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return config


def run(args: argparse.Namespace) -> int:
    import asyncio

    config = config_from_args(args, _add_serve_options)
    config = with_loras(config, args)  # --lora: adapters fetched and checked, slots sized (exit 2 on bad input)
    spec = check_before_launch(config)  # what the fit already knows is refused before vLLM's long start
    python = find_python(args.runtime)
    missing = missing_package_for(config, spec, python)
    if missing is not None and not args.print_command:
        raise ProblemError(missing)
    if missing is not None:
        print(f"warning: {missing.title}: {missing.explanation}", file=sys.stderr)
    if args.print_command:
        print_command(config, python)
        return EXIT_OK
    return asyncio.run(_serve(config, python, args.timeout))


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The launch options (shared with `export`) and serve's own."""
    _add_options(parser)
    parser.add_argument("--print-command", action="store_true",
                        help="print the vLLM command line (and its environment) and start nothing")
    lora = parser.add_argument_group("LoRA adapters (docs/lora.md)")
    lora.add_argument("--lora", action="append", metavar="NAME=PATH_OR_REPO",
                      help="serve a LoRA adapter as model NAME (repeatable): its folder, or a Hub repo id "
                           "downloaded first; checked against the model before the start")
    lora.add_argument("--enable-lora", action="store_true", help="LoRA on without adapters at start "
                                                                 "(load them later: llmdesk lora load)")
    lora.add_argument("--max-loras", type=whole(1, 1024), metavar="N",
                      help="adapters in one batch (default: one per --lora)")
    lora.add_argument("--max-lora-rank", type=whole(1, 512), metavar="R",
                      help="largest adapter rank (default: the smallest vLLM value that holds the adapters')")
    lora.add_argument("--lora-any-base", action="store_true",
                      help="serve adapters that name another base model than the one served")


def with_loras(config, args: argparse.Namespace):
    """The config with serve's LoRA options applied: each --lora's name checked (the argv and the API get
    it), its source fetched (a Hub repo id is downloaded), its adapter read and checked against vLLM's rules
    and the model (base model, layers), --max-loras / --max-lora-rank sized from the adapters unless given
    (a given rank below an adapter's is refused). BadInput (exit 2) for anything vLLM would refuse."""
    given = getattr(args, "lora", None) or []
    if not (given or getattr(args, "enable_lora", False) or getattr(args, "max_loras", None)
            or getattr(args, "max_lora_rank", None)):
        return config
    from dataclasses import replace

    from llmdesk.commands.lora import fetch_adapter, model_facts, refuse, say_check
    from llmdesk.core.server.launch import LoraAdapter
    from llmdesk.core.server.lora import check_adapter, check_source, lora_slots, name_problem, parse_lora_option, \
        read_adapter

    pairs: list[tuple[str, str]] = []
    for text in given:  # every name and source first: a typo is found before any download
        name, source = parse_lora_option(text)
        problem = name_problem(name, base_names=(config.api_model_name,), taken=[n for n, _ in pairs])
        if problem is not None:
            raise BadInput(problem)
        check_source(source)
        pairs.append((name, source))
    checks = []
    if pairs:
        identities, geometry, label = model_facts(config.model, config.served_model_name)
        for name, source in pairs:
            info = read_adapter(fetch_adapter(source))
            checks.append(check_adapter(name, info, identities=identities, geometry=geometry, model_label=label,
                                        allow_other_base=args.lora_any_base))
            say_check(checks[-1])
        refuse(checks)
    slots = lora_slots([c.info.config.largest_rank for c in checks], max_loras=args.max_loras,
                       max_lora_rank=args.max_lora_rank)
    for note in slots.notes:
        print(f"note: {note}", file=sys.stderr)
    config = replace(config, enable_lora=True, max_loras=slots.max_loras, max_lora_rank=slots.max_lora_rank,
                     lora_adapters=tuple(LoraAdapter(c.name, str(c.info.folder)) for c in checks))
    problems = config.validate()
    if problems:
        raise BadInput(problems[0])
    runtime = ("adapters can be loaded while it runs (llmdesk lora load)" if config.runtime_lora_updating else
               "loading adapters while it runs is off: it listens beyond this computer without an API key")
    print(f"LoRA: {len(checks)} adapter{'s' if len(checks) != 1 else ''} at start, --max-loras {slots.max_loras}, "
          f"--max-lora-rank {slots.max_lora_rank}; {runtime}.", file=sys.stderr)
    return config


def print_command(config, python: str) -> None:
    """The exact argv `llmdesk serve` would start, as one shell line, after the environment llmdesk
    sets for it (the API key by name only: it never goes on a command line)."""
    import shlex

    from llmdesk.core.server.launch import build_vllm_command, child_environment

    env = child_environment(config, {})  # with no base: only what llmdesk itself sets
    shown = [f"{k}={shlex.quote(v)}" for k, v in env.items() if k != "VLLM_API_KEY"]
    if config.api_key:
        shown.append('VLLM_API_KEY="$VLLM_API_KEY"')
    print(" ".join(["env", *shown, shlex.join(build_vllm_command(config, python))]))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _serve(config, python: str, timeout_s: float) -> int:
    import asyncio
    import signal
    import time

    from llmdesk.core.server.supervisor import ServerState, Supervisor, find_leftovers, stop_leftover

    for leftover in await asyncio.to_thread(find_leftovers):
        _say(f"A vLLM server left by an earlier llmdesk is still running (pid {leftover.pid}, "
             f"port {leftover.port}, model {leftover.model}); stopping it.")
        if not await stop_leftover(leftover):
            raise ProblemError(Problem("Could not stop the old server",
                                       f"Processes of group {leftover.pgid} are still running.",
                                       f"Stop them by hand: kill -9 -{leftover.pgid}"))

    sup = Supervisor(python)
    t0 = time.monotonic()
    last_phase = [None]

    def on_status(status) -> None:
        if status.phase is not None and status.phase != last_phase[0] and status.state is ServerState.STARTING:
            if last_phase[0] is None:
                _say(f"expected: {status.estimate.basis}, about {status.estimate.total_s:.0f} s: " + " · ".join(
                    status.estimate.describe(p, s) for p, s in status.estimate.phases) if status.estimate
                    else "expected: no start of these settings here yet, so no estimate")
            last_phase[0] = status.phase
            left = ""
            if status.estimate is not None and status.started_at is not None:
                left = f" (about {status.estimate.left_s(status.phase, 0):.0f} s left)"
            _say(f"[{time.monotonic() - t0:6.1f} s] {status.phase.value}{left}")

    last_sleep = [None]

    def on_sleep(status) -> None:
        """Pause and resume, whoever asked (llmdesk server pause, the idle timer, a request), in one line each."""
        sleep = status.sleep
        if not sleep or status.state is not ServerState.READY:
            return
        state, freed = sleep.get("state"), sleep.get("gpu_freed_bytes")
        if (state, freed) == last_sleep[0] or (last_sleep[0] is None and state == "awake"):
            last_sleep[0] = (state, freed)
            return
        last_sleep[0] = (state, freed)
        why = sleep.get("reason") or ""
        stamp = f"[{time.monotonic() - t0:6.1f} s]"
        if state == "paused":
            took = (sleep.get("last_pause") or {}).get("seconds")
            gib = f", {freed / 1024**3:.1f} GiB of GPU memory freed" if freed else ""
            _say(f"{stamp} paused ({why}){f' in {took:.1f} s' if took is not None else ''}{gib}")
        elif state == "awake":
            took = (sleep.get("last_resume") or {}).get("seconds")
            _say(f"{stamp} resumed ({why}){f' in {took:.1f} s' if took is not None else ''}")
        else:
            _say(f"{stamp} {state} ({why})")

    sup.subscribe(on_status=on_status)
    sup.subscribe(on_status=on_sleep)
    loop = asyncio.get_running_loop()
    stop_asked = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a closed terminal too
        loop.add_signal_handler(sig, stop_asked.set)
    try:
        start = asyncio.create_task(sup.start(config, timeout_s=timeout_s))
        asked = asyncio.create_task(stop_asked.wait())
        done, _ = await asyncio.wait({start, asked}, return_when=asyncio.FIRST_COMPLETED)
        if asked in done and not start.done():
            _say("Stopping vLLM…")
            await sup.stop()
            await start
            _say("Stopped.")
            return EXIT_OK
        status = start.result()
        if status.state is not ServerState.READY:
            return _failed(status, sup)
        _say(f"[{time.monotonic() - t0:6.1f} s] ready — log: {sup.log_path}")
        if status.timeline is not None:
            _say(f"where the {status.timeline.total_s:.1f} s went: {status.timeline.summary()}")
        print(status.url, flush=True)
        watch = asyncio.create_task(sup.watch())
        done, _ = await asyncio.wait({watch, asked}, return_when=asyncio.FIRST_COMPLETED)
        if asked in done:
            _say("Stopping vLLM…")
            await sup.stop()
            _say("Stopped.")
            return EXIT_OK
        return _failed(sup.status, sup)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a closed terminal too
            loop.remove_signal_handler(sig)
        if sup.running:  # e.g. an unexpected error: never leave the group behind
            await sup.stop()


def _failed(status, sup) -> int:
    d = status.diagnosis
    lines = []
    if d is not None:
        lines += [f"error: {d.problem.title}", f"  {d.problem.explanation}"]
        if d.problem.fix:
            lines.append(f"  → {d.problem.fix}")
        if d.changes:
            change = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in d.changes.items())
            lines.append(f"  suggested change: {change}")
        if d.evidence:
            lines.append(f"  from the log: {d.evidence.strip()[:300]}")
    else:
        lines.append(f"error: vLLM ended ({status.state.value}, exit status {status.exit_code})")
    if sup.log_path is not None:
        lines.append(f"  full log: {sup.log_path}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    return EXIT_FAILURE


def parser_fields(args: argparse.Namespace) -> dict:
    """LaunchConfig's tool_call_parser / enable_auto_tool_choice / reasoning_parser from --tool-call-parser
    and --reasoning-parser: "auto" reads the model's config and chat template (or the --chat-template file
    among the vLLM arguments) on this computer, "none" leaves the flag out, a name is checked against
    vLLM 0.26's. A parser flag among the vLLM arguments already decides its kind: auto adds nothing."""
    from llmdesk.core.hub.chat_template import chat_facts
    from llmdesk.core.server.tool_parsers import ALL_PARSER_TOKENS, AUTO, choose, match_parsers

    tool_value = getattr(args, "tool_call_parser", None) or AUTO
    reasoning_value = getattr(args, "reasoning_parser", None) or AUTO
    extra = [a.split("=", 1)[0] for a in getattr(args, "extra_args", [])]
    if "--tool-call-parser" in extra and tool_value.lower() == AUTO:
        tool_value = "none"
    if "--reasoning-parser" in extra and reasoning_value.lower() == AUTO:
        reasoning_value = "none"
    auto = AUTO in (tool_value.lower(), reasoning_value.lower())
    match = None
    if auto or tool_value.lower() != "none":  # a named parser is checked against the template too
        template_file = _flag_value(list(getattr(args, "extra_args", [])), "--chat-template")
        if template_file and not os.path.isfile(os.path.expanduser(template_file)):
            template_file = None  # "tool_use" or a template given inline: the model's own is not it, unknown
        facts = chat_facts(args.source, chat_template_file=template_file, look_for=ALL_PARSER_TOKENS)
        match = match_parsers(**facts.match_args())
    tool = choose("tool", tool_value, match.auto_tool_call_parser if match else None)
    reasoning = choose("reasoning", reasoning_value, match.reasoning_parser if match else None)
    if match is not None and match.family and auto:
        for line in (match.summary(), *match.notes):
            print(f"note: {line}", file=sys.stderr)
    if match is not None and tool and tool_value.lower() != AUTO:  # set by hand: what speaks against it
        for line in match.hand_picked_warnings(tool):
            print(f"warning: {line}", file=sys.stderr)
    return {"tool_call_parser": tool, "enable_auto_tool_choice": tool is not None, "reasoning_parser": reasoning}


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


__all__ = ["EXIT_BAD_INPUT", "register", "run"]
