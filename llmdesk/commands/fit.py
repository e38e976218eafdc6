"""`llmdesk fit SOURCE`: will this model run under vLLM on these GPUs, with how much context?"""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_OK, MAX_BATCHED, MAX_CONTEXT, MAX_GPUS, MAX_SEQS, add_json_flag, number, print_json, whole
from llmdesk.core.base.errors import BadInput, Problem


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fit", help="predict vLLM memory, context and concurrency for a model on a GPU",
        description="SOURCE is a model folder, a config.json, or a Hugging Face repo id "
                    "(only its config and file list are read, no weights).")
    parser.add_argument("source", help="model folder, path to config.json, or owner/name on the Hub")
    parser.add_argument("--gpu", default="auto", metavar="NAME",
                        help="a GPU from the catalogue (e.g. h100, rtx-4090), or auto: this machine's GPUs")
    parser.add_argument("--gpus", type=whole(1, MAX_GPUS), metavar="N", help="how many GPUs to use (default: as many as needed)")
    parser.add_argument("--gpu-memory-utilization", type=number(0, 1, above=True), default=0.92, metavar="U")
    parser.add_argument("--max-model-len", type=whole(1, MAX_CONTEXT), metavar="L")
    parser.add_argument("--max-num-seqs", type=whole(1, MAX_SEQS), metavar="S")
    parser.add_argument("--max-num-batched-tokens", type=whole(1, MAX_BATCHED), metavar="T")
    parser.add_argument("--tensor-parallel-size", "-tp", type=whole(1, MAX_GPUS), metavar="N")
    parser.add_argument("--kv-cache-dtype", default="auto", metavar="D", help="auto or fp8")
    parser.add_argument("--quantization", "-q", metavar="Q", help="quantize on the fly, e.g. fp8")
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--max-loras", type=whole(1, 1024), metavar="N",
                        help="serve LoRA adapters (--enable-lora) with N slots: their memory comes out of the KV cache")
    parser.add_argument("--max-lora-rank", type=whole(1, 512), default=16, metavar="R",
                        help="the largest adapter rank (with --max-loras; default 16)")
    parser.add_argument("--weights-bytes", type=whole(1, 10**15), metavar="B", help="with a config.json: the weights' size")
    parser.add_argument("--parameters", type=number(0, 1e14, above=True), metavar="P", help="with a config.json: the parameter count")
    parser.add_argument("--allow-unknown-architecture", action="store_true",
                        help="estimate even if vLLM 0.26 does not list the model's architecture")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.fit.memory_model import LaunchSettings, plan_fit
    from llmdesk.core.hub.model_source import load_model_spec

    settings = LaunchSettings(
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
        kv_cache_dtype=args.kv_cache_dtype, enforce_eager=args.enforce_eager,
        tensor_parallel_size=args.tensor_parallel_size, quantization=args.quantization,
        max_loras=args.max_loras, max_lora_rank=args.max_lora_rank)
    settings.validate()  # bad numbers are reported before any network or disk work
    gpus = choose_gpus(args.gpu, args.gpus, settings.tensor_parallel_size)
    spec = load_model_spec(args.source, weights_bytes=args.weights_bytes, parameters=args.parameters,
                           allow_unknown_architecture=args.allow_unknown_architecture)
    report = plan_fit(spec, gpus, settings)
    if args.json:
        print_json(report.as_dict())
    else:
        print(render_text(report))
    return EXIT_OK


def choose_gpus(name: str, count: int | None, tensor_parallel_size: int | None):
    from llmdesk.core.machine.gpu_catalogue import find_gpu

    if name != "auto":  # planning: one card unless told how many
        entry = find_gpu(name)
        return [entry.as_gpu_info(i) for i in range(count or tensor_parallel_size or 1)]
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    if not scan.gpus:
        why = scan.problem.title if scan.problem else "No NVIDIA GPU found"
        raise BadInput(Problem(f"{why}: which GPU should the fit be for?",
                               "Without a GPU on this machine, name the one you plan to use.",
                               "Add --gpu NAME, e.g. --gpu h100, --gpu l40s or --gpu rtx-4090."))
    if count and count > len(scan.gpus):
        raise BadInput(Problem("Not that many GPUs", f"This machine has {len(scan.gpus)} GPU(s), not {count}.",
                               "Lower --gpus, or plan with --gpu NAME."))
    return list(scan.gpus[:count] if count else scan.gpus)


ALLOWANCE_LABELS = {"activation_peak": "Activation peak", "non_torch": "Non-torch memory", "cuda_graphs": "CUDA graphs", "rope_tables": "RoPE tables",
                    "lora": "LoRA adapters"}


def render_text(report) -> str:
    from llmdesk.core.base.units import format_gib
    from llmdesk.core.fit.format_measurements import measured_line
    from llmdesk.core.fit.memory_model import VERDICT_NO, VERDICT_UNSUPPORTED

    gib = format_gib
    gpus = f"{report.tensor_parallel_size}× " if report.tensor_parallel_size > 1 else ""
    lines = [
        f"{report.model}",
        f"  {report.summary}",
        "",
        f"  GPU                {gpus}{report.gpu_name}",
        f"  Format             {report.quantization}",
        *([f"  Measured           {line}"] if (line := measured_line(report.measured)) else []),
        f"  Weights            {gib(report.weights_bytes, 2)} ({report.weights_source})"
        + (f", {gib(report.weights_bytes_per_gpu, 2)} per GPU" if report.tensor_parallel_size > 1 else ""),
        f"  vLLM's share       {gib(report.requested_bytes_per_gpu, 2)} per GPU",
    ]
    for name, allowance in report.allowances.items():
        lines.append(f"  {ALLOWANCE_LABELS.get(name, name):<18} {gib(allowance.bytes, 2)}  ({allowance.why})")
    lines += [
        f"  KV cache           {gib(max(0, report.kv_cache_bytes), 2)} per GPU = {report.kv_cache_tokens:,} tokens "
        f"({report.kv_bytes_per_token:,} bytes per token)",
        f"  Context            {report.max_model_len:,} of the model's {report.model_max_len:,} tokens",
        f"  Concurrency        {report.max_concurrency:.1f} requests at that length",
    ]
    for note in report.notes:
        lines.append(f"  ! {note}")
    if report.verdict not in (VERDICT_NO, VERDICT_UNSUPPORTED):
        lines += ["", "  " + report.serve_command]
        if not report.serve_target:
            lines.append("  (MODEL: the folder with the weights, or the repo id; vLLM cannot serve a bare config.json)")
    return "\n".join(lines)
