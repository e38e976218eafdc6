"""One module per `llmdesk` subcommand; each defines register(subparsers) and sets `run`.

Here: what every command shares (exit codes, --json, asking before deleting). llmdesk.cli builds
the parser from the command modules and maps failures to exit codes; commands never import it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from llmdesk.core.base.errors import BadInput, Problem

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

# Bounds checked while parsing (argparse answers exit 2 with the option's name): a number far past
# any real machine (--gpus 100000000) would otherwise grow memory or reach a wrong diagnosis.
MAX_GPUS, MAX_CONTEXT, MAX_SEQS, MAX_BATCHED = 64, 100_000_000, 65_536, 10_000_000
MAX_ID = 2**63 - 1  # SQLite's largest row id


def whole(low: int, high: int):
    """An argparse type: a whole number from low to high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: {low} to {high:,}")
        return value
    return parse


def number(low: float, high: float, *, above: bool = False):
    """An argparse type: a finite number from low (excluded when above) to high."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (above and value == low):
            side = f"more than {low:g}" if above else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: {side} and at most {high:g}")
        return value
    return parse


def text(max_length: int):
    """An argparse type: text of at most max_length characters."""
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise argparse.ArgumentTypeError(f"{len(value):,} characters is too long (at most {max_length})")
        return value
    return parse


def add_url_option(parser: argparse.ArgumentParser) -> None:
    """--url for the commands that talk to a running server (resolved by core/server/endpoint.py)."""
    parser.add_argument("--url", metavar="URL",
                        help="server root (http://127.0.0.1:8000) or its /v1 base "
                             "(default: the server llmdesk manages, else http://127.0.0.1:8000)")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def confirm_delete(question: str, command: str) -> bool:
    """Ask on stderr and read the answer from stdin: True for "y"/"yes", False (after saying
    "Nothing deleted.") for anything else; BadInput when there is no input to answer from."""
    def no_one_to_confirm() -> BadInput:
        return BadInput(Problem("Not deleted: no one to confirm", f"llmdesk {command} asks before deleting, and "
                                "there is no input to answer from.", "Add --yes to delete without asking."))

    if sys.stdin is None or sys.stdin.closed:
        raise no_one_to_confirm()
    print(question, file=sys.stderr)
    print("Type 'yes' to delete: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:  # end of input: nobody there to ask
        print(file=sys.stderr)
        raise no_one_to_confirm()
    if answer.strip().lower() not in ("y", "yes"):
        print("Nothing deleted.", file=sys.stderr)
        return False
    return True


def load_settings_said():
    """The user's settings; a notice (a file moved aside, values not used) is said on stderr, not lost."""
    from llmdesk.core.base.settings import load_settings

    settings, notice = load_settings()
    if notice is not None:
        print(f"note: {notice.title}. {notice.message()}", file=sys.stderr)
    return settings
