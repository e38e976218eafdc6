"""`llmdesk gui` (also `llmdesk` alone): open the main window."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_FAILURE


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gui", help="open the app (the default)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from llmdesk.core.machine.display import check_window

    # Qt aborts the whole process (exit 134) when its platform plugin cannot load, with a hint that
    # names the wrong library: find out first, and say what is missing in one message.
    check = check_window()
    if check.problem is not None:
        logging.getLogger("llmdesk.gui").error("cannot open the window: %s: %s", check.problem.title,
                                               check.problem.explanation)
        print(f"llmdesk: {check.problem.title}\n  {check.problem.explanation}\n  → {check.problem.fix}",
              file=sys.stderr)
        return EXIT_FAILURE
    from llmdesk.ui.app import run_app

    return run_app()
