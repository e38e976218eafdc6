"""From vLLM's log lines and exit status to the start-up phase, and to a failure with a fix.

The patterns match stable fragments of vLLM 0.26.0 messages (``../shared/reference/vllm.md`` §4.3
and §4.7), checked against real logs in ``../shared/samples`` and ``tests/data/vllm-runs``. The
root cause of an engine failure is in the ``(EngineCore pid=…)`` lines; the API server only adds
``Engine core initialization failed. See root cause above.``, so specific causes are looked for
first and "the engine died" is the fallback. vLLM can exit 0 after its engine died (issue
#48966): the lines decide, not only the exit code.

``phase_of`` and ``diagnose`` are pure. ``port_is_free`` and ``next_free_port`` bind sockets;
``diagnose`` calls ``next_free_port`` only for a port-in-use failure with a config given.
"""

from __future__ import annotations

import errno
import math
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.server.launch import DEFAULT_GPU_MEMORY_UTILIZATION, LaunchConfig
from llmdesk.core.server.log_lines import message_of


class Phase(str, Enum):
    STARTING = "starting"  # from the spawn: Python and vLLM import in the API-server process
    STARTING_ENGINE = "starting the engine"  # the engine-core process: vLLM imported again, CUDA set up
    LOADING_WEIGHTS = "loading weights"
    PROFILING = "profiling memory"
    COMPILING = "compiling"
    CAPTURING_GRAPHS = "capturing CUDA graphs"
    WARMING_UP = "warming up kernels"
    STARTING_API = "starting the API"
    READY = "ready"


# A line marks the START of the phase it maps to. Real 0.26 order (V2 model runner): loading,
# then torch.compile (run by the profiling pass, before its "Initial profiling/warmup run took"
# line), then the KV-cache sizing, then CUDA graphs, then the kernel warm-up, then the API server.
# With --enforce-eager there are no compile or graph lines. "Model loading took …" marks no phase:
# what follows is either compiling or (eager) profiling, and the next line says which. The warm-up
# follows the memory summary line and is silent until "Kernel JIT monitor activated"; it builds
# Triton kernels (tests/data/vllm-runs/h100-llama8b.log failed there): 12-18 s in a model's first
# two starts on an H200, 1 s later (docs/benchmarks.md, "Launch to ready").
_PHASE_PATTERNS: tuple[tuple[Phase, re.Pattern[str]], ...] = tuple((phase, re.compile(pattern)) for phase, pattern in (
    (Phase.READY, r"Application startup complete"),
    (Phase.STARTING_API, r"Starting vLLM server on|Supported tasks:|Available routes are|Started server process"
                         r"|Waiting for application startup|init engine \(profile, create kv cache"),
    (Phase.WARMING_UP, r"Desired GPU memory utilization is \(.*Actual usage is"),
    (Phase.CAPTURING_GRAPHS, r"Capturing CUDA graphs|Graph capturing finished"),
    (Phase.COMPILING, r"for vLLM's torch\.compile|Dynamo bytecode transform|Compiling a graph for"
                      r"|Directly load the compiled graph|Start compiling"),
    (Phase.PROFILING, r"torch\.compile t(?:ook|akes) .* in total|Initial profiling/warmup run|Available KV cache memory"
                      r"|GPU KV cache size|Maximum concurrency for|Auto-fit max_model_len|Memory profiling takes"),
    (Phase.LOADING_WEIGHTS, r"Starting to load model|Loading model from scratch|Loading safetensors checkpoint shards"
                            r"|Loading weights took|Loading pt checkpoint shards"),
    # The API server prints its arguments once it has imported vLLM, then spawns the engine core, which
    # imports it again before "Initializing a V1 LLM engine" (about 14 s of a warm 8B start on an H100).
    (Phase.STARTING_ENGINE, r"non-default args:|vLLM server version|Initializing a V1 LLM engine"),
))


def phase_of(line: str) -> Phase | None:
    """The start-up phase a log line marks, or None for every other line."""
    if "Application shutdown" in line or "[shutdown]" in line:
        return None
    for phase, pattern in _PHASE_PATTERNS:
        if pattern.search(line):
            return phase
    return None


def phase_sequence(lines: Iterable[str]) -> list[Phase]:
    """The phases the lines pass through, in order, without repeats of the current phase."""
    seen: list[Phase] = []
    for line in lines:
        phase = phase_of(line)
        if phase is not None and (not seen or seen[-1] != phase):
            seen.append(phase)
    return seen


@dataclass(frozen=True)
class Diagnosis:
    cause: str  # stable key, see CAUSES
    problem: Problem  # title, plain explanation, fix sentence
    changes: dict[str, Any] = field(default_factory=dict)  # the one-click fix as LaunchConfig changes
    evidence: str = ""  # the log line it was recognised from


CAUSES = ("cuda_oom_loading", "kv_cache_too_small", "no_kv_memory", "free_memory_below_utilization",
          "quantization_unsupported", "quantization_mismatch", "bf16_unsupported", "gated_model", "model_not_found",
          "trust_remote_code_needed", "unsupported_architecture", "port_in_use", "vllm_missing", "driver_too_old",
          "unknown_flag", "max_model_len_above_model", "flashinfer_missing", "package_missing", "engine_died", "unknown")

# vLLM prints the same error in the EngineCore's ERROR line and again in its traceback; the first
# match is the evidence. Order matters: a gated repo's error is chained above "Invalid repository ID".
_RE = {key: re.compile(pattern) for key, pattern in {
    "vllm_missing": r"No module named '?vllm[.']|No module named vllm\b|vllm: command not found",
    "unknown_flag": r"unrecognized arguments: (?P<args>.+)$|error: argument (?P<flag>\S+): invalid",
    "port_in_use": r"\[Errno 98\] Address already in use|\[Errno 48\] Address already in use"
                   r"|address already in use",
    "driver_too_old": r"NVIDIA driver on your system is too old|CUDA driver version is insufficient"
                      r"|cudaErrorInsufficientDriver",
    "gated_model": r"GatedRepoError|Cannot access gated repo|Access to model \S+ is restricted",
    "max_model_len_above_model": r"User-specified max_model_len \((?P<want>\d+)\) is greater than the derived "
                                 r"max_model_len \((?:\w+=)?(?P<limit>\d+)",
    "unsupported_architecture": r"Model architectures? .* (?:are|is) not supported|not supported in-tree anymore",
    "quantization_unsupported": r"The quantization method (?P<method>\S+) is not supported for the current GPU"
                                r"(?:\. Minimum capability: (?P<need>\d+)\. Current capability: (?P<have>\d+))?"
                                r"|Unknown quantization method: (?P<unknown>[^.\s]+)",
    "quantization_mismatch": r"Quantization method specified in the model config \((?P<ckpt>[^)]*)\) does not "
                             r"match the quantization method specified in the `?quantization`? argument",
    "bf16_unsupported": r"Bfloat16 is only supported on GPUs with compute capability of at least 8\.0",
    "trust_remote_code_needed": r"contains custom code which must be executed|pass the argument `trust_remote_code=True`",
    "model_not_found": r"Invalid repository ID or local directory specified|RepositoryNotFoundError"
                       r"|Repository Not Found for url",
    "flashinfer_missing": r"No module named 'flashinfer",
    # a format's package vLLM does not install (bitsandbytes.py: _check_bitsandbytes_version, 0.26.0)
    "package_missing": r"Please install (?P<package>[A-Za-z0-9_.-]+)>=(?P<minimum>[\d.]+) via `pip install",
    "free_memory_below_utilization": r"Free memory on device \S*\s*\((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) on "
                                     r"startup is less than desired GPU memory utilization",
    "kv_cache_too_small": r"estimated maximum model length is (?P<fits>-?\d+)"
                          r"|max seq len \((?P<len>\d+)\) is larger than the maximum number of tokens that can be "
                          r"stored in KV cache \((?P<tokens>\d+)\)"
                          r"|To serve at least one request with the model's max seq len",
    "no_kv_memory": r"No available memory for the cache blocks|Cannot auto-fit max_model_len: not enough GPU memory",
    "cuda_oom_loading": r"Failed to load model - not enough GPU memory|CUDA out of memory|torch\.OutOfMemoryError"
                        r"|CUDA error: out of memory",
    "engine_died": r"EngineDeadError|Engine core initialization failed|died unexpectedly"
                   r"|EngineCore encountered a fatal error|Engine core proc \S+ died",
}.items()}
_ORDER = ("vllm_missing", "unknown_flag", "port_in_use", "driver_too_old", "gated_model", "max_model_len_above_model",
          "unsupported_architecture", "quantization_unsupported", "quantization_mismatch", "bf16_unsupported",
          "trust_remote_code_needed", "model_not_found", "flashinfer_missing", "package_missing",
          "free_memory_below_utilization",
          "kv_cache_too_small", "no_kv_memory", "cuda_oom_loading", "engine_died")
_LAST_ERROR = re.compile(r"\b\w*(?:Error|Exception)\b: ")
_WARNING_LINE = re.compile(r"\bWARNING \d\d-\d\d ")
_INTERRUPTED = re.compile(r"^(?:\([^)]*\)\s*)?KeyboardInterrupt\b|<Signals\.SIG(?:INT|TERM): \d+>"
                          r"|\[shutdown\] API server: shutdown triggered")
_REQUESTED_STOP = (-2, -15, 130, 143)  # SIGINT/SIGTERM: a stop someone asked for (vllm.md §4.4)


def diagnose(lines: Sequence[str], exit_code: int | None, config: LaunchConfig | None = None) -> Diagnosis | None:
    """Why vLLM failed, with a fix; None when nothing in the lines or the exit status says it failed.

    ``exit_code`` is the process's return code (negative: killed by that signal), or None while it
    runs. ``config`` (what was launched) makes the fixes concrete, e.g. a free port.
    """
    for key in _ORDER:
        for line in lines:
            if _WARNING_LINE.search(line):
                continue  # e.g. "Found ulimit … `OSError: [Errno 24] Too many open files`" is harmless
            match = _RE[key].search(line)
            if match:
                if key == "engine_died" and _interrupted(lines):
                    return None
                return _DIAGNOSERS[key](match, line.rstrip("\r\n"), config, lines)
    if _interrupted(lines):
        return None
    if exit_code is None or exit_code == 0 or exit_code in _REQUESTED_STOP:
        return None
    evidence = next((line.rstrip() for line in reversed(lines)
                     if _LAST_ERROR.search(line) and not _WARNING_LINE.search(line)), "")
    if not evidence:
        evidence = next((line.rstrip() for line in reversed(lines) if line.strip()), "")
    if exit_code == 127:
        return _vllm_missing(None, evidence, config, lines)
    if exit_code == 2 and not evidence:
        return Diagnosis("unknown_flag", Problem(
            "vLLM rejected its arguments", "vLLM exited with status 2, which is how it refuses an argument.",
            "Check the extra arguments against the installed vLLM version."), {}, evidence)
    if exit_code < 0:
        signal_name = {-9: "SIGKILL", -6: "SIGABRT", -11: "SIGSEGV"}.get(exit_code, f"signal {-exit_code}")
        why = (" The system may have run out of RAM (the kernel's out-of-memory killer sends SIGKILL)."
               if exit_code == -9 else "")
        return Diagnosis("unknown", Problem("vLLM was killed", f"The vLLM process was ended by {signal_name}.{why}",
                                            "Look at the log, then start it again."), {}, evidence)
    detail = f" The last error was: {message_of(evidence)}" if evidence else ""
    return Diagnosis("unknown", Problem("vLLM stopped with an error",
                                        f"vLLM exited with status {exit_code}.{detail}",
                                        "The full log is in the log view; include it in a bug report."), {}, evidence)


def _interrupted(lines: Sequence[str]) -> bool:
    """Whether the start was cut short by a signal (a stop someone asked for), not by an error.

    A SIGINT during start-up ends the engine with KeyboardInterrupt (or a child "died with
    <Signals.SIGINT: 2>"), and the API server then says "Engine core initialization failed"."""
    return any(_INTERRUPTED.search(line) for line in lines)


def _resolve(host: str) -> tuple:
    """(family, type, proto, address) to bind for host, resolved once (a name is looked up here, not
    once per port); OSError when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except UnicodeError as exc:
        raise OSError(str(exc)) from None
    if not infos:
        raise OSError("no address")
    return infos[0][:3] + (infos[0][4],)


def _bind_error(resolved: tuple, port: int) -> OSError | None:
    family, kind, proto, address = resolved
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address[0], port, *address[2:]))
        except OSError as exc:
            return exc
    return None


LISTEN_FIX = "Use 127.0.0.1 (this computer only), 0.0.0.0 (every network), or an address of this computer."


def _unresolvable(host: str, exc: OSError) -> Problem:
    return Problem(f"Cannot listen on {host}", f"The name {host!r} does not resolve ({exc}).", LISTEN_FIX)


def listen_problem(host: str, port: int) -> Problem | None:
    """Why vLLM could never listen on host (a name that does not resolve, an address this computer
    does not have, a port below 1024), or None; a port merely in use is port_is_free's answer."""
    fix = LISTEN_FIX
    try:
        resolved = _resolve(host)
    except OSError as exc:
        return _unresolvable(host, exc)
    error = _bind_error(resolved, port)
    if error is None or error.errno == errno.EADDRINUSE:
        return None
    if error.errno == errno.EADDRNOTAVAIL:
        return Problem(f"Cannot listen on {host}", f"This computer has no address {resolved[3][0]}.", fix)
    if error.errno == errno.EACCES:
        return Problem(f"Port {port} needs administrator rights", "Ports below 1024 are reserved on this "
                       "system.", "Choose a port of 1024 or more, e.g. 8000.")
    return Problem(f"Cannot listen on {host}:{port}", f"{error.strerror or error}.", fix)


def port_is_free(host: str, port: int) -> bool:
    """Whether vLLM could bind ``host:port`` now (with SO_REUSEADDR, as vLLM binds)."""
    try:
        return _bind_error(_resolve(host), port) is None
    except OSError:
        return False


def next_free_port(host: str, start: int, tries: int = 200) -> int:
    """The first port >= ``start`` (within ``tries``) that can be bound on ``host``, the host resolved
    once; ProblemError when none is."""
    try:
        resolved = _resolve(host)
    except OSError as exc:
        raise ProblemError(_unresolvable(host, exc)) from None
    for port in range(max(1, start), min(65536, max(1, start) + tries)):
        if _bind_error(resolved, port) is None:
            return port
    raise ProblemError(Problem("No free port", f"Ports {start} to {min(65535, start + tries - 1)} are taken on "
                               f"{host}.", "Stop other servers, or choose another port."))


def free_loopback_port() -> int:
    """A port the system has free on 127.0.0.1 now (vLLM's own, behind the sleep gate)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- one function per cause ---------------------------------------------------------------------

def _vllm_missing(match, line, config, lines) -> Diagnosis:
    return Diagnosis("vllm_missing", Problem(
        "vLLM is not installed for this Python",
        "The chosen Python runtime cannot import vLLM, so the server could not start.",
        "Choose another runtime, or let llmdesk install vLLM 0.26 into its own environment."), {}, line)


def _unknown_flag(match, line, config, lines) -> Diagnosis:
    text = match.group("args") or match.group("flag") or ""
    flags = [word for word in text.split() if word.startswith("-")]
    shown = " ".join(flags) or text.strip()
    changes: dict[str, Any] = {}
    if config is not None and flags:
        bad = {f.split("=", 1)[0] for f in flags}
        kept: list[str] = []
        skip_values = False
        for arg in config.extra_args:
            if arg.startswith("-"):
                skip_values = arg.split("=", 1)[0] in bad
                if skip_values:
                    continue
            elif skip_values:
                continue
            kept.append(arg)
        if tuple(kept) != config.extra_args:
            changes = {"extra_args": tuple(kept)}
    return Diagnosis("unknown_flag", Problem(
        "vLLM does not know an argument",
        f"This vLLM version rejected {shown}: it was renamed or removed, or it has a typo.",
        "Remove it from the extra arguments." if changes else "Check the extra arguments against `vllm serve --help`."),
        changes, line)


def _port_in_use(match, line, config, lines) -> Diagnosis:
    changes: dict[str, Any] = {}
    where = "The port"
    if config is not None:
        where = f"Port {config.port}"
        try:
            changes = {"port": next_free_port(config.host, config.port + 1)}
        except ProblemError:
            changes = {}
    fix = f"Use port {changes['port']}, which is free." if changes else "Choose another port, or stop the other program."
    return Diagnosis("port_in_use", Problem(
        "The port is already in use", f"{where} is taken by another program (perhaps another vLLM server).", fix),
        changes, line)


def _driver_too_old(match, line, config, lines) -> Diagnosis:
    found = re.search(r"found version (\d+)", line)
    version = ""
    if found:
        number = int(found.group(1))
        version = f" (it supports CUDA {number // 1000}.{number % 1000 // 10})"
    return Diagnosis("driver_too_old", Problem(
        "The NVIDIA driver is too old",
        f"The GPU driver{version} is older than the CUDA version this vLLM and PyTorch were built for.",
        "Update the NVIDIA driver, or install a vLLM build made for an older CUDA."), {}, line)


def _gated_model(match, line, config, lines) -> Diagnosis:
    return Diagnosis("gated_model", Problem(
        "This model needs permission",
        "The model is gated on Hugging Face: its authors require you to accept their licence, and downloads "
        "need your access token.",
        "Accept the licence on the model's Hugging Face page, then add your access token in Settings."), {}, line)


def _max_model_len_above_model(match, line, config, lines) -> Diagnosis:
    want, limit = int(match.group("want")), int(match.group("limit"))
    return Diagnosis("max_model_len_above_model", Problem(
        "The context length is longer than the model supports",
        f"You asked for {want:,} tokens, but the model is built for at most {limit:,}.",
        f"Use a context length of {limit:,} tokens or less."), {"max_model_len": limit}, line)


def _unsupported_architecture(match, line, config, lines) -> Diagnosis:
    arch = re.search(r"architectures? \[?'?([\w.]+)", line)
    name = f" ({arch.group(1)})" if arch else ""
    plugin = "in-tree anymore" in line
    return Diagnosis("unsupported_architecture", Problem(
        "vLLM cannot run this kind of model",
        f"This vLLM version does not support the model's architecture{name}."
        + (" It moved to a separate plugin." if plugin else ""),
        "Install the plugin the message names, then start again." if plugin
        else "Pick another model, or a newer vLLM that supports it."), {}, line)


def _quantization_unsupported(match, line, config, lines) -> Diagnosis:
    method = match.group("method") or match.group("unknown") or "this"
    if match.group("unknown"):
        changes = {"quantization": None} if config is not None and config.quantization else {}
        return Diagnosis("quantization_unsupported", Problem(
            "Unknown quantization method", f"This vLLM version does not know the quantization method {method}.",
            "Clear the quantization setting to use what the checkpoint says."), changes, line)
    need, have = match.group("need"), match.group("have")
    detail = ""
    if need and have:
        detail = (f" It needs a GPU of compute capability {int(need) // 10}.{int(need) % 10} or newer; this one is "
                  f"{int(have) // 10}.{int(have) % 10}.")
    changes = {"quantization": None} if config is not None and config.quantization else {}
    return Diagnosis("quantization_unsupported", Problem(
        "This GPU cannot run this quantization", f"The quantization method {method} is not supported on this GPU.{detail}",
        "Clear the quantization setting." if changes else "Pick a variant of the model in another format (e.g. AWQ, "
        "GPTQ or BF16)."), changes, line)


def _quantization_mismatch(match, line, config, lines) -> Diagnosis:
    ckpt = match.group("ckpt")
    return Diagnosis("quantization_mismatch", Problem(
        "The quantization setting contradicts the checkpoint",
        f"The checkpoint is already quantized with {ckpt}, which differs from the quantization chosen.",
        "Clear the quantization setting; vLLM reads it from the checkpoint."), {"quantization": None}, line)


def _bf16_unsupported(match, line, config, lines) -> Diagnosis:
    return Diagnosis("bf16_unsupported", Problem(
        "This GPU cannot compute in bfloat16",
        "The model uses bfloat16, which needs a GPU of compute capability 8.0 (Ampere) or newer.",
        "Use dtype half (float16) instead."), {"dtype": "half"}, line)


def _trust_remote_code_needed(match, line, config, lines) -> Diagnosis:
    return Diagnosis("trust_remote_code_needed", Problem(
        "The model needs its own code",
        "This model ships Python code that must run to load it; vLLM does not run it unless allowed.",
        "Turn on trust remote code, if you trust the model's authors."), {"trust_remote_code": True}, line)


def _model_not_found(match, line, config, lines) -> Diagnosis:
    name = f" {config.model!r}" if config is not None else ""
    return Diagnosis("model_not_found", Problem(
        "Model not found",
        f"The model{name} is neither a folder on this computer nor a repository on Hugging Face (or it is private).",
        "Check the name or the folder, or add a Hugging Face token if the repository is private."), {}, line)


def _flashinfer_missing(match, line, config, lines) -> Diagnosis:
    return Diagnosis("flashinfer_missing", Problem(
        "vLLM needs FlashInfer, which is not installed",
        "This vLLM install lacks the optional flashinfer package, and its sampler tried to use it.",
        "Start without the FlashInfer sampler (VLLM_USE_FLASHINFER_SAMPLER=0), or install flashinfer-python."),
        {"use_flashinfer_sampler": False}, line)


def _package_missing(match, line, config, lines) -> Diagnosis:
    package, minimum = match.group("package"), match.group("minimum")
    return Diagnosis("package_missing", Problem(
        f"vLLM's environment lacks {package} {minimum}",
        f"This model's format needs the {package} package (version {minimum} or later) beside vLLM, and installing "
        "vLLM does not bring it.",
        f"Install it into vLLM's environment (pip install '{package}>={minimum}' with that environment's Python), or "
        "pick a variant in another format on the Models page."), {}, line)


def _free_memory_below_utilization(match, line, config, lines) -> Diagnosis:
    free, total = float(match.group("free")), float(match.group("total"))
    # leave half a GiB for the CUDA context that appears after the check
    share = math.floor(max(0.0, free - 0.5) / total * 100) / 100 if total else 0.0
    changes = {"gpu_memory_utilization": share} if share > 0 else {}
    fix = (f"Use a GPU memory share of {share:g}, or close the programs that use the GPU." if changes
           else "Close the programs that use the GPU.")
    return Diagnosis("free_memory_below_utilization", Problem(
        "Other programs are using the GPU's memory",
        f"Only {free:g} of {total:g} GiB were free when vLLM started, less than the share it was told to take.",
        fix), changes, line)


def _kv_cache_too_small(match, line, config, lines) -> Diagnosis:
    fits = _search(r"estimated maximum model length is (-?\d+)", line) or match.group("tokens")
    length = match.group("len") or _search(r"max seq len \((\d+)\)", line)
    changes: dict[str, Any] = {"max_model_len": int(fits)} if fits and int(fits) > 0 else {"max_model_len": "auto"}
    asked = f" of {int(length):,} tokens" if length else ""
    fix = (f"Use a context length of {int(fits):,} tokens (the longest that fits), or give vLLM a larger share of the GPU."
           if fits and int(fits) > 0 else "Let vLLM pick the longest context that fits (auto).")
    return Diagnosis("kv_cache_too_small", Problem(
        "Not enough memory for the context length",
        f"After loading the model, the memory left for the KV cache cannot hold even one request{asked}.", fix),
        changes, line)


def _no_kv_memory(match, line, config, lines) -> Diagnosis:
    changes: dict[str, Any] = {}
    if config is not None and config.gpu_memory_utilization < DEFAULT_GPU_MEMORY_UTILIZATION:
        changes = {"gpu_memory_utilization": DEFAULT_GPU_MEMORY_UTILIZATION}
    share = f" ({config.gpu_memory_utilization:g} of the GPU)" if config is not None else ""
    fix = (f"Give vLLM {DEFAULT_GPU_MEMORY_UTILIZATION:g} of the GPU's memory." if changes
           else "Use a smaller or quantized variant of the model, or more GPUs (tensor parallelism).")
    return Diagnosis("no_kv_memory", Problem(
        "No memory left for the KV cache",
        f"The model's weights and working memory take all of vLLM's share of the GPU{share}, leaving nothing to "
        "hold requests.", fix), changes, line)


def _cuda_oom_loading(match, line, config, lines) -> Diagnosis:
    changes: dict[str, Any] = {}
    if config is not None and len(config.cuda_devices) >= 2 * config.tensor_parallel_size:
        changes = {"tensor_parallel_size": 2 * config.tensor_parallel_size}
    fix = (f"Spread the model over {changes['tensor_parallel_size']} GPUs." if changes
           else "Use a quantized variant of the model (FP8, AWQ, GPTQ), or more GPUs.")
    return Diagnosis("cuda_oom_loading", Problem(
        "The GPU ran out of memory loading the model",
        "The model's weights do not fit in the GPU memory available to vLLM.", fix), changes, line)


def _engine_died(match, line, config, lines) -> Diagnosis:
    cause = next((l.rstrip() for l in lines if _LAST_ERROR.search(l) and "(EngineCore" in l
                  and not _WARNING_LINE.search(l)), "")
    detail = f" The engine reported: {message_of(cause)}" if cause else ""
    return Diagnosis("engine_died", Problem(
        "The vLLM engine stopped",
        f"vLLM's engine process failed, so the server cannot answer.{detail}",
        "Look at the log for the first error, then start again."), {}, line)


def _search(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


_DIAGNOSERS = {
    "vllm_missing": _vllm_missing, "unknown_flag": _unknown_flag, "port_in_use": _port_in_use,
    "driver_too_old": _driver_too_old, "gated_model": _gated_model,
    "max_model_len_above_model": _max_model_len_above_model, "unsupported_architecture": _unsupported_architecture,
    "quantization_unsupported": _quantization_unsupported, "quantization_mismatch": _quantization_mismatch,
    "bf16_unsupported": _bf16_unsupported, "trust_remote_code_needed": _trust_remote_code_needed,
    "model_not_found": _model_not_found, "flashinfer_missing": _flashinfer_missing, "package_missing": _package_missing,
    "free_memory_below_utilization": _free_memory_below_utilization, "kv_cache_too_small": _kv_cache_too_small,
    "no_kv_memory": _no_kv_memory, "cuda_oom_loading": _cuda_oom_loading, "engine_died": _engine_died,
}
