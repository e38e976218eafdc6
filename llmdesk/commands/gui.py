"""`llmdesk gui` (also `llmdesk` alone): open the main window."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gui", help="open the app (the default)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.ui.app import run_app

    return run_app()
