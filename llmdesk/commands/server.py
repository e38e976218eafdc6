"""`llmdesk server status|pause|resume`: free the GPU of a running server without stopping it, and take it
back. Pause puts vLLM to sleep (level 1 keeps the weights in CPU memory, level 2 drops them); requests
that arrive meanwhile wake it or are refused with a clear 503, as the server was started
(`llmdesk serve --sleep-mode`, or "Allow Pause" on the Server page). The command reaches the sleep gate
of the llmdesk that runs the server, through the server's private record on this computer. Exit 1 when
there is no such server or it cannot pause; 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio

from llmdesk.commands import EXIT_OK, add_json_flag, print_json, whole
from llmdesk.core.base.errors import BadInput, Problem, ProblemError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "server", help="a running server: status, pause (free the GPU), resume",
        description="Pause frees the GPU memory of a server started with sleep mode (llmdesk serve --sleep-mode, "
                    "or Allow Pause on the Server page) without stopping it; resume takes it back in seconds.")
    sub = parser.add_subparsers(dest="server_command", metavar="ACTION", required=True)
    for name, text in (("status", "whether the server is awake or paused, and its requests in flight"),
                       ("pause", "free the GPU: the model sleeps until resumed (or woken by a request)"),
                       ("resume", "wake the model: it answers again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--port", type=whole(1, 65535), metavar="P",
                       help="the server's port (default: the only server llmdesk runs here)")
        add_json_flag(p)
        p.set_defaults(run=run, action=name)


def gated_server(port: int | None):
    """The record of the server on `port` (or the only one) that llmdesk runs here, with its sleep gate."""
    from llmdesk.core.server.records import live_records

    records = [r for r in live_records() if not r.claiming and (port is None or r.port == port)]
    if not records:
        where = f" on port {port}" if port else ""
        raise ProblemError(Problem(f"No server{where}", f"llmdesk runs no vLLM server{where} on this computer.",
                                   "Start one with llmdesk serve --sleep-mode, or on the Server page."))
    if len(records) > 1:
        ports = ", ".join(str(r.port) for r in records)
        raise BadInput(Problem("Which server?", f"llmdesk runs servers on ports {ports}.", "Name one with --port."))
    record = records[0]
    if not record.control_token:
        raise ProblemError(Problem(
            "This server cannot pause",
            f"The server on port {record.port} was started without sleep mode, so vLLM cannot free its memory "
            "while it runs.", "Stop it and start it again with llmdesk serve --sleep-mode (Server page: Allow Pause)."))
    return record


def describe(state: dict) -> str:
    from llmdesk.core.server.sleep_words import sleep_text

    return sleep_text(state, resume="run llmdesk server resume")


def run(args: argparse.Namespace) -> int:
    from llmdesk.core.server.endpoint import base_url
    from llmdesk.core.server.sleep_gate import control

    record = gated_server(args.port)
    action = "state" if args.action == "status" else args.action
    state = asyncio.run(control(base_url(record.host or "", record.port), record.control_token, action))
    if args.json:
        print_json(state)
    else:
        print(f"port {record.port}: {describe(state)}")
    return EXIT_OK
