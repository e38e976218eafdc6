"""Downloads of the files vLLM needs, with progress, cancel, resume and integrity checks.

Why not `hf_hub_download`: huggingface_hub (1.33 and 2.4) writes each attempt to a process-unique
`blobs/<etag>.<8 hex>.incomplete` file opened with "wb" and deletes it in a `finally:` on any
failure or cancel, so a cancelled, dropped or restarted download starts again from byte 0 (it only
resumes with Range inside one call, on transient network errors). It does not check sha256 either.

So a `Download` writes the bytes itself, into the same Hugging Face cache layout that vLLM and
`huggingface_hub.scan_cache_dir` read:

    <cache>/models--org--name/blobs/<etag>               finished file (etag = sha256 for LFS files)
    <cache>/models--org--name/blobs/<etag>.incomplete    partial file, kept on cancel/drop/crash
    <cache>/models--org--name/snapshots/<commit>/<path>  relative symlink to the blob
    <cache>/models--org--name/refs/<revision>            the commit a branch or tag pointed at

A partial file is continued with `Range: bytes=<size on disk>-`; finished files cost no request.
Every LFS file is hashed while it is written (a resumed file's first part is hashed first) and
compared with the Hub's sha256; a mismatch removes the blob and fails the job.

Everything here is plain Python: the work runs in a thread, `await Download.run()` wraps it for
asyncio callers (callbacks then arrive on the event loop's thread), and the token is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import hashlib
import logging
import math
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput, Problem, ProblemError, problem_from_exception
from llmdesk.core.base.units import GIB
from llmdesk.core.hub.access import check_repo_id, hub_errors, hub_token
from llmdesk.core.hub.cache_names import (check_commit, check_etag, check_file_name, check_revision, check_size,
                                          is_inside)
from llmdesk.core.hub.library import remove_stale_downloads

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ selection

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx", ".gguf",
                   ".onnx_data", ".tflite", ".ot", ".npz", ".mlmodel", ".nemo")
# Written by trainers beside the weights; vLLM never loads them (its own filter drops the same names).
NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth",
               "trainer_state.pt"}
SUPPORT_NAMES = {"merges.txt", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja"}
SUPPORT_GLOBS = ("*.json", "tokenizer.model*", "vocab.*", "*.tiktoken", "*.jinja", "*.py")
# Weight indexes of formats other than the chosen one are dropped with those weights.
INDEX_SUFFIX = ".index.json"


def vllm_files(file_names: Sequence[str], include: Sequence[str] | None = None, with_gguf: bool = False) -> list[str]:
    """The files of a repo that vLLM needs, sorted.

    Top-level files only (subfolders such as original/ or onnx/ hold other formats):
    - weights: *.safetensors (without Mistral's consolidated*.safetensors when HF-named shards exist)
      and their index; only without safetensors, *.bin (then *.pt/*.pth) and their index; never
      .msgpack/.h5/.onnx/.ckpt; GGUF (*.gguf) only with `with_gguf`, and then instead of the others;
    - support files: every *.json (config, generation config, tokenizer files, chat_template.json,
      hf_quant_config.json, quantize_config.json, (pre)processor configs, params.json, tekken.json),
      tokenizer.model*, vocab.*, merges.txt, *.tiktoken, spiece.model, *.jinja, and *.py
      (remote code for --trust-remote-code), but not the index of weights that are not taken.
    `include` globs (fnmatch on repo paths) add files; when they match weight files those weights
    replace the default choice (e.g. include=["*Q4_K_M.gguf"] takes that GGUF file and its configs).
    """
    names = sorted(set(file_names))
    top = [n for n in names if "/" not in n]
    included = [n for n in names if include and any(fnmatch.fnmatch(n, g) for g in include)]
    if any(_is_weight(n) for n in included):
        weights = [n for n in included if _is_weight(n)]
    else:
        weights = _default_weights(top, with_gguf)
    chosen_indexes = {_index_of(w) for w in weights}
    support = [n for n in top if not _is_weight(n) and _is_support(n)
               and (not n.endswith(INDEX_SUFFIX) or n in chosen_indexes or _index_matches_any(n, top, weights))]
    return sorted(set(weights) | set(support) | set(included))


def _default_weights(top: list[str], with_gguf: bool) -> list[str]:
    if with_gguf:
        ggufs = [n for n in top if n.endswith(".gguf")]
        if ggufs:
            return ggufs
    safetensors = [n for n in top if n.endswith(".safetensors")]
    hf_named = [n for n in safetensors if not n.startswith("consolidated")]
    if hf_named:
        return hf_named
    if safetensors:
        return safetensors
    for suffixes in ((".bin",), (".pt", ".pth")):
        found = [n for n in top if n.endswith(suffixes) and n not in NOT_WEIGHTS]
        if found:
            return found
    return []


def _is_weight(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(WEIGHT_SUFFIXES) and base not in NOT_WEIGHTS


def _is_support(name: str) -> bool:
    return name in SUPPORT_NAMES or any(fnmatch.fnmatch(name, g) for g in SUPPORT_GLOBS)


def _index_of(weight: str) -> str:
    """model-00001-of-00004.safetensors -> model.safetensors.index.json (the Hub's naming)."""
    stem, _, suffix = weight.rpartition(".")
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
    return f"{stem}.{suffix}{INDEX_SUFFIX}"


def _index_matches_any(index: str, top: list[str], weights: list[str]) -> bool:
    """An index named otherwise (e.g. "model.safetensors.index.fp8.json" is not one) still belongs to
    the chosen weights when its weight suffix is theirs."""
    suffix = index[: -len(INDEX_SUFFIX)].rpartition(".")[2]
    return any(w.endswith("." + suffix) for w in weights) and not index.startswith("consolidated")


# ------------------------------------------------------------------------------------------ planning

@dataclass(frozen=True)
class PlannedFile:
    name: str  # path in the repo
    size: int
    sha256: str | None  # LFS files: the Hub's sha256 (also their etag and blob name); None for git files
    state: str = "missing"  # "complete" | "partial" | "missing"
    done_bytes: int = 0  # size if it is already in the cache, else the bytes of a partial file

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DownloadPlan:
    repo_id: str
    revision: str  # what was asked for ("main" by default)
    commit: str  # what it resolved to: every file comes from this commit
    files: tuple[PlannedFile, ...]
    cache_dir: Path
    gated: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def complete_bytes(self) -> int:
        """Files already finished in the cache."""
        return sum(f.size for f in self.files if f.state == "complete")

    @property
    def partial_bytes(self) -> int:
        """Bytes of partial files that a download continues from."""
        return sum(f.done_bytes for f in self.files if f.state == "partial")

    @property
    def remaining_bytes(self) -> int:
        return self.total_bytes - self.complete_bytes - self.partial_bytes

    @property
    def repo_dir(self) -> Path:
        return self.cache_dir / repo_folder(self.repo_id)

    @property
    def snapshot_dir(self) -> Path:
        return self.repo_dir / "snapshots" / self.commit

    def as_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit,
                "cache_dir": str(self.cache_dir), "snapshot_dir": str(self.snapshot_dir), "gated": self.gated,
                "total_bytes": self.total_bytes, "complete_bytes": self.complete_bytes,
                "partial_bytes": self.partial_bytes, "remaining_bytes": self.remaining_bytes,
                "files": [f.as_dict() for f in self.files]}


def repo_folder(repo_id: str) -> str:
    """models--org--name, as huggingface_hub names a model repo's cache folder."""
    return "models--" + repo_id.replace("/", "--")


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """None or "" means the Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub), read now."""
    return Path(cache_dir).expanduser() if cache_dir else paths.hf_cache_dir()


def plan_download(repo_id: str, revision: str | None = None, include: Sequence[str] | None = None,
                  token: str | None = None, cache_dir: str | os.PathLike | None = None, *,
                  with_gguf: bool = False) -> DownloadPlan:
    """Which files to get, their sizes and sha256, and what the cache already holds. Blocking
    (one model_info call); raises ProblemError for a missing/gated repo, no network, or a repo
    with nothing vLLM can load. The disk-space check is `check_disk_space(plan)`."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    check_revision(revision)
    cache = resolve_cache_dir(cache_dir)
    with _hub_errors(repo_id):
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True, token=hub_token(token))
    siblings = {s.rfilename: s for s in info.siblings or []}
    names = vllm_files(list(siblings), include=include, with_gguf=with_gguf)
    _check_selection(repo_id, list(siblings), names, include, with_gguf)
    commit = check_commit(info.sha, repo_id)
    repo_dir = cache / repo_folder(repo_id)
    files = []
    for name in names:
        check_file_name(name, repo_id)
        sibling = siblings[name]
        lfs = sibling.lfs
        sha256 = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        if sha256 is not None:
            check_etag(sha256, name, repo_id)  # an LFS file's sha256 names its blob
        size = check_size(sibling.size if sibling.size is not None else (getattr(lfs, "size", 0) if lfs else 0) or 0,
                          name, repo_id)
        files.append(_cache_state(repo_dir, commit, PlannedFile(name, size, sha256)))
    return DownloadPlan(repo_id, revision or "main", commit, tuple(files), cache, gated=bool(info.gated))


def _check_selection(repo_id: str, all_names: list[str], names: list[str], include, with_gguf: bool) -> None:
    if include:
        if not names or not set(names) & {n for n in all_names if any(fnmatch.fnmatch(n, g) for g in include)}:
            raise BadInput(Problem(f"Nothing in {repo_id} matches {', '.join(include)}",
                                   "The --include patterns are matched against the paths in the repository.",
                                   "Check the patterns against the repository's file list."))
        return
    weights = [n for n in names if _is_weight(n)]
    ggufs = sorted(n for n in all_names if n.endswith(".gguf"))
    if not weights:
        if ggufs and not with_gguf:
            raise BadInput(Problem(
                f"{repo_id} only has GGUF files",
                "vLLM 0.26 loads GGUF only through the separate vllm-gguf-plugin package, so llmdesk does "
                "not download GGUF unless asked.",
                "Ask for it with --gguf (and --include to pick one file), or choose a safetensors variant."))
        raise BadInput(Problem(f"{repo_id} has no weights vLLM can load",
                               "It has no .safetensors (or PyTorch .bin) files at the top of the repository.",
                               "Choose another variant of the model."))
    if with_gguf and len([w for w in weights if w.endswith(".gguf")]) > 1:
        raise BadInput(Problem(
            f"{repo_id} has {len(weights)} GGUF files", "Each is a different quantization (or a part of one); "
            "vLLM loads a single GGUF file: " + ", ".join(weights[:8]) + ("…" if len(weights) > 8 else "") + ".",
            "Pick one with --include, e.g. --include '*Q4_K_M.gguf'."))


def _cache_state(repo_dir: Path, commit: str, planned: PlannedFile) -> PlannedFile:
    pointer = repo_dir / "snapshots" / commit / planned.name
    if pointer.exists() or (planned.sha256 and (repo_dir / "blobs" / planned.sha256).is_file()):
        return replace(planned, done_bytes=planned.size, state="complete")
    if planned.sha256:
        partial = repo_dir / "blobs" / f"{planned.sha256}.incomplete"
        try:
            have = partial.stat().st_size
        except OSError:
            have = 0
        if 0 < have <= planned.size:
            return replace(planned, done_bytes=have, state="partial")
    return planned


def check_disk_space(plan: DownloadPlan, *, margin_bytes: int = 0) -> int:
    """Raise a ProblemError if the cache's disk cannot hold what is left to download; returns the free bytes."""
    where = paths.nearest_existing(plan.cache_dir)
    free = shutil.disk_usage(where).free
    needed = plan.remaining_bytes + margin_bytes
    if needed > free:
        raise ProblemError(Problem(
            f"Not enough disk space: needs {needed / GIB:.1f} GiB, {free / GIB:.1f} GiB free on {where}",
            f"{plan.repo_id} needs {plan.total_bytes / GIB:.1f} GiB in all"
            + (f", of which {(plan.complete_bytes + plan.partial_bytes) / GIB:.1f} GiB are already here"
               if plan.complete_bytes + plan.partial_bytes else "") + ".",
            "Free some space (delete models you no longer use), or choose a smaller variant or another "
            "models folder in Settings."))
    return free


# ------------------------------------------------------------------------------------------ progress

QUEUED, PLANNING, DOWNLOADING = "queued", "planning", "downloading"
DONE, CANCELLED, FAILED = "done", "cancelled", "failed"
FINISHED = (DONE, CANCELLED, FAILED)


@dataclass(frozen=True)
class DownloadProgress:
    """One observation of a job; what every callback receives."""

    repo_id: str
    state: str  # queued | planning | downloading | done | cancelled | failed
    bytes_done: int = 0  # in the cache, including what was there before this run
    bytes_total: int = 0
    current_file: str | None = None
    file_bytes_done: int = 0
    file_bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    speed_bps: float = 0.0  # network bytes per second, smoothed over a few seconds
    eta_s: float | None = None  # None while unknown
    problem: Problem | None = None  # set when state is failed

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else (1.0 if self.state == DONE else 0.0)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["problem"] = self.problem.as_dict() if self.problem else None
        return d


class _SpeedMeter:
    """Exponentially smoothed bytes per second (time constant `tau` seconds)."""

    def __init__(self, tau: float = 3.0, clock: Callable[[], float] = time.monotonic):
        self.tau, self.clock = tau, clock
        self.speed = 0.0
        self._t = clock()
        self._pending = 0
        self._seeded = False

    def add(self, n: int) -> None:
        self._pending += n
        now = self.clock()
        dt = now - self._t
        if dt < 0.2:
            return
        rate = self._pending / dt
        if not self._seeded:
            self.speed, self._seeded = rate, True
        else:
            self.speed += (1 - math.exp(-dt / self.tau)) * (rate - self.speed)
        self._t, self._pending = now, 0

    def restart(self) -> None:
        self._t, self._pending = self.clock(), 0


class _Digest:
    """sha256 that can start over (when a server ignores Range and sends the whole file)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._h = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class _Cancelled(Exception):
    pass


class _Transient(Exception):
    """A network failure worth another try (connection cut, timeout, 5xx)."""


class _DiskError(Exception):
    """Writing `path` failed (an OSError of a write has no file name of its own)."""

    def __init__(self, error: OSError, path: Path):
        super().__init__(str(error))
        self.error, self.path = error, path


# ------------------------------------------------------------------------------------------ one job

Listener = Callable[[DownloadProgress], None]
READ_TIMEOUT_S = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or 10)
PROGRESS_INTERVAL_S = 0.1


@dataclass(eq=False)
class Download:
    """Getting one repo's vLLM files into the cache. Reusable: `run()` again after a cancel or a
    failure continues where it stopped (so does a new Download for the same repo)."""

    repo_id: str
    revision: str | None = None
    include: Sequence[str] | None = None
    with_gguf: bool = False
    token: str | None = field(default=None, repr=False)  # never logged, never shown
    cache_dir: str | os.PathLike | None = None
    retries: int = 3  # per file, after a dropped connection or a 5xx; each continues with Range
    on_progress: Listener | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.plan: DownloadPlan | None = None
        self.problem: Problem | None = None
        self._progress = DownloadProgress(self.repo_id, QUEUED)
        self._listeners: list[Listener] = [self.on_progress] if self.on_progress else []
        self._deliver: Callable[[DownloadProgress], None] = self._notify
        self._cancel = threading.Event()
        self._running = threading.Lock()
        self._last_emit = 0.0
        self._speed = _SpeedMeter()
        self._socket: socket.socket | None = None
        self._token: str | None = None
        self._idle = threading.Event()  # set while no run is in progress
        self._idle.set()
        self.error: ProblemError | None = None  # the failure as raised (BadInput for bad input)

    # -- observing
    @property
    def state(self) -> str:
        return self._progress.state

    @property
    def progress(self) -> DownloadProgress:
        return self._progress

    @property
    def snapshot_path(self) -> Path | None:
        """The folder to hand to vLLM once the job is done."""
        return self.plan.snapshot_dir if self.plan else None

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, progress: DownloadProgress) -> None:
        for listener in list(self._listeners):
            try:
                listener(progress)
            except Exception:  # a broken observer must not break the download
                log.exception("download progress listener failed")

    # -- controlling
    def cancel(self) -> None:
        """Stop soon (at the next received chunk, well under a second while data flows); finished
        files and the finished part of the current file stay for the next run."""
        self._cancel.set()
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.state == QUEUED:
            self._set(CANCELLED, force=True)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def reset(self) -> None:
        """Back to queued, so that a finished, cancelled or failed job can be run again."""
        if self._running.locked():
            raise RuntimeError("the download is running")
        self._cancel.clear()
        self.problem = self.error = None
        self._progress = replace(self._progress, state=QUEUED, problem=None, speed_bps=0.0, eta_s=None)
        self._deliver(self._progress)

    async def run(self) -> str:
        """Run in a worker thread; listeners are called on this event loop's thread. Returns the
        final state (done | cancelled | failed; see .problem)."""
        loop = asyncio.get_running_loop()
        self._deliver = lambda p: loop.call_soon_threadsafe(self._notify, p)
        try:
            return await asyncio.to_thread(self.run_blocking)
        finally:
            self._deliver = self._notify

    def start(self) -> threading.Thread:
        """Run in a new daemon thread (listeners are called on it); see wait()."""
        self._idle.clear()  # so that wait() right after start() waits
        thread = threading.Thread(target=self._run_quietly, name=f"download {self.repo_id}", daemon=True)
        thread.start()
        return thread

    def _run_quietly(self) -> None:
        try:
            self.run_blocking()
        except RuntimeError:  # already running elsewhere
            log.warning("download of %s is already running", self.repo_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no run is in progress; False on timeout. Safe to interrupt with Ctrl-C (unlike
        Thread.join, after which Python 3.11 may report a running thread as finished)."""
        return self._idle.wait(timeout)

    def run_blocking(self) -> str:
        """Do the whole job in the calling thread. Never raises for expected failures."""
        if not self._running.acquire(blocking=False):
            raise RuntimeError("the download is already running")
        self._idle.clear()
        try:
            if self.state == CANCELLED and self._cancel.is_set():  # cancelled before it ever started
                return CANCELLED
            self.problem = self.error = None
            self._progress = replace(self._progress, problem=None)
            self._work()
            self._set(DONE, force=True)
        except _Cancelled:
            self._set(CANCELLED, force=True)
        except ProblemError as exc:
            self._fail(exc.problem, exc)
        except Exception as exc:  # a bug or an unexpected failure: keep the traceback in the log
            log.exception("download of %s failed", self.repo_id)
            problem = problem_from_exception(exc, f"downloading {self.repo_id}")
            self._fail(problem, ProblemError(problem))
        finally:
            self._cancel.clear()  # a later run() continues where this one stopped
            self._running.release()
            self._idle.set()
        return self.state

    # -- the work
    def _work(self) -> None:
        self._set(PLANNING, force=True)
        self._token = hub_token(self.token)  # here, in the worker: a keyring read can block
        plan = plan_download(self.repo_id, self.revision, self.include, self._token, self.cache_dir,
                             with_gguf=self.with_gguf)
        self.plan = plan
        self._check_cancel()
        check_disk_space(plan)
        # small files first: config and tokenizer are there early (the library shows the model)
        order = sorted(plan.files, key=lambda f: (_is_weight(f.name), f.name))
        done = plan.complete_bytes + plan.partial_bytes
        self._progress = replace(self._progress, bytes_done=done, bytes_total=plan.total_bytes,
                                 files_total=len(plan.files),
                                 files_done=sum(1 for f in plan.files if f.state == "complete"))
        self._prepare_repo_dir(plan)
        self._speed.restart()
        self._set(DOWNLOADING, force=True)
        for planned in order:
            if planned.state == "complete":
                self._link_if_needed(plan, planned)
                continue
            self._check_cancel()
            self._get_file(plan, planned)
            self._progress = replace(self._progress, files_done=self._progress.files_done + 1)
            self._emit(force=True)
        # An earlier download of another commit may have left partial files and a half snapshot.
        remove_stale_downloads(plan.cache_dir, plan.repo_id, plan.commit)

    def _prepare_repo_dir(self, plan: DownloadPlan) -> None:
        try:
            for sub in ("blobs", f"snapshots/{plan.commit}"):
                (plan.repo_dir / sub).mkdir(parents=True, exist_ok=True)
            if plan.revision != plan.commit:
                ref = plan.repo_dir / "refs" / check_revision(plan.revision)
                ref.parent.mkdir(parents=True, exist_ok=True)
                if not ref.is_file() or ref.read_text().strip() != plan.commit:
                    ref.write_text(plan.commit)
        except OSError as exc:
            raise ProblemError(_disk_problem(exc, plan.cache_dir)) from exc

    def _link_if_needed(self, plan: DownloadPlan, planned: PlannedFile) -> None:
        pointer = plan.snapshot_dir / planned.name
        if not pointer.exists() and planned.sha256:
            _link(plan, plan.repo_dir / "blobs" / planned.sha256, pointer)

    def _get_file(self, plan: DownloadPlan, planned: PlannedFile) -> None:
        attempt = 0
        base_done = self._progress.bytes_done - _done_before(planned)  # bytes_done without this file
        while True:
            self._check_cancel()
            try:
                self._get_file_once(plan, planned, base_done)
                return
            except _Transient as exc:
                self._check_cancel()  # cancel() cut the connection
                attempt += 1
                if attempt > self.retries:
                    cause = exc.__cause__ or exc
                    raise ProblemError(Problem(
                        "The download was interrupted",
                        f"{planned.name}: {_first_line(cause)} ({self.retries} retries).",
                        "Check the network connection and start the download again: it continues where it stopped.")
                    ) from exc
                log.warning("download of %s/%s interrupted (%s); retry %d of %d", self.repo_id, planned.name,
                            _first_line(exc.__cause__ or exc), attempt, self.retries)
                self._sleep(min(0.5 * 2 ** (attempt - 1), 5.0))

    def _get_file_once(self, plan: DownloadPlan, planned: PlannedFile, base_done: int) -> None:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.repo_id, planned.name, revision=plan.commit)
        with _hub_errors(self.repo_id), _transient_network_errors():
            meta = get_hf_file_metadata(url, token=self._token)
        etag = (meta.etag or planned.sha256 or "").strip('"')
        if not etag:
            raise ProblemError(Problem("The Hub sent no ETag", f"{planned.name} has no ETag, so it cannot be "
                                       "stored in the cache.", "Check HF_ENDPOINT or the proxy."))
        check_etag(etag, planned.name, self.repo_id)
        size = meta.size if meta.size is not None else planned.size
        if planned.size and size != planned.size:
            raise _size_problem(planned.name, f"its file list says {planned.size:,} bytes, the file itself {size:,}")
        expected_sha = planned.sha256 or (etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None)
        blobs = plan.repo_dir / "blobs"
        blob, partial = blobs / etag, blobs / f"{etag}.incomplete"
        pointer = plan.snapshot_dir / planned.name
        self._progress = replace(self._progress, current_file=planned.name, file_bytes_total=size,
                                 file_bytes_done=0)
        if blob.is_file() and blob.stat().st_size == size:
            _link(plan, blob, pointer)
            self._progress = replace(self._progress, bytes_done=base_done + size, file_bytes_done=size)
            return
        lock = _lock_for(plan, etag)
        with lock:
            have = _size_or_zero(partial)
            if have > size:  # not ours to continue: start over
                _unlink(partial)
                have = 0
            digest = _Digest() if expected_sha else None
            if have and digest is not None:
                self._hash_existing(partial, have, digest)
            self._progress = replace(self._progress, bytes_done=base_done + have, file_bytes_done=have)
            self._emit(force=True)
            if have < size or size == 0:
                have = self._stream(url, planned.name, partial, have, size, digest, base_done, meta.location)
            if have != size:
                raise _Transient(f"{planned.name}: got {have} of {size} bytes") from None
            if digest is not None and digest.hexdigest() != expected_sha:
                _unlink(partial)
                self._progress = replace(self._progress, bytes_done=base_done, file_bytes_done=0)
                raise ProblemError(Problem(
                    f"{planned.name} was corrupted in transit; it will be downloaded again",
                    f"Its SHA-256 is {digest.hexdigest()[:16]}…, but the Hub publishes {expected_sha[:16]}… "
                    "for it. "
                    "The damaged copy has been removed.",
                    "Start the download again; if it keeps happening, check the network (or proxy) between you "
                    "and the Hub."))
            try:
                os.chmod(partial, 0o644)
                os.replace(partial, blob)
            except OSError as exc:
                raise ProblemError(_disk_problem(exc, plan.cache_dir)) from exc
        _link(plan, blob, pointer)

    def _hash_existing(self, partial: Path, have: int, digest) -> None:
        """Feed the part already on disk into the running sha256 (so the finished file is checked whole)."""
        try:
            with partial.open("rb") as f:
                left = have
                while left:
                    self._check_cancel()
                    block = f.read(min(8 * 1024 * 1024, left))
                    if not block:
                        break
                    digest.update(block)
                    left -= len(block)
        except OSError as exc:
            raise ProblemError(_disk_problem(exc, partial.parent)) from exc

    def _stream(self, url: str, name: str, partial: Path, have: int, size: int, digest, base_done: int,
                location: str | None) -> int:
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        headers = build_hf_headers(token=self._token)
        target = url
        if location and location != url:
            target = location  # a CDN url (signed): no token goes there
            if _origin(location) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if have:
            headers["Range"] = f"bytes={have}-"
        with _hub_errors(self.repo_id), _transient_network_errors():
            with get_session().stream("GET", target, headers=headers, timeout=READ_TIMEOUT_S) as response, \
                    self._interruptible(response):
                if response.status_code == 416:  # the server has nothing after `have`
                    _unlink(partial)
                    raise _Transient("the server refused the range; starting the file again")
                hf_raise_for_status(response)
                if have and response.status_code == 200:  # the range was ignored: the whole file comes
                    have = 0
                    if digest is not None:
                        digest.reset()
                    mode = "wb"
                elif have and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                    raise _Transient(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
                else:
                    mode = "ab"
                try:
                    out = partial.open(mode)
                except OSError as exc:
                    raise _DiskError(exc, partial) from exc
                with out:
                    for chunk in response.iter_bytes():
                        if self._cancel.is_set():
                            raise _Cancelled
                        if not chunk:
                            continue
                        if have + len(chunk) > size:  # never more than announced, whatever the server sends
                            out.close()
                            _unlink(partial)
                            raise _size_problem(name, f"{size:,} bytes were announced, more were sent")
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            raise _DiskError(exc, partial) from exc
                        if digest is not None:
                            digest.update(chunk)
                        have += len(chunk)
                        self._speed.add(len(chunk))
                        self._progress = replace(self._progress, bytes_done=base_done + have, file_bytes_done=have)
                        self._emit()
        return have

    @contextlib.contextmanager
    def _interruptible(self, response):
        """While a body streams, cancel() shuts its socket down, so a stalled read ends at once
        instead of after the read timeout."""
        stream = (getattr(response, "extensions", None) or {}).get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        self._socket = sock
        try:
            if self._cancel.is_set():
                raise _Cancelled
            yield
        finally:
            self._socket = None

    # -- state
    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise _Cancelled

    def _sleep(self, seconds: float) -> None:
        if self._cancel.wait(seconds):
            raise _Cancelled

    def _fail(self, problem: Problem, error: ProblemError) -> None:
        self.problem, self.error = problem, error
        self._progress = replace(self._progress, problem=problem)
        self._set(FAILED, force=True)

    def _set(self, state: str, force: bool = False) -> None:
        speed = 0.0 if state in FINISHED else self._progress.speed_bps
        self._progress = replace(self._progress, state=state, speed_bps=speed,
                                 eta_s=0.0 if state == DONE else (None if state in FINISHED else self._progress.eta_s))
        self._emit(force)

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_emit < PROGRESS_INTERVAL_S:
            return
        self._last_emit = now
        p = self._progress
        if p.state == DOWNLOADING:
            speed = self._speed.speed
            left = max(0, p.bytes_total - p.bytes_done)
            p = replace(p, speed_bps=speed, eta_s=(left / speed) if speed > 0 else (0.0 if not left else None))
            self._progress = p
        self._deliver(p)


def _done_before(planned: PlannedFile) -> int:
    """What the plan counted for this file in bytes_done (a partial file's bytes)."""
    return planned.done_bytes if planned.state == "partial" else 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove %s", path)


def _link(plan: DownloadPlan, blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<name> -> ../../blobs/<etag>, relative, as huggingface_hub makes it
    (where symlinks are not allowed, the blob is moved there instead, as huggingface_hub does)."""
    # The names were checked when planned; this is the last guard before unlink and symlink.
    if not is_inside(pointer, plan.snapshot_dir) or not is_inside(blob, plan.repo_dir / "blobs"):
        raise ProblemError(Problem("A file would be written outside the model cache",
                                   f"{pointer} -> {blob}.", "Nothing was written; report this as a bug."))
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        target = os.path.relpath(blob, pointer.parent)
        try:
            os.symlink(target, pointer)
        except OSError:
            shutil.copy2(blob, pointer)
    except OSError as exc:
        raise ProblemError(_disk_problem(exc, pointer.parent)) from exc


class _lock_for:
    """The same per-blob lock file huggingface_hub takes (.locks/models--org--name/<etag>.lock), without
    waiting: another program downloading the same file is reported instead of waited for."""

    def __init__(self, plan: DownloadPlan, etag: str):
        self.path = plan.cache_dir / ".locks" / repo_folder(plan.repo_id) / f"{etag}.lock"

    def __enter__(self):
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.path), timeout=0)
            self._lock.acquire()
        except Timeout as exc:
            raise ProblemError(Problem("Another program is downloading this file",
                                       f"{self.path.name} is locked by another download of the same model.",
                                       "Wait for it to finish, or stop it, then try again.")) from exc
        except OSError as exc:
            raise ProblemError(_disk_problem(exc, self.path.parent)) from exc
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def _size_problem(name: str, detail: str) -> ProblemError:
    from huggingface_hub import constants

    return ProblemError(Problem(
        f"The Hub sent the wrong size for {name}", f"{constants.ENDPOINT}: {detail}. The partial file was "
        "removed and nothing more is written.",
        "Try again later; if HF_ENDPOINT points at a mirror, check that it is one you trust, or unset it."))


def _disk_problem(exc: OSError, where: Path) -> Problem:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        title = "The disk is full" if exc.errno == errno.ENOSPC else "Your disk quota is used up"
        return Problem(title, f"Writing {where} failed: {exc.strerror}. The part already downloaded is kept.",
                       "Free some space (or choose another models folder in Settings) and start the download "
                       "again: it continues where it stopped.")
    return problem_from_exception(exc, "writing the download")


class _hub_errors:
    """huggingface_hub exceptions -> Problems through hub.hub_errors (gated, missing, offline, no
    network), letting this module's own control-flow exceptions through; a disk error is told as one."""

    def __init__(self, repo_id: str):
        self.repo_id = repo_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, (ProblemError, _Cancelled, _Transient, _DiskError)):
            if isinstance(exc, _DiskError):
                raise ProblemError(_disk_problem(exc.error, exc.path)) from exc.error
            return False
        hub_errors(self.repo_id).__exit__(exc_type, exc, tb)
        return False


class _transient_network_errors:
    """Connection cut, timeout, 408/429/5xx -> _Transient (retried); the rest passes through."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, (ProblemError, _Cancelled, _Transient, _DiskError)):
            return False
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        if isinstance(exc, OfflineModeIsEnabled):
            return False
        if isinstance(exc, HfHubHTTPError):
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (408, 429, 500, 502, 503, 504):
                raise _Transient(_first_line(exc)) from exc
            return False
        if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2") and any(
                word in type(exc).__name__ for word in ("Read", "Write", "Timeout", "Protocol", "Network",
                                                         "Connect", "Closed")):
            raise _Transient(_first_line(exc)) from exc
        return False


# ------------------------------------------------------------------------------------------ the queue

QueueListener = Callable[[str, Download], None]


class DownloadQueue:
    """Jobs run one after another on the running event loop. Listeners get (event, job) with event
    "added" | "removed" | "updated" (any progress or state change of a job), on the loop's thread."""

    def __init__(self) -> None:
        self._jobs: list[Download] = []
        self._listeners: list[QueueListener] = []
        self._unsubscribe: dict[int, Callable[[], None]] = {}
        self._runner: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self.current: Download | None = None

    @property
    def jobs(self) -> list[Download]:
        return list(self._jobs)

    def subscribe(self, listener: QueueListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def add(self, job: Download) -> Download:
        """Queue a job (a cancelled or failed one is queued again, at the end, and resumes)."""
        if job in self._jobs and job.state not in FINISHED:
            return job
        if job.state in FINISHED:
            job.reset()
        if job not in self._jobs:
            self._jobs.append(job)
            self._unsubscribe[id(job)] = job.add_listener(lambda _p, j=job: self._tell("updated", j))
            self._tell("added", job)
        else:
            self._jobs.remove(job)
            self._jobs.append(job)
        self._ensure_runner()
        return job

    def find(self, repo_id: str) -> Download | None:
        return next((j for j in self._jobs if j.repo_id == repo_id), None)

    def cancel(self, job: Download) -> None:
        job.cancel()

    def remove(self, job: Download) -> None:
        """Cancel it if it is queued or running, and drop it from the list (files on disk stay)."""
        if job.state not in FINISHED:
            job.cancel()
        if job in self._jobs:
            self._jobs.remove(job)
            self._unsubscribe.pop(id(job), lambda: None)()
            self._tell("removed", job)

    def cancel_all(self) -> None:
        for job in self._jobs:
            if job.state not in FINISHED:
                job.cancel()

    async def join(self) -> None:
        """Wait until nothing is queued or running."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    def _ensure_runner(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            job = next((j for j in self._jobs if j.state == QUEUED), None)
            if job is None:
                return
            self.current = job
            try:
                await job.run()
            except RuntimeError:  # run elsewhere at the same time: leave it to its runner
                log.warning("download of %s is already running", job.repo_id)
                await asyncio.sleep(0.1)
            finally:
                self.current = None

    def _tell(self, event: str, job: Download) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, job)
            except Exception:
                log.exception("download queue listener failed")


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_bytes(n: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
