"""`llmdesk chats`: the saved conversations (the Chat page's, and `llmdesk chat --save`'s).

    llmdesk chats [list] [--search Q] [--json]   list, newest first
    llmdesk chats show ID [--json]               one chat as Markdown (or JSON)
    llmdesk chats export ID... | --all [--format md|json] [-o FILE]
    llmdesk chats import FILE                    llmdesk's export, one chat, or {"messages": [...]}
    llmdesk chats rm ID [--yes]
    llmdesk chats rename ID TITLE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, MAX_ID, confirm_delete, print_json, whole
from llmdesk.core.base.errors import BadInput, Problem, ProblemError


def _json_flag(parser: argparse.ArgumentParser, top: bool = False) -> None:
    # SUPPRESS below the top: a subcommand's unset default would overwrite `chats --json`.
    parser.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="print machine-readable JSON")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "chats", help="list, show, export, import, rename or delete saved chats",
        description="The conversations saved by the Chat page and by `llmdesk chat --save`. Without a "
                    "subcommand, lists them newest first.")
    parser.add_argument("--search", metavar="Q", default="",
                        help="only chats whose title or messages contain Q (case ignored)")
    _json_flag(parser, top=True)
    parser.set_defaults(run=run_list)
    sub = parser.add_subparsers(dest="chats_command", metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="list saved chats, newest first (the same as no subcommand)")
    listing.add_argument("--search", metavar="Q", default=argparse.SUPPRESS,
                         help="only chats whose title or messages contain Q (case ignored)")
    _json_flag(listing)
    listing.set_defaults(run=run_list)

    show = sub.add_parser("show", help="print one chat (Markdown, or JSON with --json)")
    show.add_argument("id", type=whole(1, MAX_ID), metavar="ID")
    _json_flag(show)
    show.set_defaults(run=run_show)

    export = sub.add_parser("export", help="export chats as Markdown or JSON",
                            description="Writes to FILE, or to standard output without -o. JSON exports can "
                                        "be imported again with `llmdesk chats import`.")
    export.add_argument("ids", type=whole(1, MAX_ID), nargs="*", metavar="ID")
    export.add_argument("--all", action="store_true", help="every saved chat")
    export.add_argument("--format", choices=("md", "json"),
                        help="md or json (default: from FILE's extension, else md)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(run=run_export)

    imp = sub.add_parser("import", help="import chats from a JSON file",
                         description="Reads llmdesk's JSON export, a single exported chat, or OpenAI-style "
                                     '{"messages": [{"role": ..., "content": ...}]}. Always adds new chats; '
                                     "a file with any error imports nothing.")
    imp.add_argument("file", metavar="FILE", help="the JSON file, or - for standard input")
    _json_flag(imp)
    imp.set_defaults(run=run_import)

    rm = sub.add_parser("rm", help="delete a saved chat (asks first)")
    rm.add_argument("id", type=whole(1, MAX_ID), metavar="ID")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask")
    _json_flag(rm)
    rm.set_defaults(run=run_rm)

    rename = sub.add_parser("rename", help="give a saved chat another title")
    rename.add_argument("id", type=whole(1, MAX_ID), metavar="ID")
    rename.add_argument("title", metavar="TITLE")
    _json_flag(rename)
    rename.set_defaults(run=run_rename)


def open_store():
    """The store, with its one-time notice (a file moved aside) said on stderr."""
    from llmdesk.core.chat.conversations import ConversationStore

    store = ConversationStore()
    if store.notice is not None:
        print(f"note: {store.notice.title}. {store.notice.explanation}", file=sys.stderr)
    return store


# --- list, show -------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    with open_store() as store:
        rows = store.list(args.search)
    if args.json:
        print_json([r.as_dict() for r in rows])
    else:
        print(render_list(rows, args.search))
    return EXIT_OK


def render_list(rows, search: str = "", now: float | None = None) -> str:
    from llmdesk.commands.models import ago

    if not rows:
        return f"No saved chat matches {search.strip()!r}." if search.strip() else \
            "No saved chats yet. Chat on the Chat page, or with `llmdesk chat --save`."
    table = [("ID", "UPDATED", "MESSAGES", "MODEL", "TITLE")]
    for r in rows:
        table.append((str(r.id), ago(r.updated, now), str(r.message_count), r.model or "-", r.title))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = []
    for row in table:
        cells = [row[0].rjust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].ljust(widths[3])]
        lines.append("  ".join(cells) + "  " + row[4])
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    from llmdesk.core.chat.conversations import to_json, to_markdown

    with open_store() as store:
        conversation = store.get(args.id)
    if args.json:
        print_json(to_json(conversation))
    else:
        sys.stdout.write(to_markdown(conversation))
    return EXIT_OK


# --- export, import ---------------------------------------------------------------------------

def run_export(args: argparse.Namespace) -> int:
    import json

    from llmdesk.core.chat.conversations import to_markdown

    if args.all == bool(args.ids):
        raise BadInput(Problem("Which chats?", "Give the ids of the chats to export, or --all (not both).",
                               "See the ids with `llmdesk chats`."))
    fmt = args.format or ("json" if args.output and args.output.lower().endswith(".json") else "md")
    if args.output is not None:
        check_export_target(Path(args.output).expanduser(), args.force)
    with open_store() as store:
        if fmt == "json":
            data = store.export_json(None if args.all else args.ids)
            count = len(data["conversations"])
            text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        else:
            ids = [r.id for r in reversed(store.list())] if args.all else args.ids
            conversations = [store.get(i) for i in ids]
            count = len(conversations)
            text = "\n---\n\n".join(to_markdown(c) for c in conversations)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(args.output).expanduser()
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ProblemError(Problem("Could not write the export", f"{path}: {exc.strerror or exc}.",
                                   "Check the folder exists, its permissions and the free space.")) from None
    print(f"Exported {count} chat{'' if count == 1 else 's'} to {path}.", file=sys.stderr)
    return EXIT_OK


def check_export_target(path, force: bool) -> None:
    """Never the store itself (writing the export over it destroyed every chat), and never an
    existing file without --force."""
    from llmdesk.core.chat.conversations import default_path

    target = path.resolve()
    store = default_path().resolve()
    if target == store or target.name.startswith(store.name + "-") and target.parent == store.parent:
        raise BadInput(Problem("That is where the chats are kept", f"{path} is llmdesk's own chat store: "
                               "writing the export there would destroy every chat.", "Choose another file."))
    if path.exists() and not force:
        raise BadInput(Problem(f"{path} exists", "The export would replace it.",
                               "Choose another file name, or add --force to replace it."))


def run_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    name = "standard input" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(Problem(f"No file {args.file}", "There is no such file.", None)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(Problem(f"Cannot read {name}", f"{getattr(exc, 'strerror', None) or exc}.", None)) from None
    from llmdesk.core.chat.conversations import parse_import_text

    data = parse_import_text(text, name)
    with open_store() as store:
        ids = store.import_json(data)
        titles = [store.get(i).title for i in ids]
    if args.json:
        print_json({"imported": ids})
    elif not ids:
        print("Nothing to import: the file holds no chats.")
    else:
        print(f"Imported {len(ids)} chat{'' if len(ids) == 1 else 's'}:")
        for i, title in zip(ids, titles):
            print(f"  {i}  {title}")
    return EXIT_OK


# --- rm, rename -------------------------------------------------------------------------------

def run_rm(args: argparse.Namespace) -> int:
    with open_store() as store:
        conversation = store.get(args.id)
        question = f"Delete chat {args.id} ({conversation.title!r}, {len(conversation.messages)} messages)?"
        if not args.yes and not confirm_delete(question, "chats rm"):
            return EXIT_FAILURE
        store.delete(args.id)
    if args.json:
        print_json({"deleted": args.id})
    else:
        print(f"Deleted chat {args.id} ({conversation.title}).")
    return EXIT_OK


def run_rename(args: argparse.Namespace) -> int:
    with open_store() as store:
        store.rename(args.id, args.title)
        title = store.get(args.id).title
    if args.json:
        print_json({"id": args.id, "title": title})
    else:
        print(f"Chat {args.id} is now called {title!r}.")
    return EXIT_OK
