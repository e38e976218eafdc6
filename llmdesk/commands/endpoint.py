"""`llmdesk endpoint`: the server's base URLs, models and key, and what Claude Code, Codex, Continue,
Aider and Open WebUI need to use it; --test sends each tool's own request to check that it works."""

from __future__ import annotations

import argparse
import os

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, add_json_flag, add_url_option, print_json
from llmdesk.core.server.tool_endpoints import TOOLS  # pure and light: re, shlex, dataclasses

TOOL_NAMES = tuple(TOOLS)
STORED_KEY_WAIT_S = 10.0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "endpoint", help="base URLs, models, key and each tool's settings for the running server (--test checks them)",
        description="Prints where the server is reached (the OpenAI base URL …/v1 and the Anthropic-style root "
                    "for /v1/messages), the models it serves (LoRA adapters included) with their context, its API "
                    "key (masked unless --show-key), and what Claude Code, Codex, Continue, Aider and Open WebUI "
                    "need: shell lines, or the config in the tool's own format. With --test, sends each tool's "
                    "own request and says whether it worked (exit 1 if one did not).")
    add_url_option(parser)
    parser.add_argument("--api-key", metavar="K", default=os.environ.get("LLMDESK_API_KEY"),
                        help="API key the server was started with (default: $LLMDESK_API_KEY, else the key "
                             "llmdesk stored when the server wants one)")
    parser.add_argument("--tool", choices=TOOL_NAMES, help="only this tool")
    parser.add_argument("--model", metavar="M", help="model or LoRA adapter (default: the first served base model)")
    parser.add_argument("--wire-api", choices=("responses", "chat"), default="responses",
                        help="Codex's wire API (default responses; chat only for Codex before February 2026)")
    parser.add_argument("--show-key", action="store_true",
                        help="write the key itself into the settings (default: a $LLMDESK_API_KEY reference)")
    parser.add_argument("--test", action="store_true", help="send each tool's request and report what happened")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.server.endpoint import default_base_url, normalise_base_url

    url = default_base_url() if args.url is None else normalise_base_url(args.url)
    return asyncio.run(_main(args, url))


async def _main(args: argparse.Namespace, url: str) -> int:
    from llmdesk.core.server.tool_check import check_tool
    from llmdesk.core.server.tool_endpoints import tool_settings

    endpoint = await _read(url, args.api_key or None)
    tools = [args.tool] if args.tool else list(TOOL_NAMES)
    settings = [tool_settings(endpoint, t, model=args.model, show_key=args.show_key, wire_api=args.wire_api)
                for t in tools]
    checks = {}
    if args.test:
        for s in settings:
            checks[s.tool] = await check_tool(endpoint, s.tool, model=s.model, wire_api=args.wire_api)
    if args.json:
        print_json({"endpoint": endpoint.as_dict(show_key=args.show_key),
                    "tools": [{**s.as_dict(), "test": checks[s.tool].as_dict() if s.tool in checks else None}
                              for s in settings]})
    else:
        print(render_text(endpoint, settings, checks, show_key=args.show_key))
    return EXIT_FAILURE if any(not c.ok for c in checks.values()) else EXIT_OK


async def _read(url: str, api_key: str | None):
    """The endpoint with the given key; without one, a server that wants a key is asked again with the key
    llmdesk stored (the Server page's, which `llmdesk serve` also uses)."""
    import asyncio

    from llmdesk.core.base.errors import Problem
    from llmdesk.core.server.endpoint import Unauthorized
    from llmdesk.core.server.tool_check import read_endpoint

    try:
        return await read_endpoint(url, api_key)
    except Unauthorized:
        if api_key is not None:
            raise
        from llmdesk.core.base.secrets import load_server_api_key

        try:
            stored = await asyncio.wait_for(asyncio.to_thread(load_server_api_key), STORED_KEY_WAIT_S)
        except (TimeoutError, OSError):
            stored = None
        if not stored:
            raise
        try:
            return await read_endpoint(url, stored)
        except Unauthorized:
            raise Unauthorized(Problem("The server wants an API key", "None was given, and the key llmdesk "
                                       "stored was refused.", "Give the key the server was started with: "
                                       "--api-key or $LLMDESK_API_KEY.")) from None


def render_text(endpoint, settings, checks, *, show_key: bool) -> str:
    from llmdesk.core.server.tool_endpoints import mask_key, printable

    models = " · ".join(
        printable(m.id) + (f" (LoRA on {printable(m.parent)})" if m.is_adapter else "")
        + (f" (max_model_len {m.max_model_len:,})" if m.max_model_len and not m.is_adapter else "")
        for m in endpoint.models)
    if endpoint.api_key is None:
        key = "none (the server wants none)"
    elif show_key:
        key = printable(endpoint.api_key)
    else:
        key = f"{mask_key(endpoint.api_key)} (--show-key prints it)"
    lines = [f"vLLM at {endpoint.root_url}",
             f"  {'OpenAI base URL':<20}{endpoint.openai_url}",
             f"  {'Anthropic base URL':<20}{endpoint.anthropic_url}  (clients add /v1/messages)",
             f"  {'Models':<20}{models}",
             f"  {'API key':<20}{key}"]
    for s in settings:
        lines += ["", f"== {s.title} ==", s.how_to_use, "", s.text, ""]
        if s.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in s.notes]
        if s.tool in checks:
            c = checks[s.tool]
            lines.append(f"Test: {c.line}" + ("" if c.ok else f"  ({', '.join(c.requests) or 'nothing sent'})"))
        lines.append("Sources: " + " ".join(s.sources))
    return "\n".join(lines)
