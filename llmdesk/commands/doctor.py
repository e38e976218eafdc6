"""`llmdesk doctor`: what is present, what is missing, and how to fix it."""

from __future__ import annotations

import argparse

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, add_json_flag, load_settings_said, print_json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("doctor", help="check the driver, GPUs, vLLM runtime and disk")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.doctor.checks import run_doctor

    settings = load_settings_said()
    report = run_doctor(settings)
    if args.json:
        print_json(report.as_dict())
    else:
        print(report.render_text())
    return EXIT_OK if report.ok else EXIT_FAILURE
