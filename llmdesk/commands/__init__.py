"""One module per `llmdesk` subcommand; each defines register(subparsers) and sets `run`.

Here: what every command shares (exit codes, --json, asking before deleting). llmdesk.cli builds
the parser from the command modules and maps failures to exit codes; commands never import it.
"""

from __future__ import annotations

import argparse
import json
import sys

from llmdesk.core.base.errors import BadInput, Problem

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


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
