"""`llmdesk` with no arguments opens the window; `llmdesk <command>` does the same jobs headless.

Exit codes: 0 ok, 1 failure (the job ran and something is wrong), 2 bad input.
Each command lives in llmdesk/commands/<name>.py and registers itself through `register()`;
heavy imports stay inside the command so that `llmdesk --help` and the GUI start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from llmdesk import __version__
from llmdesk.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, print_json
from llmdesk.core.base.app_log import log_file, setup_logging
from llmdesk.core.base.errors import BadInput, ProblemError, problem_from_exception

# Order is the order of `llmdesk --help`.
COMMAND_MODULES = ("gui", "gpus", "doctor", "fit", "serve", "server", "lora", "chat", "chats", "endpoint", "metrics", "bench", "export", "runtime", "search", "variants", "pull", "models", "rm", "screenshot")

log = logging.getLogger("llmdesk.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmdesk",
        description="Host LLMs on your own NVIDIA GPUs with vLLM. Without a command, opens the app.")
    parser.add_argument("--version", action="version", version=f"llmdesk {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"llmdesk.commands.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        args_list = ["gui"]
    parser = build_parser()
    args = parser.parse_args(args_list)  # exits 2 with a usage message on bad input
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    setup_logging()
    try:
        return int(args.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `llmdesk … | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except BadInput as exc:
        _print_problem(args, exc)
        return EXIT_BAD_INPUT
    except ProblemError as exc:
        _print_problem(args, exc)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: keep the traceback in the log, give the user a sentence
        log.exception("llmdesk %s failed", args.command)
        _print_problem(args, exc)
        return EXIT_FAILURE


def _print_problem(args: argparse.Namespace, exc: BaseException) -> None:
    problem = problem_from_exception(exc, f"running `llmdesk {args.command}`")
    if getattr(args, "json", False):
        print_json({"error": problem.as_dict()})
        return
    lines = [f"error: {problem.title}", f"  {problem.explanation}"]
    if problem.fix:
        lines.append(f"  → {problem.fix}")
    if not isinstance(exc, ProblemError):
        lines.append(f"  (details in {log_file()})")
    print("\n".join(lines), file=sys.stderr)
