"""`llmdesk lora list|load|unload|check`: the LoRA adapters of a running server, and one adapter checked
offline. `load` and `unload` use vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter, which a server
offers only when it was started with LoRA on and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 (`llmdesk serve`
sets it for a server on 127.0.0.1 or with an API key). Exit 2 for bad input (a name, an adapter vLLM
would refuse), 1 when the server refuses or is not there.

The helpers here (an adapter's folder from a path or a Hub repo id, the checks against the model) are
`llmdesk serve --lora`'s too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmdesk.commands import EXIT_OK, add_json_flag, add_url_option, load_settings_said, print_json
from llmdesk.core.base.errors import BadInput, Problem, ProblemError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "lora", help="LoRA adapters of a running server: list, load, unload; check one",
        description="The adapters a server serves (each answers as a model of its own name), loaded or unloaded "
                    "while it runs. PATH_OR_REPO is an adapter folder (adapter_config.json and its weights) or a "
                    "Hugging Face repo id, downloaded into the cache first. See docs/lora.md.")
    sub = parser.add_subparsers(dest="lora_command", metavar="ACTION", required=True)

    def server_options(p: argparse.ArgumentParser) -> None:
        add_url_option(p)
        p.add_argument("--api-key", metavar="K", default=os.environ.get("LLMDESK_API_KEY"),
                       help="API key the server was started with (default: $LLMDESK_API_KEY)")
        add_json_flag(p)

    listing = sub.add_parser("list", help="the base model and the adapters the server serves")
    server_options(listing)
    listing.set_defaults(run=run_list)
    load = sub.add_parser("load", help="load an adapter into the running server under NAME")
    load.add_argument("name", metavar="NAME", help="the model name clients will use for the adapter")
    load.add_argument("source", metavar="PATH_OR_REPO", help="the adapter's folder, or its Hub repo id")
    load.add_argument("--any-base", action="store_true",
                      help="load it even though it names another base model than the one served")
    server_options(load)
    load.set_defaults(run=run_load)
    unload = sub.add_parser("unload", help="take an adapter out of the running server")
    unload.add_argument("name", metavar="NAME")
    server_options(unload)
    unload.set_defaults(run=run_unload)
    check = sub.add_parser("check", help="what vLLM would say about an adapter, without a server")
    check.add_argument("source", metavar="PATH_OR_REPO")
    check.add_argument("--model", metavar="SOURCE", help="the model to serve it with (folder or repo id): its name "
                                                         "and, for a folder, its layers are compared")
    check.add_argument("--max-lora-rank", type=int, metavar="R", help="the server's --max-lora-rank")
    add_json_flag(check)
    check.set_defaults(run=run_check)


# --------------------------------------------------------------------------------------- shared with serve

def fetch_adapter(source: str) -> Path:
    """The adapter's folder on this computer: a folder as it is (absolute), a Hub repo id downloaded into the
    Hugging Face cache (or Settings' models folder) first, with progress on stderr. BadInput for anything
    else or a repo that is not there; ProblemError when the download fails."""
    from llmdesk.core.server.lora import check_source

    kind = check_source(source)
    if isinstance(kind, Path):
        return kind
    from llmdesk.commands.pull import EXIT_CANCELLED, ProgressPrinter
    from llmdesk.core.hub.access import check_repo_id
    from llmdesk.core.hub.downloads import CANCELLED, DONE, Download

    check_repo_id(source)
    printer = ProgressPrinter(sys.stderr)
    job = Download(source, cache_dir=load_settings_said().models_dir or None,
                   on_progress=lambda p: printer.show(p, job))
    job.start()
    try:
        while not job.wait(0.2):
            pass
    except KeyboardInterrupt:
        job.cancel()
        job.wait(10)
    printer.finish()
    if job.state == CANCELLED:
        raise ProblemError(Problem(f"Stopped downloading {source}", "The download was interrupted; what came is kept.",
                                   f"Run the command again to continue (exit {EXIT_CANCELLED} from llmdesk pull)."))
    if job.state != DONE:
        raise job.error or ProblemError(job.problem)
    return job.snapshot_path


def model_facts(model: str, served_name: str | None = None, spec=None):
    """(identities, geometry, label) of the model served, for the adapters' checks: its names (source,
    served name, config.json's _name_or_path for a folder) and, where known (a folder, or a repo whose
    config.json is in the cache: ``spec``), its layers' geometry."""
    from llmdesk.core.server.lora import folder_config, model_identities

    if spec is None:
        from llmdesk.core.hub.model_source import cached_spec

        spec = cached_spec(model)
    identities = model_identities(model, served_name=served_name, config=folder_config(model))
    return identities, (spec.geometry if spec is not None else None), served_name or model


def say_check(check) -> None:
    """One adapter's line on stderr: what it is and whom it was trained for."""
    print(f"LoRA {check.name}: {check.info.summary()} — {check.base.text}", file=sys.stderr)


def refuse(checks) -> None:
    """BadInput with the first problem of the adapters (the others named below it)."""
    problems = [p for c in checks for p in c.problems]
    if problems:
        first = problems[0]
        more = "".join(f"\n  also: {p.title}: {p.explanation}" for p in problems[1:])
        raise BadInput(Problem(first.title, first.explanation + more, first.fix))


# --------------------------------------------------------------------------------------- the actions

def _url(args) -> str:
    from llmdesk.core.server.endpoint import default_base_url, normalise_base_url

    return default_base_url() if args.url is None else normalise_base_url(args.url)


def run_list(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.server.lora_runtime import LoraClient

    async def go():
        async with LoraClient(_url(args), args.api_key) as client:
            return await client.models()

    models = asyncio.run(go())
    if args.json:
        print_json({"models": [m.as_dict() for m in models]})
        return EXIT_OK
    bases = [m for m in models if not m.is_adapter]
    for base in bases:
        print(f"{base.id}  (base model: {base.root})")
        for m in models:
            if m.parent == base.id:
                print(f"  {m.id}  ({m.root})")
    orphans = [m for m in models if m.is_adapter and m.parent not in {b.id for b in bases}]
    for m in orphans:
        print(f"{m.id}  (adapter of {m.parent}: {m.root})")
    if not any(m.is_adapter for m in models):
        print("no LoRA adapters loaded", file=sys.stderr)
    return EXIT_OK


def _is_local(url: str) -> bool:
    import httpx

    from llmdesk.core.server.launch import is_loopback

    return is_loopback(httpx.URL(url).host or "")


def run_load(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.server.lora import check_adapter, name_problem, read_adapter
    from llmdesk.core.server.lora_runtime import LoraClient

    problem = name_problem(args.name)
    if problem is not None:
        raise BadInput(problem)
    url = _url(args)
    local = _is_local(url)

    async def go() -> str:
        async with LoraClient(url, args.api_key) as client:
            models = await client.models()
            bases = [m for m in models if not m.is_adapter]
            if any(m.id == args.name for m in models):
                kind = "the base model" if any(b.id == args.name for b in bases) else "an adapter already"
                raise BadInput(Problem(f"The server already serves {args.name!r}",
                                       f"{args.name!r} is {kind} on this server.",
                                       "Choose another name, or unload the adapter first."))
            path = args.source
            if local:  # the server reads paths on this computer: check the adapter here first
                folder = await asyncio.to_thread(fetch_adapter, args.source)
                info = await asyncio.to_thread(read_adapter, folder)
                base = bases[0] if bases else None
                identities, geometry, label = await asyncio.to_thread(
                    model_facts, base.root or base.id, base.id) if base else ((), None, "the model")
                check = check_adapter(args.name, info, identities=identities, geometry=geometry, model_label=label,
                                      allow_other_base=args.any_base)
                say_check(check)
                refuse([check])
                path = str(folder)
            else:
                print(f"note: {url} is another computer's server: it reads {args.source} there (a folder on that "
                      "computer, or a Hub repo id it downloads itself).", file=sys.stderr)
            return await client.load(args.name, path)

    said = asyncio.run(go())
    if args.json:
        print_json({"loaded": args.name, "message": said})
    else:
        print(said)
    return EXIT_OK


def run_unload(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.server.lora_runtime import LoraClient

    async def go() -> str:
        async with LoraClient(_url(args), args.api_key) as client:
            return await client.unload(args.name)

    said = asyncio.run(go())
    if args.json:
        print_json({"unloaded": args.name, "message": said})
    else:
        print(said)
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    from llmdesk.core.server.lora import check_adapter, read_adapter

    folder = fetch_adapter(args.source)
    info = read_adapter(folder)
    identities, geometry, label = model_facts(args.model) if args.model else ((), None, "the model")
    check = check_adapter(Path(folder).name, info, identities=identities, geometry=geometry, model_label=label,
                          max_lora_rank=args.max_lora_rank)
    if args.json:
        print_json(check.as_dict())
    else:
        print(f"{folder}: {info.summary()}")
        print(f"  base: {check.base.text}")
        for p in check.problems:
            print(f"  ✗ {p.title}: {p.explanation}" + (f"\n    → {p.fix}" if p.fix else ""))
        if check.ok:
            from llmdesk.core.server.lora import rank_for

            print(f"  ✓ vLLM 0.26 can serve it (with --max-lora-rank {rank_for(info.config.largest_rank)} or more)")
    return EXIT_OK if check.ok else 2
