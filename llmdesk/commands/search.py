"""`llmdesk search QUERY`: text-generation models on the Hugging Face Hub, as the Models page lists them."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_OK, add_json_flag, number, print_json, text, whole


def register(commands: argparse._SubParsersAction) -> None:
    from llmdesk.core.hub.search import SORTS

    parser = commands.add_parser(
        "search", help="search Hugging Face for text-generation models vLLM can serve",
        description="Lists text-generation models whose id contains QUERY, most downloaded first. Only "
                    "architectures vLLM 0.26 serves are shown unless --all-architectures is given.")
    parser.add_argument("query", nargs="?", default="", type=text(200), help="text the repo id must contain (empty: all)")
    parser.add_argument("--sort", choices=list(SORTS), default="downloads")
    parser.add_argument("--limit", type=whole(1, 10_000), default=20, metavar="N", help="how many models to list (default 20)")
    parser.add_argument("--author", metavar="A", help="only this user or organisation")
    parser.add_argument("--min-params", type=number(0, 100_000, above=True), metavar="B", help="at least B billion parameters")
    parser.add_argument("--max-params", type=number(0, 100_000, above=True), metavar="B", help="at most B billion parameters")
    parser.add_argument("--all-architectures", action="store_true",
                        help="also list models whose architecture or format vLLM 0.26 cannot serve")
    gated = parser.add_mutually_exclusive_group()
    gated.add_argument("--open-only", action="store_true", help="leave out gated models")
    gated.add_argument("--gated-only", action="store_true", help="only gated models")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.hub.search import SearchQuery, search_models

    gated = False if args.open_only else (True if args.gated_only else None)
    query = SearchQuery(text=args.query, sort=args.sort, author=args.author, min_params=args.min_params,
                        max_params=args.max_params, vllm_only=not args.all_architectures, gated=gated,
                        limit=args.limit, page_size=min(max(args.limit, 50), 100))
    rows = list(search_models(query))
    if args.json:
        print_json([row.as_dict() for row in rows])
    else:
        print(render_text(rows, query))
    return EXIT_OK


def render_text(rows, query) -> str:
    if not rows:
        what = f" matching '{query.text}'" if query.text else ""
        return f"No text-generation models{what}" + (" that vLLM 0.26 serves." if query.vllm_only else ".")
    table = [("MODEL", "PARAMS", "DOWNLOADS", "LIKES", "UPDATED", "GATED", "LICENCE")]
    for row in rows:
        table.append((row.repo_id, human_count(row.parameters), human_count(row.downloads), human_count(row.likes),
                      row.last_modified.date().isoformat() if row.last_modified else "—",
                      "gated" if row.gated else "", row.license or "—"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    right = {1, 2, 3}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             .rstrip() for r in table]
    return "\n".join(lines)


def human_count(n: int | None) -> str:
    """2_134_567 -> 2.1M, 7_615_616_512 -> 7.6B, 812 -> 812."""
    if n is None:
        return "—"
    for size, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)
