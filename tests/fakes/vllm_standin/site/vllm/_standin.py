"""The stand-in vLLM 0.26.0 API server (standard library only; tests and demos, never production).

It behaves like ``vllm serve`` as far as a supervisor can tell: real start-up lines replayed from
``tests/fakes/vllm_standin/data`` with their real gaps scaled, the port bound before "loading",
an engine-core child process in the same process group, the OpenAI routes, ``/metrics`` built
from a real scrape, vLLM's shutdown lines, and vLLM's failures.

Selected by environment variables (the wrapper written by ``runtime.make_fake_runtime`` sets them):

``FAKE_VLLM_MODE``            ok | ignore_sigint | oom_loading | kv_too_small | no_kv_memory |
                              crash_mid_stream | slow_start   (default ok)
``FAKE_VLLM_DELAY_SCALE``     factor on the real gaps between log lines (default 0.01)
``FAKE_VLLM_SLOW_SCALE``      delay scale used by slow_start (default 0.2)
``FAKE_VLLM_VERSION``         version reported by the banner and ``/version`` (default 0.26.0)
``FAKE_VLLM_TOKEN_RATE``      generated tokens per second per request (default 200)
``FAKE_VLLM_TTFT_S``          seconds to the first token (default: one token's interval)
``FAKE_VLLM_REPLY_TOKENS``    natural reply length when max_tokens allows it (default 24)
``FAKE_VLLM_REPLY_TEXT``      words | markdown | code: what the reply says (default words); markdown
                              cycles through a chat-style answer (headings, lists, a table, code
                              fences), code is one long Python block (~6,000 tokens) in a fence
``FAKE_VLLM_CRASH_AFTER_TOKENS`` crash_mid_stream: tokens sent before the engine dies (default 5)
``FAKE_VLLM_ENGINE_MAX_LIFE`` seconds an orphaned engine-core child lives at most (default 300)
``FAKE_VLLM_STATS_INTERVAL``  seconds between "Engine 000: Avg prompt throughput" lines (default 10)
``FAKE_VLLM_BREAK_STRUCTURED`` 1: structured replies break their schema, regex or choice (_standin_toolcalls.py,
                              which also answers tools: calls streamed as vLLM streams them)
``FAKE_VLLM_SLEEP_S`` / ``FAKE_VLLM_WAKE_S`` / ``FAKE_VLLM_RELOAD_S``  sleep mode (--enable-sleep-mode with
                              VLLM_SERVER_DEV_MODE=1): seconds /sleep, /wake_up and reload_weights take
                              (default 0.2 each; _standin_sleep.py)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data"
MODES = ("ok", "ignore_sigint", "oom_loading", "kv_too_small", "no_kv_memory",
         "crash_mid_stream", "slow_start")

_LOG_RE = re.compile(r"^(\((?P<proc>APIServer|EngineCore) pid=(?P<pid>\d+)\) )?(?P<rest>.*)$", re.S)
_STAMP_RE = re.compile(r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<ts>\d\d-\d\d \d\d:\d\d:\d\d) ")
_WORDS = (" guess", "Create", "ome", " REG", "PATH", " _,", " Dist", "reate", " the", " model",
          " is", " a", " stand", "-in", " for", " vLLM", ".", " It", " replies", " with",
          " tokens", " at", " a", " steady", " rate", ",", " and", " counts", " them", "!")

# A typical assistant answer, cut into tokens of 3-4 characters as a tokenizer would (words with
# the space before them, punctuation, newlines), for benches that stream markdown into the Chat page.
_MARKDOWN_REPLY = """## Serving a model on one GPU

To serve **Qwen2.5-7B-Instruct** on a single 24 GB card, start vLLM with a shorter context so the
KV cache fits. The `--max-model-len` flag caps it, and `--gpu-memory-utilization` sets how much of
the card vLLM may take.

### Steps

1. Install vLLM into its *own* virtual environment.
2. Start the server and wait until `/health` answers.
3. Point any OpenAI-compatible client at `http://127.0.0.1:8000/v1`.

- Prefix caching is on by default; repeated system prompts get cheaper.
- Chunked prefill keeps long prompts from stalling other requests.
- Watch `vllm:kv_cache_usage_perc` on `/metrics` while you test.

```bash
vllm serve Qwen/Qwen2.5-7B-Instruct \\
    --max-model-len 16384 \\
    --gpu-memory-utilization 0.90
```

| setting | value | why |
|---------|------:|-----|
| max model len | 16,384 | fits the KV cache |
| max num seqs | 64 | enough for a small team |
| dtype | bfloat16 | native on Ampere and newer |

Then stream a reply from Python:

```python
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="EMPTY")
stream = client.chat.completions.create(
    model="Qwen/Qwen2.5-7B-Instruct",
    messages=[{"role": "user", "content": "Hello!"}],
    stream=True,
)
for chunk in stream:
    print(chunk.choices[0].delta.content or "", end="", flush=True)
```

> **Tip:** if the server refuses to start with *KV cache too small*, lower `--max-model-len` or
> raise `--gpu-memory-utilization` a little.

That is all it takes; the same command works on larger cards with a longer context.

"""
_CODE_UNIT = '''

class Worker{i}:
    """Polls job queue {i} and reports what it did.

    Started by the scheduler; stopped when the queue closes.
    """

    def __init__(self, queue, limit={i} * 8):
        self.queue, self.limit, self.done = queue, limit, []

    async def run(self) -> int:
        while (job := await self.queue.get()) is not None:
            result = {{"id": job.id, "ok": job.size <= self.limit}}  # keep it small
            self.done.append(result)
        return len([r for r in self.done if r["ok"]])
'''
_CODE_REPLY = ("Here is the whole module:\n\n```python\nimport asyncio\n"
               + "".join(_CODE_UNIT.format(i=i) for i in range(45)) + "```\n\nRun it with `python -m demo`.\n\n")
_TOKEN_RE = re.compile(r"\n+|[ \t]*\w+|[ \t]*[^\w\s]{1,3}|[ \t]+")
_MARKDOWN_TOKENS = tuple(_TOKEN_RE.findall(_MARKDOWN_REPLY))
_CODE_TOKENS = tuple(_TOKEN_RE.findall(_CODE_REPLY))
assert "".join(_MARKDOWN_TOKENS) == _MARKDOWN_REPLY and "".join(_CODE_TOKENS) == _CODE_REPLY

_out_lock = threading.Lock()


# --- output -----------------------------------------------------------------------------------

def _emit(line: str, stream=None) -> None:
    with _out_lock:
        target = stream if stream is not None else sys.stdout
        try:
            target.write(line + "\n")
            target.flush()
        except (BrokenPipeError, ValueError):
            pass


def _now_stamp() -> str:
    return time.strftime("%m-%d %H:%M:%S")


def _log(proc: str, pid: int, level: str, where: str, message: str) -> None:
    """A vLLM logger line (stdout)."""
    _emit(f"({proc} pid={pid}) {level} {_now_stamp()} [{where}] {message}")


def _uvicorn(pid: int, message: str) -> None:
    """A uvicorn line (stderr, like uvicorn's own logger)."""
    _emit(f"(APIServer pid={pid}) INFO:     {message}", sys.stderr)


def _read_lines(name: str) -> list[str]:
    text = (DATA / name).read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _stamp_seconds(line: str) -> float | None:
    m = _LOG_RE.match(line)
    s = _STAMP_RE.match(m.group("rest")) if m else None
    if not s:
        return None
    ts = s.group("ts")  # MM-DD HH:MM:SS
    day, clock = int(ts[3:5]), ts[6:]
    h, mi, se = (int(x) for x in clock.split(":"))
    return day * 86400 + h * 3600 + mi * 60 + se


class Replayer:
    """Prints real log lines with pids, paths and timestamps substituted and gaps scaled."""

    def __init__(self, api_pid: int, scale: float, subs: list[tuple[str, str]]):
        self.api_pid = api_pid
        self.engine_pid = api_pid + 1
        self.scale = scale
        self.subs = subs
        self._last: float | None = None

    def line(self, raw: str, *, delay: bool = True) -> None:
        when = _stamp_seconds(raw)
        if delay and when is not None:
            if self._last is not None and when > self._last and self.scale > 0:
                time.sleep((when - self._last) * self.scale)
            self._last = when
        for old, new in self.subs:
            raw = raw.replace(old, new)
        m = _LOG_RE.match(raw)
        proc, rest = m.group("proc"), m.group("rest")
        stream = sys.stderr
        if proc:
            pid = self.api_pid if proc == "APIServer" else self.engine_pid
            s = _STAMP_RE.match(rest)
            if s:
                rest = f"{s.group('level')} {_now_stamp()} " + rest[s.end():]
                stream = sys.stdout
            raw = f"({proc} pid={pid}) {rest}"
        _emit(raw, stream)

    def lines(self, raws, *, delay: bool = True) -> None:
        for raw in raws:
            self.line(raw, delay=delay)


# --- arguments --------------------------------------------------------------------------------

_VALUE_FLAGS = (
    "host", "port", "uds", "max-model-len", "gpu-memory-utilization", "kv-cache-memory-bytes",
    "max-num-seqs", "max-num-batched-tokens", "tensor-parallel-size", "pipeline-parallel-size",
    "data-parallel-size", "dtype", "quantization", "kv-cache-dtype", "block-size", "max-loras",
    "max-lora-rank", "max-cpu-loras", "download-dir", "revision", "tokenizer-revision",
    "code-revision", "tokenizer", "tokenizer-mode", "chat-template", "generation-config",
    "cpu-offload-gb", "uvicorn-log-level", "disable-access-log-for-endpoints", "allowed-origins",
    "allowed-methods", "allowed-headers", "show-hidden-metrics-for-version", "shutdown-timeout",
    "performance-mode", "optimization-level", "max-cudagraph-capture-size", "device-ids",
    "kv-offloading-size", "kv-offloading-backend", "tool-call-parser", "reasoning-parser",
    "runner", "convert", "limit-mm-per-prompt", "compilation-config", "attention-backend",
    "attention-config", "speculative-config", "seed", "load-format", "config",
    "distributed-executor-backend", "max-num-scheduled-tokens", "prefix-match-unit",
    "hf-overrides", "override-generation-config", "chat-template-content-format",
    "root-path", "ssl-keyfile", "ssl-certfile", "api-server-count", "max-logprobs",
    "logprobs-mode",
)
_SHORT = {"tensor-parallel-size": "-tp", "pipeline-parallel-size": "-pp",
          "data-parallel-size": "-dp", "quantization": "-q", "optimization-level": "-O",
          "compilation-config": "-cc", "speculative-config": "-sc", "attention-config": "-ac"}
_LIST_FLAGS = ("served-model-name", "api-key", "lora-modules", "cudagraph-capture-sizes")
_BOOL_FLAGS = ("enable-prefix-caching", "enable-chunked-prefill", "enforce-eager",
               "async-scheduling", "enable-lora", "trust-remote-code", "enable-log-requests",
               "enable-log-outputs", "enable-sleep-mode", "enable-auto-tool-choice",
               "allow-credentials", "enable-expert-parallel", "enable-moe-shared-loras",
               "enable-bf16x3-router-gemm", "calculate-kv-scales")
_SWITCHES = ("disable-log-stats", "disable-uvicorn-access-log", "enable-force-include-usage",
             "enable-prompt-tokens-details", "enable-per-request-metrics",
             "enable-server-load-tracking", "headless", "disable-fastapi-docs",
             "aggregate-engine-logging")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vllm serve", usage="vllm serve [model_tag] [options]", allow_abbrev=False)
    p.add_argument("model_tag", nargs="?", default=None)
    p.add_argument("--model", default=None)
    for name in _VALUE_FLAGS:
        names = [f"--{name}"] + ([_SHORT[name]] if name in _SHORT else [])
        p.add_argument(*names, dest=name.replace("-", "_"), default=None)
    p.add_argument("--hf-token", nargs="?", const="True", default=None)
    for name in _LIST_FLAGS:
        p.add_argument(f"--{name}", dest=name.replace("-", "_"), nargs="+", default=None)
    for name in _BOOL_FLAGS:
        p.add_argument(f"--{name}", dest=name.replace("-", "_"),
                       action=argparse.BooleanOptionalAction, default=None)
    for name in _SWITCHES:
        p.add_argument(f"--{name}", dest=name.replace("-", "_"), action="store_true")
    return p


def _normalise(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        if a.startswith("--"):
            key, eq, val = a[2:].partition("=")
            a = "--" + key.replace("_", "-") + eq + val
        out.append(a)
    return out


def _human_int(text: str) -> int:
    text = text.strip()
    units = {"k": 1000, "m": 1000**2, "g": 1000**3, "K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def cli_main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...")
        return 0
    if argv[0] in ("-v", "--version"):
        print(os.environ.get("FAKE_VLLM_VERSION", "0.26.0"))
        return 0
    if argv[0] != "serve":
        sys.stderr.write("usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...\n"
                         f"vllm: error: argument subparser: invalid choice: '{argv[0]}' (choose from "
                         "chat, complete, serve, bench, collect-env, run-batch)\n")
        return 2
    args = _parser().parse_args(_normalise(argv[1:]))  # exits 2: "unrecognized arguments: ..."
    model = args.model_tag or args.model or "Qwen/Qwen3-0.6B"
    return Server(args, model).run()


# --- metrics ----------------------------------------------------------------------------------

_SAMPLE_RE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)(?P<tail>.*)$")
_LE_RE = re.compile(r'le="([^"]+)"')
_REASON_RE = re.compile(r'finished_reason="([^"]+)"')
_HISTOGRAMS = ("vllm:request_prompt_tokens", "vllm:request_generation_tokens",
               "vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds",
               "vllm:request_max_num_generation_tokens")


class Metrics:
    def __init__(self, served: str, util: float | None):
        text = (DATA / "tiny-metrics-before.txt").read_text(encoding="utf-8")
        text = text.replace('model_name="tiny"', f'model_name="{served}"')
        if util is not None:
            text = text.replace('gpu_memory_utilization="0.92"', f'gpu_memory_utilization="{util}"')
        self.template = text.splitlines()
        self.lock = threading.Lock()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success: dict[str, int] = {}
        self.running = 0
        self.obs: dict[str, list[float]] = {h: [] for h in _HISTOGRAMS}
        self.sleep = None  # _standin_sleep.SleepState with --enable-sleep-mode

    def finished(self, reason: str, prompt: int, generated: int, latency: float, ttft: float,
                 max_tokens: int) -> None:
        with self.lock:
            self.success[reason] = self.success.get(reason, 0) + 1
            self.obs["vllm:request_prompt_tokens"].append(prompt)
            self.obs["vllm:request_generation_tokens"].append(generated)
            self.obs["vllm:e2e_request_latency_seconds"].append(latency)
            self.obs["vllm:request_max_num_generation_tokens"].append(max_tokens)
            if generated:
                self.obs["vllm:time_to_first_token_seconds"].append(ttft)

    def add_tokens(self, prompt: int = 0, generated: int = 0) -> None:
        with self.lock:
            self.prompt_tokens += prompt
            self.generation_tokens += generated

    def render(self) -> str:
        with self.lock:
            out = []
            for line in self.template:
                m = _SAMPLE_RE.match(line) if not line.startswith("#") else None
                if not m:
                    out.append(line)
                    continue
                name, labels = m.group("name"), m.group("labels") or ""
                delta = self._delta(name, labels)
                if delta is None:
                    out.append(line)
                    continue
                value = float(m.group("value")) + delta
                out.append(f"{name}{labels} {value!r}{m.group('tail')}")
            return "\n".join(out) + "\n"

    def _delta(self, name: str, labels: str) -> float | None:
        if self.sleep is not None and (slept := self.sleep.metric_delta(name, labels)) is not None:
            return slept
        if name == "vllm:prompt_tokens_total":
            return self.prompt_tokens
        if name == "vllm:prompt_tokens_by_source_total" and 'source="local_compute"' in labels:
            return self.prompt_tokens
        if name == "vllm:generation_tokens_total":
            return self.generation_tokens
        if name == "vllm:num_requests_running":
            return self.running
        if name == "vllm:request_success_total":
            m = _REASON_RE.search(labels)
            return self.success.get(m.group(1), 0) if m else None
        for h in _HISTOGRAMS:
            if name == h + "_sum":
                return sum(self.obs[h])
            if name == h + "_count":
                return len(self.obs[h])
            if name == h + "_bucket":
                le = _LE_RE.search(labels)
                if not le:
                    return None
                bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
                return sum(1 for v in self.obs[h] if v <= bound)
        return None


# --- the server -------------------------------------------------------------------------------

class EngineDead(Exception):
    pass


class ClientGone(Exception):
    pass


class Server:
    def __init__(self, args: argparse.Namespace, model: str):
        self.args = args
        self.model = model
        self.served = (args.served_model_name or [model])[0]
        self.served_names = args.served_model_name or [model]
        from vllm._standin_lora import LoraState  # --enable-lora, --lora-modules: _standin_lora.py

        self.lora = LoraState.from_args(args, self.served)
        self.api_keys = args.api_key or ([os.environ["VLLM_API_KEY"]] if os.environ.get("VLLM_API_KEY") else [])
        self.host = args.host if args.host is not None else ""
        self.port = int(args.port) if args.port is not None else 8000
        self.mode = os.environ.get("FAKE_VLLM_MODE", "ok") or "ok"
        if self.mode not in MODES:
            sys.stderr.write(f"stand-in vllm: unknown FAKE_VLLM_MODE {self.mode!r}; one of {MODES}\n")
            raise SystemExit(2)
        self.scale = float(os.environ.get("FAKE_VLLM_DELAY_SCALE", "0.01"))
        if self.mode == "slow_start":
            self.scale = float(os.environ.get("FAKE_VLLM_SLOW_SCALE", "0.2"))
        self.version = os.environ.get("FAKE_VLLM_VERSION", "0.26.0")
        self.token_rate = float(os.environ.get("FAKE_VLLM_TOKEN_RATE", "200"))
        ttft = os.environ.get("FAKE_VLLM_TTFT_S")
        self.ttft_s = float(ttft) if ttft else None  # first token after this, the rest 1/rate apart
        self.reply_tokens = int(os.environ.get("FAKE_VLLM_REPLY_TOKENS", "24"))
        self.reply_text = {"markdown": _MARKDOWN_TOKENS, "code": _CODE_TOKENS}.get(
            os.environ.get("FAKE_VLLM_REPLY_TEXT", ""), _WORDS)
        self.crash_after = int(os.environ.get("FAKE_VLLM_CRASH_AFTER_TOKENS", "5"))
        self.max_model_len = 4096
        if args.max_model_len not in (None, "auto", "-1"):
            self.max_model_len = _human_int(args.max_model_len)
        util = float(args.gpu_memory_utilization) if args.gpu_memory_utilization else None
        self.metrics = Metrics(self.served, util)
        self.pid = os.getpid()
        from vllm._standin_sleep import SleepState  # --enable-sleep-mode: _standin_sleep.py

        self.sleep = self.metrics.sleep = SleepState.from_args(
            args, lambda message: _log("EngineCore", self.replayer.engine_pid, "INFO", "abstract.py:327", message))
        self.engine: subprocess.Popen | None = None
        self.httpd: ThreadingHTTPServer | None = None
        self.ready = False
        self.engine_dead = False
        self.stop_event = threading.Event()
        self.crashed = threading.Event()
        self.crash_lock = threading.Lock()
        self.fingerprint = "vllm-" + self.version + "-" + secrets.token_hex(4)
        self.access_log = not args.disable_uvicorn_access_log
        quiet = args.disable_access_log_for_endpoints or ""
        self.quiet_paths = {p.strip() for p in quiet.split(",") if p.strip()}
        self.replayer = Replayer(self.pid, self.scale, [])

    # -- start-up --

    def _non_default_args(self) -> str:
        a = self.args
        d: dict = {"model_tag": self.model}
        if a.host is not None:
            d["host"] = a.host
        if a.port is not None and self.port != 8000:
            d["port"] = self.port
        if a.api_key:
            d["api_key"] = a.api_key
        d["model"] = self.model
        if a.max_model_len is not None:
            d["max_model_len"] = self.max_model_len
        if a.served_model_name:
            d["served_model_name"] = a.served_model_name
        if a.gpu_memory_utilization is not None:
            d["gpu_memory_utilization"] = float(a.gpu_memory_utilization)
        if a.enforce_eager:
            d["enforce_eager"] = True
        return f"non-default args: {d!r}"

    def _banner(self, lines: list[str]) -> int:
        """Replays the banner of a real log (up to the non-default args line); returns its end."""
        i = 0
        while "non-default args:" not in lines[i]:
            self.replayer.line(lines[i].replace("version 0.26.0", f"version {self.version}"))
            i += 1
        _log("APIServer", self.pid, "INFO", "api_utils.py:273", self._non_default_args())
        return i + 1

    def _bind(self) -> bool:
        """Bind (no listen yet) like vLLM's create_server_socket: the port fails at once."""
        self.httpd = _HTTPServer((self.host, self.port), _Handler, bind_and_activate=False)
        self.httpd.standin = self
        try:
            self.httpd.server_bind()
        except OSError:
            self.httpd.server_close()
            lines = _read_lines("fail-port-in-use.log")
            start = next(i for i, line in enumerate(lines) if "Traceback" in line)
            self.replayer.lines(lines[start:], delay=False)
            return False
        self.port = self.httpd.server_address[1]
        return True

    def _start_engine(self) -> None:
        code = (
            "import os, signal, sys, time, ctypes\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "if os.environ.get('FAKE_VLLM_MODE') == 'ignore_sigint':\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "try:\n"
            "    ctypes.CDLL(None).prctl(15, b'VLLM::EngineCor', 0, 0, 0)\n"
            "except Exception:\n"
            "    pass\n"
            "end = time.monotonic() + float(os.environ.get('FAKE_VLLM_ENGINE_MAX_LIFE', '300'))\n"
            "while time.monotonic() < end:\n"
            "    time.sleep(0.2)\n"
        )
        self.engine = subprocess.Popen([sys.executable, "-c", code, "VLLM::EngineCore"],
                                       stdin=subprocess.DEVNULL)
        self.replayer.engine_pid = self.engine.pid

    def _stop_engine(self, force: bool = False) -> None:
        if self.engine is None or self.engine.poll() is not None:
            return
        if force:
            self.engine.kill()
        else:
            self.engine.terminate()
        try:
            self.engine.wait(1.0)
        except subprocess.TimeoutExpired:
            self.engine.kill()
            self.engine.wait()

    def run(self) -> int:
        if self.mode == "ignore_sigint":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            return self._run()
        except KeyboardInterrupt:
            # A signal before uvicorn runs: the engine is torn down, then death by SIGINT (§4.4).
            self._stop_engine()
            _emit("KeyboardInterrupt", sys.stderr)
            sys.stdout.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
            return 130

    def _run(self) -> int:
        if self.mode in ("kv_too_small", "no_kv_memory"):
            return self._replay_failure("h100-llama8b-util025.log" if self.mode == "kv_too_small"
                                        else "fail-gpu-mem-util-1b.log")
        tiny = _read_lines("tiny-server.log")
        self.replayer.subs = [("/srv/models/tiny", self.model),
                              ("served_model_name=tiny", f"served_model_name={self.served}"),
                              ("Using max model len 4096", f"Using max model len {self.max_model_len}"),
                              ("for 4,096 tokens", f"for {self.max_model_len:,} tokens")]
        i = self._banner(tiny)
        if not self._bind():
            return 1
        self._start_engine()
        start_line = next(j for j, line in enumerate(tiny) if "Starting vLLM server on" in line)
        loading = tiny[i:start_line]
        if self.mode == "oom_loading":
            cut = next(j for j, line in enumerate(loading) if "Loading safetensors checkpoint shards:   0%" in line)
            self.replayer.lines(loading[:cut + 1])
            self._print_oom()
            self._stop_engine(force=True)
            return 1
        self.replayer.lines(loading)
        try:
            self.httpd.server_activate()
        except OSError:  # another server listens there since the bind (two starts at once): vLLM dies
            self.httpd.server_close()
            lines = _read_lines("fail-port-in-use.log")
            start = next(i for i, line in enumerate(lines) if "Traceback" in line)
            self.replayer.lines(lines[start:], delay=False)
            self._stop_engine(force=True)
            return 1
        shown_host = self.host or "0.0.0.0"
        _log("APIServer", self.pid, "INFO", "api_server.py:677", f"Starting vLLM server on http://{shown_host}:{self.port}")
        end = next(j for j, line in enumerate(tiny) if "Application startup complete." in line)
        rest = [line.replace("[845]", f"[{self.pid}]") for line in tiny[start_line + 1:end + 1]]
        self.replayer.lines(rest, delay=False)
        self.ready = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        threading.Thread(target=self._stats_loop, daemon=True).start()
        if self.mode != "ignore_sigint":
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
        while not self.stop_event.wait(0.05):
            if self.crashed.is_set():
                return self._after_engine_death()
        self._shutdown(tiny)
        return 0

    def _on_signal(self, signum, frame) -> None:
        # vLLM: the first signal triggers the shutdown; later ones are ignored by this handler.
        self.stop_event.set()

    def _shutdown(self, tiny: list[str]) -> None:
        first = next(j for j, line in enumerate(tiny) if "shutdown triggered" in line)
        seq = tiny[first:]
        k = next(j for j, line in enumerate(seq) if "EngineCore: trigger received" in line)
        self.replayer.lines(seq[:k], delay=False)
        self._stop_engine()
        self.replayer.lines(seq[k:], delay=False)
        self.httpd.shutdown()
        self.httpd.server_close()

    def _replay_failure(self, name: str) -> int:
        lines = _read_lines(name)
        m = next(re.search(r"model   (\S+)", line) for line in lines if "model   " in line)
        logged_model = m.group(1)
        self.replayer.subs = [(logged_model, self.model)]
        i = self._banner(lines)
        if not self._bind():
            return 1
        self._start_engine()
        first_error = next(j for j, line in enumerate(lines) if " ERROR " in line)
        self.replayer.lines(lines[i:first_error])
        self._stop_engine(force=True)
        self.replayer.lines(lines[first_error:], delay=False)
        self.httpd.server_close()
        return 1

    def _print_oom(self) -> None:
        def err(msg: str) -> None:
            _log("EngineCore", self.replayer.engine_pid, "ERROR", "core.py:1330", msg)
        _log("EngineCore", self.replayer.engine_pid, "ERROR", "gpu_model_runner.py:4567",
             "Failed to load model - not enough GPU memory. Try lowering --gpu-memory-utilization to "
             "free memory for weights, increasing --tensor-parallel-size, or using --quantization. "
             "See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more tips.")
        err("EngineCore failed to start.")
        err("Traceback (most recent call last):")
        for frame in (
            ('/srv/site/vllm/v1/engine/core.py", line 1299, in run_engine_core',
             "engine_core = EngineCoreProc(*args, engine_index=dp_rank, **kwargs)"),
            ('/srv/site/vllm/v1/engine/core.py", line 118, in __init__',
             "self.model_executor = executor_class(vllm_config)"),
            ('/srv/site/vllm/v1/worker/gpu_worker.py", line 291, in load_model',
             "self.model_runner.load_model(eep_scale_up=eep_scale_up)"),
            ('/srv/site/vllm/v1/worker/gpu_model_runner.py", line 4552, in load_model',
             "self.model = model_loader.load_model("),
            ('/srv/site/vllm/model_executor/model_loader/base_loader.py", line 55, in load_model',
             "model = initialize_model("),
            ('/opt/torch/.venv/lib/python3.12/site-packages/torch/utils/_device.py", line 109, in __torch_function__',
             "return func(*args, **kwargs)"),
        ):
            err(f'  File "{frame[0]}')
            err(f"    {frame[1]}")
        err("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1002.00 MiB. GPU 0 has a "
            "total capacity of 79.19 GiB of which 418.56 MiB is free. Including non-PyTorch memory, "
            "this process has 78.77 GiB memory in use. Of the allocated memory 78.12 GiB is allocated "
            "by PyTorch, and 11.25 MiB is reserved by PyTorch but unallocated. If reserved but "
            "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
            "to avoid fragmentation.  See documentation for Memory Management  "
            "(https://pytorch.org/docs/stable/notes/cuda.html#optimizing-memory-usage)")
        tail = _read_lines("fail-gpu-mem-util-1b.log")
        start = next(j for j, line in enumerate(tail) if line.startswith("(APIServer") and line.endswith("Traceback (most recent call last):"))
        self.replayer.lines(tail[start:], delay=False)

    # -- running --

    def _stats_loop(self) -> None:
        interval = float(os.environ.get("FAKE_VLLM_STATS_INTERVAL", "10"))
        last_p, last_g = 0, 0
        while not self.stop_event.wait(interval):
            with self.metrics.lock:
                p, g, running = self.metrics.prompt_tokens, self.metrics.generation_tokens, self.metrics.running
            if (p, g) == (last_p, last_g) and not running:
                continue
            _log("APIServer", self.pid, "INFO", "loggers.py:310",
                 f"Engine 000: Avg prompt throughput: {(p - last_p) / interval:.1f} tokens/s, "
                 f"Avg generation throughput: {(g - last_g) / interval:.1f} tokens/s, "
                 f"Running: {running} reqs, Waiting: 0 reqs, GPU KV cache usage: 0.0%, "
                 "Prefix cache hit rate: 0.0%")
            last_p, last_g = p, g

    def engine_death(self) -> None:
        """crash_mid_stream: the engine core dies; vLLM logs it and later exits 0 (issue #48966)."""
        with self.crash_lock:
            if self.engine_dead:
                return
            self.engine_dead = True
        self._stop_engine(force=True)
        pid = self.pid

        def err(where: str, msg: str) -> None:
            _log("APIServer", pid, "ERROR", where, msg)
        err("core_client.py:597", "Engine core proc EngineCore died unexpectedly, shutting down client.")
        err("async_llm.py:708", "AsyncLLM output_handler failed.")
        err("async_llm.py:708", "Traceback (most recent call last):")
        err("async_llm.py:708", '  File "/srv/site/vllm/v1/engine/async_llm.py", line 664, in output_handler')
        err("async_llm.py:708", "    outputs = await engine_core.get_output_async()")
        err("async_llm.py:708", "              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^")
        err("async_llm.py:708", '  File "/srv/site/vllm/v1/engine/core_client.py", line 1010, in get_output_async')
        err("async_llm.py:708", "    raise self._format_exception(outputs) from None")
        err("async_llm.py:708", "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
                                "See stack trace (above) for the root cause.")
        self.crashed.set()

    def _after_engine_death(self) -> int:
        time.sleep(max(0.1, 5.0 * self.scale))  # vLLM's watchdog checks every 5 s
        _log("APIServer", self.pid, "ERROR", "launcher.py:171", "Engine failed, terminating server.")
        self.stop_event.set()
        _uvicorn(self.pid, "Shutting down")
        self.httpd.shutdown()
        self.httpd.server_close()
        _uvicorn(self.pid, "Waiting for application shutdown.")
        _uvicorn(self.pid, "Application shutdown complete.")
        _uvicorn(self.pid, f"Finished server process [{self.pid}]")
        return 0


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    standin: Server

    def handle_error(self, request, client_address):  # a dropped client is not worth a traceback
        pass


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""

    def setup(self):
        # As uvicorn does: without TCP_NODELAY a reused connection waits ~40 ms for a delayed ACK.
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - access lines are printed by _access
        pass

    @property
    def s(self) -> Server:
        return self.server.standin

    def _access(self, status: int) -> None:
        path = self.path.split("?")[0]
        if not self.s.access_log or path in self.s.quiet_paths:
            return
        host, port = self.client_address[:2]
        _uvicorn(self.s.pid, f'{host}:{port} - "{self.command} {self.path} HTTP/1.1" {status} {_REASONS.get(status, "")}')

    def _send(self, status: int, body: bytes | str | dict | None, ctype: str = "application/json") -> None:
        if isinstance(body, dict):
            body = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            body = body.encode()
        body = body or b""
        self.send_response_only(status, _REASONS.get(status))
        self.send_header("date", self.date_time_string())
        self.send_header("server", "uvicorn")
        self.send_header("content-length", str(len(body)))
        if body or ctype != "application/json":
            self.send_header("content-type", ctype)
        self.end_headers()
        self.wfile.write(body)
        self._access(status)

    def _error(self, status: int, message: str, etype: str, param: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": etype, "param": param, "code": status}})

    def _authorised(self) -> bool:
        keys = self.s.api_keys
        if not keys or not self.path.startswith(("/v1", "/v2", "/inference")):
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in keys:
            return True
        self._send(401, {"error": "Unauthorized"})
        return False

    def do_GET(self):  # noqa: N802
        s = self.s
        path = self.path.split("?")[0]
        if not self._authorised():
            return
        if path in ("/health", "/ping"):
            self._send(503 if s.engine_dead else 200, b"")
        elif path == "/version":
            self._send(200, {"version": s.version})
        elif path == "/load":
            self._send(200, {"server_load": 0})
        elif path.startswith("/metrics"):
            self._send(200, s.metrics.render() + (s.lora.metrics_text() if s.lora else ""),
                       "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/v1/models":
            now = int(time.time())
            data = [{"id": name, "object": "model", "created": now, "owned_by": "vllm",
                     "root": s.model, "parent": None, "max_model_len": s.max_model_len,
                     "permission": [{"id": "modelperm-" + secrets.token_hex(8), "object": "model_permission",
                                     "created": now, "allow_create_engine": False, "allow_sampling": True,
                                     "allow_logprobs": True, "allow_search_indices": False,
                                     "allow_view": True, "allow_fine_tuning": False,
                                     "organization": "*", "group": None, "is_blocking": False}]}
                    for name in s.served_names]
            data += s.lora.cards(now) if s.lora else []
            self._send(200, {"object": "list", "data": data})
        elif _is_dev_route(path):  # VLLM_SERVER_DEV_MODE=1: _standin_sleep.py
            from vllm import _standin_sleep

            _standin_sleep.handle(self, "GET", b"")
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):  # noqa: N802
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorised():
            return
        if path == "/ping":
            self._send(503 if self.s.engine_dead else 200, b"")
            return
        if path in ("/tokenize", "/detokenize"):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            if body.get("model") and body["model"] not in self.s.served_names:
                self._error(404, f"The model `{body['model']}` does not exist.", "NotFoundError", "model")
                return
            if path == "/detokenize":  # ~4 characters a token, as _count_prompt counts them back
                self._send(200, {"prompt": "".join(f"t{t % 1000:03d}" for t in body.get("tokens") or [])})
                return
            n = _count_prompt(body)
            self._send(200, {"count": n, "max_model_len": self.s.max_model_len,
                             "tokens": [(7 * k + 8187) % 8192 for k in range(n)], "token_strs": None})
            return
        if _is_dev_route(path):  # VLLM_SERVER_DEV_MODE=1: /sleep, /wake_up, ... in _standin_sleep.py
            from vllm import _standin_sleep

            _standin_sleep.handle(self, "POST", raw)
            return
        if path in ("/v1/messages", "/v1/responses"):  # Anthropic-style and Responses API: _standin_tools.py
            from vllm import _standin_tools

            _standin_tools.handle(self, path, raw)
            return
        if path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):  # _standin_lora.py
            from vllm import _standin_lora

            _standin_lora.handle(self, path, raw)
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, {"detail": "Not Found"})
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._error(400, "Invalid JSON body", "BadRequestError")
            return
        self._generate(body, chat=path == "/v1/chat/completions")

    # -- generation --

    def _generate(self, body: dict, *, chat: bool) -> None:
        s = self.s
        if s.engine_dead:
            self._error(500, "EngineCore encountered an issue. See stack trace (above) for the root cause.",
                        "InternalServerError")
            return
        model = body.get("model") or s.served
        if model not in s.served_names and not (s.lora and model in s.lora.adapters):
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
            return
        if chat and not isinstance(body.get("messages"), list):
            self._error(400, "messages: Field required", "BadRequestError", "messages")
            return
        self.toolplan = None  # tools and structured outputs: _standin_toolcalls.py
        if chat:
            from vllm import _standin_toolcalls

            self.toolplan = _standin_toolcalls.plan(body, s.args)
            if self.toolplan is not None and self.toolplan.error:
                self._error(400, self.toolplan.error, "BadRequestError")
                return
        prompt = _count_prompt(body)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        L = s.max_model_len
        if max_tokens is not None:
            max_tokens = int(max_tokens)
            if max_tokens > L:
                self._error(400, f"max_tokens={max_tokens} cannot be greater than max_model_len="
                                 f"max_total_tokens={L}. Please request fewer output tokens. "
                                 f"(parameter=max_tokens, value={max_tokens})", "BadRequestError", "max_tokens")
                return
            if prompt + max_tokens > L:
                self._error(400, f"This model's maximum context length is {L} tokens. However, you "
                                 f"requested {prompt + max_tokens} tokens ({prompt} in the messages, "
                                 f"{max_tokens} in the completion). Please reduce the length of the "
                                 "messages or completion.", "BadRequestError", "input_tokens")
                return
        natural = max_tokens if (max_tokens is not None and body.get("ignore_eos")) else s.reply_tokens
        budget = L - prompt if max_tokens is None else max_tokens
        n = min(natural, budget)
        finish = "length" if (max_tokens is not None and n >= max_tokens) else "stop"
        words = s.reply_text
        offset = prompt if words is _WORDS else 0  # markdown and code start at their beginning
        pieces = [words[(k + offset) % len(words)] for k in range(n)]
        if self.toolplan is not None:  # a tool call or a structured reply, cut at max_tokens as any reply
            planned = self.toolplan.pieces()
            pieces, n = planned[:budget], min(len(planned), budget)
            finish = "length" if len(planned) > budget else (self.toolplan.finish or "stop")
        if s.sleep is not None:  # asleep: queued, neither answered nor refused, until /wake_up
            self.sleep_epoch = s.sleep.admit()
            if s.sleep.no_weights:  # woken after level 2 without reload_weights
                pieces = ["<no weights>"] * len(pieces)
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(8)
        started = time.monotonic()
        with s.metrics.lock:
            s.metrics.running += 1
        s.metrics.add_tokens(prompt=prompt)
        if s.lora:
            s.lora.begin(model)
        try:
            if body.get("stream"):
                self._stream(body, chat, rid, created, model, prompt, pieces, finish, started, max_tokens or budget)
            else:
                self._whole(chat, rid, created, model, prompt, pieces, finish, started, max_tokens or budget)
        finally:
            with s.metrics.lock:
                s.metrics.running -= 1
            if s.lora:
                s.lora.end(model)
            if s.sleep is not None:
                s.sleep.done()
                self.sleep_epoch = None

    def _sleep_token(self, k: int, started: float) -> None:
        """Token k is due k+1 intervals after the start. Sleeping 1/rate per token fell behind:
        each sleep overshoots by ~0.1 ms, so 2,000 tokens/s asked gave under 1,700."""
        epoch = getattr(self, "sleep_epoch", None)
        if epoch is not None and not self.s.sleep.step(epoch):  # /sleep?mode=abort ended it
            raise ClientGone
        if self.s.token_rate > 0:
            due = self.s.ttft_s + k / self.s.token_rate if self.s.ttft_s is not None else (k + 1) / self.s.token_rate
            delay = started + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _whole(self, chat, rid, created, model, prompt, pieces, finish, started, max_tokens) -> None:
        s = self.s
        for k in range(len(pieces)):
            self._sleep_token(k, started)
        n = len(pieces)
        s.metrics.add_tokens(generated=n)
        text = "".join(p for p in pieces if isinstance(p, str))
        usage = {"prompt_tokens": prompt, "total_tokens": prompt + n, "completion_tokens": n,
                 "prompt_tokens_details": None}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                              "annotations": None, "audio": None, "function_call": None,
                                              "tool_calls": [], "reasoning": None},
                      "logprobs": None, "finish_reason": finish, "stop_reason": None, "token_ids": None,
                      "routed_experts": None}
            if getattr(self, "toolplan", None) is not None and self.toolplan.calls:
                choice["message"].update(content=None, tool_calls=[
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in self.toolplan.calls])
            out = {"id": rid, "object": "chat.completion", "created": created, "model": model,
                   "choices": [choice], "service_tier": None, "system_fingerprint": s.fingerprint,
                   "usage": usage, "prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None,
                   "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                      "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None,
                      "routed_experts": None}
            out = {"id": rid, "object": "text_completion", "created": created, "model": model,
                   "choices": [choice], "service_tier": None, "system_fingerprint": s.fingerprint,
                   "usage": usage, "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        latency = time.monotonic() - started
        s.metrics.finished(finish, prompt, n, latency, latency, max_tokens)
        self._send(200, out)

    def _chunk(self, payload: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ClientGone from exc

    def _event(self, obj) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
        self._chunk(f"data: {data}\n\n".encode())

    def _stream(self, body, chat, rid, created, model, prompt, pieces, finish, started, max_tokens) -> None:
        s = self.s
        opts = body.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage")) or s.args.enable_force_include_usage
        continuous = bool(opts.get("continuous_usage_stats")) and include_usage
        self.send_response_only(200, "OK")
        self.send_header("date", self.date_time_string())
        self.send_header("server", "uvicorn")
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._access(200)
        obj = "chat.completion.chunk" if chat else "text_completion"
        sent = 0
        ttft = 0.0

        def usage(done: int) -> dict:
            return {"prompt_tokens": prompt, "total_tokens": prompt + done, "completion_tokens": done}

        def choice(piece: str | None, fin: str | None, role: bool = False) -> dict:
            if chat:
                delta = {"role": "assistant", "content": ""} if role else (
                    piece if isinstance(piece, dict) else {"content": piece} if piece is not None else {})
                c = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}
            else:
                c = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": fin}
            if fin is not None:
                c["stop_reason"] = None
            elif not role:
                c["token_ids"] = None
            return c

        def chunk(c: dict, done: int) -> dict:
            out = {"id": rid, "object": obj, "created": created, "model": model, "choices": [c]}
            if continuous:
                out["usage"] = usage(done)
            return out

        try:
            if chat:
                first = chunk(choice(None, None, role=True), 0)
                first["prompt_token_ids"] = None
                first["prompt_text"] = None
                self._event(first)
            for k, piece in enumerate(pieces):
                self._sleep_token(k, started)
                if s.mode == "crash_mid_stream" and k >= s.crash_after:
                    s.engine_death()
                    s.metrics.add_tokens(generated=sent)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                last = k == len(pieces) - 1
                self._event(chunk(choice(piece, finish if last else None), k + 1))
                sent += 1
                if k == 0:
                    ttft = time.monotonic() - started
            if not pieces:
                self._event(chunk(choice("", finish), 0))
        except ClientGone:
            self._account(prompt, sent, "abort", started, ttft, max_tokens)
            self.close_connection = True
            return
        # Counted before the stream's end goes out, as vLLM's output loop records a step's stats
        # before the API server can send it: a client that scrapes right after [DONE] sees them.
        self._account(prompt, sent, finish, started, ttft, max_tokens)
        try:
            if include_usage:
                self._event({"id": rid, "object": obj, "created": created, "model": model, "choices": [],
                             "usage": usage(sent)})
            self._event("[DONE]")
            self._chunk(b"")
        except ClientGone:
            self.close_connection = True

    def _account(self, prompt: int, generated: int, reason: str, started: float, ttft: float,
                 max_tokens: int) -> None:
        self.s.metrics.add_tokens(generated=generated)
        self.s.metrics.finished(reason, prompt, generated, time.monotonic() - started, ttft, max_tokens)


def _is_dev_route(path: str) -> bool:
    from vllm._standin_sleep import is_dev_route

    return is_dev_route(path)


def _count_prompt(body: dict) -> int:
    """A deterministic stand-in for tokenisation: about 4 characters a token, plus a chat template."""
    if isinstance(body.get("messages"), list):
        n = 1
        for msg in body["messages"]:
            content = msg.get("content") if isinstance(msg, dict) else ""
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            n += 5 + (len(content or "") + 3) // 4
        return n + 3
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        if prompt and isinstance(prompt[0], int):
            return len(prompt)
        prompt = " ".join(str(p) for p in prompt)
    return 1 + (len(prompt or "") + 3) // 4
