"""The memory figures vLLM 0.26 logs at start-up, read from its log text.

These are the ground truth the fit engine is calibrated against (bench/fit_accuracy.py) and that
the Server page shows after a start. Lines are matched loosely, as vLLM's wording drifts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"([-\d.,]+)"
_PATTERNS = {
    "weights_gib": rf"Model loading took {_NUMBER} GiB",
    "kv_cache_gib": rf"Available KV cache memory: {_NUMBER} GiB",
    "kv_cache_tokens": rf"GPU KV cache size: {_NUMBER} tokens",
    "max_num_batched_tokens": rf"max_num_batched_tokens={_NUMBER}",
    "cuda_graph_gib": rf"Graph capturing finished in .*? took {_NUMBER} GiB",
}
_CONCURRENCY = re.compile(rf"Maximum concurrency for {_NUMBER} tokens per request: {_NUMBER}x")
_BREAKDOWN = re.compile(
    rf"Free memory on device \({_NUMBER}/{_NUMBER} GiB\) on startup\. Desired GPU memory utilization is "
    rf"\({_NUMBER}, {_NUMBER} GiB\)\. Actual usage is {_NUMBER} GiB for weight, {_NUMBER} GiB for peak "
    rf"activation, {_NUMBER} GiB for non-torch memory, and {_NUMBER} GiB for CUDAGraph memory")
_TOO_SHORT = re.compile(
    rf"max seq len \({_NUMBER}\).*?\({_NUMBER} GiB KV cache is needed.*?available KV cache memory \({_NUMBER} GiB\)"
    rf".*?estimated maximum model length is {_NUMBER}", re.S)


@dataclass(frozen=True)
class MemoryLines:
    weights_gib: float | None = None
    kv_cache_gib: float | None = None
    kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    concurrency_length: int | None = None
    max_num_batched_tokens: int | None = None
    cuda_graph_gib: float | None = None
    free_gib: float | None = None
    total_gib: float | None = None
    utilization: float | None = None
    requested_gib: float | None = None
    activation_gib: float | None = None
    non_torch_gib: float | None = None
    # when the context did not fit: what it needed, what there was, and vLLM's largest length
    needed_len: int | None = None
    needed_kv_gib: float | None = None
    estimated_max_model_len: int | None = None


def _num(text: str) -> float:
    return float(text.replace(",", "").rstrip("."))


def parse_memory_lines(log_text: str) -> MemoryLines:
    found: dict[str, float | int] = {}
    for key, pattern in _PATTERNS.items():
        if match := re.search(pattern, log_text):
            value = _num(match.group(1))
            found[key] = int(value) if key in ("kv_cache_tokens", "max_num_batched_tokens") else value
    if match := _CONCURRENCY.search(log_text):
        found["concurrency_length"], found["max_concurrency"] = int(_num(match.group(1))), _num(match.group(2))
    if match := _BREAKDOWN.search(log_text):
        keys = ("free_gib", "total_gib", "utilization", "requested_gib", "weights_gib", "activation_gib",
                "non_torch_gib", "cuda_graph_gib")
        found.update({key: _num(value) for key, value in zip(keys, match.groups())})
    if match := _TOO_SHORT.search(log_text):
        found["needed_len"], found["estimated_max_model_len"] = int(_num(match.group(1))), int(_num(match.group(4)))
        found["needed_kv_gib"], found["kv_cache_gib"] = _num(match.group(2)), _num(match.group(3))
    return MemoryLines(**found)  # type: ignore[arg-type]
