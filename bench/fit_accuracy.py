"""Predicted vs vLLM-logged KV cache, per model shape and GPU, from recorded real start-ups.

    python bench/fit_accuracy.py [tests/data/vllm-runs]

Each run is NAME.json (GPU as NVML saw it, vLLM arguments, config.json, weight bytes) beside
NAME.log (vLLM's output), written by tests/gpu/fit_runs.py on a GPU host. The goal: KV-cache tokens
within ±5% at default settings, and never a "fits" verdict where vLLM refused to start.
tests/unit/test_fit_accuracy.py runs the same comparison in the CPU suite.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmdesk.core.base.units import GIB  # noqa: E402
from llmdesk.core.fit.memory_model import VERDICT_FITS, FitReport, LaunchSettings, ModelSpec, plan_fit  # noqa: E402
from llmdesk.core.fit.model_config import geometry_from_config  # noqa: E402
from llmdesk.core.fit.quant import detect_format  # noqa: E402
from llmdesk.core.fit.vllm_memory_log import MemoryLines, parse_memory_lines  # noqa: E402
from llmdesk.core.machine.gpus import GpuInfo  # noqa: E402

RUNS = ROOT / "tests" / "data" / "vllm-runs"
GOAL = 0.05


@dataclass(frozen=True)
class Comparison:
    name: str
    gpu: str
    args: tuple[str, ...]
    logged: MemoryLines
    report: FitReport
    log_text: str = ""

    @property
    def refusal_foretold(self) -> str | None:
        """The fit's note that quotes vLLM's own error for this refusal (a missing package), if it has one."""
        for note in self.report.notes:
            _, said, error = note.partition("stops with: ")
            if said and error in self.log_text:
                return note
        return None

    @property
    def refused(self) -> bool:
        return self.logged.kv_cache_tokens is None

    @property
    def kv_error(self) -> float | None:
        """Relative error of predicted vs logged KV-cache memory (the tokens follow from it)."""
        if self.logged.kv_cache_gib is None or self.logged.kv_cache_gib <= 0:
            return None
        return self.report.kv_cache_bytes / GIB / self.logged.kv_cache_gib - 1

    @property
    def weights_error(self) -> float | None:
        """Relative error of the fit's loaded weights per GPU vs vLLM's "Model loading took X GiB"."""
        if not self.logged.weights_gib:
            return None
        return self.loaded_bytes / GIB / self.logged.weights_gib - 1

    @property
    def loaded_bytes(self) -> int:
        """What vLLM counts as model loading: the checkpoint, the RoPE tables and the LoRA slots."""
        extra = sum(a.bytes for k, a in self.report.allowances.items() if k in ("rope_tables", "lora"))
        return self.report.weights_bytes_per_gpu + extra

    @property
    def token_error(self) -> float | None:
        if not self.logged.kv_cache_tokens:
            return None
        return self.report.kv_cache_tokens / self.logged.kv_cache_tokens - 1

    @property
    def default_settings(self) -> bool:
        """Only on-the-fly fp8 and/or tensor parallelism: the goal's "default settings" runs."""
        pairs = [self.args[i:i + 2] for i in range(0, len(self.args), 2)]
        return all(p == ("--quantization", "fp8") or (p[0] == "--tensor-parallel-size" and len(p) == 2)
                   for p in pairs)


def settings_from_args(args: list[str]) -> LaunchSettings:
    values: dict = {}
    flags = {"--gpu-memory-utilization": ("gpu_memory_utilization", float), "--max-model-len": ("max_model_len", int),
             "--max-num-seqs": ("max_num_seqs", int), "--max-num-batched-tokens": ("max_num_batched_tokens", int),
             "--kv-cache-dtype": ("kv_cache_dtype", str), "--quantization": ("quantization", str),
             "--tensor-parallel-size": ("tensor_parallel_size", int), "--max-loras": ("max_loras", int),
             "--max-lora-rank": ("max_lora_rank", int)}
    i = 0
    while i < len(args):
        if args[i] == "--enforce-eager":
            values["enforce_eager"] = True
        elif args[i] == "--enable-lora":
            values.setdefault("max_loras", 1)  # vLLM's default: one slot (of rank 16, LaunchSettings' default too)
        elif args[i] in flags:
            key, kind = flags[args[i]]
            values[key] = kind(args[i + 1])
            i += 1
        i += 1
    return LaunchSettings(**values)


def compare(record_path: Path) -> Comparison:
    record = json.loads(record_path.read_text())
    gpu_record = record["gpu"]
    total = gpu_record["memory_total_bytes"]
    gpu = GpuInfo(index=0, name=gpu_record["name"], uuid="recorded", memory_total_bytes=total,
                  memory_free_bytes=gpu_record.get("memory_free_bytes") or total,
                  memory_used_bytes=gpu_record.get("memory_used_bytes") or 0,
                  compute_capability=tuple(gpu_record["compute_capability"]),
                  driver_version=gpu_record.get("driver_version"), cuda_driver_version=None,
                  memory_reserved_bytes=gpu_record.get("memory_reserved_bytes"))
    config = record["config"]
    spec = ModelSpec(name=record["name"], geometry=geometry_from_config(config),
                     checkpoint_format=detect_format(config), weights_bytes=record["weights_bytes"],
                     weights_source="recorded")
    settings = settings_from_args(record["args"])
    # a tensor-parallel run recorded its first GPU; the others were the same model
    report = plan_fit(spec, [gpu] * (settings.tensor_parallel_size or 1), settings)
    log_text = record_path.with_suffix(".log").read_text(errors="replace")
    return Comparison(record["name"], gpu.name, tuple(record["args"]), parse_memory_lines(log_text), report, log_text)


def load_comparisons(folder: Path = RUNS) -> list[Comparison]:
    return [compare(path) for path in sorted(folder.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else RUNS
    rows = load_comparisons(folder)
    print(f"{'run':<18} {'GPU':<22} {'args':<44} {'KV GiB pred/vLLM':>18} {'err':>7} "
          f"{'KV tokens pred/vLLM':>23} {'err':>7}  verdict")
    failures = 0
    for c in rows:
        kv = f"{c.report.kv_cache_bytes / GIB:.2f}/{c.logged.kv_cache_gib}"
        tokens = f"{c.report.kv_cache_tokens:,}/{c.logged.kv_cache_tokens:,}" if c.logged.kv_cache_tokens else \
            f"{c.report.kv_cache_tokens:,}/refused"
        kv_err = f"{c.kv_error:+.1%}" if c.kv_error is not None else "—"
        tok_err = f"{c.token_error:+.1%}" if c.token_error is not None else "—"
        verdict = c.report.verdict
        if c.refused and c.refusal_foretold:
            verdict += " (vLLM refused for a missing package; the fit's note quotes its error)"
        elif c.refused:
            verdict += f" (vLLM refused; its longest: {c.logged.estimated_max_model_len or 0:,}, ours: " \
                       f"{c.report.largest_max_model_len:,})"
        print(f"{c.name:<18} {c.gpu:<22} {' '.join(c.args) or 'defaults':<44} {kv:>18} {kv_err:>7} "
              f"{tokens:>23} {tok_err:>7}  {verdict}")
        if c.refused and c.report.verdict == VERDICT_FITS and not c.refusal_foretold:
            failures += 1
        if c.default_settings and c.token_error is not None and abs(c.token_error) > GOAL:
            failures += 1
    print(f"\n{len(rows)} runs; goal: ±{GOAL:.0%} KV tokens at default settings, no 'fits' where vLLM refused: "
          + ("met" if not failures else f"MISSED ({failures})"))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
