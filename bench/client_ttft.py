"""What the benchmark client itself adds to the time to first token, without a GPU: llmdesk's load
generator and vLLM 0.26's `vllm bench serve` (with its aiohttp session trusting the environment, as
shipped, and without) against one stand-in that batches like an engine.

    python bench/client_ttft.py --vllm-python /tmp/vllm-venv/bin/python --tokenizer /tmp/tiny-model

The stand-in (``--serve PORT``, started by the script in its own process) runs engine steps: each step
takes every request that has arrived, costs 6 ms plus 24 µs per prompt token of the new ones (256 each),
and gives every running request one token; a request streams its tokens as vLLM's completions endpoint
does and ends after `max_tokens`. Its figures are of the same size as an 8B model's on an H100 (TTFT
~15 ms at c=1, ~110 ms at c=16). What differs between the clients is only the client.

Found on the development VM (2026-12-06): at c=1 vLLM's client measures ~0.55 ms more TTFT than
llmdesk's, and the same without `trust_env` (aiohttp looks up proxies and ~/.netrc for every request
inside vLLM's timed span); at c=16 the medians of all three move by several percent from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEP_S, PER_TOKEN_S, PROMPT_TOKENS = 0.006, 24e-6, 256
CHUNK = (b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,'
         b'"text":" a","logprobs":null,"finish_reason":null}],"usage":null}\n\n')


def serve(port: int) -> None:
    from aiohttp import web

    pending: list = []
    running: list = []
    wake = asyncio.Event()

    async def engine() -> None:
        while True:
            if not pending and not running:
                wake.clear()
                await wake.wait()
            new = pending[:]
            pending.clear()
            await asyncio.sleep(STEP_S + PER_TOKEN_S * PROMPT_TOKENS * len(new))
            running.extend(new)
            for request in running[:]:
                request["done"] += 1
                request["queue"].put_nowait(request["done"])
                if request["done"] >= request["n"]:
                    running.remove(request)

    async def completions(http_request):
        body = await http_request.json()
        request = {"n": int(body.get("max_tokens", 16)), "done": 0, "queue": asyncio.Queue()}
        pending.append(request)
        wake.set()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(http_request)
        while await request["queue"].get() < request["n"]:
            await response.write(CHUNK)
        await response.write(CHUNK)
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": request["n"],
                 "total_tokens": PROMPT_TOKENS + request["n"]}
        await response.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(_):
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": 4096}]})

    async def start(app) -> None:
        app["engine"] = asyncio.create_task(engine())

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.on_startup.append(start)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def llmdesk_ttft(port: int, concurrency: int, prompts: int) -> float:
    from llmdesk.core.bench.loadgen import Target, run_level
    from llmdesk.core.bench.workload import Request

    request = Request(" hello" * (PROMPT_TOKENS - 1), 128, PROMPT_TOKENS)
    result = asyncio.run(run_level(Target(f"http://127.0.0.1:{port}/v1", "m"), [request] * prompts,
                                   concurrency=concurrency, warmups=[request] * concurrency))
    return result.metrics.ttft_ms.percentiles[50]


VLLM_RUN = """
import aiohttp, contextlib, io, sys
trust = sys.argv[1] == "1"
if not trust:
    made = aiohttp.ClientSession.__init__
    def init(self, *a, **k):
        k["trust_env"] = False
        made(self, *a, **k)
    aiohttp.ClientSession.__init__ = init
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(); add_cli_args(parser)
for c, n in [(int(x.split(':')[0]), x.split(':')[1]) for x in sys.argv[5].split(',')]:
    args = parser.parse_args(["--backend", "vllm", "--model", sys.argv[3], "--served-model-name", "m",
        "--host", "127.0.0.1", "--port", sys.argv[2], "--dataset-name", "random", "--random-input-len", "256",
        "--random-output-len", "128", "--ignore-eos", "--num-prompts", n, "--max-concurrency", str(c),
        "--num-warmups", str(c), "--seed", sys.argv[4], "--disable-tqdm", "--temperature", "0"])
    with contextlib.redirect_stdout(io.StringIO()):
        result = main(args)
    print("RESULT", c, result["median_ttft_ms"], flush=True)
"""


def vllm_ttfts(python: str, tokenizer: str, port: int, levels: dict[int, int], trust_env: bool, seed: int) -> dict:
    spec = ",".join(f"{c}:{n}" for c, n in levels.items())
    done = subprocess.run([python, "-c", VLLM_RUN, "1" if trust_env else "0", str(port), tokenizer, str(seed), spec],
                          capture_output=True, text=True, timeout=1800)
    out = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            _, c, value = line.split()
            out[int(c)] = float(value)
    if not out:
        raise SystemExit(done.stderr[-2000:])
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--vllm-python", help="a Python with vLLM 0.26 (no GPU needed): measure its client too")
    ap.add_argument("--tokenizer", help="a local tokenizer folder for vLLM's random dataset")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if a.serve:
        serve(a.serve)
        return 0
    from tests.fakes.standin_server import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], start_new_session=True)
    try:
        import httpx

        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200:
                    break
            time.sleep(0.1)
        levels = {1: 32, 16: 256}
        figures: dict[str, dict[int, list[float]]] = {}
        for run in range(a.runs):
            for c, n in levels.items():
                figures.setdefault("llmdesk", {}).setdefault(c, []).append(llmdesk_ttft(port, c, n))
            if a.vllm_python:
                for name, trust in (("vllm", True), ("vllm, trust_env off", False)):
                    for c, value in vllm_ttfts(a.vllm_python, a.tokenizer, port, levels, trust, run).items():
                        figures.setdefault(name, {}).setdefault(c, []).append(value)
        print(f"TTFT p50 (ms) against the batching stand-in, {a.runs} runs each (median; the runs)")
        for name, by_level in figures.items():
            cells = [f"c={c}: {statistics.median(v):6.2f} ({', '.join(f'{x:.2f}' for x in v)})"
                     for c, v in by_level.items()]
            print(f"{name:<22}" + "   ".join(cells))
    finally:
        with contextlib.suppress(ProcessLookupError):
            import os
            import signal

            os.killpg(server.pid, signal.SIGKILL)
        server.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
