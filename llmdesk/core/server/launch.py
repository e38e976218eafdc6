"""How to launch vLLM 0.26: a typed LaunchConfig, its checks, the argv and the child environment.

Everything here is pure (no I/O, no Qt): ``build_vllm_command`` and ``child_environment`` turn a
LaunchConfig into exactly what the supervisor passes to ``create_subprocess_exec``.

* The command is ``<python> -m vllm.entrypoints.cli.main serve MODEL ...``, the same as
  ``vllm serve MODEL``, with the model as the positional argument. (``python -m
  vllm.entrypoints.openai.api_server`` silently ignores a positional model and loads
  Qwen/Qwen3-0.6B instead, so it is never used.)
* Only flags that differ from vLLM 0.26 defaults are passed, plus the ones always wanted:
  ``--host``, ``--port``, ``--served-model-name`` when set, ``--allowed-origins`` (CORS is
  limited to localhost unless widened; vLLM's default is ``*``) and
  ``--disable-access-log-for-endpoints /health,/metrics`` (the app polls them every second).
* The API key never appears in argv: it goes to the child as ``VLLM_API_KEY`` (vLLM's fallback
  when ``--api-key`` is absent), so other users of the machine cannot read it with ``ps``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from llmdesk.core.base.errors import Problem
from llmdesk.core.fit.memory_model import DEFAULT_GPU_MEMORY_UTILIZATION, FitReport
from llmdesk.core.fit.lora_memory import LORA_RANKS
from llmdesk.core.fit.quant import ACCEPTED_QUANTIZATION
from llmdesk.core.server.extra_env import env_pairs, env_problems, env_warnings
from llmdesk.core.server.lora import RUNTIME_ENV, name_problem
from llmdesk.core.server.tool_parsers import check_name as parser_name_problem

VLLM_ENTRY_MODULE = "vllm.entrypoints.cli.main"
QUIET_ENDPOINTS = "/health,/metrics"
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
KV_CACHE_DTYPES = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla",
                   "turboquant_k8v4", "turboquant_4bit_nc", "turboquant_k3v4_nc", "turboquant_3bit_nc",
                   "int4_per_token_head", "int8_per_token_head", "fp8_per_token_head", "nvfp4")
# vllm.md §1.4: passing any of these makes vLLM 0.26 exit with status 2 before anything else.
REMOVED_FLAGS: dict[str, str] = {
    "--disable-log-requests": "removed in vLLM 0.12; request logging is off by default (--enable-log-requests turns it on)",
    "--swap-space": "removed in vLLM 0.18; it did nothing in the V1 engine",
    "--disable-frontend-multiprocessing": "removed in vLLM 0.18/0.19",
    "--num-scheduler-steps": "multi-step scheduling was removed with the V0 engine",
    "--multi-step-stream-outputs": "multi-step scheduling was removed with the V0 engine",
}
# Flags the form owns: in extra_args they override the form (argparse keeps the last value).
MANAGED_FLAGS = ("--host", "--port", "--served-model-name", "--revision", "--gpu-memory-utilization", "--max-model-len",
                 "--max-num-seqs", "--max-num-batched-tokens", "--tensor-parallel-size", "-tp", "--dtype",
                 "--quantization", "-q", "--kv-cache-dtype", "--enable-prefix-caching",
                 "--no-enable-prefix-caching", "--enforce-eager", "--trust-remote-code", "--enable-lora",
                 "--lora-modules", "--max-loras", "--max-lora-rank", "--allowed-origins", "--model",
                 "--enable-auto-tool-choice", "--tool-call-parser", "--reasoning-parser",
                 "--max-cudagraph-capture-size", "--enable-sleep-mode")
LOCAL_ORIGINS = ("http://localhost", "http://127.0.0.1")
MAX_CUDAGRAPH_SIZE = 1024
MIN_IDLE_PAUSE_S = 10.0
# Child environment: no telemetry, plain unbuffered lines, NVML numbering of GPUs.
FIXED_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
    "NO_COLOR": "1",
    "VLLM_LOGGING_COLOR": "0",
    "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
}
# Internal to vLLM's distributed setup, NOT the HTTP address; Kubernetes injects VLLM_PORT as a URI,
# which vLLM rejects. Never passed on from the parent.
DROPPED_ENV = ("VLLM_PORT", "VLLM_HOST_IP")
DEV_MODE_ENV = "VLLM_SERVER_DEV_MODE"
MULTIPROC_ENV = "VLLM_WORKER_MULTIPROC_METHOD"
# What llmdesk sets in the child, and where a user sets it instead of in extra_env (server/extra_env.py).
OWNED_ENV = {
    **dict.fromkeys(("VLLM_NO_USAGE_STATS", "VLLM_DO_NOT_TRACK", "DO_NOT_TRACK"), "usage statistics stay off"),
    **dict.fromkeys(("PYTHONUNBUFFERED", "NO_COLOR", "VLLM_LOGGING_COLOR"), "the app reads vLLM's log line by line"),
    "CUDA_DEVICE_ORDER": "GPU numbers match the ones the app shows",
    "CUDA_VISIBLE_DEVICES": "choose GPUs with Which GPUs (llmdesk serve: CUDA_VISIBLE_DEVICES in its own shell)",
    "VLLM_API_KEY": "use the API key field (llmdesk serve: LLMDESK_API_KEY or --api-key-stdin)",
    **dict.fromkeys(("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"), "the Hugging Face token comes from Settings, kept in "
                    "the keyring"),
    # the app and vLLM must read one cache: the app finds the downloads and the compile cache there
    **dict.fromkeys(("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "VLLM_CACHE_ROOT"),
                    "vLLM must read the caches the app writes (set it in the shell that starts llmdesk)"),
    **dict.fromkeys(DROPPED_ENV, "it is vLLM's internal address, never the HTTP one: use the port field"),
    DEV_MODE_ENV: "vLLM's development routes are on only with Pause (sleep mode), behind llmdesk's gate",
    RUNTIME_ENV: "loading adapters at run time is on only with LoRA, on this computer or with an API key",
    MULTIPROC_ENV: "use Start-up → fork the engine (llmdesk serve --fork-engine)",
}


@dataclass(frozen=True)
class LoraAdapter:
    name: str  # the model name clients ask for
    path: str  # local folder or Hub repo id of the adapter


@dataclass(frozen=True)
class LaunchConfig:
    model: str  # repo id or local folder
    served_model_name: str | None = None
    revision: str | None = None  # a Hub branch, tag or commit; None: the default branch
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # passed as VLLM_API_KEY, never in argv
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_model_len: int | str | None = None  # int, "auto", or None (the model's own)
    max_num_seqs: int | None = None  # None: vLLM's default for the GPU
    max_num_batched_tokens: int | None = None
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    quantization: str | None = None  # None: whatever the checkpoint says
    kv_cache_dtype: str = "auto"
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    trust_remote_code: bool = False
    enable_lora: bool = False  # also turned on by giving lora_adapters
    lora_adapters: tuple[LoraAdapter, ...] = ()
    max_loras: int = 1
    max_lora_rank: int = 16
    cuda_devices: tuple[int, ...] = ()  # -> CUDA_VISIBLE_DEVICES (+ CUDA_DEVICE_ORDER=PCI_BUS_ID)
    allowed_origins: tuple[str, ...] = LOCAL_ORIGINS  # CORS: localhost unless widened
    # None: leave vLLM's choice; False sets VLLM_USE_FLASHINFER_SAMPLER=0 (needed where flashinfer is
    # not installed, vllm.md §5.7), True sets it to 1.
    use_flashinfer_sampler: bool | None = None
    extra_args: tuple[str, ...] = ()
    # The user's own variables for the vLLM process, "NAME=VALUE" (server/extra_env.py); not those in OWNED_ENV.
    extra_env: tuple[str, ...] = ()
    # Tool calls and reasoning (server/tool_parsers.py): names vLLM 0.26 registers, checked by validate().
    tool_call_parser: str | None = None  # -> --enable-auto-tool-choice --tool-call-parser NAME
    enable_auto_tool_choice: bool = False  # also turned on by giving tool_call_parser (vLLM uses no parser without it)
    reasoning_parser: str | None = None  # -> --reasoning-parser NAME
    # Start-up (#23). None: vLLM's choice, min(2 x max_num_seqs, 512) CUDA-graph batch sizes; a desktop
    # serving a few requests at once captures fewer and starts sooner (-> --max-cudagraph-capture-size).
    cudagraph_max_size: int | None = None
    # The engine-core process forked from the API server, which has imported vLLM already, instead of
    # started afresh (vLLM's CLI picks spawn: VLLM_WORKER_MULTIPROC_METHOD=fork overrides it).
    fork_engine: bool = False
    # Sleep mode (#23): vLLM frees its GPU memory on Pause without stopping. It needs vLLM's development
    # routes, which its API key does not guard, so vLLM then listens on a loopback port of its own and
    # llmdesk's sleep gate (server/sleep_gate.py) takes the address clients use.
    sleep_mode: bool = False
    # 2: weights dropped, read again on Resume; 1: kept in CPU memory. 2 by default: on an H100 (8B, 2026-12-07)
    # it paused in 0.06 s and resumed in 2.2 s; level 1's first pause took 6.5-7.1 s (pinned CPU memory
    # allocated for the weights; later pauses 0.35 s) and holds their size in CPU memory while paused
    # (docs/benchmarks.md, #23).
    sleep_level: int = 2
    idle_pause_s: float | None = None  # pause by itself after this long without requests (None: never)
    wake_on_request: bool = True  # a request to a paused server resumes it (False: refused, 503)

    @property
    def lora_enabled(self) -> bool:
        return self.enable_lora or bool(self.lora_adapters)

    @property
    def compiles(self) -> bool:
        """torch.compile runs while starting (not with --enforce-eager or optimization level 0)."""
        flags = [_flag_name(a) for a in self.extra_args]
        joined = " ".join(self.extra_args)
        return not (self.enforce_eager or "--enforce-eager" in flags
                    or re.search(r"(?:^|\s)(?:-O0|-O\s+0|--optimization-level[ =]0)(?:\s|$)", joined))

    @property
    def api_model_name(self) -> str:
        """The name clients put in "model" (and /v1/models lists first)."""
        return self.served_model_name or self.model

    @property
    def runtime_lora_updating(self) -> bool:
        """Adapters may be loaded and unloaded while the server runs (VLLM_ALLOW_RUNTIME_LORA_UPDATING):
        only with LoRA on, and only for a server on this computer alone or one that requires an API key,
        since whoever reaches /v1/load_lora_adapter chooses what the server reads from disk or the Hub."""
        return self.lora_enabled and (is_loopback(self.host) or bool(self.api_key))

    def validate(self) -> list[Problem]:
        """Every reason vLLM would refuse this configuration (or the app should), in field order."""
        problems: list[Problem] = []

        def bad(title: str, explanation: str, fix: str) -> None:
            problems.append(Problem(title, explanation, fix))

        if not self.model.strip():
            bad("No model chosen", "The launch has no model.", "Pick a model from the library or give a Hub repo id.")
        if self.revision is not None and (not self.revision.strip() or any(c.isspace() for c in self.revision)
                                          or self.revision.startswith("-")):
            bad("Invalid revision", f"The revision {self.revision!r} is not a branch, tag or commit name.",
                "Clear it to use the model's default branch, or give a branch, tag or commit.")
        if self.served_model_name is not None and not self.served_model_name.strip():
            bad("Empty served model name", "The served model name is blank.",
                "Clear the field to use the model's own name, or type a name.")
        if not self.host.strip():
            bad("No host", "The address to listen on is blank; vLLM would listen on every network interface.",
                "Use 127.0.0.1 to keep the server on this computer.")
        elif not is_loopback(self.host) and not self.api_key:
            bad("An API key is required",
                f"Listening on {self.host} exposes the server to other machines on the network; "
                "an API key is required so that only people you give it to can use the model.",
                "Generate an API key, or listen on 127.0.0.1.")
        if not _is_int(self.port) or not 1 <= self.port <= 65535:
            bad("Port out of range", f"The port {self.port!r} is not between 1 and 65535.", "Use a port such as 8000.")
        if isinstance(self.gpu_memory_utilization, bool) or not isinstance(self.gpu_memory_utilization, int | float) \
                or not 0 < self.gpu_memory_utilization <= 1:
            bad("GPU memory share out of range",
                f"gpu_memory_utilization is {self.gpu_memory_utilization!r}; it is a share of each GPU's total "
                "memory and must be more than 0 and at most 1.", f"Use a value such as {DEFAULT_GPU_MEMORY_UTILIZATION}.")
        mml = self.max_model_len
        if mml is not None and mml != "auto" and not (_is_int(mml) and mml > 0):
            bad("Invalid context length",
                f"max_model_len is {mml!r}; it must be a positive number of tokens, \"auto\" (the longest that "
                "fits in memory) or empty (the model's own limit).", "Clear the field or enter a number of tokens.")
        for name in ("max_num_seqs", "max_num_batched_tokens"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value > 0):
                bad(f"Invalid {name}", f"{name} is {value!r}; it must be a positive whole number.",
                    "Clear the field to use vLLM's default for the GPU.")
        if not (_is_int(self.tensor_parallel_size) and self.tensor_parallel_size > 0):
            bad("Invalid tensor_parallel_size",
                f"tensor_parallel_size is {self.tensor_parallel_size!r}; it must be a positive whole number.",
                "Use 1 for one GPU.")
        if self.dtype not in DTYPES:
            bad("Unknown dtype", f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}.", "Use auto.")
        if self.quantization is not None and not self.quantization.strip():
            bad("Empty quantization", "The quantization method is blank.",
                "Clear it to use what the checkpoint says.")
        elif self.quantization is not None and self.quantization not in ACCEPTED_QUANTIZATION:
            bad("Unknown quantization", f"vLLM 0.26 has no quantization method {self.quantization!r}; it accepts "
                f"{', '.join(sorted(ACCEPTED_QUANTIZATION))}.",
                "Clear it to use what the checkpoint says, or pick one of those (a plugin's own method goes in the "
                "extra arguments as --quantization NAME).")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            bad("Unknown KV-cache dtype",
                f"kv_cache_dtype {self.kv_cache_dtype!r} is not one vLLM 0.26 knows.", "Use auto or fp8.")
        if self.lora_enabled:
            if self.max_lora_rank not in LORA_RANKS:
                bad("Unsupported LoRA rank",
                    f"max_lora_rank {self.max_lora_rank!r} is not one vLLM accepts "
                    f"({', '.join(map(str, LORA_RANKS))}).",
                    "Use the next rank up from your adapters' rank, e.g. 16 or 64.")
            if not (_is_int(self.max_loras) and self.max_loras > 0):
                bad("Invalid max_loras", f"max_loras is {self.max_loras!r}; it must be at least 1.", "Use 1.")
            seen: set[str] = set()
            for adapter in self.lora_adapters:
                name = adapter.name
                problem = name_problem(name, base_names=(self.api_model_name,), taken=seen)
                if problem is not None:
                    problems.append(problem)
                seen.add(name)
                if not adapter.path.strip():
                    bad("LoRA adapter without a path", f"The adapter {adapter.name!r} has no path.",
                        "Choose the adapter's folder or Hub repo id.")
        if self.cuda_devices:
            if any(not _is_int(d) or d < 0 for d in self.cuda_devices) \
                    or len(set(self.cuda_devices)) != len(self.cuda_devices):
                bad("Invalid GPU selection",
                    f"The GPUs {list(self.cuda_devices)} must be distinct indices of 0 or more.",
                    "Pick each GPU once.")
            if _is_int(self.tensor_parallel_size) and self.tensor_parallel_size > len(self.cuda_devices):
                bad("Not enough GPUs selected",
                    f"tensor_parallel_size {self.tensor_parallel_size} needs {self.tensor_parallel_size} GPUs, "
                    f"but only {len(self.cuda_devices)} are selected.",
                    f"Select {self.tensor_parallel_size} GPUs, or lower tensor_parallel_size.")
        if self.tool_call_parser is not None and (problem := parser_name_problem("tool", self.tool_call_parser)):
            problems.append(problem)
        if self.reasoning_parser is not None and (problem := parser_name_problem("reasoning", self.reasoning_parser)):
            problems.append(problem)
        if self.enable_auto_tool_choice and self.tool_call_parser is None:
            bad("Auto tool choice needs a tool-call parser",
                "vLLM 0.26 refuses to start with --enable-auto-tool-choice and no --tool-call-parser.",
                "Pick the parser of the model's family (auto), or turn tool calling off.")
        if self.cudagraph_max_size is not None and not (_is_int(self.cudagraph_max_size)
                                                        and 1 <= self.cudagraph_max_size <= MAX_CUDAGRAPH_SIZE):
            bad("Invalid CUDA-graph size", f"cudagraph_max_size is {self.cudagraph_max_size!r}; it must be a whole "
                f"number from 1 to {MAX_CUDAGRAPH_SIZE}.", "Clear it to let vLLM choose.")
        if self.sleep_mode:
            if self.sleep_level not in (1, 2):
                bad("Invalid sleep level", f"sleep_level is {self.sleep_level!r}; vLLM has levels 1 (weights kept "
                    "in CPU memory) and 2 (weights dropped).", "Use 1, or 2 where CPU memory is short.")
            if self.idle_pause_s is not None and (isinstance(self.idle_pause_s, bool)
                                                  or not isinstance(self.idle_pause_s, int | float)
                                                  or not self.idle_pause_s >= MIN_IDLE_PAUSE_S):
                bad("Invalid idle time", f"idle_pause_s is {self.idle_pause_s!r}; pausing by itself needs at least "
                    f"{MIN_IDLE_PAUSE_S:g} seconds without requests.", "Clear it to pause only when asked.")
            if self.tensor_parallel_size != 1 or "--data-parallel-size" in [_flag_name(a) for a in self.extra_args]:
                bad("Pause works on one GPU only",
                    "llmdesk's Pause has been checked with one vLLM engine on one GPU; with several GPUs it is "
                    "not offered yet.", "Turn sleep mode off, or serve on one GPU.")
        problems += _extra_parser_problems(self.extra_args)
        problems += env_problems(self.extra_env, OWNED_ENV)
        for arg in self.extra_args:
            flag = _flag_name(arg)
            if flag in REMOVED_FLAGS:
                bad("A flag vLLM no longer has",
                    f"{flag} was {REMOVED_FLAGS[flag]}; vLLM 0.26 would refuse to start.",
                    f"Remove {flag} from the extra arguments.")
            elif flag == "--disable-log-stats":
                bad("This flag hides every metric",
                    "--disable-log-stats also removes every vllm:* series from /metrics, so the app could not "
                    "show tokens/s, requests or KV-cache use.", "Remove --disable-log-stats from the extra arguments.")
        return problems

    def warnings(self) -> list[str]:
        """Things worth saying that do not stop a launch."""
        notes: list[str] = []
        if self.trust_remote_code:
            notes.append("Trust remote code is on: vLLM will run Python code from the model's repository on this "
                         "computer. Only use it for repositories you trust.")
        if self.host.strip() and not is_loopback(self.host):
            notes.append(f"The server listens on {self.host} and is reachable from other machines. The API key "
                         "protects /v1 routes but not /metrics, /health or /tokenize.")
        if "*" in self.allowed_origins:
            notes.append("CORS allows every origin: any web page open in a browser here can call the server.")
        flags = [_flag_name(a) for a in self.extra_args]
        if "--api-key" in flags:
            notes.append("--api-key in the extra arguments is visible to every user of this computer (ps); "
                         "use the API key field instead, which is passed privately.")
        for flag in dict.fromkeys(f for f in flags if f in MANAGED_FLAGS):
            notes.append(f"{flag} in the extra arguments overrides the form's setting.")
        if self.lora_adapters and not self.enable_lora:
            notes.append("LoRA adapters are listed, so LoRA is turned on.")
        return notes + env_warnings(self.extra_env)


def is_loopback(host: str | None) -> bool:
    """True for addresses only this computer can reach: localhost, 127.0.0.0/8, ::1, their IPv4-mapped form
    (::ffff:127.0.0.1) and a zone id (::1%lo) — a host to listen on, or a peer's address (the sleep gate)."""
    host = (host or "").strip().lower()
    if host in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def build_vllm_command(config: LaunchConfig, python: str, *, vllm_port: int | None = None) -> list[str]:
    """The argv that starts vLLM for ``config`` with interpreter ``python`` (pure; no check is made here:
    call ``config.validate()`` first). The API key is not in it: see ``child_environment``.

    With sleep mode vLLM listens on 127.0.0.1:``vllm_port`` (the sleep gate takes config.host:config.port);
    without a vllm_port there, the port after config.port is shown (what --print-command prints)."""
    host, port = config.host, config.port
    if config.sleep_mode:
        host, port = "127.0.0.1", vllm_port or config.port + 1
    argv = [python, "-m", VLLM_ENTRY_MODULE, "serve", config.model, "--host", host, "--port", str(port)]
    if config.served_model_name:
        argv += ["--served-model-name", config.served_model_name]
    if config.revision:
        argv += ["--revision", config.revision]
    if config.gpu_memory_utilization != DEFAULT_GPU_MEMORY_UTILIZATION:
        argv += ["--gpu-memory-utilization", f"{config.gpu_memory_utilization:g}"]
    if config.max_model_len is not None:
        argv += ["--max-model-len", str(config.max_model_len)]
    if config.max_num_seqs is not None:
        argv += ["--max-num-seqs", str(config.max_num_seqs)]
    if config.max_num_batched_tokens is not None:
        argv += ["--max-num-batched-tokens", str(config.max_num_batched_tokens)]
    if config.tensor_parallel_size != 1:
        argv += ["--tensor-parallel-size", str(config.tensor_parallel_size)]
    if config.dtype != "auto":
        argv += ["--dtype", config.dtype]
    if config.quantization:
        argv += ["--quantization", config.quantization]
    if config.kv_cache_dtype != "auto":
        argv += ["--kv-cache-dtype", config.kv_cache_dtype]
    if not config.enable_prefix_caching:
        argv.append("--no-enable-prefix-caching")
    if config.enforce_eager:
        argv.append("--enforce-eager")
    if config.trust_remote_code:
        argv.append("--trust-remote-code")
    if config.lora_enabled:
        argv.append("--enable-lora")
        if config.lora_adapters:
            argv += ["--lora-modules", *(_lora_module(a) for a in config.lora_adapters)]
        if config.max_loras != 1:
            argv += ["--max-loras", str(config.max_loras)]
        if config.max_lora_rank != 16:
            argv += ["--max-lora-rank", str(config.max_lora_rank)]
    if tuple(config.allowed_origins) != ("*",):  # vLLM's default is ["*"]
        argv += ["--allowed-origins", json.dumps(list(config.allowed_origins))]
    if config.tool_call_parser:  # vLLM loads the parser only with auto tool choice on
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", config.tool_call_parser]
    if config.reasoning_parser:
        argv += ["--reasoning-parser", config.reasoning_parser]
    if config.cudagraph_max_size is not None:
        argv += ["--max-cudagraph-capture-size", str(config.cudagraph_max_size)]
    if config.sleep_mode:
        argv.append("--enable-sleep-mode")
    argv += ["--disable-access-log-for-endpoints", QUIET_ENDPOINTS]
    argv += list(config.extra_args)
    return argv


def child_environment(config: LaunchConfig, base: Mapping[str, str], *, hf_token: str | None = None,
                      hf_home: str | None = None) -> dict[str, str]:
    """The environment of the vLLM process: ``base`` (usually os.environ), the user's extra_env, then what
    llmdesk sets.

    VLLM_API_KEY carries the API key (and is removed from ``base`` when the config has none, so a
    key left in the user's shell cannot lock the app out of its own server). VLLM_PORT and
    VLLM_HOST_IP are always removed: they are vLLM-internal, not the HTTP address.
    """
    env = {k: v for k, v in base.items() if k not in DROPPED_ENV and k != "VLLM_API_KEY"}
    env.update(user_environment(config))
    env.update(FIXED_ENV)
    if config.cuda_devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in config.cuda_devices)
    if hf_token:
        env["HF_TOKEN"] = hf_token
    if hf_home:
        env["HF_HOME"] = hf_home
    if config.api_key:
        env["VLLM_API_KEY"] = config.api_key
    if config.use_flashinfer_sampler is not None:
        env["VLLM_USE_FLASHINFER_SAMPLER"] = "1" if config.use_flashinfer_sampler else "0"
    env.pop(DEV_MODE_ENV, None)  # never inherited: the development routes only behind the sleep gate
    if config.sleep_mode:
        env[DEV_MODE_ENV] = "1"
    if config.fork_engine:
        env[MULTIPROC_ENV] = "fork"
    env.pop(RUNTIME_ENV, None)  # never inherited: only where runtime_lora_updating says so
    if config.runtime_lora_updating:
        env[RUNTIME_ENV] = "1"
    return env


def user_environment(config: LaunchConfig) -> dict[str, str]:
    """The config's extra_env as {NAME: VALUE}, never one llmdesk owns (validate() says why; an unchecked
    config still cannot turn a gate off or telemetry on)."""
    return {k: v for k, v in env_pairs(config.extra_env).items() if k.upper() not in OWNED_ENV}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str  # one line for the form
    changes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))  # read-only, like the rest

    def apply(self, config: LaunchConfig) -> LaunchConfig:
        return replace(config, **self.changes)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # The saving is what vLLM's compile, graph capture and kernel warm-up took in the measured starts (docs/benchmarks.md,
    # #23): most of a start is importing vLLM, which no flag removes (Settings → Faster Start, on by default, does:
    # 18.2 s instead of 58.6 s warm for the 8B shape on an H100).
    Preset("fast start", "Skips torch.compile and CUDA graphs: saves at most their part of a start (an 8B model on an H100: "
                         "about 10 of 51 s with warm caches, 25 of 73 s cold) and generates more slowly.",
           {"enforce_eager": True}),
    Preset("max throughput", "More requests per step and a bigger token budget, prefix caching and CUDA graphs on: "
                             "the most tokens per second under load.",
           {"max_num_seqs": 1024, "max_num_batched_tokens": 16384, "enable_prefix_caching": True,
            "enforce_eager": False}),
    Preset("long context", "FP8 KV cache (half the memory per token) and the longest context that fits.",
           {"kv_cache_dtype": "fp8", "max_model_len": "auto"}),
    Preset("low memory", "Uses 80% of the GPU, at most 64 requests at once, small prefill chunks and no CUDA "
                         "graphs: leaves room for other programs.",
           {"gpu_memory_utilization": 0.8, "max_num_seqs": 64, "max_num_batched_tokens": 2048,
            "enforce_eager": True}),
)}


def config_from_fit(model: str, report: FitReport, **overrides: Any) -> LaunchConfig:
    """A LaunchConfig with the fit engine's choices: its tensor-parallel size, a shorter context when
    the full one does not fit, and the settings its suggested arguments carry (quantization, KV dtype,
    memory share, batch sizes, eager mode, dtype); other suggested flags go to extra_args.
    ``overrides`` are LaunchConfig fields and win over everything."""
    values: dict[str, Any] = {"tensor_parallel_size": max(1, report.tensor_parallel_size)}
    if 0 < report.max_model_len < report.model_max_len:
        values["max_model_len"] = report.max_model_len
    args = list(report.suggested_args)
    extra: list[str] = []
    takes_value = {"--quantization": ("quantization", str), "--kv-cache-dtype": ("kv_cache_dtype", str),
                   "--gpu-memory-utilization": ("gpu_memory_utilization", float),
                   "--max-num-seqs": ("max_num_seqs", int), "--max-num-batched-tokens": ("max_num_batched_tokens", int),
                   "--dtype": ("dtype", str), "--tensor-parallel-size": ("tensor_parallel_size", int),
                   "--max-model-len": ("max_model_len", int), "--max-loras": ("max_loras", int),
                   "--max-lora-rank": ("max_lora_rank", int)}
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in takes_value and i + 1 < len(args):
            name, kind = takes_value[flag]
            values[name] = kind(args[i + 1])
            i += 2
            continue
        if flag == "--enforce-eager":
            values["enforce_eager"] = True
        elif flag == "--enable-lora":
            values["enable_lora"] = True
        else:
            extra.append(flag)
        i += 1
    if extra:
        values["extra_args"] = tuple(extra)
    names = {f.name for f in fields(LaunchConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"config_from_fit got unknown LaunchConfig fields: {', '.join(sorted(unknown))}")
    values.update(overrides)
    return LaunchConfig(model=model, **values)


def _lora_module(adapter: LoraAdapter) -> str:
    """One --lora-modules value: vLLM 0.26 reads ``name=path`` only without ',' and with one '=' (else it
    parses the value as JSON), so a path holding either goes in the JSON form."""
    if "=" in adapter.path or "," in adapter.path:
        return json.dumps({"name": adapter.name, "path": adapter.path})
    return f"{adapter.name}={adapter.path}"


def _extra_parser_problems(extra_args: tuple[str, ...]) -> list[Problem]:
    """Parser names in the extra arguments are checked too, unless a plugin that may register others
    (--tool-parser-plugin, --reasoning-parser-plugin) comes with them."""
    flags = [_flag_name(a) for a in extra_args]
    problems = []
    for i, flag in enumerate(flags):
        kind, plugin = {"--tool-call-parser": ("tool", "--tool-parser-plugin"),
                        "--reasoning-parser": ("reasoning", "--reasoning-parser-plugin")}.get(flag, (None, None))
        if kind is None or plugin in flags:
            continue
        arg = extra_args[i]
        name = arg.split("=", 1)[1] if "=" in arg else (extra_args[i + 1] if i + 1 < len(extra_args) else "")
        if (problem := parser_name_problem(kind, name)) is not None:
            problems.append(problem)
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def split_extra_args(text: str) -> tuple[str, ...]:
    """A line of the form (Extra, Environment) as a shell would split it, so a quoted JSON value (vLLM's
    --*-config flags, e.g. compact JSON for structured output) or a value with spaces stays one item;
    unbalanced quotes: split on spaces, and vLLM or the check names what it cannot read."""
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())


def _flag_name(arg: str) -> str:
    """'--swap_space=4' -> '--swap-space' (vLLM accepts underscores and dashes alike)."""
    if not arg.startswith("-"):
        return arg
    name = arg.split("=", 1)[0]
    return name[:2] + name[2:].replace("_", "-") if name.startswith("--") else name
