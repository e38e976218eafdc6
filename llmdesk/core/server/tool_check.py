"""Does the endpoint work for a tool? One request sent the way that tool sends it, and the answer in
plain words.

``read_endpoint`` asks a server what it serves (``GET /v1/models``) and gives the ``Endpoint`` that
``tool_endpoints`` turns into settings. ``check_tool`` then sends what the tool would:

- Claude Code: ``POST /v1/messages?beta=true`` with ``anthropic-version``, its key as
  ``Authorization: Bearer`` (ANTHROPIC_AUTH_TOKEN) and a streamed reply of a few tokens;
- Codex: ``POST /v1/responses`` (or ``/v1/chat/completions`` for ``wire_api = "chat"``);
- Continue, Aider, Open WebUI: ``GET /v1/models`` and ``POST /v1/chat/completions``;

and reports ok with the answer's first words and the latency, or a Problem: nothing answers (the
server is not running), 401 (the key), 404 (a route the server lacks, or a model it does not
serve), or any other status with vLLM's own message. A check never raises for what the server does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized, bearer_headers, root_url, server_http_client
from llmdesk.core.server.tool_endpoints import (KEY_ENV, PLACEHOLDER_KEY, TOOLS, Endpoint, models_from_listing,
                                                printable)

if TYPE_CHECKING:
    import httpx

PROMPT = "Say hello in five words."
MAX_TOKENS = 16
ANTHROPIC_VERSION = "2023-06-01"
ANSWER_WORDS = 8
ANSWER_CHARS = 80


@dataclass(frozen=True)
class ToolCheck:
    tool: str
    ok: bool
    requests: tuple[str, ...]  # what was sent, in order: "GET /v1/models 200", "POST /v1/messages 200"
    model: str | None = None
    latency_s: float | None = None  # of the request that generates
    answer: str | None = None  # the first words of the reply, control characters escaped
    problem: Problem | None = None

    @property
    def line(self) -> str:
        if self.ok:
            words = f" · “{self.answer}”" if self.answer else " · (an empty reply)"
            return f"ok · {self.latency_s:.2f} s{words}"
        p = self.problem
        return f"{p.title}: {p.explanation}" + (f" → {p.fix}" if p.fix else "")

    def as_dict(self) -> dict:
        return {"tool": self.tool, "ok": self.ok, "requests": list(self.requests), "model": self.model,
                "latency_s": None if self.latency_s is None else round(self.latency_s, 4), "answer": self.answer,
                "problem": self.problem.as_dict() if self.problem else None}


# --- what the server is -----------------------------------------------------------------------

async def read_endpoint(url: str, api_key: str | None = None, *, timeout_s: float = 10.0,
                        client: httpx.AsyncClient | None = None) -> Endpoint:
    """The server at `url` (root or /v1 base) and what it serves. ServerUnreachable when nothing
    answers, Unauthorized for a 401, ProblemError for anything that is not an OpenAI model list."""
    root = root_url(url)
    async with _client(client, timeout_s) as http:
        try:
            resp = await http.get(root + "/v1/models", headers=bearer_headers(api_key))
        except Exception as exc:  # httpx's errors, mapped
            raise _transport_error(exc, root, timeout_s) from None
    if resp.status_code in (401, 403):
        raise Unauthorized(_key_problem(root, api_key, resp.status_code))
    if resp.status_code != 200:
        raise ProblemError(Problem(f"{root} is not an OpenAI-compatible server",
                                   f"GET /v1/models answered HTTP {resp.status_code}: {_message(resp.text)}",
                                   "Check the URL: it should be the vLLM server's root, e.g. http://127.0.0.1:8000."))
    try:
        models = models_from_listing(resp.json())
    except ValueError:
        models = ()
    if not models:
        raise ProblemError(Problem(f"{root} lists no models", "GET /v1/models gave no model names.",
                                   "Check that the URL points at a vLLM server."))
    return Endpoint(root, models, api_key)


# --- one tool's check -------------------------------------------------------------------------

async def check_tool(endpoint: Endpoint, tool: str, *, model: str | None = None, wire_api: str = "responses",
                     timeout_s: float = 60.0, client: httpx.AsyncClient | None = None) -> ToolCheck:
    """Send `tool`'s request for `model` (default: the endpoint's first base model)."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}")
    name = model or endpoint.default_model or ""
    probe = _Probe(endpoint, tool, name, timeout_s)
    async with _client(client, timeout_s) as http:
        probe.http = http
        try:
            if tool == "claude-code":
                return await probe.messages()
            if tool == "codex":  # no env_key without a server key: Codex then sends none
                return await (probe.responses() if wire_api == "responses"
                              else probe.chat(list_first=False, placeholder=False))
            # Aider and Open WebUI send the placeholder key their settings give; Continue without apiKey, none
            return await probe.chat(list_first=True, placeholder=tool != "continue")
        except _Failed as failed:
            return probe.result(problem=failed.problem)
        except Exception as exc:  # httpx's transport errors
            return probe.result(problem=_transport_error(exc, endpoint.root_url, timeout_s).problem)


async def check_all(endpoint: Endpoint, tools=tuple(TOOLS), **kwargs) -> list[ToolCheck]:
    """One check after another (as a person would try them; the server sees one request at a time)."""
    return [await check_tool(endpoint, tool, **kwargs) for tool in tools]


class _Failed(Exception):
    def __init__(self, problem: Problem):
        super().__init__(problem.title)
        self.problem = problem


class _Probe:
    def __init__(self, endpoint: Endpoint, tool: str, model: str, timeout_s: float):
        self.endpoint, self.tool, self.model, self.timeout_s = endpoint, tool, model, timeout_s
        self.http: httpx.AsyncClient | None = None
        self.sent: list[str] = []
        self.latency_s: float | None = None

    def result(self, *, answer: str | None = None, problem: Problem | None = None) -> ToolCheck:
        return ToolCheck(self.tool, problem is None, tuple(self.sent), self.model, self.latency_s,
                         None if answer is None else first_words(answer), problem)

    def _key(self, placeholder: bool) -> str | None:
        """The key as the tool's settings give it: the server's, or the placeholder where the tool needs one."""
        return self.endpoint.api_key or (PLACEHOLDER_KEY if placeholder else None)

    async def chat(self, *, list_first: bool, placeholder: bool) -> ToolCheck:
        key = self._key(placeholder)
        if list_first:
            resp = await self._send("GET", "/v1/models", key)
            served = [m.id for m in models_from_listing(_json(resp))]
            if self.model not in served:
                raise _Failed(_no_model(self.model, served))
        body = {"model": self.model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS,
                "stream": False}
        data = _json(await self._send("POST", "/v1/chat/completions", key, json=body, timed=True))
        try:
            text = data["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _Failed(_odd_answer("/v1/chat/completions", data)) from None
        return self.result(answer=text)

    async def responses(self) -> ToolCheck:
        body = {"model": self.model, "input": PROMPT, "max_output_tokens": MAX_TOKENS, "stream": False,
                "store": False}
        data = _json(await self._send("POST", "/v1/responses", self._key(placeholder=False), json=body, timed=True))
        try:
            parts = [c.get("text") or "" for item in data["output"] if item.get("type") == "message"
                     for c in item.get("content") or [] if c.get("type") == "output_text"]
        except (KeyError, TypeError, AttributeError):
            raise _Failed(_odd_answer("/v1/responses", data)) from None
        return self.result(answer="".join(parts))

    async def messages(self) -> ToolCheck:
        """Claude Code streams; the reply is read from its content_block_delta events."""
        body = {"model": self.model, "max_tokens": MAX_TOKENS, "stream": True,
                "messages": [{"role": "user", "content": PROMPT}]}
        headers = {**bearer_headers(self._key(placeholder=True)), "anthropic-version": ANTHROPIC_VERSION}
        path = "/v1/messages?beta=true"
        started = time.monotonic()
        async with self.http.stream("POST", self.endpoint.root_url + path, json=body, headers=headers) as resp:
            self.sent.append(f"POST {path} {resp.status_code}")
            if resp.status_code != 200:
                await resp.aread()
                raise _Failed(self._http_problem("/v1/messages", resp.status_code, resp.text))
            text, stopped, event = [], False, None
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    try:
                        data = json.loads(line[5:])
                    except ValueError:
                        raise _Failed(_odd_answer("/v1/messages", line[5:].strip())) from None
                    if not isinstance(data, dict):
                        continue
                    kind = data.get("type") or event
                    if kind == "error":
                        err = data.get("error") or {}
                        raise _Failed(Problem("The reply broke off", f"vLLM sent an error event: "
                                              f"{printable(str(err.get('message') or err))}",
                                              "The server's log says more."))
                    if kind == "content_block_delta" and (data.get("delta") or {}).get("type") == "text_delta":
                        text.append(data["delta"].get("text") or "")
                    elif kind == "message_stop":
                        stopped = True
        self.latency_s = time.monotonic() - started
        if not stopped:
            raise _Failed(Problem("The reply broke off", "The stream from /v1/messages ended without "
                                  "message_stop.", "The server's log says why; try again."))
        return self.result(answer="".join(text))

    async def _send(self, method: str, path: str, key: str | None, *, json: dict | None = None,
                    timed: bool = False):
        started = time.monotonic()
        resp = await self.http.request(method, self.endpoint.root_url + path, headers=bearer_headers(key), json=json)
        if timed:
            self.latency_s = time.monotonic() - started
        self.sent.append(f"{method} {path} {resp.status_code}")
        if resp.status_code != 200:
            raise _Failed(self._http_problem(path, resp.status_code, resp.text))
        return resp

    def _http_problem(self, path: str, status: int, text: str) -> Problem:
        root = self.endpoint.root_url
        message = _message(text)
        if status in (401, 403):
            return _key_problem(root, self.endpoint.api_key, status)
        if status == 404 and ("NotFoundError" in text or "does not exist" in message or "model" in message.lower()):
            return _no_model(self.model, [m.id for m in self.endpoint.models], message)
        if status == 404:
            return Problem(f"The server has no {path} route",
                           f"{root}{path} answered HTTP 404 ({message}). vLLM 0.26 serves it for models that "
                           "generate text; an older vLLM, a proxy in front of it, or another server may not.",
                           "Check that the URL points at vLLM itself" + (
                               "; or use wire_api = \"chat\" with an older Codex." if path == "/v1/responses" else "."))
        return Problem(f"The server refused the request (HTTP {status})", f"{path}: {message}",
                       "The server's log may say more.")


# --- helpers ----------------------------------------------------------------------------------

def first_words(text: str) -> str:
    words = text.split()
    short = " ".join(words[:ANSWER_WORDS])
    if len(short) > ANSWER_CHARS:
        short = short[:ANSWER_CHARS].rstrip()
    if short != " ".join(words):
        short += " …"
    return printable(short)


class _client:
    """The caller's client, or one made (and closed) here."""

    def __init__(self, client, timeout_s: float):
        self.given, self.timeout_s, self.made = client, timeout_s, None

    async def __aenter__(self) -> httpx.AsyncClient:
        if self.given is not None:
            return self.given
        self.made = server_http_client(timeout_s=self.timeout_s)
        return self.made

    async def __aexit__(self, *exc) -> None:
        if self.made is not None:
            await self.made.aclose()


def _json(resp) -> object:
    try:
        return resp.json()
    except ValueError:
        raise _Failed(_odd_answer(resp.url.path, resp.text[:200])) from None


def _message(text: str) -> str:
    """vLLM's words from an error body: OpenAI {"error": {"message"}}, Anthropic {"type": "error",
    "error": {…}}, the middleware's {"error": "Unauthorized"}, FastAPI's {"detail": …}."""
    try:
        data = json.loads(text)
    except ValueError:
        return printable(text.strip()[:300]) or "(no message)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return printable(str(err["message"]))
        for value in (err, data.get("detail"), data.get("message")):
            if value:
                return printable(value if isinstance(value, str) else json.dumps(value))
    return printable(text.strip()[:300]) or "(no message)"


def _key_problem(root: str, api_key: str | None, status: int) -> Problem:
    if api_key is None:
        return Problem("The server wants an API key", f"{root} was started with an API key and none was sent "
                       f"(HTTP {status}).", f"Give the server's key: set {KEY_ENV}, or --api-key.")
    return Problem("The API key was refused", f"{root} did not accept the key (HTTP {status}).",
                   "Use the key the server was started with (the Server page's API key field).")


def _no_model(model: str, served: list[str], said: str | None = None) -> Problem:
    names = ", ".join(printable(n) for n in served) or "nothing"
    why = f"vLLM answered: {said} " if said else ""
    return Problem(f"The server has no model {printable(model)!r}", f"{why}It serves {names}.",
                   "Use one of the served names as the tool's model.")


def _odd_answer(path: str, data: object) -> Problem:
    shown = data if isinstance(data, str) else json.dumps(data)[:200]
    return Problem("An answer the tool would not understand", f"{path} answered 200 with {printable(shown)}.",
                   "Check that the URL points at vLLM itself, not a proxy that rewrites answers.")


def _transport_error(exc: BaseException, root: str, timeout_s: float) -> ProblemError:
    """httpx's transport errors as Problems; anything else is a bug and raised again."""
    import httpx

    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ServerUnreachable(Problem(
            "The server is not running", f"Nothing answers at {root} ({exc or type(exc).__name__}).",
            "Start it on the Server page or with `llmdesk serve MODEL`, or check the URL."))
    if isinstance(exc, httpx.TimeoutException):
        return ProblemError(Problem(f"The server did not answer in {timeout_s:g} s", f"{root}: {type(exc).__name__}.",
                                    "It may be busy or still loading; try again."))
    if isinstance(exc, httpx.HTTPError):
        return ProblemError(Problem(f"Could not talk to the server at {root}", f"{type(exc).__name__}: {exc}",
                                    "Check the URL and that the server is running."))
    raise exc
