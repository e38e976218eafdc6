"""`llmdesk gpus`: the NVIDIA GPUs this machine has."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_OK, add_json_flag, print_json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gpus", help="list the detected NVIDIA GPUs (or, with --catalogue, those to plan for)")
    parser.add_argument("--catalogue", action="store_true",
                        help="the GPUs llmdesk can plan for without having them (the names --gpu takes)")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.catalogue:
        return show_catalogue(args.json)
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


def show_catalogue(as_json: bool) -> int:
    from llmdesk.core.base.units import GIB
    from llmdesk.core.machine.gpu_catalogue import CATALOGUE

    if as_json:
        print_json([{"key": g.key, "name": g.name, "memory_total_bytes": g.memory_total_bytes,
                     "cuda_total_bytes": g.cuda_total_bytes, "compute_capability": list(g.compute_capability),
                     "aliases": list(g.aliases), "estimated": list(g.estimated)} for g in CATALOGUE])
        return EXIT_OK
    rows = [("KEY", "NAME (as NVML reports it)", "MEMORY", "CUDA SEES", "COMPUTE")]
    for g in CATALOGUE:
        approx = {part: "≈" if part in g.estimated else " " for part in ("memory", "cuda")}
        rows.append((g.key, g.name, f"{approx['memory']}{g.memory_total_bytes / GIB:6.1f} GiB",
                     f"{approx['cuda']}{g.cuda_total_bytes / GIB:6.1f} GiB", ".".join(map(str, g.compute_capability))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("\n≈ estimated: memory from the spec sheet (no nvidia-smi output seen), or what CUDA sees from a "
          "typical driver reserve.\nUse the key (or the name) with --gpu, e.g. llmdesk fit MODEL --gpu h100-80gb.")
    return EXIT_OK
