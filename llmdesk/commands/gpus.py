"""`llmdesk gpus`: the NVIDIA GPUs this machine has."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_OK, add_json_flag, print_json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gpus", help="list the detected NVIDIA GPUs")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    if args.json:
        print_json([gpu.as_dict() for gpu in scan.gpus])
        return EXIT_OK
    print(render_text(scan))
    return EXIT_OK


def render_text(scan) -> str:
    from llmdesk.core.base.units import format_gib

    if not scan.gpus:
        problem = scan.problem
        lines = [problem.title if problem else "No NVIDIA GPU found."]
        if problem:
            lines.append(f"  {problem.explanation}")
            if problem.fix:
                lines.append(f"  → {problem.fix}")
        return "\n".join(lines)
    lines = [f"Driver {scan.driver_version or '?'}, CUDA {scan.cuda_driver_version or '?'}"]
    for gpu in scan.gpus:
        cc = ".".join(map(str, gpu.compute_capability))
        lines.append(f"GPU {gpu.index}: {gpu.name}  {format_gib(gpu.memory_free_bytes)} free of "
                     f"{format_gib(gpu.memory_total_bytes)}  compute {cc}")
    return "\n".join(lines)
