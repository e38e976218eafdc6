"""The load generator's core: one level of load at a fixed concurrency, as `vllm bench serve
--max-concurrency C --ignore-eos` sends it: every request streams a completion of exactly
`output_len` tokens, and each chunk's arrival is timed (TTFT, the gaps between chunks, E2E).

Token counts come from the server's usage report (stream_options.include_usage), as vLLM's bench
takes them. Prompts are given by the caller (the workload builds them with the server's tokenizer).
Async, no Qt: the GUI runs it on its loop, `llmdesk bench` through asyncio.run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from llmdesk.core.bench.stats import LevelMetrics, RequestResult, level_metrics
from llmdesk.core.server.endpoint import normalise_base_url


@dataclass(frozen=True)
class LevelResult:
    concurrency: int
    metrics: LevelMetrics
    results: tuple[RequestResult, ...]


async def run_level(base_url: str, model: str, prompts: Sequence[str], output_len: int, concurrency: int, *,
                    api_key: str | None = None, warmups: int = 0, timeout_s: float = 600,
                    slo_ms: dict[str, float] | None = None) -> LevelResult:
    """Send every prompt (after `warmups` requests left out of the figures), at most `concurrency` at a
    time; the level's duration runs from the first measured request to the last reply."""
    import httpx

    if concurrency < 1 or output_len < 1 or not prompts:
        raise ValueError("a level needs prompts, a concurrency and an output length of at least 1")
    url = normalise_base_url(base_url) + "/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers, limits=limits, trust_env=False) as client:
        for prompt in list(prompts)[:warmups]:
            await _one(client, url, model, prompt, output_len)
        gate = asyncio.Semaphore(concurrency)

        async def limited(prompt: str) -> RequestResult:
            async with gate:
                return await _one(client, url, model, prompt, output_len)

        started = time.perf_counter()
        results = await asyncio.gather(*(limited(p) for p in prompts))
        duration = time.perf_counter() - started
    return LevelResult(concurrency, level_metrics(results, duration, slo_ms=slo_ms), tuple(results))


async def _one(client, url: str, model: str, prompt: str, output_len: int) -> RequestResult:
    import httpx

    body = {"model": model, "prompt": prompt, "max_tokens": output_len, "ignore_eos": True, "temperature": 0.0,
            "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first = last = None
    itls: list[float] = []
    usage: dict = {}
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                return RequestResult(ok=False, error=f"HTTP {response.status_code}: {text[:200]}")
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                event = json.loads(line[5:])
                if event.get("usage"):
                    usage = event["usage"]
                choices = event.get("choices") or []
                if choices and choices[0].get("text"):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        itls.append(now - last)
                    last = now
    except (httpx.HTTPError, ValueError) as exc:
        return RequestResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:200])
    if first is None:
        return RequestResult(ok=False, error="the server sent no tokens")
    return RequestResult(ok=True, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                         output_tokens=int(usage.get("completion_tokens") or len(itls) + 1),
                         ttft_s=first - sent, latency_s=time.perf_counter() - sent, itls_s=tuple(itls))
