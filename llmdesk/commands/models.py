"""`llmdesk models`: the models on disk (Hugging Face cache, models folder, folders you name)."""

from __future__ import annotations

import argparse
import time

from llmdesk.commands import EXIT_OK, add_json_flag, load_settings_said, print_json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models", help="list the models on disk",
        description="Lists the models in the Hugging Face cache (HF_HOME/hub, or HF_HUB_CACHE), in the models "
                    "folder set in Settings, in the folders added in the app, and in any --folder given.")
    parser.add_argument("--folder", action="append", default=[], metavar="PATH",
                        help="also look in this folder (a model folder, or a folder of model folders)")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    models = scan(args.folder)
    if args.json:
        print_json([m.as_dict() for m in models])
    else:
        print(render_text(models))
    return EXIT_OK


def scan(extra_folders=()):
    from llmdesk.core.hub.library import scan_for_settings

    return scan_for_settings(load_settings_said(), extra_folders)


def render_text(models) -> str:
    from llmdesk.core.hub.downloads import format_bytes

    if not models:
        return "No models on disk yet. Get one with `llmdesk pull OWNER/NAME`."
    rows = [("MODEL", "FORMAT", "SIZE", "LAST USED", "STATE", "PATH")]
    for m in models:
        state = "ready" if m.complete else ("partial" if m.partial_bytes else "incomplete")
        rows.append((m.name, m.format_label or "?", format_bytes(m.size_on_disk), ago(m.last_used), state,
                     str(m.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def ago(when: float | None, now: float | None = None) -> str:
    if not when:
        return "-"
    seconds = max(0.0, (now or time.time()) - when)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"
