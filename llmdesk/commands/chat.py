"""`llmdesk chat [PROMPT]`: stream an answer from the server (the app's, or any OpenAI-compatible URL)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, MAX_CONTEXT, MAX_ID, number, whole
from llmdesk.core.base.errors import BadInput, Problem


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "chat", help="chat with the running server (one prompt, or an interactive session)",
        description="With PROMPT, streams the answer to stdout and the stats (time to first token, "
                    "tokens/s, tokens) to stderr. Without PROMPT, an interactive session (/exit or "
                    "end of input ends it); with no PROMPT and stdin not a terminal, the whole of stdin "
                    "is the prompt.")
    parser.add_argument("prompt", nargs="?", help="the message to send")
    parser.add_argument("--url", metavar="URL",
                        help="server root (http://127.0.0.1:8000) or its /v1 base "
                             "(default: the server llmdesk manages, else http://127.0.0.1:8000)")
    parser.add_argument("--api-key", metavar="K", default=os.environ.get("LLMDESK_API_KEY"),
                        help="API key the server was started with (default: $LLMDESK_API_KEY)")
    parser.add_argument("--model", metavar="M", help="model or LoRA adapter (default: the first in /v1/models)")
    parser.add_argument("--system", metavar="S", help="system prompt")
    parser.add_argument("--temperature", type=number(0, 100), metavar="T")
    parser.add_argument("--top-p", type=number(0, 1, above=True), metavar="P")
    parser.add_argument("--top-k", type=whole(-1, 1_000_000), metavar="K")
    parser.add_argument("--max-tokens", type=whole(1, MAX_CONTEXT), metavar="N")
    parser.add_argument("--seed", type=whole(-MAX_ID - 1, MAX_ID), metavar="N")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    parser.add_argument("--no-stats", action="store_true", help="do not print the stats line")
    parser.add_argument("--save", action="store_true",
                        help="keep the conversation with the saved chats (see `llmdesk chats`; the Chat page "
                             "lists them too)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from llmdesk.core.chat.client import ChatParams
    from llmdesk.core.server.endpoint import default_base_url, normalise_base_url

    url = default_base_url() if args.url is None else normalise_base_url(args.url)  # --url '' is a mistake
    params = ChatParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                        max_tokens=args.max_tokens, seed=args.seed, stop=tuple(args.stop))
    prompt = args.prompt
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()
        if not prompt.strip():
            raise BadInput(Problem("Nothing to send", "Standard input was empty.", "Give a PROMPT."))
    if prompt is not None and not prompt.strip():
        raise BadInput(Problem("Nothing to send", "The prompt is empty.", None))
    try:
        if not args.save:
            return asyncio.run(_main(args, url, params, prompt, None))
        from llmdesk.commands.chats import open_store

        with open_store() as store:  # opened first: a store that cannot be written fails before anything is sent
            return asyncio.run(_main(args, url, params, prompt, store))
    except asyncio.CancelledError:  # SIGTERM or SIGHUP: the partial reply was saved on the way out
        print("Stopped.", file=sys.stderr)
        return EXIT_STOPPED


EXIT_STOPPED = 143  # 128 + SIGTERM, as a shell reports a process it stopped


class _Saver:
    """Keeps the session in the conversation store as the Chat page would: a turn is saved when its
    reply ends (complete, cut off, or stopped with Ctrl-C); a request that got no reply is not."""

    def __init__(self, store, model: str, url: str, system: str | None, params):
        self.store, self.model, self.url, self.system, self.params = store, model, url, system, params
        self.id: int | None = None

    def turn(self, text: str, reply: str, reasoning: str, stats, state: str) -> None:
        from llmdesk.core.chat.conversations import auto_title
        from llmdesk.core.chat.session import params_to_dict

        if self.id is None:
            self.id = self.store.create(title=auto_title(text), model=self.model, system_prompt=self.system or "",
                                        params=params_to_dict(self.params), base_url=self.url)
            print(f"[saved as chat {self.id}: `llmdesk chats show {self.id}`]", file=sys.stderr)
        self.store.add_message(self.id, "user", text)
        self.store.add_message(self.id, "assistant", reply, reasoning=reasoning,
                               stats=stats.as_dict() if stats is not None else None, state=state)


async def _main(args: argparse.Namespace, url: str, params, prompt: str | None, store) -> int:
    import signal

    from llmdesk.core.chat.client import ChatClient

    # A closed terminal (SIGHUP) or a kill (SIGTERM) stops the reply as Ctrl-C does: what came is saved.
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, main.cancel)

    async with ChatClient(url, args.api_key) as client:
        model = args.model or await _first_model(client)
        saver = _Saver(store, model, client.base_url, args.system, params) if store is not None else None
        history: list[dict] = [{"role": "system", "content": args.system}] if args.system else []
        if prompt is not None:
            await _turn(client, model, history, prompt, params, args.no_stats, saver)
            return EXIT_OK
        return await _interactive(client, model, history, params, args.no_stats, saver)


async def _first_model(client) -> str:
    from llmdesk.core.base.errors import ProblemError

    models = await client.models()
    if not models:
        raise ProblemError(Problem("The server serves no model", f"{client.base_url}/models is empty.", None))
    return models[0]


async def _turn(client, model: str, history: list[dict], text: str, params, no_stats: bool,
                saver: _Saver | None = None) -> str:
    """Send one user message, stream the answer to stdout; on success both join ``history``."""
    import asyncio
    import contextlib

    from llmdesk.core.chat.client import StreamInterrupted

    messages = [*history, {"role": "user", "content": text}]
    parts: list[str] = []
    thoughts: list[str] = []
    in_reasoning = False
    try:
        async with contextlib.aclosing(client.stream(model, messages, params)) as deltas:
            async for delta in deltas:
                if delta.reasoning:
                    if not in_reasoning:
                        sys.stderr.write("[thinking] ")
                        in_reasoning = True
                    sys.stderr.write(delta.reasoning)
                    sys.stderr.flush()
                    thoughts.append(delta.reasoning)
                if delta.content:
                    if in_reasoning:
                        sys.stderr.write("\n")
                        in_reasoning = False
                    parts.append(delta.content)
                    sys.stdout.write(delta.content)
                    sys.stdout.flush()
        if in_reasoning:
            sys.stderr.write("\n")
        sys.stdout.write("\n")
        sys.stdout.flush()
    except StreamInterrupted as exc:
        sys.stdout.write("\n")
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": exc.partial}]
        if saver is not None:
            saver.turn(text, exc.partial, exc.partial_reasoning, client.last_stats, "interrupted")
        raise
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the task, then raises KeyboardInterrupt
        if saver is not None and (parts or thoughts):
            saver.turn(text, "".join(parts), "".join(thoughts), client.last_stats, "stopped")
        raise
    finally:
        _print_stats(client.last_stats, no_stats)
    answer = "".join(parts)
    history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    if saver is not None:
        saver.turn(text, answer, "".join(thoughts), client.last_stats, "complete")
    return answer


def _print_stats(stats, no_stats: bool) -> None:
    if no_stats or stats is None or stats.ttft_s is None:
        return
    bits = [f"TTFT {stats.ttft_s * 1000:.0f} ms"]
    if stats.tokens_per_s is not None:
        bits.append(f"{stats.tokens_per_s:.1f} tok/s")
    if stats.prompt_tokens is not None and stats.completion_tokens is not None:
        bits.append(f"{stats.prompt_tokens} prompt + {stats.completion_tokens} completion tokens")
    if stats.finish_reason:
        bits.append(f"finish: {stats.finish_reason}")
    sys.stdout.flush()
    print("[" + " · ".join(bits) + "]", file=sys.stderr)


async def _interactive(client, model: str, history: list[dict], params, no_stats: bool,
                       saver: _Saver | None = None) -> int:
    import asyncio

    from llmdesk.core.base.errors import ProblemError
    from llmdesk.core.server.endpoint import ServerUnreachable

    print(f"Chatting with {model} at {client.base_url}. /exit or Ctrl-D ends.", file=sys.stderr)
    while True:
        sys.stderr.write("> ")
        sys.stderr.flush()
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:  # EOF
            sys.stderr.write("\n")
            return EXIT_OK
        text = line.rstrip("\n")
        if text.strip() in ("/exit", "/quit"):
            return EXIT_OK
        if not text.strip():
            continue
        try:
            await _turn(client, model, history, text, params, no_stats, saver)
        except ServerUnreachable:
            raise
        except ProblemError as exc:  # say it and go on: the conversation so far is kept
            p = exc.problem
            print(f"error: {p.title}\n  {p.explanation}" + (f"\n  → {p.fix}" if p.fix else ""), file=sys.stderr)
    return EXIT_FAILURE  # not reached
