"""`llmdesk runtime`: which Python with vLLM llmdesk would use, and its managed runtimes.

    llmdesk runtime                      the runtime llmdesk would use and where it looked
    llmdesk runtime list                 the managed runtimes (one venv per vLLM version), the one in use marked
    llmdesk runtime install [VERSION]    install one (default: the tested release) and use it
    llmdesk runtime use VERSION          switch to another managed runtime
    llmdesk runtime remove VERSION       delete one that is not in use

Exit codes: 0 done (or a runtime is found), 1 failure (or none found), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, add_json_flag, load_settings_said, print_json


def register(commands: argparse._SubParsersAction) -> None:
    from llmdesk.core.server.runtime import INSTALL_SIZE, TESTED_VLLM

    parser = commands.add_parser(
        "runtime", help="the vLLM runtime llmdesk uses; list, install, use or remove managed ones",
        description="Without a subcommand, show which Python with vLLM llmdesk would use and where it looked. "
                    "Managed runtimes are virtual environments llmdesk makes (with uv) under its data folder, one "
                    f"per vLLM version ({INSTALL_SIZE} each for {TESTED_VLLM}).")
    add_json_flag(parser)
    parser.set_defaults(run=_show)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="the managed runtimes, the one in use marked")
    add_json_flag(listing)
    listing.set_defaults(run=_list)
    install = sub.add_parser("install", help="install a vLLM version as a managed runtime and use it")
    install.add_argument("version", nargs="?", default=TESTED_VLLM, help=f"default: {TESTED_VLLM}, the tested release")
    install.add_argument("--wheels", metavar="DIR", type=Path,
                         help="install from this folder of wheels, without network (pip download vllm==V -d DIR)")
    install.add_argument("--python", metavar="PY", help="base interpreter (default: a CPython 3.10–3.14 on PATH)")
    install.add_argument("--no-use", action="store_true", help="install it, but keep the runtime in use")
    install.add_argument("--pip", action="store_true", help="use pip instead of uv")
    install.add_argument("--force", action="store_true",
                         help="install even if the NVIDIA driver looks too old for this vLLM's CUDA build")
    add_json_flag(install)
    install.set_defaults(run=_install)
    use = sub.add_parser("use", help="switch to another managed runtime")
    use.add_argument("version")
    add_json_flag(use)
    use.set_defaults(run=_use)
    remove = sub.add_parser("remove", help="delete a managed runtime that is not in use")
    remove.add_argument("version")
    add_json_flag(remove)
    remove.set_defaults(run=_remove)


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


def _list(args: argparse.Namespace) -> int:
    from llmdesk.core.server.runtimes import list_runtimes, runtimes_dir

    found = list_runtimes()
    if args.json:
        print_json({"folder": str(runtimes_dir()), "runtimes": [r.as_dict() for r in found]})
        return EXIT_OK
    if not found:
        print(f"No managed runtime yet (they go in {runtimes_dir()}); llmdesk runtime install makes one.")
    for r in found:
        print(f"{'*' if r.in_use else ' '} vLLM {r.version}  {r.path}")
    return EXIT_OK


def _use(args: argparse.Namespace) -> int:
    from llmdesk.core.server.runtimes import use_runtime

    chosen = use_runtime(args.version)
    if args.json:
        print_json(chosen.as_dict())
    else:
        print(f"llmdesk now starts servers with vLLM {chosen.version} ({chosen.python}).")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    from llmdesk.core.base.units import GIB
    from llmdesk.core.server.runtimes import remove_runtime

    freed = remove_runtime(args.version)
    if args.json:
        print_json({"removed": args.version, "freed_bytes": freed})
    else:
        print(f"Removed vLLM {args.version} ({freed / GIB:.1f} GiB freed).")
    return EXIT_OK


def _install(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from llmdesk.core.server.runtime import INSTALL_SIZE
    from llmdesk.core.server.runtime_install import STEP_FAILED, InstallProgress, default_log_path
    from llmdesk.core.server.runtimes import install_runtime

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

    print(f"Installing vLLM {args.version} ({INSTALL_SIZE} for the tested release); log: {log_path}",
          file=sys.stderr, flush=True)

    async def install():
        task = asyncio.ensure_future(install_runtime(args.version, wheels=args.wheels, use=not args.no_use,
                                                     python=args.python, on_progress=progress, log_path=log_path,
                                                     uv=not args.pip, check_driver=not args.force))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the installer's process group goes too
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            print("Install stopped; what was downloaded is kept, and the next install continues from it.",
                  file=sys.stderr)
            return None

    installed = asyncio.run(install())
    if installed is None:
        return EXIT_FAILURE
    if args.json:
        print_json({**installed.as_dict(), "log": str(log_path)})
    else:
        print(f"vLLM {installed.version} installed in {installed.path}"
              + (" and in use." if installed.in_use else " (not in use: llmdesk runtime use " + installed.version + ")"))
    return EXIT_OK
