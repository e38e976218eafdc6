"""`llmdesk chat [PROMPT]`: stream an answer from the server (the app's, or any OpenAI-compatible URL)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from llmdesk.commands import EXIT_FAILURE, EXIT_OK, MAX_CONTEXT, MAX_ID, add_url_option, number, whole
from llmdesk.core.base.errors import BadInput, Problem


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "chat", help="chat with the running server (one prompt, or an interactive session)",
        description="With PROMPT, streams the answer to stdout and the stats (time to first token, "
                    "tokens/s, tokens) to stderr. Without PROMPT, an interactive session (/exit or "
                    "end of input ends it); with no PROMPT and stdin not a terminal, the whole of stdin "
                    "is the prompt.")
    parser.add_argument("prompt", nargs="?", help="the message to send")
    add_url_option(parser)
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
    tools = parser.add_argument_group("tools", "needs a server started with a tool-call parser "
                                               "(llmdesk serve MODEL --tool-call-parser auto); see docs/tools.md")
    tools.add_argument("--tools", metavar="FILE", help="a JSON file with a list of OpenAI function tools; each call "
                                                       "the model makes is printed and its result read from stdin")
    tools.add_argument("--tool-results", metavar="FILE",
                       help="a JSON object mapping each tool's name to its result, for scripted use instead of stdin")
    tools.add_argument("--tool-choice", metavar="auto|required|none|NAME",
                       help="auto (the model decides), required, none, or the name of the tool it must call")
    shape = parser.add_argument_group("structured output", "the server constrains the reply and llmdesk checks it: "
                                      "exit 1 when it does not fit")
    exclusive = shape.add_mutually_exclusive_group()
    exclusive.add_argument("--json-schema", metavar="FILE", help="a JSON schema the reply must follow")
    exclusive.add_argument("--regex", metavar="RE", help="a regular expression the whole reply must match")
    exclusive.add_argument("--choice", metavar="A,B,C", help="the reply must be one of these")
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
    extras = _extras(args, prompt_from_stdin=args.prompt is None and prompt is not None)
    try:
        if not args.save:
            return asyncio.run(_main(args, url, params, prompt, None, extras))
        from llmdesk.commands.chats import open_store

        with open_store() as store:  # opened first: a store that cannot be written fails before anything is sent
            return asyncio.run(_main(args, url, params, prompt, store, extras))
    except asyncio.CancelledError:  # SIGTERM or SIGHUP: the partial reply was saved on the way out
        print("Stopped.", file=sys.stderr)
        return EXIT_STOPPED


EXIT_STOPPED = 143  # 128 + SIGTERM, as a shell reports a process it stopped
MAX_TOOL_ROUNDS = 8  # calls answered in a row before llmdesk stops a model that keeps calling


class _Extras:
    """What --tools, --tool-results, --tool-choice and --json-schema/--regex/--choice ask for, read and
    checked before anything is sent (a malformed file is BadInput: exit 2)."""

    def __init__(self, tools=None, tool_choice=None, results=None, results_name="", structured=None):
        self.tools, self.tool_choice, self.results, self.results_name = tools, tool_choice, results, results_name
        self.structured = structured

    def request(self, after_results: bool = False) -> dict:
        """What ChatClient.stream takes besides the messages (only what is asked for); a forced tool choice
        applies to the first request only (core/chat/tools.choice_after_results)."""
        from llmdesk.core.chat.tools import choice_after_results

        choice = choice_after_results(self.tool_choice) if after_results else self.tool_choice
        asked = {"tools": self.tools, "tool_choice": choice, "structured": self.structured}
        return {k: v for k, v in asked.items() if v is not None}

    def settings(self) -> dict:
        """Kept with a saved chat (the Chat page shows them again)."""
        out: dict = {}
        if self.tools:
            out["tools"] = self.tools
        if self.structured is not None:
            out["structured"] = self.structured.as_dict()
        return out


def _read_json(path: str, what: str):
    import json

    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115 - small file, closed at once
    except OSError as exc:
        raise BadInput(Problem(f"Cannot read {what}", f"{path}: {exc.strerror or exc}.", "Check the path.")) from None
    except UnicodeDecodeError:
        raise BadInput(Problem(f"Cannot read {what}", f"{path} is not UTF-8 text.", "Save it as UTF-8 JSON.")) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInput(Problem(f"{what.capitalize()} is not JSON", f"{path}: {exc}.", "Fix the JSON.")) from None


def _extras(args: argparse.Namespace, *, prompt_from_stdin: bool) -> _Extras:
    from llmdesk.core.chat import structured as shapes
    from llmdesk.core.chat.tools import check_tool_choice, parse_tools

    tools = parse_tools(_read_json(args.tools, "the tools file"), args.tools) if args.tools else None
    if args.tool_results and not tools:
        raise BadInput(Problem("--tool-results without --tools", "Tool results only make sense with tools.",
                               "Add --tools FILE."))
    if args.tool_choice and not tools:
        raise BadInput(Problem("--tool-choice without --tools", "A tool choice needs tools.", "Add --tools FILE."))
    tool_choice = check_tool_choice(args.tool_choice, tools or [])
    results = None
    if args.tool_results:
        results = _read_json(args.tool_results, "the tool results file")
        if not isinstance(results, dict):
            raise BadInput(Problem("The tool results are not a map", f"{args.tool_results} must hold a JSON object: "
                                   '{"tool name": result, …}.', 'Write e.g. {"get_weather": {"temp_c": 18}}.'))
    elif tools and prompt_from_stdin:
        raise BadInput(Problem("Nowhere to read tool results from", "The prompt came on standard input, so the "
                               "results of the model's tool calls cannot be read from it.",
                               "Give the results with --tool-results FILE, or the prompt as an argument."))
    structured = None
    if args.json_schema:
        structured = shapes.json_schema(_read_json(args.json_schema, "the JSON schema file"), args.json_schema)
    elif args.regex is not None:
        structured = shapes.regex(args.regex)
    elif args.choice is not None:
        structured = shapes.choice(args.choice)
    return _Extras(tools, tool_choice, results, args.tool_results or "", structured)


class _Saver:
    """Keeps the session in the conversation store as the Chat page would: a turn is saved when its
    reply ends (complete, cut off, or stopped with Ctrl-C); a request that got no reply is not. The
    tool calls of a turn and their results are saved between the question and the answer."""

    def __init__(self, store, model: str, url: str, system: str | None, params, settings: dict | None = None):
        self.store, self.model, self.url, self.system, self.params = store, model, url, system, params
        self.settings = settings or {}
        self.id: int | None = None

    def turn(self, text: str, reply: str, reasoning: str, stats, state: str, steps: list[dict] = ()) -> None:
        from llmdesk.core.chat.conversations import auto_title
        from llmdesk.core.chat.session import params_to_dict

        if self.id is None:
            self.id = self.store.create(title=auto_title(text), model=self.model, system_prompt=self.system or "",
                                        params={**params_to_dict(self.params), **self.settings}, base_url=self.url)
            print(f"[saved as chat {self.id}: `llmdesk chats show {self.id}`]", file=sys.stderr)
        self.store.add_message(self.id, "user", text)
        for step in steps:  # the calls (an assistant message) and each result (role "tool")
            if step["role"] == "assistant":
                self.store.add_message(self.id, "assistant", step.get("content") or "",
                                       reasoning=step.get("reasoning", ""), tool_calls=step.get("tool_calls"))
            else:
                self.store.add_message(self.id, "tool", step["content"], tool_call_id=step.get("tool_call_id"))
        self.store.add_message(self.id, "assistant", reply, reasoning=reasoning,
                               stats=stats.as_dict() if stats is not None else None, state=state)


async def _main(args: argparse.Namespace, url: str, params, prompt: str | None, store, extras: _Extras) -> int:
    import signal

    from llmdesk.core.chat.client import ChatClient

    # A closed terminal (SIGHUP) or a kill (SIGTERM) stops the reply as Ctrl-C does: what came is saved.
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, main.cancel)

    async with ChatClient(url, args.api_key) as client:
        model = args.model or await _first_model(client)
        saver = _Saver(store, model, client.base_url, args.system, params, extras.settings()) \
            if store is not None else None
        history: list[dict] = [{"role": "system", "content": args.system}] if args.system else []
        if prompt is not None:
            await _turn(client, model, history, prompt, params, args.no_stats, saver, extras)
            return EXIT_OK
        return await _interactive(client, model, history, params, args.no_stats, saver, extras)


async def _first_model(client) -> str:
    from llmdesk.core.base.errors import ProblemError

    models = await client.models()
    if not models:
        raise ProblemError(Problem("The server serves no model", f"{client.base_url}/models is empty.", None))
    return models[0]


async def _turn(client, model: str, history: list[dict], text: str, params, no_stats: bool,
                saver: _Saver | None = None, extras: _Extras | None = None) -> str:
    """Send one user message and stream the answer to stdout. Each tool the model calls is printed (stderr)
    and answered (--tool-results, else a line of stdin), then the model goes on; on success the question,
    the calls, their results and the answer join ``history``. A structured reply is checked last."""
    from llmdesk.core.base.errors import ProblemError
    from llmdesk.core.chat.tools import assistant_message, check_arguments, tool_message

    extras = extras or _Extras()
    messages = [*history, {"role": "user", "content": text}]
    steps: list[dict] = []
    def save(state: str, answer: str, thoughts: str) -> None:
        if state == "interrupted":  # the conversation goes on with the part received
            history.extend([{"role": "user", "content": text}, *_sent(steps), {"role": "assistant", "content": answer}])
        if saver is not None:
            saver.turn(text, answer, thoughts, client.last_stats, state, steps)

    for round_ in range(MAX_TOOL_ROUNDS + 1):
        answer, thoughts = await _reply(client, model, messages, params, no_stats, extras, save, round_ > 0)
        calls = client.last_tool_calls
        if not calls:
            break
        if round_ == MAX_TOOL_ROUNDS:
            raise ProblemError(Problem("The model keeps calling tools",
                                       f"It called tools {MAX_TOOL_ROUNDS} times in a row without answering.",
                                       "Check the tool results it gets, or ask without tools."))
        called = assistant_message(answer, calls)
        messages.append(called)
        steps.append({**called, "reasoning": thoughts})
        for call in calls:
            print(f"[tool call] {call.shown()}", file=sys.stderr, flush=True)
            if (why := check_arguments(extras.tools or [], call, _finish(client))) is not None:
                print(f"  note: {why}", file=sys.stderr)
            result = tool_message(call.id, await _tool_result(call, extras))
            messages.append(result)
            steps.append(result)
    history += [{"role": "user", "content": text}, *_sent(steps), {"role": "assistant", "content": answer}]
    if saver is not None:
        saver.turn(text, answer, thoughts, client.last_stats, "complete", steps)
    if extras.structured is not None:
        _check_structured(extras.structured, answer, client.last_stats)
    return answer


def _sent(steps: list[dict]) -> list[dict]:
    """The steps as they go back to the server (the reasoning is kept for the saved chat only)."""
    return [{k: v for k, v in step.items() if k != "reasoning"} for step in steps]


async def _reply(client, model: str, messages: list[dict], params, no_stats: bool, extras: _Extras,
                 save, after_results: bool = False) -> tuple[str, str]:
    """One request: content to stdout, reasoning to stderr; (answer, reasoning). A reply cut off or
    stopped is saved through ``save(state, answer, reasoning)`` before the failure goes on."""
    import contextlib

    from llmdesk.core.chat.client import StreamInterrupted

    parts: list[str] = []
    thoughts: list[str] = []
    in_reasoning = False
    try:
        async with contextlib.aclosing(client.stream(model, messages, params, **extras.request(after_results))) as deltas:
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
        if parts or not client.last_tool_calls:
            sys.stdout.write("\n")
            sys.stdout.flush()
    except StreamInterrupted as exc:
        sys.stdout.write("\n")
        save("interrupted", exc.partial, exc.partial_reasoning)
        raise
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the task, then raises KeyboardInterrupt
        if parts or thoughts:
            save("stopped", "".join(parts), "".join(thoughts))
        raise
    finally:
        _print_stats(client.last_stats, no_stats)
    return "".join(parts), "".join(thoughts)


async def _tool_result(call, extras: _Extras):
    """The result of one call: from --tool-results by the tool's name, else one line of stdin."""
    from llmdesk.core.base.errors import ProblemError

    if extras.results is not None:
        if call.name not in extras.results:
            raise ProblemError(Problem(f"No result for {call.name}", f"The model called {call.shown()}, and "
                                       f"{extras.results_name} has no result for {call.name!r}.",
                                       f"Add \"{call.name}\": … to {extras.results_name}."))
        result = extras.results[call.name]
        print(f"[tool result] {call.name}: {result if isinstance(result, str) else _json(result)}", file=sys.stderr)
        return result
    sys.stderr.write(f"result of {call.name}> ")
    sys.stderr.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    if not sys.stdin.isatty():
        sys.stderr.write(line if line.endswith("\n") else line + "\n")  # what a terminal would have echoed
    if not line:
        raise ProblemError(Problem(f"No result for {call.name}", "Standard input ended before the tool's result "
                                   "was given.", "Type the result and press Enter, or use --tool-results FILE."))
    return line.rstrip("\n")


def _json(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _check_structured(structured, answer: str, stats) -> None:
    from llmdesk.core.base.errors import ProblemError
    from llmdesk.core.chat.structured import CUT_OFF, CUT_OFF_SPACES, NOT_JSON

    verdict = structured.check(answer, stats.finish_reason if stats is not None else None)
    if verdict.ok:
        print(f"[structured output: {verdict.title[0].lower()}{verdict.title[1:]}]", file=sys.stderr)
        return
    title = {NOT_JSON: "The reply is not JSON", CUT_OFF: "The reply was cut off at max tokens",
             CUT_OFF_SPACES: "The model wrote spaces until max tokens"}.get(
        verdict.title, f"The reply {verdict.title[0].lower()}{verdict.title[1:]}")
    explanation = verdict.detail
    if verdict.title == CUT_OFF_SPACES:
        fix = "More tokens would only bring more spaces: compact JSON stops them."
    elif verdict.title == CUT_OFF:
        explanation = "What came: " + (verdict.errors[0] if verdict.errors else verdict.detail)
        fix = "It stopped at max tokens: raise --max-tokens."
    else:
        fix = "Check that the server constrains replies (vLLM does by default), and the schema, pattern or choices."
    raise ProblemError(Problem(title, explanation + ("." if not explanation.endswith(".") else ""), fix))


def _finish(client) -> str | None:
    return client.last_stats.finish_reason if client.last_stats is not None else None


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
                       saver: _Saver | None = None, extras: _Extras | None = None) -> int:
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
            await _turn(client, model, history, text, params, no_stats, saver, extras)
        except ServerUnreachable:
            raise
        except ProblemError as exc:  # say it and go on: the conversation so far is kept
            p = exc.problem
            print(f"error: {p.title}\n  {p.explanation}" + (f"\n  → {p.fix}" if p.fix else ""), file=sys.stderr)
    return EXIT_FAILURE  # not reached
