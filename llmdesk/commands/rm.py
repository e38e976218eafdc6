"""`llmdesk rm REPO`: delete a model from disk (asks first)."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, add_json_flag, confirm_delete, print_json
from llmdesk.core.base.errors import BadInput, Problem


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rm", help="delete a downloaded model",
        description="Deletes REPO (owner/name) from the Hugging Face cache, or a model folder given by path. "
                    "Asks for confirmation unless --yes.")
    parser.add_argument("model", metavar="REPO", help="owner/name as `llmdesk models` lists it, or a model folder")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask")
    parser.add_argument("--folder", action="append", default=[], metavar="PATH",
                        help="also look for the model in this folder")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmdesk.commands.models import scan
    from llmdesk.core.hub.downloads import format_bytes
    from llmdesk.core.hub.library import delete_model, find_models

    folders = list(args.folder)
    if Path(args.model).expanduser().is_dir():
        folders.append(args.model)
    hits = find_models(scan(folders), args.model)
    if not hits:
        raise BadInput(Problem(f"No model called {args.model} on disk",
                               "It is neither in the Hugging Face cache nor a model folder.",
                               "See what is there with `llmdesk models`."))
    total = sum(m.size_on_disk for m in hits)
    what = "\n".join(f"  {m.name}{' @ ' + m.revision[:12] if m.revision else ''}  {format_bytes(m.size_on_disk)}  "
                     f"{m.path}" for m in hits)
    question = f"Delete {len(hits)} model{'s' if len(hits) > 1 else ''} ({format_bytes(total)})?\n{what}"
    if not args.yes and not confirm_delete(question, "rm"):
        return EXIT_FAILURE
    freed = sum(delete_model(m) for m in hits)
    if args.json:
        print_json({"deleted": [m.as_dict() for m in hits], "freed_bytes": freed})
    else:
        print(f"Deleted {', '.join(m.name for m in hits)}; {format_bytes(freed)} freed.")
    return EXIT_OK
