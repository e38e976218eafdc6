"""Run vLLM as a supervised subprocess: start, phases, ready check, watch, stop without orphans.

No Qt: an asyncio class with observable state (``status`` plus ``subscribe`` callbacks, called on
the event loop's thread). The GUI drives it through qasync, ``llmdesk serve`` through
``asyncio.run``.

* vLLM is started with ``asyncio.create_subprocess_exec(..., start_new_session=True)``, so the API
  server leads its own process group and its engine-core child (and TP workers) are in it
  (vllm.md §4.1). Every output line goes to a ring buffer, a log file under
  ``paths.log_dir()`` and the start-up timeline (``startup_timeline.TimelineRecorder``: phases, figures).
* Ready means GET /health is 200 AND /v1/models lists the served name.
* Stop (vllm.md §4.4–4.5): one SIGINT to the server, ``grace_s`` for its own shutdown, SIGTERM to
  the group, ``term_grace_s``, SIGKILL to the group; then no process of the group may be left.
  A serving vLLM ignores signals after the first, so repeating SIGINT would do nothing.
* vLLM exits 0 after its engine died (issue #48966): crashed vs stopped is decided from whether
  this supervisor asked for the stop, never from the exit code alone.
* Every server has a record (``records.py``): its port is claimed before anything is spawned, so two
  starts on one port cannot both go ahead, and a server left behind by a killed llmdesk is found at
  the next start (``find_leftovers``/``stop_leftover``).
* Ready also means the process listening on the port is in our group: a server that took the port
  first and serves the same model name is never mistaken for ours.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import contextlib
import dataclasses
import enum
import hashlib
import json
import logging
import os
import signal
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmdesk.core.base import paths
from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.server.diagnose import (Diagnosis, Phase, diagnose, free_loopback_port, listen_problem,
                                          port_is_free)
from llmdesk.core.server import records
from llmdesk.core.server.endpoint import base_url, bearer_headers
from llmdesk.core.server.processes import (group_listens_on, group_members, pid_alive, signal_group, signal_pid)
from llmdesk.core.server.records import PortClaimed, ServerRecord
from llmdesk.core.server import preload as preloading
from llmdesk.core.server.launch import VLLM_ENTRY_MODULE, LaunchConfig, build_vllm_command, child_environment
from llmdesk.core.server.startup_timeline import (StartupEstimate, StartupHistory, StartupTimeline, TimelineRecorder,
                                                  cache_on_disk)

if TYPE_CHECKING:  # the gate is imported where sleep mode is used: the window starts without it
    from llmdesk.core.server.sleep_gate import GateThread

log = logging.getLogger(__name__)

ETA_FILE_NAME = "start-times.json"
HEALTH_FAILURES_FOR_CRASH = 3
READY_POLL_S = 0.1  # /health while starting (see _wait_ready)
_READ_LIMIT = 1 << 20  # longest log line read in one piece
PRELOAD_WAIT_S = 120  # a Start while the preload still imports waits for it: the rest of its import is less

# pgid -> the live Supervisor in THIS process that owns it (a leftover is a group nobody owns).
_OWNED: weakref.WeakValueDictionary[int, Supervisor] = weakref.WeakValueDictionary()


class ServerState(str, enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    CRASHED = "crashed"


@dataclass(frozen=True)
class ServerStatus:
    state: ServerState
    phase: Phase | None = None
    phase_since: float | None = None  # time.time() when the phase began
    started_at: float | None = None  # time.time() of the spawn
    eta_s: float | None = None  # seconds the next start should take in all (estimate.total_s)
    estimate: StartupEstimate | None = None  # phase by phase, from this configuration's earlier starts
    timeline: StartupTimeline | None = None  # once ready: where this start's seconds went
    # Sleep mode: the gate's state (sleep_gate.SleepGate.snapshot(): "state" awake|pausing|paused|resuming,
    # in_flight, last_pause, last_resume, …) plus "gpu_freed_bytes" of the last pause; None without it.
    sleep: Mapping[str, Any] | None = None
    url: str | None = None  # OpenAI base URL, e.g. http://127.0.0.1:8000/v1 (set once spawned)
    pid: int | None = None
    exit_code: int | None = None
    diagnosis: Diagnosis | None = None
    config: LaunchConfig | None = None
    gpu_memory_released: bool | None = None  # after a stop: GPU memory back to where it was (None: no GPU)


StatusCallback = Callable[[ServerStatus], None]
LineCallback = Callable[[str], None]


# --- helpers ------------------------------------------------------------------------------------

def _gpu_used_bytes() -> int | None:
    """Memory in use on all NVIDIA GPUs, from NVML; None where there are none (blocking: a thread)."""
    from llmdesk.core.machine.gpus import scan_gpus

    scan = scan_gpus()
    return sum(g.memory_used_bytes for g in scan.gpus) if scan.gpus else None


async def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _kill_group_and_confirm(pgid: int, timeout_s: float = 5.0) -> bool:
    """SIGKILL whatever is left of the group until nothing is; True when the group is gone."""
    deadline = time.monotonic() + timeout_s
    while group_members(pgid):
        signal_group(pgid, signal.SIGKILL)
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# Settings that do not change how long vLLM takes to start: a start on another port teaches the same ETA.
_NOT_IN_START_KEY = ("api_key", "host", "port", "served_model_name", "allowed_origins", "idle_pause_s",
                     "wake_on_request")


def _config_key(config: LaunchConfig, preloaded: bool = False) -> str:
    """Starts of one configuration share a history; a start a preloaded vLLM took has its own (no import)."""
    data = dataclasses.asdict(config)
    for name in _NOT_IN_START_KEY:
        data.pop(name, None)
    # fields added later, at their defaults: keep the keys of start times recorded before them
    if data.get("revision") is None:
        data.pop("revision", None)
    if not data.get("extra_env"):
        data.pop("extra_env", None)
    if preloaded:
        data["preloaded"] = True
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None




def start_history(config: LaunchConfig, preloaded: bool = False) -> StartupHistory:
    """The successful starts of this configuration on this computer (empty: never started here)."""
    data = _load_json(paths.state_dir() / ETA_FILE_NAME) or {}
    return StartupHistory.from_json(data.get(_config_key(config, preloaded)))


def last_start_seconds(config: LaunchConfig) -> float | None:
    """How long the last successful start of this configuration took (None: never started here)."""
    return start_history(config).last_total_s


def start_estimate(config: LaunchConfig, env: Mapping[str, str] | None = None,
                   preloaded: bool = False) -> StartupEstimate | None:
    """The phases the next start of ``config`` should go through, with seconds, knowing whether the
    compile cache its last start used is still on disk (a look at one folder: call it off the loop);
    ``preloaded``: a preloaded vLLM will take it (its own history: no import)."""
    history = start_history(config, preloaded)
    env = child_environment(config, os.environ if env is None else env)
    cache_dir = history.last.compile_cache_dir if history.last else None
    return history.estimate(cache_on_disk(cache_dir, env), compiles=config.compiles)


def _remember_start(config: LaunchConfig, timeline: StartupTimeline) -> None:
    path = paths.state_dir() / ETA_FILE_NAME
    data = _load_json(path) or {}
    key = _config_key(config, timeline.preloaded)
    history = StartupHistory.from_json(data.pop(key, None))
    history.add(timeline)
    data[key] = history.to_json()  # re-inserted last: the newest entries are kept
    if len(data) > 50:
        data = dict(list(data.items())[-50:])
    try:
        paths.write_private_json(path, data)
    except OSError:
        log.warning("could not record the start time in %s", path, exc_info=True)


def _die_with_parent() -> None:
    """In the child, before vLLM starts (Linux): SIGTERM when llmdesk dies, even by SIGKILL, so that
    no vLLM keeps serving and holding the GPU with nobody to stop it. vLLM stops its engine on SIGTERM."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # no prctl: the next start finds it as a leftover


PR_SET_PDEATHSIG = 1


def _port_in_use_diagnosis(config: LaunchConfig) -> Diagnosis:
    evidence = (f"llmdesk: {config.host}:{config.port}: address already in use "
                "(checked before starting vLLM)")
    found = diagnose([evidence], None, config)
    if found is not None:
        return found
    return Diagnosis("port_in_use", Problem("The port is already in use",
                                            f"Port {config.port} is taken by another program.",
                                            "Choose another port."), {}, evidence)


def _fallback_diagnosis(exit_code: int | None, when: str) -> Diagnosis:
    code = "" if exit_code is None else f" (exit status {exit_code})"
    return Diagnosis("unknown", Problem(
        "vLLM stopped unexpectedly", f"The vLLM server ended {when}{code} although nobody asked it to stop.",
        "Look at the log for the first error, then start it again."), {}, "")


# --- the supervisor -----------------------------------------------------------------------------

class Supervisor:
    """One vLLM server at a time, started with interpreter ``python``."""

    def __init__(self, python: str, *, ring_lines: int = 5000, health_interval_s: float = 0.5,
                 grace_s: float = 15, term_grace_s: float = 5, gpu_used_bytes: Callable[[], int | None] | None = None):
        """gpu_used_bytes() -> memory in use on the GPUs now (None without GPUs); default: NVML."""
        self.python = python
        self.gpu_used_bytes = gpu_used_bytes or _gpu_used_bytes
        self._gpu_baseline: int | None = None
        self.health_interval_s = health_interval_s
        self.grace_s = grace_s
        self.term_grace_s = term_grace_s
        self.lines: collections.deque[str] = collections.deque(maxlen=ring_lines)
        self.status = ServerStatus(ServerState.STOPPED)
        self.log_path: Path | None = None
        self._status_subs: list[StatusCallback] = []
        self._line_subs: list[LineCallback] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._pgid: int | None = None
        self._config: LaunchConfig | None = None
        self._log_file = None
        self._reader: asyncio.Task | None = None
        self._exit_task: asyncio.Task | None = None
        self._watch_task: asyncio.Task | None = None
        self._stop_requested = False
        self._stop_lock = asyncio.Lock()
        self._adopted: ServerRecord | None = None  # a server an earlier llmdesk left running, taken over
        self._record: ServerRecord | None = None  # this server's record: its port's claim, then its process
        self._timeline = TimelineRecorder(time.time())  # where the seconds of the start under way go
        self._gate: GateThread | None = None  # with sleep mode: the proxy in front of vLLM, on its own thread
        self._vllm_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._used_before_pause: asyncio.Future[int | None] | None = None  # NVML's figure as a pause began
        self._measuring: asyncio.Task | None = None  # the GPU memory a pause freed, read after it
        # keep_preloaded: after each server (and on preload()), a vLLM imported ahead for the next start
        self.keep_preloaded = False
        self._preload: preloading.Preload | None = None
        self._preloading: asyncio.Task | None = None

    # observable state
    def subscribe(self, on_status: StatusCallback | None = None,
                  on_line: LineCallback | None = None) -> Callable[[], None]:
        """Call ``on_status(ServerStatus)`` on every change, ``on_line(str)`` on every log line.
        Returns a function that unsubscribes both."""
        if on_status is not None:
            self._status_subs.append(on_status)
        if on_line is not None:
            self._line_subs.append(on_line)

        def unsubscribe() -> None:
            if on_status is not None and on_status in self._status_subs:
                self._status_subs.remove(on_status)
            if on_line is not None and on_line in self._line_subs:
                self._line_subs.remove(on_line)
        return unsubscribe

    def _set(self, **changes: Any) -> None:
        self.status = dataclasses.replace(self.status, **changes)
        for callback in list(self._status_subs):
            try:
                callback(self.status)
            except Exception:
                log.exception("status subscriber failed")

    async def adopt(self, leftover: ServerRecord) -> ServerStatus:
        """Take over a server an earlier llmdesk left running: it shows as READY (no log: its output
        went to the dead llmdesk), and stop() ends its process group."""
        if self.running:
            raise ProblemError(Problem("A server is already running",
                                       "This llmdesk already runs a vLLM server.", "Stop it first."))
        if leftover.vllm_port:
            # Its sleep gate lived in the llmdesk that died: nothing answers on its address any more, and
            # vLLM's own port has the development routes open. Only stopping it makes sense.
            raise ProblemError(Problem(
                "This server cannot be taken over", f"It was started with Pause allowed, and the llmdesk that "
                f"kept its address ({leftover.port}) is gone, so no client can reach it safely.",
                "Stop it, and start the model again."))
        leftover = await asyncio.to_thread(records.adopt, leftover)  # ours now: not a leftover any more
        self._adopted = leftover
        _OWNED[leftover.pgid] = self
        url = base_url(leftover.host or "127.0.0.1", leftover.port) + "/v1" if leftover.port else None
        self._set(state=ServerState.READY, phase=None, url=url, pid=leftover.pid, started_at=leftover.started_at,
                  exit_code=None, diagnosis=None, config=None)
        return self.status

    @property
    def running(self) -> bool:
        return self.status.state in (ServerState.STARTING, ServerState.READY, ServerState.STOPPING)

    # start
    async def start(self, config: LaunchConfig, *, timeout_s: float = 900) -> ServerStatus:
        """Start vLLM for ``config`` and return when it is READY or has failed (CRASHED, with a
        diagnosis). A port that is taken is reported without spawning anything."""
        if self.running:
            raise ProblemError(Problem("A server is already running",
                                       "This llmdesk already runs a vLLM server.", "Stop it first."))
        problems = config.validate()
        if problems:
            raise ProblemError(problems[0])
        self._stop_requested = False
        self._foreign_warned = False
        self._config = config
        self.lines.clear()
        self._gpu_baseline = await asyncio.to_thread(self.gpu_used_bytes)
        now = time.time()
        # Off the loop: a name is looked up once here, and a lookup may take seconds.
        problem = await asyncio.to_thread(listen_problem, config.host, config.port)
        if problem is not None:
            self._set_fresh(ServerStatus(ServerState.CRASHED, config=config, diagnosis=Diagnosis(
                "cannot_listen", problem, {}, f"llmdesk: {config.host}:{config.port}: {problem.explanation}")))
            return self.status
        # Claimed before the port check: of two starts on one port at the same moment, one is refused here.
        try:
            self._record = await asyncio.to_thread(records.claim, config.host, config.port, config.model,
                                                   config.api_model_name)
        except PortClaimed as exc:
            self._set_fresh(ServerStatus(ServerState.CRASHED, config=config, diagnosis=Diagnosis(
                "port_in_use", exc.problem, {}, f"llmdesk: {config.host}:{config.port}: {exc.problem.explanation}")))
            return self.status
        try:
            return await self._start_claimed(config, timeout_s, now)
        finally:
            if self._proc is None and self._adopted is None:  # nothing runs: the claim goes
                await asyncio.to_thread(self._release_record)

    async def _start_claimed(self, config: LaunchConfig, timeout_s: float, now: float) -> ServerStatus:
        if not await asyncio.to_thread(port_is_free, config.host, config.port):
            self._set_fresh(ServerStatus(ServerState.CRASHED, config=config,
                                         diagnosis=await asyncio.to_thread(_port_in_use_diagnosis, config)))
            return self.status

        from llmdesk.core.base.secrets import load_hf_token

        self._loop = asyncio.get_running_loop()
        token = None
        if config.sleep_mode:
            problem = await self._start_gate(config)
            if problem is not None:
                self._set_fresh(ServerStatus(ServerState.CRASHED, config=config, diagnosis=Diagnosis(
                    "cannot_listen", problem, {}, f"llmdesk: {config.host}:{config.port}: {problem.explanation}")))
                return self.status
            token = self._gate.gate.settings.control_token
        argv = build_vllm_command(config, self.python, vllm_port=self._vllm_port)
        env = child_environment(config, os.environ, hf_token=load_hf_token().token)
        log_dir = paths.log_dir()
        self.log_path = log_dir / f"server-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{os.getpid()}.log"
        self._log_file = paths.open_private(self.log_path, "a")  # closed in _finish
        preloaded = self._preload is not None and self._preload.fits(argv[0], env)
        estimate = await asyncio.to_thread(start_estimate, config, None, preloaded)
        self._timeline = TimelineRecorder(now)
        self._set_fresh(ServerStatus(ServerState.STARTING, phase=Phase.STARTING, phase_since=now, started_at=now,
                                     eta_s=estimate.total_s if estimate else None, estimate=estimate, config=config,
                                     sleep=self._gate.snapshot() if self._gate else None))
        try:
            proc = await self._take_preload(argv, env)
            if proc is None:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True, limit=_READ_LIMIT,
                    preexec_fn=_die_with_parent)
        except OSError as exc:
            self._close_log()
            await self._stop_gate()
            diagnosis = diagnose([f"{argv[0]}: {exc.strerror}", "vllm: command not found"], 127, config)
            self._set(state=ServerState.CRASHED, phase=None, diagnosis=diagnosis)
            return self.status
        self._proc = proc
        self._pgid = proc.pid  # leader of its own session and group
        _OWNED[self._pgid] = self
        try:
            self._record = await asyncio.to_thread(records.spawned, self._record, proc.pid, now, self.log_path,
                                                   vllm_port=self._vllm_port, control_token=token)
        except (OSError, ProblemError):
            log.warning("could not record the server's process", exc_info=True)
        except asyncio.CancelledError:
            await self._teardown(force=True)
            self._set(state=ServerState.STOPPED, phase=None)
            raise
        url = base_url(config.host, config.port) + "/v1"
        self._set(pid=proc.pid, url=url)
        self._reader = asyncio.create_task(self._read_output(proc))
        self._exit_task = asyncio.create_task(proc.wait())
        ready_task = asyncio.create_task(self._wait_ready(config))
        try:
            done, _ = await asyncio.wait({ready_task, self._exit_task}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            ready_task.cancel()
            await self._teardown(force=True)
            self._set(state=ServerState.STOPPED, phase=None)
            raise
        if ready_task not in done:
            ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready_task
        if self._stop_requested:  # stop() was called while starting: it sets the final state
            await self._stop_lock.acquire()
            self._stop_lock.release()
            return self.status
        if self._exit_task in done:
            await self._crashed("before it was ready")
            return self.status
        if ready_task in done and ready_task.result():
            timeline = self._timeline.finish(time.time())
            await asyncio.to_thread(_remember_start, config, timeline)
            self._set(state=ServerState.READY, phase=Phase.READY, phase_since=time.time(), timeline=timeline)
            self._watch_task = asyncio.create_task(self._watch())
            return self.status
        # timed out
        await self._teardown(force=False)
        diagnosis = diagnose(list(self.lines), self.status.exit_code, config) or Diagnosis(
            "start_timeout", Problem("vLLM did not become ready in time",
                                     f"The server was not ready after {timeout_s:g} s and was stopped.",
                                     "Look at the log; a first start may need longer to download or compile."),
            {}, "")
        self._set(state=ServerState.CRASHED, diagnosis=diagnosis)
        return self.status

    # a vLLM imported ahead of the start
    async def preload(self, config: LaunchConfig | None = None) -> None:
        """Have a vLLM imported and waiting for the next start like ``config`` (default: the last one), unless
        one that fits is there already. Quietly does nothing without a runtime or a config."""
        config = config or self._config
        if not self.python or config is None or self.running:
            return
        from llmdesk.core.base.secrets import load_hf_token

        env = child_environment(config, os.environ, hf_token=load_hf_token().token)
        if self._preload is not None and self._preload.fits(self.python, env):
            return
        await preloading.discard(self._preload)
        self._preload = None
        try:
            self._preload = await preloading.spawn(self.python, env, preexec_fn=_die_with_parent, limit=_READ_LIMIT)
        except OSError:
            log.info("could not preload vLLM from %s", self.python, exc_info=True)

    async def close_preload(self) -> None:
        """The app quits: no waiting vLLM is left behind."""
        if self._preloading is not None:
            self._preloading.cancel()
        preload, self._preload = self._preload, None
        await preloading.discard(preload)

    async def _take_preload(self, argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process | None:
        """The preloaded process, running this start's command; None: start afresh."""
        preload, self._preload = self._preload, None
        if preload is None:
            return None
        try:
            taken = argv[1:3] == ["-m", VLLM_ENTRY_MODULE] and preload.fits(argv[0], env) and await preloading.take(
                preload, [VLLM_ENTRY_MODULE, *argv[3:]], env, wait_s=PRELOAD_WAIT_S)
        except BaseException:  # cancelled while it still imported: it is nobody's now, so it goes
            await preloading.discard(preload)
            raise
        if taken:
            self._timeline.preloaded = True
            for line in preload.lines:  # what vLLM said while it was imported, first in this start's log
                self._on_line(line)
            return preload.proc
        await preloading.discard(preload)
        return None

    def _preload_next(self) -> None:
        """After a server: import vLLM again for the next start, in the background."""
        if self.keep_preloaded and self._config is not None:
            self._preloading = asyncio.ensure_future(self.preload(self._config))

    def _set_fresh(self, status: ServerStatus) -> None:
        self.status = status
        self._set()

    def _release_record(self) -> None:
        if self._record is not None:
            records.release(self._record)
            self._record = None

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line longer than _READ_LIMIT: take it in pieces
                raw = await proc.stdout.read(_READ_LIMIT)
            if not raw:
                break
            self._on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if self._log_file is not None:
            self._log_file.flush()

    def _on_line(self, line: str) -> None:
        self.lines.append(line)
        if self._log_file is not None:
            try:
                self._log_file.write(line + "\n")
                self._log_file.flush()
            except (OSError, ValueError):
                pass
        if self.status.state is ServerState.STARTING:
            now = time.time()
            if self._timeline.line(line, now):  # the recorder follows the phases: one reading of each line
                self._set(phase=self._timeline.phase, phase_since=now, timeline=self._timeline.finish(now))
        for callback in list(self._line_subs):
            try:
                callback(line)
            except Exception:
                log.exception("line subscriber failed")

    def _headers(self, config: LaunchConfig) -> dict[str, str]:
        return bearer_headers(config.api_key)

    async def _wait_ready(self, config: LaunchConfig) -> bool:
        import httpx

        base = base_url(config.host, config.port)
        async with httpx.AsyncClient(timeout=5.0, headers=self._headers(config), trust_env=False) as client:
            while True:
                try:
                    health = await client.get(base + "/health")
                    if health.status_code == 200:
                        models = await client.get(base + "/v1/models")
                        if models.status_code == 200:
                            ids = [m.get("id") for m in models.json().get("data", [])]
                            if config.api_model_name in ids and await self._listening_is_ours(
                                    self._vllm_port or config.port):
                                return True
                except (httpx.HTTPError, ValueError, AttributeError):
                    pass
                # Polled faster than while serving: each poll is a refused connection or a tiny GET, and
                # the wait between the server's first 200 and "ready" is llmdesk's own start-up overhead.
                await asyncio.sleep(min(self.health_interval_s, READY_POLL_S))

    async def _listening_is_ours(self, port: int) -> bool:
        """The answer came from a process of our group (False: another server took the port first; ours
        will fail to listen and exit, which start() reports). Where this cannot be seen, True."""
        if self._pgid is None:
            return False
        ours = await asyncio.to_thread(group_listens_on, self._pgid, port)
        if ours is False and not self._foreign_warned:
            self._foreign_warned = True
            log.warning("another server answers on port %s; waiting for ours", port)
        return ours is not False

    # sleep mode: Pause frees the GPU without stopping vLLM (server/sleep_gate.py)
    async def _start_gate(self, config: LaunchConfig) -> Problem | None:
        """Start the sleep gate on the address clients use, in front of vLLM on a loopback port of its own."""
        from llmdesk.core.server.sleep_gate import GateSettings, GateThread

        self._vllm_port = await asyncio.to_thread(free_loopback_port)
        settings = GateSettings(level=config.sleep_level, idle_pause_s=config.idle_pause_s,
                                wake_on_request=config.wake_on_request, api_key=config.api_key)
        gate = GateThread(config.host, config.port, base_url("127.0.0.1", self._vllm_port), settings,
                          on_change=self._gate_changed_elsewhere)
        try:
            await asyncio.to_thread(gate.start)
        except ProblemError as exc:
            return exc.problem
        self._gate = gate
        return None

    async def _stop_gate(self) -> None:
        gate, self._gate = self._gate, None
        self._vllm_port = None
        if gate is not None:
            await asyncio.to_thread(gate.stop)

    def _gate_changed_elsewhere(self, state: Any, info: dict[str, Any]) -> None:
        """On the gate's thread: hop to the supervisor's loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._gate_changed, str(getattr(state, "value", state)), dict(info))

    def _gate_changed(self, state: str, info: dict[str, Any]) -> None:
        if self._gate is None:
            return
        previous = (self.status.sleep or {}).get("gpu_freed_bytes")
        info["gpu_freed_bytes"] = previous
        # NVML is read in a thread: a call can take a while and this runs on the GUI's loop
        if state == "pausing":
            self._used_before_pause = asyncio.ensure_future(asyncio.to_thread(self._gpu_used_now))
        elif state == "paused" and self._used_before_pause is not None:
            self._measuring = asyncio.ensure_future(self._measure_freed(self._used_before_pause))
        self._set(sleep=info)

    def _gpu_used_now(self) -> int | None:
        try:
            return self.gpu_used_bytes()
        except Exception:  # NVML may be gone; a figure is not worth a failure
            return None

    async def _measure_freed(self, before_reading: asyncio.Future[int | None]) -> None:
        before = await before_reading
        after = await asyncio.to_thread(self._gpu_used_now)
        if before is not None and after is not None and self.status.sleep is not None:
            self._set(sleep={**self.status.sleep, "gpu_freed_bytes": max(0, before - after)})

    def _require_gate(self):
        if self._gate is None or self.status.state is not ServerState.READY:
            raise ProblemError(Problem(
                "This server cannot pause", "Pause needs a running server started with Allow Pause (sleep mode).",
                "Stop it and start it again with Allow Pause on (llmdesk serve --sleep-mode)."))
        return self._gate

    async def pause(self) -> dict[str, Any]:
        """Put vLLM to sleep once the requests in flight are done; what happened (sleep_gate.SleepGate.pause)."""
        return await self._require_gate().pause("user")

    async def resume(self) -> dict[str, Any]:
        return await self._require_gate().resume("user")

    # after ready
    async def watch(self) -> None:
        """Return when the server leaves READY (stopped, or CRASHED with a diagnosis).

        ``start`` begins watching by itself once the server is ready; this awaits that watch."""
        if self._watch_task is None:
            if self.status.state is ServerState.READY:
                self._watch_task = asyncio.create_task(self._watch())
            else:
                return
        await asyncio.shield(self._watch_task)

    async def _watch(self) -> None:
        import httpx

        config = self._config
        assert config is not None and self._exit_task is not None
        base = base_url(config.host, config.port)
        failures = 0
        async with httpx.AsyncClient(timeout=max(2.0, self.health_interval_s * 4), trust_env=False) as client:
            while self.status.state is ServerState.READY:
                done, _ = await asyncio.wait({self._exit_task}, timeout=self.health_interval_s)
                if self._stop_requested or self.status.state is not ServerState.READY:
                    return
                if done:
                    await self._crashed("while serving")
                    return
                try:
                    ok = (await client.get(base + "/health")).status_code == 200
                except httpx.HTTPError:
                    ok = False
                failures = 0 if ok else failures + 1
                if failures >= HEALTH_FAILURES_FOR_CRASH and not self._stop_requested:
                    # The engine is dead or the server hangs: give vLLM a moment to log why, then end it.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self._exit_task), timeout=2.0)
                    if self._stop_requested:
                        return
                    await self._crashed("while serving (it stopped answering /health)")
                    return

    async def _crashed(self, when: str) -> None:
        """The server ended (or must end) without being asked: tear down the group, diagnose."""
        async with self._stop_lock:
            if self._stop_requested:
                return
            await self._teardown(force=False)
        exit_code = self.status.exit_code
        diagnosis = diagnose(list(self.lines), exit_code, self._config) or _fallback_diagnosis(exit_code, when)
        self._set(state=ServerState.CRASHED, diagnosis=diagnosis)

    # stop
    async def stop(self) -> ServerStatus:
        """SIGINT to the server, ``grace_s``, SIGTERM to the group, ``term_grace_s``, SIGKILL to the
        group; then confirm that no process of the group is left. State STOPPED."""
        if self._adopted is not None:
            leftover, self._adopted = self._adopted, None
            self._set(state=ServerState.STOPPING)
            await stop_leftover(leftover, grace_s=self.grace_s, term_grace_s=self.term_grace_s)
            _OWNED.pop(leftover.pgid, None)
            self._set(state=ServerState.STOPPED, phase=None, diagnosis=None)
            return self.status
        if self._proc is None:
            if self.status.state is not ServerState.CRASHED:
                self._set(state=ServerState.STOPPED, phase=None)
            return self.status
        async with self._stop_lock:
            if self._proc is None:
                return self.status
            self._stop_requested = True
            self._set(state=ServerState.STOPPING)
            await self._teardown(force=False)
            released = await self._gpu_memory_released()
            self._set(state=ServerState.STOPPED, phase=None, diagnosis=None, gpu_memory_released=released)
        self._preload_next()
        if self._watch_task is not None and self._watch_task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
        return self.status

    async def _gpu_memory_released(self, timeout_s: float = 15, slack: int = 512 * 1024**2) -> bool | None:
        """After the group is gone the driver frees its memory within moments: wait until the GPUs use
        no more than they did before the start (plus some slack), or say it did not happen."""
        if self._gpu_baseline is None:
            return None
        deadline = time.monotonic() + timeout_s
        while True:
            used = await asyncio.to_thread(self.gpu_used_bytes)
            if used is None or used <= self._gpu_baseline + slack:
                return True
            if time.monotonic() > deadline:
                log.warning("GPU memory still in use after the stop: %s bytes (before the start: %s)",
                            used, self._gpu_baseline)
                return False
            await asyncio.sleep(0.5)

    async def _teardown(self, *, force: bool) -> None:
        """End the process group (politely unless ``force``), reap, confirm, clean up."""
        proc, pgid = self._proc, self._pgid
        if proc is None or pgid is None:
            return
        # The gate first: from now on the address refuses connections, as it would without a gate, instead
        # of answering 502 for a vLLM that is going (requests in flight end with vLLM either way).
        await self._stop_gate()
        exit_task = self._exit_task or asyncio.ensure_future(proc.wait())
        if not exit_task.done():
            steps = [] if force else [(lambda: signal_pid(proc.pid, signal.SIGINT), self.grace_s),
                                      (lambda: signal_group(pgid, signal.SIGTERM), self.term_grace_s)]
            for send, wait_s in steps:
                send()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exit_task), timeout=wait_s)
                if exit_task.done():
                    break
            if not exit_task.done():
                log.warning("vLLM (pid %s) did not stop; killing its process group", proc.pid)
                signal_group(pgid, signal.SIGKILL)
        code = await exit_task
        # The leader is gone; its engine core or workers may not be (they survive a killed parent).
        if group_members(pgid):
            with contextlib.suppress(asyncio.TimeoutError):
                if not force:
                    await _wait_group_gone(pgid, min(self.term_grace_s, 2.0))
        gone = await _kill_group_and_confirm(pgid)
        if not gone:
            log.error("processes of group %s are still alive: %s", pgid, group_members(pgid))
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, timeout=2.0)
        self._close_log()
        await asyncio.to_thread(self._release_record)
        _OWNED.pop(pgid, None)
        self._proc = None
        self._set(exit_code=code)

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None


# --- leftovers from a crashed or killed llmdesk -------------------------------------------------

def find_leftovers() -> list[ServerRecord]:
    """Servers an llmdesk started that still run although that llmdesk is gone (or is this process, with
    no Supervisor here owning them); stale records are removed on the way."""
    me = os.getpid()
    return [r for r in records.live_records() if not r.claiming and r.pgid is not None
            and (not r.owner_alive() or (r.owner_pid == me and r.pgid not in _OWNED))]


def find_leftover() -> ServerRecord | None:
    """The oldest leftover, if any (the window offers to stop or take over one at a time)."""
    found = find_leftovers()
    return found[0] if found else None


async def stop_leftover(leftover: ServerRecord, *, grace_s: float = 15, term_grace_s: float = 5) -> bool:
    """The same escalation as ``Supervisor.stop`` on a group this process did not start.
    True when no process of the group is left (its record is then removed)."""
    pgid = leftover.pgid
    assert pgid is not None
    if not leftover.server_alive():  # its process id names someone else now: never signal that
        await asyncio.to_thread(records.release, leftover)
        return True
    steps = [(lambda: signal_pid(pgid, signal.SIGINT), grace_s),
             (lambda: signal_group(pgid, signal.SIGTERM), term_grace_s)]
    for send, wait_s in steps:
        if not group_members(pgid):
            break
        if send is steps[0][0] and not pid_alive(pgid):
            continue  # the leader is gone: its orphans get SIGTERM
        send()
        if await _wait_group_gone(pgid, wait_s):
            break
    gone = await _kill_group_and_confirm(pgid)
    if gone:
        await asyncio.to_thread(records.release, leftover)
    return gone


__all__ = ["ServerState", "ServerStatus", "Supervisor", "find_leftover", "find_leftovers", "stop_leftover"]
