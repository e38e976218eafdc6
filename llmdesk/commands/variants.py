"""`llmdesk variants REPO`: the model and its quantized copies, each judged for these GPUs."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_OK, MAX_CONTEXT, MAX_GPUS, add_json_flag, print_json, whole

VERDICT_LABELS = {"fits": "fits", "fits_shorter_context": "shorter context", "needs_tensor_parallel": "needs {tp} GPUs",
                  "does_not_fit": "does not fit", "unsupported": "not supported", "unknown": "unknown"}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "variants", help="list a model's quantized variants with a fit verdict for your GPUs",
        description="Finds REPO's quantized copies on the Hub (its declared lineage, then by name), reads "
                    "each one's config (no weights) and says whether it fits: best fit first, with a "
                    "recommended pick.")
    parser.add_argument("repo", help="a Hugging Face repo id, e.g. Qwen/Qwen2.5-7B-Instruct")
    parser.add_argument("--gpu", default="auto", metavar="NAME",
                        help="a GPU from the catalogue (e.g. h100, rtx-4090), or auto: this machine's GPUs")
    parser.add_argument("--gpus", type=whole(1, MAX_GPUS), metavar="N", help="how many of those GPUs (default: one to plan for, "
                                                              "or all detected)")
    parser.add_argument("--max-model-len", type=whole(1, MAX_CONTEXT), metavar="L", help="the context to judge for (default: the model's)")
    parser.add_argument("--limit", type=whole(1, 1000), default=40, metavar="N", help="at most N variants (default 40)")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.commands.fit import choose_gpus
    from llmdesk.core.fit.memory_model import LaunchSettings
    from llmdesk.core.hub.access import check_repo_id
    from llmdesk.core.hub.variants import evaluate_variants, find_variant_ids, rank_variants

    check_repo_id(args.repo)

    settings = LaunchSettings(max_model_len=args.max_model_len)
    settings.validate()  # bad numbers are reported before any network work
    gpus = choose_gpus(args.gpu, args.gpus, None)
    ids = find_variant_ids(args.repo, limit=args.limit)
    ranked, pick = rank_variants(evaluate_variants(ids, gpus, settings))
    if args.json:
        print_json({"base": ids[0][0], "gpu": gpus[0].name, "gpu_count": len(gpus),
                    "max_model_len": args.max_model_len, "recommended": pick.repo_id if pick else None,
                    "variants": [{**v.as_dict(), "recommended": v is pick} for v in ranked]})
    else:
        print(render_text(ids[0][0], gpus, ranked, pick))
    return EXIT_OK


def render_text(base: str, gpus, ranked, pick) -> str:
    from llmdesk.core.base.units import format_gib

    header = ("", "VARIANT", "FORMAT", "SIZE", "VERDICT", "CONTEXT", "CONCURRENCY")
    rows, notes = [header], {}
    for v in ranked:
        report = v.report
        verdict = VERDICT_LABELS.get(v.verdict, v.verdict).format(tp=report.tensor_parallel_size if report else "?")
        runs = report is not None and report.max_model_len > 0
        rows.append(("★" if v is pick else "", v.repo_id, v.format_label,
                     format_gib(v.size_bytes) if v.size_bytes else "—", verdict,
                     f"{report.max_model_len:,}" if runs else "—", f"{report.max_concurrency:.1f}" if runs else "—"))
        if v.problem is not None or v.rank_note:
            notes[len(rows) - 1] = v.problem.title if v.problem is not None else v.rank_note
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {3, 5, 6}
    lines = [f"Variants of {base} on {len(gpus)}× {gpus[0].name}, best fit first", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths)))
                     .rstrip())
        if i in notes:
            lines.append(" " * (widths[0] + 2) + f"  ! {notes[i]}")
    lines.append("")
    if pick is not None:
        lines.append(f"★ Recommended: {pick.repo_id} ({pick.format_label}). {pick.report.summary}")
    else:
        lines.append("Nothing here runs on these GPUs: try more GPUs (--gpus N), a shorter --max-model-len, "
                     "or a bigger GPU.")
    return "\n".join(lines)
