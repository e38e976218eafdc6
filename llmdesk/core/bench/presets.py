"""Workload presets, each with the service-level limits of its use case (GuideLLM's SLO guide: chat
TTFT ≤ 200 ms and ITL ≤ 50 ms, RAG latency ≤ 3 s and TTFT ≤ 300 ms, code completion latency ≤ 2 s;
all at p99), and the default concurrency sweep."""

from __future__ import annotations

from dataclasses import dataclass

from llmdesk.core.bench.workload import Workload

DEFAULT_CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    workload: Workload
    slo_ms: dict[str, float]  # on ttft, tpot, e2el; judged at p99
    about: str


PRESETS = (
    Preset("chat", "Chat", Workload(input_len=512, output_len=256), {"ttft": 200, "tpot": 50},
           "Conversation turns: a short history in, a paragraph out. Limits: first token ≤ 200 ms, "
           "≤ 50 ms a token after (about 20 tokens/s, faster than reading)."),
    Preset("rag", "RAG", Workload(input_len=2048, output_len=256), {"ttft": 300, "e2el": 3000},
           "Retrieval-augmented answers: long documents in, a short answer out. Limits: first token "
           "≤ 300 ms, whole answer ≤ 3 s."),
    Preset("code", "Code completion", Workload(input_len=1024, output_len=64), {"e2el": 2000},
           "Editor completions: a file's context in, a few lines out. Limit: the completion ≤ 2 s."),
    Preset("vllm", "vllm bench serve defaults", Workload(input_len=1024, output_len=128), {},
           "vLLM's own defaults (random 1024 in, 128 out), to compare with `vllm bench serve`."),
)


def preset(key: str) -> Preset:
    for p in PRESETS:
        if p.key == key:
            return p
    raise KeyError(key)
