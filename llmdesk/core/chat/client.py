"""An OpenAI-compatible streaming chat client (httpx + asyncio; no Qt).

It talks to the vLLM server the app manages or to any OpenAI-compatible base URL::

    client = ChatClient(default_base_url(), api_key=None)
    async with contextlib.aclosing(client.stream(model, messages, ChatParams(temperature=0.7))) as deltas:
        async for delta in deltas:
            print(delta.content, end="")
    client.last_stats   # ReplyStats: time to first token, tokens/s, prompt/completion tokens

Stopping a reply: cancel the consuming task, or leave the loop. The HTTP response is closed as
the generator unwinds, so the connection drops and vLLM aborts the request. Wrapping the
generator in ``contextlib.aclosing`` makes leaving the loop close it at once; without it, the
event loop's async-generator finaliser closes it a moment later.

Every expected failure is a ``ProblemError`` (subclasses below let a page offer the right
action); a stream that breaks off raises ``StreamInterrupted`` carrying the partial text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.chat.tools import ToolCall, ToolCallAccumulator
from llmdesk.core.server.endpoint import (ServerUnreachable, Unauthorized, normalise_base_url, root_url,
                                          server_http_client, vllm_error_message)

if TYPE_CHECKING:
    from llmdesk.core.chat.structured import Structured

log = logging.getLogger(__name__)



# --- errors -----------------------------------------------------------------------------------

class ContextTooLong(ProblemError):
    """400: the prompt plus max_tokens do not fit the model's context; ``limit`` when vLLM said it."""

    def __init__(self, problem: Problem, limit: int | None):
        super().__init__(problem)
        self.limit = limit


class ModelNotFound(ProblemError):
    """404 for the model name; ``served`` lists the models the server does serve (may be empty)."""

    def __init__(self, problem: Problem, served: list[str]):
        super().__init__(problem)
        self.served = served


class ToolsNotEnabled(ProblemError):
    """400: the server was started without tool calling (vLLM: --enable-auto-tool-choice and
    --tool-call-parser), so it refuses a request with tools."""


HEALTH_AFTER_CUT_S = 2.0
# H100, 2026-12-07: vLLM 0.26 closed streamed replies mid-way, still serving, when its tool parser failed
ERROR_OF_ITS_OWN_FIX = ("The server's log (Server page → Log) says which error; a tool-call parser that does not fit "
                        "the model fails every reply. Then regenerate.")


class StreamInterrupted(ProblemError):
    """The connection or the engine died mid-reply; ``partial`` / ``partial_reasoning`` keep what came."""

    def __init__(self, problem: Problem, partial: str, partial_reasoning: str = ""):
        super().__init__(problem)
        self.partial = partial
        self.partial_reasoning = partial_reasoning


# --- values -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChatParams:
    """Sampling parameters; None (or an empty ``stop``) leaves the server's default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None

    def body(self) -> dict[str, Any]:
        """The request fields; top_k and repetition_penalty are vLLM's extra parameters (top level)."""
        out: dict[str, Any] = {}
        for name in ("temperature", "top_p", "top_k", "max_tokens", "seed", "presence_penalty",
                     "frequency_penalty", "repetition_penalty"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.stop:
            out["stop"] = list(self.stop)
        return out


@dataclass(frozen=True)
class Delta:
    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()  # every call so far, whole, when this chunk added to one


@dataclass
class ReplyStats:
    """Per-reply numbers. ``ttft_s``: request sent → first content (or reasoning) chunk.
    ``tokens_per_s``: generation speed after the first token, (completion_tokens - 1) over the time
    from the first to the last chunk (chunks counted when the server sent no usage)."""

    ttft_s: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ttft_s": self.ttft_s, "tokens_per_s": self.tokens_per_s, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason}


@dataclass
class _Progress:
    started: float
    first: float | None = None
    last: float | None = None
    chunks: int = 0
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    stats: ReplyStats = field(default_factory=ReplyStats)
    calls: ToolCallAccumulator = field(default_factory=ToolCallAccumulator)

    def finish_stats(self) -> ReplyStats:
        st = self.stats
        if self.first is not None:
            st.ttft_s = self.first - self.started
            n = st.completion_tokens if st.completion_tokens is not None else self.chunks
            span = (self.last or self.first) - self.first
            if n and n > 1 and span > 0:
                st.tokens_per_s = (n - 1) / span
        return st


# --- client -----------------------------------------------------------------------------------

class ChatClient:
    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 600):
        self.base_url = normalise_base_url(base_url)
        self.api_key = api_key or None
        self._http = server_http_client(self.api_key, timeout_s=timeout_s, connect_s=10.0)
        self.last_stats: ReplyStats | None = None
        self.last_tool_calls: list[ToolCall] = []  # the calls of the last reply (finish reason "tool_calls")

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def models(self) -> list[str]:
        """Model ids from ``/v1/models`` (the served names and any LoRA adapters)."""
        import httpx

        url = f"{self.base_url}/models"
        try:
            resp = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise self._transport_problem(exc) from None
        if resp.status_code != 200:
            raise self._http_problem(resp.status_code, resp.text, model=None)
        try:
            return [str(m["id"]) for m in resp.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ProblemError(Problem("Not an OpenAI-compatible server",
                                       f"{url} did not answer with a model list.",
                                       "Check the URL: it should be the server's root or its /v1 base.")) from None

    async def stream(self, model: str, messages: list[dict], params: ChatParams = ChatParams(), *,
                     tools: list[dict] | None = None, tool_choice: str | dict | None = None,
                     structured: Structured | None = None) -> AsyncIterator[Delta]:
        """Stream one reply; ``last_stats`` and ``last_tool_calls`` are set when the iteration ends (also
        after a failure). ``tools``: OpenAI function tools (tools.parse_tools); ``structured``: a JSON
        schema, regex or choice the server constrains the reply to (structured.py)."""
        import httpx

        body = {"model": model, "messages": messages, **params.body(), "stream": True,
                "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if structured is not None:
            body.update(structured.request_fields())
        url = f"{self.base_url}/chat/completions"
        self.last_stats = None
        self.last_tool_calls = []
        prog = _Progress(started=time.monotonic())
        done = False
        try:
            async with self._http.stream("POST", url, json=body) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread()).decode("utf-8", "replace")
                    problem = self._http_problem(resp.status_code, text, model=model)
                    if isinstance(problem, ModelNotFound):
                        problem = await self._with_served_list(problem)
                    raise problem
                # Closed here, in this task: left to the garbage collector, httpcore's stream would be
                # finalised outside the event loop ("async generator ignored GeneratorExit").
                async with contextlib.aclosing(resp.aiter_lines()) as lines:
                    async for line in lines:
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True  # read on to the body's end: the connection then stays open for reuse
                            continue
                        try:
                            event = json.loads(data)
                        except ValueError:
                            log.debug("chat: unreadable event %r", data[:200])
                            continue
                        if not isinstance(event, dict):
                            continue
                        if "error" in event:  # vLLM reports a failure inside the stream this way
                            err = event["error"]
                            message = err.get("message") if isinstance(err, dict) else str(err)
                            raise self._interrupted(prog, f"The server stopped the reply: {message}")
                        delta = self._take(event, prog)
                        if delta is not None:
                            yield delta
        except httpx.HTTPError as exc:
            if prog.first is None and prog.chunks == 0 and not isinstance(
                    exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.ReadTimeout):
                raise self._transport_problem(exc) from None
            why = f"The connection to {self.base_url} was lost mid-reply ({type(exc).__name__}: {exc})."
            if await self._still_answers():  # vLLM closes a stream this way when the reply fails inside it
                raise self._interrupted(prog, why + " The server still answers, so it ended this reply on an error "
                                                    "of its own.", fix=ERROR_OF_ITS_OWN_FIX) from None
            raise self._interrupted(prog, why) from None
        finally:
            self.last_stats = prog.finish_stats()
            self.last_tool_calls = prog.calls.calls
        if not done and prog.stats.finish_reason is None:
            raise self._interrupted(prog, "The server closed the stream before the reply was complete.")

    # -- helpers --

    @staticmethod
    def _take(event: dict, prog: _Progress) -> Delta | None:
        usage = event.get("usage")
        if isinstance(usage, dict):
            prog.stats.prompt_tokens = usage.get("prompt_tokens", prog.stats.prompt_tokens)
            prog.stats.completion_tokens = usage.get("completion_tokens", prog.stats.completion_tokens)
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            prog.stats.finish_reason = choice["finish_reason"]
        d = choice.get("delta") or {}
        content = d.get("content") or ""
        reasoning = d.get("reasoning_content") or d.get("reasoning") or ""
        called = prog.calls.feed(d.get("tool_calls"))
        if not content and not reasoning and not called:
            return None
        now = time.monotonic()
        if prog.first is None:
            prog.first = now
        prog.last = now
        prog.chunks += 1
        if content:
            prog.content.append(content)
        if reasoning:
            prog.reasoning.append(reasoning)
        return Delta(content, reasoning, tuple(prog.calls.calls) if called else ())

    def _interrupted(self, prog: _Progress, why: str, fix: str = "Check that the server is still running (its "
                     "log says why it stopped), then regenerate.") -> StreamInterrupted:
        partial = "".join(prog.content)
        kept = f" The {len(partial):,} characters received so far are kept." if partial else ""
        return StreamInterrupted(Problem("The reply was cut off", why + kept, fix), partial, "".join(prog.reasoning))

    async def _still_answers(self) -> bool:
        """Whether the server's /health answers 200 within a moment (after a stream was cut)."""
        try:
            resp = await self._http.get(f"{root_url(self.base_url)}/health", timeout=HEALTH_AFTER_CUT_S)
        except Exception:  # noqa: BLE001 - gone, or not a vLLM: the plain message stands
            return False
        return resp.status_code == 200

    def _transport_problem(self, exc: httpx.HTTPError) -> ProblemError:
        import httpx

        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ServerUnreachable(Problem(
                f"No server at {self.base_url}", f"Could not connect ({exc or type(exc).__name__}).",
                "Start one with `llmdesk serve MODEL` or on the Server page, or check the URL."))
        if isinstance(exc, httpx.TimeoutException):
            return ProblemError(Problem(f"The server at {self.base_url} did not answer in time", str(exc) or
                                        type(exc).__name__, "It may be overloaded; try again."))
        return ProblemError(Problem(f"Could not talk to the server at {self.base_url}",
                                    f"{type(exc).__name__}: {exc}", "Check the URL and that the server is running."))

    async def _with_served_list(self, exc: ModelNotFound) -> ModelNotFound:
        """The same problem with the served models named (asks ``/v1/models``; best effort)."""
        try:
            served = await self.models()
        except ProblemError:
            return exc
        p = exc.problem
        names = ", ".join(served) or "none"
        return ModelNotFound(Problem(p.title, f"{p.explanation} The server serves: {names}.", p.fix), served)

    def _http_problem(self, status: int, text: str, *, model: str | None) -> ProblemError:
        message = vllm_error_message(text)
        if status == 401:
            has_key = "The API key given was refused" if self.api_key else "The server needs an API key and none was given"
            return Unauthorized(Problem("Wrong or missing API key", f"{has_key} (HTTP 401).",
                                        "Use the key the server was started with (--api-key)."))
        if status == 400 and re.search(r"max_tokens|context length|max_model_len|maximum context", message, re.I):
            limit = _context_limit(message)
            said = f" The model's limit is {limit:,} tokens (prompt and reply together)." if limit else ""
            return ContextTooLong(Problem("The request does not fit the model's context",
                                          f"{message}{said}",
                                          "Lower max tokens or drop old turns of the conversation."), limit)
        if status == 400 and re.search(r"tool choice requires|tool_choice=.* requires --tool-call-parser", message):
            return ToolsNotEnabled(Problem("The server was started without tool calling",
                                           f"It refused the tools: {message}",
                                           "Start it with a tool-call parser: on the Server page pick one under "
                                           "Tool calls (auto picks the model's), or `llmdesk serve MODEL "
                                           "--tool-call-parser auto`. Or send the message without tools."))
        if status == 404 and model is not None and "model" in message.lower():
            return ModelNotFound(Problem(f"The server has no model {model!r}", message,
                                         "Pick one of the served models."), [])
        if status == 404:
            return ProblemError(Problem(f"Nothing at {self.base_url}", f"HTTP 404: {message}",
                                        "Check the URL: it should be the server's root or its /v1 base."))
        if status == 500 and re.search(r"tool ?parser could not locate", message, re.I):
            # vLLM makes the parser for every chat request once auto tool choice is on (H100, 2026-12-07)
            return ProblemError(Problem("The server's tool-call parser does not fit this model", message,
                                        "vLLM fails every chat request until it is started again with another "
                                        "tool-call parser or none (Server page → Tool calls, or `llmdesk serve "
                                        "MODEL --tool-call-parser none`)."))
        return ProblemError(Problem(f"The server refused the request (HTTP {status})", message or "(no message)",
                                    "Check the parameters; the server log may say more."))


def _context_limit(message: str) -> int | None:
    for pattern in (r"maximum context length is (\d+)", r"max_total_tokens=(\d+)", r"max_model_len=(\d+)"):
        m = re.search(pattern, message)
        if m:
            return int(m.group(1))
    return None
