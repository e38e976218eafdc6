"""The load generator's core: one level of load, as `vllm bench serve` sends it: at most `concurrency`
requests in flight (`--max-concurrency`), optionally arriving as a Poisson process at `rate` requests per
second (`--request-rate`, burstiness 1); each streams a reply of exactly its output length
(`ignore_eos`), and each chunk's arrival is timed (TTFT, the gaps between chunks, E2E).

As in vLLM's request functions, every chunk that carries a choice counts as a token's arrival, even
when its text is empty (a byte-level piece), and token counts come from the server's usage report.
Cancelling the task aborts the requests in flight: their connections close, and vLLM aborts a request
whose client has gone. Async, no Qt.

The requests go out through aiohttp, as vLLM's own bench client sends them: with httpx each streamed
token cost this process 30-130 µs of CPU (h11's per-chunk events, anyio's time-out scopes, four async
generators per line), so on a small machine the client, not the server, set the pace.
`bench/loadgen_cpu.py` measures the cost per token (goal: at most 25 µs). A line that is a plain
token chunk (vLLM's compact `"choices":[{`) is timed without being parsed; usage, errors and anything
else are parsed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from llmdesk.core.bench.stats import LevelMetrics, RequestResult, level_metrics
from llmdesk.core.bench.workload import Request
from llmdesk.core.server.endpoint import bearer_headers, normalise_base_url, vllm_error_message

Progress = Callable[[int, int], None]  # (finished requests, requests sent so far)


@dataclass(frozen=True)
class LevelResult:
    concurrency: int | None
    rate: float | None
    metrics: LevelMetrics
    results: tuple[RequestResult, ...]


@dataclass(frozen=True)
class Target:
    """Where requests go: the server's /v1 base, the model, the endpoint and the key."""

    base_url: str
    model: str
    endpoint: str = "completions"
    api_key: str | None = None

    @property
    def url(self) -> str:
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        return normalise_base_url(self.base_url) + path


async def run_level(target: Target, requests: Iterable[Request] | AsyncIterable[Request], *, concurrency: int | None,
                    rate: float | None = None, warmups: Sequence[Request] = (), duration_s: float | None = None,
                    slo_ms: dict[str, float] | None = None, timeout_s: float = 600, seed: int = 0,
                    on_progress: Progress | None = None) -> LevelResult:
    """Send the requests (after the warm-ups, left out of the figures). With `duration_s`, stop sending
    new ones once that long has passed and let those in flight finish; the level lasts from the first
    measured request to the last reply."""

    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency is at least 1")
    if rate is not None and not rate > 0:
        raise ValueError("a request rate is above 0")
    import aiohttp

    slots = concurrency or 1024
    headers = bearer_headers(target.api_key)
    timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=timeout_s)
    connector = aiohttp.TCPConnector(limit=slots, use_dns_cache=True)
    # trust_env off: a benchmark of a local server must not go through the user's proxy
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers, trust_env=False,
                                     read_bufsize=2**16) as client:
        for request in warmups:
            await _one(client, target, request)
        gate = asyncio.Semaphore(concurrency) if concurrency else None
        arrivals = random.Random(seed)
        tasks: list[asyncio.Task[RequestResult]] = []
        finished = 0

        async def limited(request: Request) -> RequestResult:
            nonlocal finished
            try:
                if gate is not None and rate is not None:  # arrivals are timed; the gate only queues them
                    async with gate:
                        return await _one(client, target, request)
                return await _one(client, target, request)
            finally:
                if gate is not None and rate is None:
                    gate.release()
                finished += 1
                if on_progress is not None:
                    on_progress(finished, len(tasks))

        started = time.perf_counter()
        deadline = started + duration_s if duration_s else None
        next_arrival = started
        try:
            async for request in _each(requests):
                if rate is not None:
                    next_arrival += arrivals.expovariate(rate)
                    await asyncio.sleep(max(0.0, next_arrival - time.perf_counter()))
                elif gate is not None:
                    await gate.acquire()  # sending at once, at most `concurrency` in flight
                if deadline is not None and time.perf_counter() >= deadline:
                    if gate is not None and rate is None:
                        gate.release()
                    break
                tasks.append(asyncio.create_task(limited(request)))
                await asyncio.sleep(0)  # let the request go out before drawing the next
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        duration = time.perf_counter() - started
    if not results:
        raise ValueError("a level needs at least one request")
    return LevelResult(concurrency, rate, level_metrics(results, duration, slo_ms=slo_ms), tuple(results))


async def _each(requests: Iterable[Request] | AsyncIterable[Request]) -> AsyncIterator[Request]:
    """A list of requests, or an async source of them (a duration's requests, made as they are needed)."""
    if hasattr(requests, "__aiter__"):
        async for request in requests:
            yield request
    else:
        for request in requests:
            yield request


def _body(target: Target, request: Request) -> dict:
    body = {"model": target.model, "max_tokens": request.output_len, "ignore_eos": True, "temperature": 0.0,
            "stream": True, "stream_options": {"include_usage": True}}
    if target.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": request.prompt}]
    else:
        body["prompt"] = request.prompt
    return body


_TOKEN_CHUNK = b'"choices":[{'


async def _one(client, target: Target, request: Request) -> RequestResult:
    import aiohttp

    sent = time.perf_counter()
    arrivals: list[float] = []  # one per chunk that carries a choice: a token's arrival
    usage: dict = {}
    try:
        async with client.post(target.url, json=_body(target, request)) as response:
            if response.status != 200:
                text = (await response.read()).decode("utf-8", "replace")
                return RequestResult(ok=False, error=f"HTTP {response.status}: {vllm_error_message(text)[:200]}")
            async for raw in response.content:  # one server-sent line at a time
                if not raw.startswith(b"data:"):
                    continue
                token = _TOKEN_CHUNK in raw and b'"error"' not in raw  # vLLM's compact token chunk: not parsed
                if not token:
                    data = raw[5:].strip()
                    if data == b"[DONE]":
                        break
                    event = json.loads(data)
                    if not isinstance(event, dict):
                        continue
                    if isinstance(event.get("error"), dict):  # vLLM reports a failure mid-stream as an event
                        return RequestResult(ok=False, error="the server failed mid-reply: "
                                             + vllm_error_message(data.decode("utf-8", "replace"))[:200])
                    token = bool(event.get("choices"))  # a token chunk spelt with spaces (another server)
                    if not token and isinstance(event.get("usage"), dict):
                        usage = event["usage"]
                if token:
                    arrivals.append(time.perf_counter())
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return RequestResult(ok=False, error=_transport_error(exc))
    if not arrivals:
        return RequestResult(ok=False, error="the server sent no tokens")
    itls = tuple(b - a for a, b in zip(arrivals, arrivals[1:]))
    output = _count(usage.get("completion_tokens")) or len(arrivals)
    return RequestResult(ok=True, prompt_tokens=_count(usage.get("prompt_tokens")) or request.input_len,
                         output_tokens=output, ttft_s=arrivals[0] - sent, latency_s=time.perf_counter() - sent,
                         itls_s=itls)


def _transport_error(exc: BaseException) -> str:
    """A failed request's reason, named as a person reads it (the class says connect, read or protocol)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        kind = "ConnectError"
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        kind = "RemoteProtocolError: the server closed the connection"
    elif isinstance(exc, asyncio.TimeoutError):
        kind = "ReadTimeout"
    else:
        kind = type(exc).__name__
    return f"{kind}: {exc}"[:200]


def _count(value) -> int:
    return value if isinstance(value, int) and 0 <= value < 10**9 else 0
