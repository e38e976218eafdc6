"""The sleep gate: a small reverse proxy in front of vLLM that frees the GPU without a restart (#23).

vLLM 0.26's sleep mode (``--enable-sleep-mode`` and ``VLLM_SERVER_DEV_MODE=1``) offloads the weights to
CPU memory (level 1) or drops them (level 2) and gives the GPU memory back; waking up takes well under a
second at level 1 (plus reading the weights again at level 2). Its routes are development routes that
vLLM's API key does not guard, and a request sent while vLLM sleeps is queued without an answer until
someone wakes it. So with sleep mode on, vLLM listens on 127.0.0.1:<internal port> and this gate on the
user's host:port:

* It forwards everything, byte for byte (server-sent events chunk by chunk, no buffering; request bodies
  streamed; hop-by-hop headers dropped, Host rewritten, X-Forwarded-For added; the client's own
  Authorization header passed on unchanged, so vLLM's key check is vLLM's).
* "Model work" (a POST under /v1/, /v2/, /inference/, or to /pooling, /classify, /score, /rerank,
  /invocations, /generative_scoring; see ``is_model_work``) is counted (``in_flight``) and held while the
  gate pauses or resumes. While paused, it wakes the model and is answered once awake
  (``wake_on_request``), or is refused at once with 503, Retry-After and an OpenAI-style error. Everything
  else (/health, /metrics, /v1/models, /tokenize, ...) passes in every state: vLLM answers those asleep.
* Pause: new model work is held, the gate waits until nothing it forwarded is in flight, then
  POST /sleep?level=N&mode=wait (vLLM would also let anything still running finish; mode=abort, vLLM's
  default, would cut it). Resume: POST /wake_up, at level 2 POST /collective_rpc {"method":
  "reload_weights"} (level 2 discarded the weights; vLLM's scheduler runs again right after /wake_up, so
  the gate keeps requests back until the reload is done), GET /is_sleeping must say false; then the held
  requests go on.
* vLLM's development routes (``DEV_ROUTES``) answer 404 to every client, whatever the spelling
  (percent-encoding, ``//``, ``/./``).
* Control routes for other llmdesk processes (``llmdesk server pause|resume``): GET /llmdesk/v1/state,
  POST /llmdesk/v1/pause[?level=1|2], POST /llmdesk/v1/resume, only from a loopback peer (else 404) with
  ``X-Llmdesk-Control: <control token>`` (else 403). ``control()`` is their client.

No Qt. ``SleepGate`` lives on one asyncio loop; ``GateThread`` runs it on its own thread and loop so the
GUI's loop never carries the proxy's traffic. aiohttp (server and upstream client) and httpx (``control``)
are imported when used: the window imports this module at start.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.server.endpoint import bearer_headers, vllm_error_message
from llmdesk.core.server.launch import is_loopback  # a peer on this computer: the control routes

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

log = logging.getLogger(__name__)

CONTROL_HEADER = "X-Llmdesk-Control"
CONTROL_ROOT = "/llmdesk"
CONTROL_ACTIONS = ("state", "pause", "resume")

# vLLM 0.26's development routes (entrypoints/serve/dev/*) and the other unguarded routes that change the
# server (profiler, elastic expert parallelism): never reachable through the gate.
DEV_ROUTES = frozenset({
    "/sleep", "/wake_up", "/is_sleeping", "/collective_rpc", "/server_info", "/reset_prefix_cache",
    "/reset_mm_cache", "/reset_encoder_cache", "/pause", "/resume", "/abort_requests", "/is_paused",
    "/init_weight_transfer_engine", "/start_weight_update", "/start_draft_weight_update", "/update_weights",
    "/finish_weight_update", "/get_world_size", "/start_profile", "/stop_profile", "/scale_elastic_ep",
    "/is_scaling_elastic_ep",
})
MODEL_PREFIXES = ("/v1/", "/v2/", "/inference/")
MODEL_ROOT_ROUTES = frozenset({"/pooling", "/classify", "/score", "/rerank", "/invocations", "/generative_scoring"})
# POSTs under /v1 that vLLM answers in its API server without the engine.
NOT_MODEL_WORK = frozenset({"/v1/messages/count_tokens", "/v1/chat/completions/render", "/v1/completions/render",
                            "/v1/chat/completions/derender", "/v1/completions/derender"})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})

PAUSED_RETRY_AFTER_S = 30
FAILED_RETRY_AFTER_S = 10
SHUTDOWN_GRACE_S = 1.0
CONNECT_TIMEOUT_S = 10.0
WAKE_TIMEOUT_S = 900.0  # wake-up and reload of the weights (read again from disk at level 2)
SLEEP_TIMEOUT_S = 1800.0  # level 1 copies the weights to CPU memory: 11 s for 8B on an H100, minutes for 70B
RESUME_HINT = "resume it in llmdesk (Server page) or with `llmdesk server resume`"


class GateState(str, enum.Enum):
    AWAKE = "awake"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"


@dataclass(frozen=True)
class GateSettings:
    level: int = 1  # 1: weights kept in CPU memory; 2: dropped, read again from disk on resume
    idle_pause_s: float | None = None  # pause by itself after this long without model work; None: never
    wake_on_request: bool = True  # model work while paused wakes the model (else 503)
    api_key: str | None = None  # vLLM's key, for the gate's own calls (clients send their own)
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    def __post_init__(self) -> None:
        if self.level not in (1, 2):
            raise BadInput(Problem("Invalid sleep level", f"The sleep level is {self.level!r}; vLLM has levels 1 "
                                   "(weights kept in CPU memory) and 2 (weights dropped).", "Choose level 1 or 2."))
        if self.idle_pause_s is not None and not self.idle_pause_s > 0:
            raise BadInput(Problem("Invalid idle time", f"The idle time before a pause is {self.idle_pause_s!r} s.",
                                   "Give a number of seconds above 0, or none to never pause by itself."))


# --- pure helpers -------------------------------------------------------------------------------

def route_of(raw_path: str) -> str:
    """The path a server would route, as strictly as any would read it: the query cut, percent-decoded
    until stable, empty and ``.`` segments dropped, ``..`` applied, no trailing slash."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    for _ in range(4):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def is_dev_route(route: str) -> bool:
    return route in DEV_ROUTES


def is_control_route(route: str) -> bool:
    return route == CONTROL_ROOT or route.startswith(CONTROL_ROOT + "/")


def is_model_work(method: str, route: str) -> bool:
    """Whether a request needs the engine awake (and wakes it): a POST to a generation, pooling or LoRA
    route. Reading routes (GET /v1/models, /health, /metrics, ...) and /tokenize do not."""
    if method.upper() != "POST" or route in NOT_MODEL_WORK:
        return False
    return (route + "/").startswith(MODEL_PREFIXES) or route in MODEL_ROOT_ROUTES


def error_body(message: str, etype: str, code: int) -> dict[str, Any]:
    """OpenAI's (and vLLM's) error envelope."""
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def paused_message() -> str:
    return ("The model is paused to free the GPU, so this server answers no requests for it now; "
            f"{RESUME_HINT}.")


def _unhidden(seconds: float) -> float:
    return round(seconds, 3)


def _problem_of(exc: BaseException, doing: str) -> Problem:
    if isinstance(exc, ProblemError):
        return exc.problem
    log.error("sleep gate: could not %s", doing, exc_info=exc)
    return Problem(f"Could not {doing}", f"{type(exc).__name__}: {exc}",
                   "The full details are in the log file; please include it in a bug report.")


# --- the gate -----------------------------------------------------------------------------------

class SleepGate:
    """The proxy on one asyncio loop: ``await start()`` binds ``listen_host:listen_port`` (port 0: any free
    one, see ``port``), ``await close()`` ends it. ``on_change(state, info)`` is called on this loop after
    every state change, ``info`` being ``snapshot()`` plus ``reason`` (and ``error`` after a failure)."""

    def __init__(self, listen_host: str, listen_port: int, upstream_base_url: str, settings: GateSettings,
                 on_change: Callable[[GateState, dict[str, Any]], None] | None = None):
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.upstream = upstream_base_url.rstrip("/")
        if self.upstream.endswith("/v1"):
            self.upstream = self.upstream[: -len("/v1")]
        self.settings = settings
        self.on_change = on_change
        self._state = GateState.AWAKE
        self._in_flight = 0  # model work forwarded to vLLM and not finished
        self._waiting = 0  # model work the gate holds
        self._idle_since = time.monotonic()
        self._slept_level: int | None = None
        self.last_pause: dict[str, Any] | None = None
        self.last_resume: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._changed: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._resume_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._idle_task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.ServerRunner | None = None
        self.port: int | None = None

    # -- observable state

    @property
    def state(self) -> GateState:
        return self._state

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def idle_for_s(self) -> float:
        """Seconds since the last model work ended (or the gate started, or the model woke); 0 while any
        is in flight or held."""
        if self._in_flight or self._waiting:
            return 0.0
        return max(0.0, time.monotonic() - self._idle_since)

    def snapshot(self) -> dict[str, Any]:
        pause, resume = self.last_pause, self.last_resume
        return {"state": self._state.value, "in_flight": self._in_flight, "waiting": self._waiting,
                "idle_for_s": _unhidden(self.idle_for_s), "level": self.settings.level,
                "slept_level": self._slept_level, "idle_pause_s": self.settings.idle_pause_s,
                "wake_on_request": self.settings.wake_on_request,
                "last_pause": dict(pause) if pause else None, "last_resume": dict(resume) if resume else None,
                "last_pause_s": pause.get("seconds") if pause else None,
                "last_resume_s": resume.get("seconds") if resume else None, "error": self.last_error}

    def set_settings(self, settings: GateSettings) -> None:
        """New settings from now on (the level counts for the next pause; a resume wakes the level slept)."""
        self.settings = settings

    # -- life

    async def start(self) -> None:
        import aiohttp
        from aiohttp import web

        self._changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._lock = asyncio.Lock()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
            auto_decompress=False, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        host = self.listen_host or None
        site = web.TCPSite(self._runner, host, self.listen_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            await self._session.close()
            self._runner = self._session = None
            raise ProblemError(self._bind_problem(exc)) from None
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self.listen_port
        self._idle_since = time.monotonic()
        self._idle_task = asyncio.ensure_future(self._idle_loop())
        log.info("sleep gate on %s:%s in front of %s", self.listen_host or "*", self.port, self.upstream)

    def _bind_problem(self, exc: OSError) -> Problem:
        where = f"{self.listen_host or '0.0.0.0'}:{self.listen_port}"
        if exc.errno == errno.EADDRINUSE:
            return Problem(f"Port {self.listen_port} is in use",
                           f"Another program already listens on {where}, so llmdesk cannot take the server's "
                           "address (it stands in front of vLLM there to pause and resume the model).",
                           "Stop the other server, or choose another port.")
        from llmdesk.core.server.diagnose import listen_problem

        return listen_problem(self.listen_host or "0.0.0.0", self.listen_port) or Problem(
            f"Cannot listen on {where}", f"{exc.strerror or exc}.", "Choose another address or port.")

    async def close(self) -> None:
        tasks = [t for t in (self._idle_task, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._idle_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- state changes

    def _set_state(self, state: GateState, reason: str, error: str | None = None) -> None:
        self._state = state
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        if self.on_change is not None:
            info = self.snapshot()
            info["reason"] = reason
            if error is not None:
                info["error"] = error
            try:
                self.on_change(state, info)
            except Exception:  # a listener's bug must not stop the gate
                log.exception("sleep gate: on_change failed")

    def _detached(self, coro) -> asyncio.Future:
        """Run a transition to its end even when the one who asked stops waiting (a client gone, a
        cancelled caller): the caller awaits a shield of it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
        return asyncio.shield(task)

    async def pause(self, reason: str = "user", *, level: int | None = None) -> dict[str, Any]:
        """Free the GPU: hold new model work, let what is in flight finish, put vLLM to sleep. Returns
        what happened ({"changed", "state", "level", "seconds", "drain_s", "sleep_s", ...}); at once,
        with changed False, when already paused. ProblemError when vLLM refuses."""
        level = self.settings.level if level is None else int(level)
        if level not in (1, 2):
            raise BadInput(Problem("Invalid sleep level", f"The sleep level is {level!r}.", "Choose level 1 or 2."))
        return await self._detached(self._pause(reason, level, only_if_idle=False))

    async def resume(self, reason: str = "user") -> dict[str, Any]:
        """Wake vLLM (and reload the weights after a level-2 sleep), then let held requests go on. Returns
        {"changed", "state", "level", "seconds", "wake_s", "reload_s", ...}; at once when awake."""
        return await self._detached(self._resume(reason))

    async def _pause(self, reason: str, level: int, *, only_if_idle: bool) -> dict[str, Any]:
        assert self._lock is not None and self._drained is not None
        async with self._lock:
            if self._state is GateState.PAUSED:
                return {"changed": False, "state": self._state.value, "level": self._slept_level,
                        "reason": reason, "seconds": 0.0}
            if only_if_idle and (self._in_flight or self._waiting
                                 or self.settings.idle_pause_s is None
                                 or self.idle_for_s < self.settings.idle_pause_s):
                return {"changed": False, "state": self._state.value, "reason": reason, "seconds": 0.0}
            started = time.monotonic()
            in_flight = self._in_flight
            self._set_state(GateState.PAUSING, reason)
            try:
                await self._drained.wait()
                drained = time.monotonic()
                await self._call("POST", f"/sleep?level={level}&mode=wait", doing="put the model to sleep",
                                 timeout_s=SLEEP_TIMEOUT_S)
            except asyncio.CancelledError:  # the gate closes
                raise
            except Exception as exc:
                problem = _problem_of(exc, "put the model to sleep")
                sleeping = await self._probe_sleeping()
                self.last_error = problem.explanation
                if sleeping:
                    self._slept_level = level
                self._set_state(GateState.PAUSED if sleeping else GateState.AWAKE, reason, problem.explanation)
                if not sleeping:
                    self._idle_since = time.monotonic()
                if isinstance(exc, ProblemError):
                    raise
                raise ProblemError(problem) from exc
            done = time.monotonic()
            self._slept_level = level
            self.last_error = None
            self.last_pause = {"reason": reason, "level": level, "seconds": _unhidden(done - started),
                               "drain_s": _unhidden(drained - started), "sleep_s": _unhidden(done - drained),
                               "in_flight_at_start": in_flight, "at": time.time()}
            self._set_state(GateState.PAUSED, reason)
            log.info("sleep gate: paused (%s, level %s) in %.2f s", reason, level, done - started)
            return {"changed": True, "state": self._state.value, **self.last_pause}

    async def _resume(self, reason: str) -> dict[str, Any]:
        assert self._lock is not None
        async with self._lock:
            if self._state is GateState.AWAKE:
                return {"changed": False, "state": self._state.value, "reason": reason, "seconds": 0.0}
            level = self._slept_level or self.settings.level
            started = time.monotonic()
            self._set_state(GateState.RESUMING, reason)
            reload_s = None
            try:
                await self._call("POST", "/wake_up", doing="wake the model", timeout_s=WAKE_TIMEOUT_S)
                woke = time.monotonic()
                if level == 2:  # the weights were dropped: vLLM's scheduler already runs, we hold requests
                    await self._call("POST", "/collective_rpc", doing="reload the model's weights",
                                     json_body={"method": "reload_weights"}, timeout_s=WAKE_TIMEOUT_S)
                    reload_s = _unhidden(time.monotonic() - woke)
                if await self._probe_sleeping(raise_error=True):
                    raise ProblemError(Problem("The model did not wake up",
                                               "vLLM still reports that it sleeps after /wake_up.",
                                               "Try Resume again; if it stays asleep, restart the server."))
            except asyncio.CancelledError:  # the gate closes
                raise
            except Exception as exc:
                problem = _problem_of(exc, "wake the model")
                self.last_error = problem.explanation
                self.last_resume = {"reason": reason, "level": level, "ok": False, "error": problem.explanation,
                                    "seconds": _unhidden(time.monotonic() - started), "at": time.time()}
                self._set_state(GateState.PAUSED, reason, problem.explanation)
                if isinstance(exc, ProblemError):
                    raise
                raise ProblemError(problem) from exc
            done = time.monotonic()
            self.last_error = None
            self.last_resume = {"reason": reason, "level": level, "ok": True, "seconds": _unhidden(done - started),
                                "wake_s": _unhidden(woke - started), "reload_s": reload_s,
                                "held_requests": self._waiting, "at": time.time()}
            self._slept_level = None
            self._idle_since = done
            self._set_state(GateState.AWAKE, reason)
            log.info("sleep gate: awake (%s, level %s) in %.2f s", reason, level, done - started)
            return {"changed": True, "state": self._state.value, **self.last_resume}

    async def _idle_loop(self) -> None:
        while True:
            limit = self.settings.idle_pause_s
            await asyncio.sleep(1.0 if limit is None else min(1.0, max(0.02, limit / 10)))
            if (limit is None or self._state is not GateState.AWAKE or self._in_flight or self._waiting
                    or self.idle_for_s < limit or (self._lock is not None and self._lock.locked())):
                continue
            try:
                await self._detached(self._pause("idle", self.settings.level, only_if_idle=True))
            except ProblemError as exc:
                log.warning("sleep gate: idle pause failed: %s", exc.problem.explanation)
                self._idle_since = time.monotonic()  # not again at once
            except Exception:
                log.exception("sleep gate: idle pause failed")
                self._idle_since = time.monotonic()

    # -- calls to vLLM

    async def _call(self, method: str, path: str, *, doing: str, json_body: Any = None,
                    timeout_s: float | None = None) -> str:
        import aiohttp

        assert self._session is not None
        headers = bearer_headers(self.settings.api_key)
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        data = json.dumps(json_body).encode() if json_body is not None else None
        try:
            async with self._session.request(method, self.upstream + path, headers=headers, data=data,
                                             timeout=aiohttp.ClientTimeout(total=timeout_s,
                                                                           sock_connect=CONNECT_TIMEOUT_S)) as r:
                text = await r.text(errors="replace")
                status = r.status
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            raise ProblemError(Problem(f"Could not {doing}: vLLM is not answering",
                                       f"Nothing answers at {self.upstream} ({exc.__class__.__name__}).",
                                       "Look at the server's log; the server may have stopped.")) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ProblemError(Problem(f"Could not {doing}", f"Talking to vLLM failed: {type(exc).__name__} {exc}.",
                                       "Look at the server's log, then try again.")) from None
        if status == 404 and path.split("?")[0] in DEV_ROUTES:
            raise ProblemError(Problem(f"Could not {doing}: this vLLM has no sleep mode",
                                       f"vLLM answered 404 to {path.split('?')[0]}: it was started without "
                                       "VLLM_SERVER_DEV_MODE=1, which the sleep routes need.",
                                       "Restart the server with sleep mode on (Server page, or llmdesk serve "
                                       "--sleep-mode)."))
        if status >= 400:
            said = vllm_error_message(text) or "(no message)"
            raise ProblemError(Problem(f"vLLM refused to {doing} (HTTP {status})", f"vLLM said: {said}",
                                       "The server's log may say more."))
        return text

    async def _probe_sleeping(self, *, raise_error: bool = False) -> bool:
        """GET /is_sleeping; False when it cannot be read (unless raise_error)."""
        try:
            text = await self._call("GET", "/is_sleeping", doing="ask whether the model sleeps", timeout_s=30.0)
            return bool(json.loads(text)["is_sleeping"])
        except (ProblemError, ValueError, KeyError, TypeError):
            if raise_error:
                raise
            return False

    # -- requests

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        route = route_of(request.raw_path)
        if is_control_route(route):
            return await self._control(request, route)
        if is_dev_route(route):
            return self._json(404, error_body(
                f"{route} is not exposed by llmdesk: vLLM's development routes (sleep, weights, caches) are "
                "open to anyone who reaches them, so llmdesk keeps them on this computer. Pause and resume the "
                f"model in llmdesk (Server page) or with `llmdesk server pause|resume`.", "NotFoundError", 404))
        if not is_model_work(request.method, route) and request.headers.get("Upgrade", "").lower() != "websocket":
            return await self._forward(request)
        self._waiting += 1
        try:
            refusal = await self._admit()
        finally:
            self._waiting -= 1
        if refusal is not None:
            return refusal
        assert self._drained is not None
        self._in_flight += 1
        self._drained.clear()
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._websocket(request)
            return await self._forward(request)
        finally:
            self._in_flight -= 1
            self._idle_since = time.monotonic()
            if not self._in_flight:
                self._drained.set()

    async def _admit(self) -> web.StreamResponse | None:
        """Wait until model work may go to vLLM (None), or the answer that refuses it."""
        while True:
            state = self._state
            if state is GateState.AWAKE:
                return None
            if state in (GateState.PAUSING, GateState.RESUMING):
                assert self._changed is not None
                await self._changed.wait()
                continue
            if not self.settings.wake_on_request:
                return self._json(503, error_body(paused_message(), "ServiceUnavailableError", 503),
                                  {"Retry-After": str(PAUSED_RETRY_AFTER_S)})
            if self._resume_task is None or self._resume_task.done():  # one resume for all who wait
                self._resume_task = self._detached(self._resume("request"))
                self._resume_task.add_done_callback(lambda t: t.cancelled() or t.exception())
            try:
                await asyncio.shield(self._resume_task)
            except ProblemError as exc:
                return self._json(503, error_body(
                    f"The model is paused to free the GPU and could not be woken for this request: "
                    f"{exc.problem.title}. {exc.problem.explanation} Try again, or {RESUME_HINT}.",
                    "ServiceUnavailableError", 503), {"Retry-After": str(FAILED_RETRY_AFTER_S)})

    def _upstream_headers(self, request: web.BaseRequest, *, websocket: bool = False) -> Any:
        from multidict import CIMultiDict

        named = {t.strip().lower() for v in request.headers.getall("Connection", []) for t in v.split(",")}
        headers: CIMultiDict[str] = CIMultiDict()
        for key, value in request.headers.items():
            low = key.lower()
            if low in HOP_BY_HOP or low in named or low in ("host", "expect", CONTROL_HEADER.lower()):
                continue
            if websocket and low.startswith("sec-websocket-"):
                continue
            headers.add(key, value)
        peer = request.remote or ""
        earlier = ", ".join(request.headers.getall("X-Forwarded-For", []))
        headers.popall("X-Forwarded-For", None)
        headers["X-Forwarded-For"] = f"{earlier}, {peer}" if earlier else peer
        headers["X-Forwarded-Proto"] = request.scheme
        if request.host:
            headers["X-Forwarded-Host"] = request.host
        return headers

    async def _forward(self, request: web.BaseRequest) -> web.StreamResponse:
        import aiohttp
        from aiohttp import web

        assert self._session is not None
        headers = self._upstream_headers(request)
        data = request.content.iter_chunked(1 << 16) if request.body_exists else None
        try:
            upstream = await self._session.request(request.method, self.upstream + request.raw_path,
                                                   headers=headers, data=data, allow_redirects=False)
        except (aiohttp.ClientConnectorError, ConnectionRefusedError):
            return self._json(502, error_body(
                "The model server behind llmdesk is not answering (it may still be starting, or it stopped).",
                "BadGatewayError", 502), {"Retry-After": str(FAILED_RETRY_AFTER_S)})
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return self._json(502, error_body(f"The model server behind llmdesk failed: {type(exc).__name__}.",
                                              "BadGatewayError", 502))
        complete = False
        try:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            chunked = "chunked" in upstream.headers.get("Transfer-Encoding", "").lower()
            named = {t.strip().lower() for v in upstream.headers.getall("Connection", []) for t in v.split(",")}
            for key, value in upstream.headers.items():
                low = key.lower()
                if low not in HOP_BY_HOP and low not in named and low != "content-length":
                    resp.headers.add(key, value)
            if not chunked and "Content-Length" in upstream.headers:
                resp.content_length = int(upstream.headers["Content-Length"])
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # vLLM broke the response off (its engine died): break the client's off too, never end it
                # as if it were whole.
                if request.transport is not None:
                    request.transport.close()
                return resp
            await resp.write_eof()
            complete = True
            return resp
        finally:
            if complete:
                upstream.release()
            else:  # the client left (or vLLM did): close the connection so vLLM aborts the request
                upstream.close()

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        """A WebSocket (vLLM's /v1/realtime): both ends relayed message by message."""
        import aiohttp
        from aiohttp import web

        assert self._session is not None
        protocols = [p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", []) for p in v.split(",")
                     if p.strip()]
        url = "ws" + self.upstream[len("http"):] + request.raw_path
        try:
            upstream = await self._session.ws_connect(url, headers=self._upstream_headers(request, websocket=True),
                                                      protocols=protocols, autoping=False, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            return self._json(exc.status or 502, error_body(f"The model server refused the WebSocket: {exc.message}",
                                                            "BadGatewayError", exc.status or 502))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return self._json(502, error_body(f"The model server behind llmdesk failed: {type(exc).__name__}.",
                                              "BadGatewayError", 502))
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                       autoping=False, max_msg_size=0)
        try:
            await client.prepare(request)

            async def relay(source, sink) -> None:
                async for msg in source:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await sink.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await sink.send_bytes(msg.data)
                    elif msg.type == aiohttp.WSMsgType.PING:
                        await sink.ping(msg.data)
                    elif msg.type == aiohttp.WSMsgType.PONG:
                        await sink.pong(msg.data)
                    else:
                        break
                await sink.close()

            tasks = [asyncio.ensure_future(relay(client, upstream)), asyncio.ensure_future(relay(upstream, client))]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return client
        finally:
            await upstream.close()
            await client.close()

    # -- control routes

    async def _control(self, request: web.BaseRequest, route: str) -> web.StreamResponse:
        if not is_loopback(request.remote):
            return self._json(404, {"detail": "Not Found"})
        token = request.headers.get(CONTROL_HEADER, "")
        expected = self.settings.control_token or ""
        if not expected or not secrets.compare_digest(token.encode(), expected.encode()):
            return self._json(403, error_body("A wrong or missing llmdesk control token.", "PermissionError", 403))
        action = route[len(CONTROL_ROOT + "/v1/"):] if route.startswith(CONTROL_ROOT + "/v1/") else ""
        wanted = {"state": "GET", "pause": "POST", "resume": "POST"}.get(action)
        if wanted is None:
            return self._json(404, {"detail": "Not Found"})
        if request.method != wanted:
            return self._json(405, {"detail": "Method Not Allowed"}, {"Allow": wanted})
        try:
            if action == "pause":
                level = request.query.get("level")
                result = await self.pause("control", level=int(level) if level else None)
            elif action == "resume":
                result = await self.resume("control")
            else:
                result = {}
        except (ValueError, BadInput):
            return self._json(400, error_body("level must be 1 or 2.", "BadRequestError", 400))
        except ProblemError as exc:
            return self._json(502, {**error_body(exc.problem.explanation, "ProblemError", 502),
                                    "problem": exc.problem.as_dict(), **self.snapshot()})
        return self._json(200, {**self.snapshot(), "result": result})

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        from aiohttp import web

        return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                            headers=headers)


# --- on its own thread --------------------------------------------------------------------------

class GateThread:
    """A SleepGate on its own thread and event loop, so the GUI's loop never carries the proxy's work.

    ``start()`` blocks until the port is bound (re-raising the gate's error, e.g. a ProblemError for a
    port in use); ``stop()`` closes it and ends the thread. ``await pause()``/``await resume()`` may be
    called from ANY other event loop; ``state``, ``in_flight``, ``idle_for_s`` and ``snapshot()`` may be
    read from any thread. ``on_change(state, info)`` is called ON THE GATE'S THREAD: a caller with its own
    loop (the GUI) must hop, e.g. ``loop.call_soon_threadsafe(handler, state, info)``, or emit a Qt
    signal (queued across threads)."""

    def __init__(self, listen_host: str, listen_port: int, upstream_base_url: str, settings: GateSettings,
                 on_change: Callable[[GateState, dict[str, Any]], None] | None = None, *,
                 name: str = "llmdesk-sleep-gate"):
        self.gate = SleepGate(listen_host, listen_port, upstream_base_url, settings, on_change)
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    def start(self, timeout_s: float = 15.0) -> None:
        if self.running:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.gate.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(self.gate.close())
                    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    for task in pending:
                        task.cancel()
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    self._loop = None
                    loop.close()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise ProblemError(Problem("The sleep gate did not start", f"It was not listening after {timeout_s:g} s.",
                                       "Try again; the log may say more."))
        if failure:
            self._thread.join(timeout_s)
            self._thread = None
            raise failure[0]

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.gate.close(), loop).result(timeout_s)
        except Exception:
            log.exception("sleep gate: close failed")
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # already closed
            pass
        thread.join(timeout_s)
        self._thread = None

    def _on_gate(self, coro) -> asyncio.Future:
        loop = self._loop
        if loop is None or not self.running:
            coro.close()
            raise ProblemError(Problem("The sleep gate is not running", "The server's gate was stopped.",
                                       "Start the server again."))
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def pause(self, reason: str = "user", *, level: int | None = None) -> dict[str, Any]:
        return await self._on_gate(self.gate.pause(reason, level=level))

    async def resume(self, reason: str = "user") -> dict[str, Any]:
        return await self._on_gate(self.gate.resume(reason))

    def set_settings(self, settings: GateSettings) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.gate.set_settings, settings)
        else:
            self.gate.set_settings(settings)

    @property
    def state(self) -> GateState:
        return self.gate.state

    @property
    def in_flight(self) -> int:
        return self.gate.in_flight

    @property
    def idle_for_s(self) -> float:
        return self.gate.idle_for_s

    @property
    def port(self) -> int | None:
        return self.gate.port

    def snapshot(self) -> dict[str, Any]:
        return self.gate.snapshot()


# --- the client of the control routes -----------------------------------------------------------

async def control(url_root: str, token: str, action: str, *, level: int | None = None,
                  timeout_s: float = 900.0) -> dict[str, Any]:
    """Ask the gate at ``url_root`` (the server's address, with or without /v1) for its state, or to pause
    or resume the model; returns its JSON (``snapshot()`` plus ``result``). ProblemError in plain words when
    nothing answers, the server has no gate, or the gate refuses."""
    import httpx

    from llmdesk.core.server.endpoint import normalise_base_url, root_url

    if action not in CONTROL_ACTIONS:
        raise BadInput(Problem("Unknown action", f"{action!r} is not one of {', '.join(CONTROL_ACTIONS)}.",
                               "Use state, pause or resume."))
    root = root_url(normalise_base_url(url_root))
    url = f"{root}{CONTROL_ROOT}/v1/{action}"
    params = {"level": str(level)} if (level is not None and action == "pause") else None
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(timeout_s, connect=5.0)) as client:
            resp = await client.request("GET" if action == "state" else "POST", url, params=params,
                                        headers={CONTROL_HEADER: token or ""})
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ProblemError(Problem(f"No server at {root}", f"Could not connect ({exc or type(exc).__name__}).",
                                   "Start one with `llmdesk serve MODEL` or on the Server page, or check the "
                                   "address.")) from None
    except httpx.TimeoutException:
        raise ProblemError(Problem(f"The server at {root} did not answer in time",
                                   f"{action} took more than {timeout_s:g} s.",
                                   "A pause waits for running requests to finish; look at the Server page, "
                                   "then try again.")) from None
    except httpx.HTTPError as exc:
        raise ProblemError(Problem(f"Could not talk to the server at {root}", f"{type(exc).__name__}: {exc}",
                                   "Check the address and that the server is running.")) from None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict):
        return body
    if resp.status_code == 403:
        raise ProblemError(Problem("The server refused the request", "The server's sleep gate did not accept "
                                   "llmdesk's control token (it belongs to another start of the server).",
                                   "Use the llmdesk that started the server, or restart the server."))
    if resp.status_code == 404:
        raise ProblemError(Problem(f"The server at {root} cannot be paused from here",
                                   "It has no llmdesk sleep gate: it was started without sleep mode, by another "
                                   "program, or is on another computer (the gate answers this computer only).",
                                   "Start the server with sleep mode on (Server page, or llmdesk serve "
                                   "--sleep-mode) and run this on the same computer."))
    if isinstance(body, dict) and isinstance(body.get("problem"), dict):
        p = body["problem"]
        raise ProblemError(Problem(str(p.get("title") or "The server could not do it"),
                                   str(p.get("explanation") or ""), p.get("fix")))
    raise ProblemError(Problem(f"The server refused to {action} (HTTP {resp.status_code})",
                               vllm_error_message(resp.text) or "(no message)", "The server's log may say more."))
