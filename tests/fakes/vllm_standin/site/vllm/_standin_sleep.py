"""Sleep mode in the stand-in vLLM 0.26.0 (standard library only; tests and demos, never production).

With ``--enable-sleep-mode`` AND ``VLLM_SERVER_DEV_MODE=1`` in the environment the stand-in serves the
development routes of vllm/entrypoints/serve/dev/sleep/api_router.py and dev/rpc/api_router.py:

``POST /sleep?level=0|1|2&mode=abort|wait|keep``  200, empty body, once asleep. Like vLLM's
    EngineCore.sleep: the scheduler is paused first (new generation requests are queued, not answered),
    then ``abort`` cuts the generations in flight, ``wait`` lets them finish before the answer,
    ``keep`` freezes them until the wake-up. Takes ``FAKE_VLLM_SLEEP_S`` (default 0.2) and logs
    "It took X seconds to fall asleep." Level 2 discards the weights.
``POST /wake_up[?tags=weights&tags=kv_cache|scheduling]``  200, empty body, after ``FAKE_VLLM_WAKE_S``
    (default 0.2). The scheduler resumes once no tag is asleep any more, at once, even after level 2
    before the weights are reloaded: a generation then answers "<no weights>" tokens, as a real model
    would answer garbage with discarded weights.
``GET /is_sleeping``  {"is_sleeping": bool} (the scheduler paused, or any tag asleep).
``POST /collective_rpc`` {"method": "reload_weights"}  200 {"results": [null]}: the weights are back
    (``FAKE_VLLM_RELOAD_S``, default 0.2); other methods 200 {"results": [null]} as a no-op.

Without both, the routes answer 404 {"detail":"Not Found"}, as vLLM never registers them. The other
development routes (/server_info, /reset_prefix_cache, /pause, ...) answer 200 in dev mode so tests
can tell that a proxy kept them away. ``/metrics`` reports ``vllm:engine_sleep_state`` (awake,
weights_offloaded, discard_all) and the queued requests in ``vllm:num_requests_waiting``.
Only /v1/chat/completions and /v1/completions are queued while asleep (the routes of _standin_tools.py
are not).
"""

from __future__ import annotations

import json
import os
import threading
import time
from urllib.parse import parse_qs, urlsplit

DEV_MODE_ENV = "VLLM_SERVER_DEV_MODE"
TAGS = ("weights", "kv_cache")
SLEEP_ROUTES = ("/sleep", "/wake_up", "/is_sleeping", "/collective_rpc")
OTHER_DEV_ROUTES = ("/server_info", "/reset_prefix_cache", "/reset_mm_cache", "/reset_encoder_cache", "/pause",
                    "/resume", "/abort_requests", "/is_paused", "/init_weight_transfer_engine",
                    "/start_weight_update", "/start_draft_weight_update", "/update_weights",
                    "/finish_weight_update", "/get_world_size")


def dev_mode() -> bool:
    return os.environ.get(DEV_MODE_ENV, "0").strip().lower() in ("1", "true")


def is_dev_route(path: str) -> bool:
    return path in SLEEP_ROUTES or path in OTHER_DEV_ROUTES


class SleepState:
    """The engine's sleep as far as a client can tell; every method is thread-safe."""

    def __init__(self, sleep_s: float, wake_s: float, reload_s: float, log=None):
        self.sleep_s, self.wake_s, self.reload_s = sleep_s, wake_s, reload_s
        self.cond = threading.Condition()
        self.paused = False  # the scheduler: new generations wait
        self.frozen = False  # mode=keep: generations in flight wait too
        self.abort_epoch = 0  # mode=abort: generations that started before a change of it end
        self.level = 0  # of the last sleep while any tag sleeps
        self.sleeping_tags: set[str] = set()
        self.weights_ok = True
        self.generating = 0
        self.waiting = 0
        self.log = log or (lambda message: None)

    @classmethod
    def from_args(cls, args, log=None) -> SleepState | None:
        if not args.enable_sleep_mode:
            return None
        env = os.environ.get
        return cls(float(env("FAKE_VLLM_SLEEP_S", "0.2")), float(env("FAKE_VLLM_WAKE_S", "0.2")),
                   float(env("FAKE_VLLM_RELOAD_S", "0.2")), log)

    # -- generations (the handler's threads)

    def admit(self) -> int:
        """Wait while the scheduler is paused (a request queued in vLLM is neither answered nor refused);
        returns the abort epoch the generation runs in."""
        with self.cond:
            self.waiting += 1
            try:
                while self.paused:
                    self.cond.wait()
            finally:
                self.waiting -= 1
            self.generating += 1
            return self.abort_epoch

    def done(self) -> None:
        with self.cond:
            self.generating -= 1
            self.cond.notify_all()

    def step(self, epoch: int) -> bool:
        """Before each token: False when the generation was aborted; waits while frozen (mode=keep)."""
        with self.cond:
            while self.frozen and self.abort_epoch == epoch:
                self.cond.wait()
            return self.abort_epoch == epoch

    @property
    def no_weights(self) -> bool:
        return not self.weights_ok

    @property
    def is_sleeping(self) -> bool:
        with self.cond:
            return self.paused or bool(self.sleeping_tags)

    # -- the routes

    def sleep(self, level: int, mode: str) -> tuple[int, dict | None]:
        if mode not in ("abort", "wait", "keep"):
            return 500, _err(f"Invalid pause mode: {mode}", "InternalServerError", 500)
        if level not in (0, 1, 2):
            return 500, _err(f"Invalid sleep level: {level}", "InternalServerError", 500)
        started = time.perf_counter()
        with self.cond:
            self.paused = True
            if mode == "abort":
                self.abort_epoch += 1
                self.cond.notify_all()
            elif mode == "keep":
                self.frozen = True
            elif mode == "wait":
                if self.generating:
                    self.log("Waiting for in-flight requests to complete before sleeping...")
                while self.generating:
                    self.cond.wait()
        if level == 0:
            return 200, None
        with self.cond:
            if self.sleeping_tags:
                self.log("Executor is already sleeping.")
                return 200, None
        time.sleep(self.sleep_s)
        with self.cond:
            self.level = level
            self.sleeping_tags = set(TAGS)
            if level == 2:
                self.weights_ok = False
        self.log(f"It took {time.perf_counter() - started:.6f} seconds to fall asleep.")
        return 200, None

    def wake_up(self, tags: list[str] | None) -> tuple[int, dict | None]:
        self.log(f"wake up the engine with tags: {tags}")
        if tags is not None and "scheduling" in tags:
            tags = [t for t in tags if t != "scheduling"]
        with self.cond:
            asleep = bool(self.sleeping_tags)
            bad = [t for t in tags or [] if t not in self.sleeping_tags]
        if tags is None or tags:
            if not asleep:
                self.log("Executor is not sleeping.")
            elif bad:
                self.log(f"Tag {bad[0]} is not in sleeping tags {self.sleeping_tags}")
            else:
                started = time.perf_counter()
                time.sleep(self.wake_s)
                with self.cond:
                    woken = set(tags) if tags else set(self.sleeping_tags)
                    self.sleeping_tags -= woken
                self.log(f"It took {time.perf_counter() - started:.6f} seconds to wake up tags "
                         f"{sorted(woken)}.")
        with self.cond:
            if not self.sleeping_tags:  # vLLM resumes the scheduler once all memory is back
                self.paused = False
                self.frozen = False
                self.level = 0
                self.cond.notify_all()
        return 200, None

    def collective_rpc(self, body: dict) -> tuple[int, dict | None]:
        method = body.get("method")
        if method is None:
            return 400, {"detail": "Missing 'method' in request body"}
        if method == "reload_weights":
            with self.cond:
                if "weights" in self.sleeping_tags:
                    return 500, _err("CUDA error: an illegal memory access was encountered",
                                     "InternalServerError", 500)
            time.sleep(self.reload_s)
            with self.cond:
                self.weights_ok = True
            self.log("Reloading weights inplace...")
        return 200, {"results": [None]}

    # -- /metrics

    def metric_delta(self, name: str, labels: str) -> float | None:
        """The change from the template's value (awake) for the sleep gauges, None for other samples."""
        if name == "vllm:num_requests_waiting":
            return float(self.waiting)
        if name != "vllm:engine_sleep_state":
            return None
        with self.cond:
            level = self.level if self.sleeping_tags else 0
        if 'sleep_state="awake"' in labels:
            return -1.0 if level else 0.0
        if 'sleep_state="weights_offloaded"' in labels:
            return 1.0 if level == 1 else 0.0
        if 'sleep_state="discard_all"' in labels:
            return 1.0 if level == 2 else 0.0
        return None


def _err(message: str, etype: str, code: int) -> dict:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def handle(handler, method: str, raw: bytes) -> None:
    """A development route on the stand-in's request handler (vllm._standin._Handler)."""
    state: SleepState | None = handler.s.sleep
    parts = urlsplit(handler.path)
    path, query = parts.path, parse_qs(parts.query)
    if not dev_mode():
        handler._send(404, {"detail": "Not Found"})
        return
    wanted = "GET" if path in ("/is_sleeping", "/server_info", "/is_paused", "/get_world_size") else "POST"
    if method != wanted:
        handler._send(405, {"detail": "Method Not Allowed"})
        return
    if path not in SLEEP_ROUTES:
        handler._send(200, {"route": path, "stand_in": True})
        return
    if path == "/is_sleeping":
        handler._send(200, {"is_sleeping": bool(state and state.is_sleeping)})
        return
    if state is None:  # dev mode without --enable-sleep-mode: the engine refuses
        handler._error(500, "Sleep mode is not enabled. Start vLLM with --enable-sleep-mode.", "InternalServerError")
        return
    if path == "/sleep":
        try:
            level = int((query.get("level") or ["1"])[0])
        except ValueError:
            handler._error(500, "invalid literal for int() with base 10", "InternalServerError")
            return
        status, body = state.sleep(level, (query.get("mode") or ["abort"])[0])
    elif path == "/wake_up":
        status, body = state.wake_up(query.get("tags") or None)
    else:
        try:
            data = json.loads(raw or b"{}")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            handler._send(400, {"detail": "JSON decode error"})
            return
        status, body = state.collective_rpc(data)
    handler._send(status, body if body is not None else b"")
