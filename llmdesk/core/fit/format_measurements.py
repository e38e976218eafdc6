"""What real vLLM 0.26.0 did with each checkpoint format on one GPU generation: the GEMM kernels it
picked and the output tokens/s of the Llama-3.1-8B shape at 1 and 64 concurrent requests.

The table is format_measurements.json beside this module, written by bench/format_table.py from the
GPU host's runs (bench/format_speed.py for speed, tests/gpu/host.sh quant-start for the kernels of
the formats without a speed run). One entry per compute capability, with the card and the date.
Speeds are compared only within one entry (one card model). Formats measured in one run are compared
directly. A format from a later run of the same card model carries that run's date and the BF16 speed
measured in the same run, and is compared through it (its speed relative to BF16 against the other's):
absolute figures moved by 12% between two H100 hosts' BF16 runs, ratios within a run are what holds.
Figures of different entries are never mixed.
Pure: no Qt, no GPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Mapping

from llmdesk.core.fit.quant import QuantFormat
from llmdesk.core.fit.vllm_kernel_log import short_name

MEASURED_CONCURRENCY = (1, 64)
# Below this fraction of another fitting variant's speed (at either measured concurrency), a variant
# is "much slower": the ranking does not put it first without saying why.
MUCH_SLOWER = 2 / 3
_TABLE = "format_measurements.json"


@dataclass(frozen=True)
class FormatMeasurement:
    format_id: str  # format_id(): "awq:4", "bf16:16"
    card: str  # "NVIDIA H100 80GB HBM3"
    date: str
    shape: str  # the model shape measured, "Llama-3.1-8B"
    kernels: tuple[str, ...]  # vLLM's kernel class names for the linear layers, in log order
    tokens_per_s: Mapping[int, float]  # concurrency -> output tokens/s; empty: kernels only
    bf16_tokens_per_s: Mapping[int, float] = field(default_factory=dict)  # BF16 in the same run: the bridge

    @property
    def kernel_names(self) -> str:
        """'Marlin', 'CutlassFP8ScaledMM + Machete' (short names, in vLLM's order)."""
        return " + ".join(dict.fromkeys(short_name(k) for k in self.kernels))


def format_id(fmt: QuantFormat) -> str:
    """The table's key: a format key and its bit width (GPTQ 4- and 8-bit share a key, not a speed)."""
    return f"{fmt.key}:{fmt.bits:g}"


def measurement(fmt: QuantFormat, capability: tuple[int, int] | None,
                table: Mapping | None = None) -> FormatMeasurement | None:
    """What was measured for this format on GPUs of this compute capability, or None."""
    entry = (table if table is not None else bundled_table()).get("capabilities", {}).get(_cap(capability))
    if not entry:
        return None
    found = entry.get("formats", {}).get(format_id(fmt))
    if not found:
        return None
    return FormatMeasurement(format_id(fmt), entry["card"], found.get("date", entry["date"]), entry["shape"],
                             tuple(found.get("kernels", ())), _speeds(found.get("tokens_per_s")),
                             _speeds(found.get("bf16_tokens_per_s")))


def _speeds(figures: Mapping | None) -> dict[int, float]:
    return {int(c): float(v) for c, v in (figures or {}).items()}


def speed_ratio(a: FormatMeasurement, b: FormatMeasurement, concurrency: int) -> float | None:
    """a's output tokens/s over b's at one concurrency: direct when both come from one run; from two runs of the
    same card model, each one's speed relative to the BF16 of its own run; otherwise None."""
    if a.card != b.card:
        return None
    x, y = a.tokens_per_s.get(concurrency), b.tokens_per_s.get(concurrency)
    if not (x and y):
        return None
    if a.date == b.date:
        return x / y
    x_bf16, y_bf16 = a.bf16_tokens_per_s.get(concurrency), b.bf16_tokens_per_s.get(concurrency)
    return (x / x_bf16) / (y / y_bf16) if x_bf16 and y_bf16 else None


def measured_line(m: FormatMeasurement | None) -> str:
    """For the format line: 'Marlin kernel; Llama-3.1-8B shape: 230 output tokens/s at 1 request, 2,000 at 64
    (vLLM 0.26 on H100, measured 2026-12-06)'; empty when nothing was measured."""
    if m is None or not (m.kernels or m.tokens_per_s):
        return ""
    parts = [f"{m.kernel_names} kernel"] if m.kernels else []
    if m.tokens_per_s:
        speeds = [f"{v:,.0f} at {c}" for c, v in sorted(m.tokens_per_s.items())]
        parts.append(f"{m.shape} shape: output tokens/s {', '.join(speeds)} concurrent")
    card = m.card.removeprefix("NVIDIA ").split(" ")[0]
    return f"{'; '.join(parts)} (vLLM 0.26 on {card}, measured {m.date})"


def _cap(capability: tuple[int, int] | None) -> str:
    return f"{capability[0]}.{capability[1]}" if capability else ""


@lru_cache(maxsize=1)
def bundled_table() -> Mapping:
    try:
        table = json.loads(resources.files(__package__).joinpath(_TABLE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a damaged install: no measurements rather than no fit
        return {}
    return table if isinstance(table, dict) else {}
