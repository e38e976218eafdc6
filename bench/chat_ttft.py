"""What llmdesk's chat client adds to time to first token, against a raw HTTP request.

    python bench/chat_ttft.py [--runs 50] [--warmup 5] [--max-tokens 8]
    python bench/chat_ttft.py --url http://127.0.0.1:8000 --model NAME [--api-key K]   # a real server

Without --url it starts the stand-in vLLM (tests/fakes/vllm_standin) on a free port. Each run sends
the same streaming /v1/chat/completions request twice, (a) with a plain httpx.AsyncClient that parses
the SSE lines itself and (b) with ``ChatClient.stream``, in alternating order, each side with one
persistent client. TTFT is taken from just before the request is sent to the first delta with
content. Goal (issue #6): the client adds at most 5 ms at the median (paired differences); the exit
status is 1 when it adds more.

Connections: ChatClient reads each reply to the end of its body, so its connection goes back to the
pool and is reused. By default the raw request stops at ``data: [DONE]`` and opens a new connection
each time (so the figure includes what reuse saves); ``--raw-reuse`` makes the raw side read to the
end and keep its connection too. The stand-in sets TCP_NODELAY as uvicorn does; without it a reused
connection waited for the client's delayed ACK (about 40 ms on Linux) before the first token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from llmdesk.core.chat.client import ChatClient, ChatParams  # noqa: E402

GOAL_MS = 5.0
MESSAGES = [{"role": "user", "content": "Say something short."}]


@contextlib.contextmanager
def standin(token_rate: int) -> Iterator[str]:
    from tests.fakes.standin_server import running_standin

    with tempfile.TemporaryDirectory() as folder, \
            running_standin(Path(folder), env={"FAKE_VLLM_TOKEN_RATE": str(token_rate)}) as root:
        yield root


async def raw_ttft(http: httpx.AsyncClient, url: str, body: dict, read_to_end: bool) -> float:
    started = time.perf_counter()
    first = None
    async with http.stream("POST", url, json=body) as resp:
        if resp.status_code != 200:
            raise SystemExit(f"raw request failed: HTTP {resp.status_code} {(await resp.aread())[:300]!r}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                if read_to_end:
                    continue
                break
            if first is not None:
                continue
            choices = json.loads(data).get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter()
    if first is None:
        raise SystemExit("the raw request got no content")
    return first - started


async def client_ttft(client: ChatClient, model: str, params: ChatParams) -> float:
    started = time.perf_counter()
    first = None
    async for delta in client.stream(model, MESSAGES, params):
        if first is None and delta.content:
            first = time.perf_counter()
    if first is None:
        raise SystemExit("ChatClient got no content")
    return first - started


def kept_connections(http: httpx.AsyncClient) -> int | None:
    """Idle connections in the pool (private httpx/httpcore attributes: None if they move)."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    connections = getattr(pool, "connections", None)
    return None if connections is None else len(connections)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


async def measure(base: str, model: str | None, api_key: str | None, runs: int, warmup: int,
                  max_tokens: int, raw_reuse: bool) -> tuple[list[float], list[float], str, list, list]:
    params = ChatParams(max_tokens=max_tokens, temperature=0.0)
    async with ChatClient(base, api_key) as client:
        model = model or (await client.models())[0]
        # The body ChatClient sends, so the server does the same work for both.
        body = {"model": model, "messages": MESSAGES, **params.body(), "stream": True,
                "stream_options": {"include_usage": True}}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(600, connect=10.0),
                                     trust_env=False) as http:
            url = f"{client.base_url}/chat/completions"
            raw, ours, raw_kept, ours_kept = [], [], [], []
            for i in range(warmup + runs):
                if i % 2:  # alternate who goes first, so neither always meets a warmer server
                    c = await client_ttft(client, model, params)
                    ours_kept.append(kept_connections(client._http))
                    r = await raw_ttft(http, url, body, raw_reuse)
                    raw_kept.append(kept_connections(http))
                else:
                    r = await raw_ttft(http, url, body, raw_reuse)
                    raw_kept.append(kept_connections(http))
                    c = await client_ttft(client, model, params)
                    ours_kept.append(kept_connections(client._http))
                if i >= warmup:
                    raw.append(r)
                    ours.append(c)
    return raw, ours, model, raw_kept[warmup:], ours_kept[warmup:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--token-rate", type=int, default=1000, help="the stand-in's tokens/s (default 1000)")
    parser.add_argument("--url", help="a running OpenAI-compatible server instead of the stand-in")
    parser.add_argument("--model")
    parser.add_argument("--api-key", default=os.environ.get("LLMDESK_API_KEY"))
    parser.add_argument("--raw-reuse", action="store_true",
                        help="the raw request reads to the end and keeps its connection (see above)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        base = args.url or stack.enter_context(standin(args.token_rate))
        raw, ours, model, raw_kept, ours_kept = asyncio.run(measure(
            base, args.model, args.api_key, args.runs, args.warmup, args.max_tokens, args.raw_reuse))
    diffs = [c - r for r, c in zip(raw, ours)]
    ms = 1000.0
    server = f"{args.url} ({model})" if args.url else f"stand-in vLLM, {args.token_rate} tokens/s ({model})"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"httpx {httpx.__version__}")
    print(f"server: {server}; {args.runs} runs each after {args.warmup} warm-up, alternating, "
          f"max_tokens {args.max_tokens}")

    def reuse(kept: list) -> str:
        if any(k is None for k in kept):
            return "unknown"
        return f"{sum(1 for k in kept if k)}/{len(kept)} replies"

    print(f"connection kept for the next request: raw {reuse(raw_kept)}, ChatClient {reuse(ours_kept)}")
    print()
    print(f"{'TTFT (ms)':<28}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}")
    for name, values in (("raw httpx request", raw), ("ChatClient.stream", ours), ("difference (paired)", diffs)):
        print(f"{name:<28}{statistics.median(values) * ms:>9.2f}{p90(values) * ms:>9.2f}"
              f"{min(values) * ms:>9.2f}{max(values) * ms:>9.2f}")
    overhead = statistics.median(diffs) * ms
    print()
    print(f"difference of the medians: {(statistics.median(ours) - statistics.median(raw)) * ms:+.2f} ms; "
          f"median paired difference: {overhead:+.2f} ms; goal <= {GOAL_MS:g} ms: "
          f"{'met' if overhead <= GOAL_MS else 'MISSED'}")
    return 0 if overhead <= GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
