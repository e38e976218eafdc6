"""`llmdesk runtime`: which Python with vLLM llmdesk would use; `--install` creates llmdesk's own.

Exit codes: 0 a runtime is found (or was installed), 1 none found (or the install failed),
2 bad input (an unusable --python).
"""

from __future__ import annotations

import argparse
import sys

from llmdesk.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, add_json_flag, load_settings_said, print_json


def register(commands: argparse._SubParsersAction) -> None:
    from llmdesk.core.server.runtime import INSTALL_SIZE

    parser = commands.add_parser(
        "runtime", help="show the vLLM runtime, or install llmdesk's own (--install)",
        description="Without options, show which Python with vLLM llmdesk would use and where it "
                    "looked. With --install, create llmdesk's own virtual environment and install "
                    f"the tested vLLM into it ({INSTALL_SIZE}).")
    parser.add_argument("--install", action="store_true",
                        help="create the managed environment and pip-install the tested vLLM")
    parser.add_argument("--python", metavar="PY",
                        help="base interpreter for --install (default: a CPython 3.10–3.14 on PATH)")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.python and not args.install:
        print("error: --python only applies with --install", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.install:
        return _install(args)
    return _show(args)


def _show(args: argparse.Namespace) -> int:
    from llmdesk.core.server.runtime import TESTED_VLLM, find_vllm_runtime, managed_runtime_dir

    settings = load_settings_said()
    search = find_vllm_runtime(settings.runtime_python)
    found = search.runtime
    if args.json:
        print_json({
            "runtime": None if found is None else {
                "python": found.python, "vllm_version": found.vllm_version,
                "source": found.source, "tested": found.is_tested},
            "tested_vllm": TESTED_VLLM,
            "managed_dir": str(managed_runtime_dir()),
            "tried": [{"where": where, "why": why} for where, why in search.tried],
            "problem": None if search.problem is None else search.problem.as_dict(),
        })
        return EXIT_OK if found else EXIT_FAILURE
    lines = []
    if found is not None:
        lines.append(f"vLLM {found.vllm_version} in {found.python} ({found.source})")
        if not found.is_tested:
            lines.append(f"  note: llmdesk is tested with vLLM {TESTED_VLLM}")
    if search.tried and search.problem is None:  # a problem's explanation names them already
        lines.append("Looked at:")
        lines.extend(f"  {where}: {why}" for where, why in search.tried)
    if search.problem is not None:
        lines.append(search.problem.title)
        lines.append(f"  {search.problem.explanation}")
        if search.problem.fix:
            lines.append(f"  → {search.problem.fix}")
    if found is None:
        lines.append(f"  (llmdesk's own environment goes in {managed_runtime_dir()})")
    print("\n".join(lines))
    return EXIT_OK if found else EXIT_FAILURE


def _install(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.server.runtime import INSTALL_SIZE
    from llmdesk.core.server.runtime_install import (STEP_FAILED, InstallProgress, default_log_path,
                                                     install_managed_runtime)

    log_path = default_log_path()
    last_step = [""]

    def progress(p: InstallProgress) -> None:
        if p.step == STEP_FAILED:
            return  # the ProblemError is printed by the CLI
        if p.step != last_step[0]:
            last_step[0] = p.step
            percent = f" ({p.fraction:.0%})" if p.fraction is not None else ""
            print(f"== {p.step}{percent}", file=sys.stderr, flush=True)
        if p.line is not None:
            print(f"   {p.line}", file=sys.stderr, flush=True)

    print(f"Installing vLLM ({INSTALL_SIZE}); log: {log_path}",
          file=sys.stderr, flush=True)
    python = asyncio.run(install_managed_runtime(python=args.python, on_progress=progress,
                                                 log_path=log_path))
    from llmdesk.core.server.runtime import vllm_version_of

    version = vllm_version_of(str(python))
    if args.json:
        print_json({"python": str(python), "vllm_version": version, "log": str(log_path)})
    else:
        print(f"vLLM {version} installed in {python}")
    return EXIT_OK
