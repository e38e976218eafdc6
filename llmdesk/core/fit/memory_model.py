"""The memory model: will this model variant run under vLLM 0.26 on these GPUs, and with how much
context and concurrency?

vLLM sizes its KV cache per GPU as (measured on real 0.26.0 start-up logs, tests/data/vllm-runs):

    requested = ceil(cuda_total × gpu_memory_utilization)      cuda_total = NVML total − reserved
    kv_cache  = requested − weights − activation_peak − non_torch [− cuda_graphs, MoE models only]

Dense models capture CUDA graphs after the KV cache is allocated (H200 1B run: 128.62 − 2.3 − 0.56
− 0.22 = 125.54 ≈ the logged 125.53 GiB), so their graphs come on top of the requested share; MoE
models take an estimate of them from the KV cache first. The server refuses to start when one
request of max_model_len tokens does not fit in the KV cache.

Pure functions: no I/O, no Qt. The allowances are heuristics calibrated on real runs; their
constants live together below with the runs they come from.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.base.units import GIB, MIB
from llmdesk.core.fit.format_measurements import FormatMeasurement, measurement
from llmdesk.core.fit.model_config import ModelGeometry
from llmdesk.core.fit.lora_memory import LORA_RANKS, lora_buffer_bytes
from llmdesk.core.fit.quant import QuantFormat, gpu_support, missing_package_error, online_format, runtime_package
from llmdesk.core.machine.gpus import GpuInfo

BLOCK_SIZE = 16  # vLLM's default KV block, in tokens
DEFAULT_GPU_MEMORY_UTILIZATION = 0.92  # vLLM 0.25.1–0.27.1

# --- allowances, calibrated on vLLM 0.26.0 start-up logs (tests/data/vllm-runs, docs/benchmarks.md) ---
# Peak activation of the profiling run, seen: 0.14 GiB (5 M params), 0.56 (1B), 1.10 (8B),
# 1.13 (Qwen2.5-7B shape), 0.24 (8B with 2048 batched tokens / 256 sequences), 2.68 (Qwen3-MoE shape).
ACTIVATION_BASE = 0.1 * GIB  # torch.compile and sampler workspaces, seen even on a 5 M-parameter model
LOGITS_BYTES = 4  # the sampler's dummy run holds fp32 logits for max_num_seqs rows
MLP_PEAK_FACTOR = 4  # × batched tokens × intermediate size × 2 bytes: gate/up, activation, down in flight
# MoE peak: these × batched tokens × experts per token × (hidden, expert MLP width) × 2 bytes. Solved from two
# shapes on vLLM's older runner, Qwen3-30B-A3B's (hidden 2048, experts 768 wide) and Mixtral-8x7B's (4096, 14336):
# the fused-MoE caches grow with both widths.
MOE_PEAK_FACTOR = 9.86
MOE_EXPERT_PEAK_FACTOR = 1.23
# The MoE architectures on vLLM's new runner peaked at about half that: DeepSeek-V2-Lite, 1.09 GiB logged against
# 2.11 (one record, #21; a second new-runner shape, Qwen2-MoE, would check it).
NEW_RUNNER_MOE_PEAK_SHARE = 0.49
# gpt-oss's MXFP4 experts run on vLLM's own Triton kernels on Hopper (OAITritonMxfp4ExpertsMonolithic), which peaked
# at 1.42× the fused-MoE formula: 2.87 GiB logged (one record, 4 of 24 layers, #21). The peak is one layer's: an
# older vLLM logged the same 7.38 GiB for gpt-oss-20b (24 layers) and gpt-oss-120b (36 layers, 128 experts).
MXFP4_TRITON_MOE_PEAK_SHARE = 1.42
MXFP4_TRITON_MOE_ARCHITECTURES = frozenset({"GptOssForCausalLM"})
NON_TORCH_TP1 = 0.22 * GIB  # CUDA context and library workspaces: 0.22–0.23 GiB on every H100/H200 run
NON_TORCH_TP = 0.6 * GIB  # + NCCL buffers with tensor parallelism (llm-d's v0.11 table: 0.54–0.55)
# CUDA graphs at 512 capture sizes, seen: 0.15 GiB (4 layers) … 0.98 GiB (32 layers).
CUDA_GRAPH_BASE = 0.1 * GIB
CUDA_GRAPH_PER_LAYER = 0.0275 * GIB
# The older runner takes its own estimate of the graphs from the KV cache, and that estimate did not grow with the
# layers: 0.35 GiB for 51 capture sizes with 2 (Mixtral) and 8 (Qwen3-MoE) layers, 0.41 GiB for 83 sizes (gpt-oss,
# 4 layers). Solved from those two points.
OLDER_RUNNER_GRAPH_BASE = 0.254 * GIB
OLDER_RUNNER_GRAPH_PER_SIZE = 0.001875 * GIB
DEFAULT_MAX_CAPTURE_SIZE = 512
# vLLM raises gpt-oss's largest capture size to 1024 (GptOssForCausalLMConfig: "Overriding max cuda graph capture size
# to 1024 for performance"): 83 sizes instead of 51.
MAX_CAPTURE_SIZE_BY_ARCHITECTURE = {"GptOssForCausalLM": 1024}
# Margin kept between the best estimate and a "fits" verdict, so that a verdict of "fits" is never
# given where vLLM refuses to start (the estimate is within a few percent, not exact).
SAFETY_FRACTION = 0.015  # the recorded runs land within 0.25 GiB; untested shapes get more room
SAFETY_MIN = 0.25 * GIB
MIN_USEFUL_CONTEXT = 2048  # below this a "fit" is not worth suggesting

VERDICT_FITS = "fits"
VERDICT_SHORTER = "fits_shorter_context"
VERDICT_NEEDS_TP = "needs_tensor_parallel"
VERDICT_NO = "does_not_fit"
VERDICT_UNSUPPORTED = "unsupported"

KV_CACHE_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1, "fp8_per_token_head": 1,
                        "int8_per_token_head": 1, "float16": 2, "bfloat16": 2, "int4_per_token_head": 0.5,
                        "nvfp4": 0.5625}


@dataclass(frozen=True)
class LaunchSettings:
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_model_len: int | None = None  # None: the model's own limit, as vLLM does
    max_num_seqs: int | None = None  # None: vLLM's default for the GPU
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    enforce_eager: bool = False
    tensor_parallel_size: int | None = None  # None: the fewest GPUs that fit
    quantization: str | None = None  # on-the-fly quantization of a 16-bit checkpoint
    max_loras: int | None = None  # --enable-lora with this many adapter slots; None: LoRA off
    max_lora_rank: int = 16

    def validate(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise _bad_setting(f"gpu_memory_utilization must be above 0 and at most 1 (got "
                               f"{self.gpu_memory_utilization}).", "Use a share such as 0.9.")
        for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "tensor_parallel_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise _bad_setting(f"{name} must be a positive number (got {value}).", None)
        if self.max_loras is not None and not 1 <= self.max_loras <= 1024:
            raise _bad_setting(f"max_loras must be from 1 to 1024 (got {self.max_loras}).", "Use 1 to 8.")
        if self.max_loras is not None and self.max_lora_rank not in LORA_RANKS:
            raise _bad_setting(f"max_lora_rank {self.max_lora_rank} is not one vLLM accepts "
                               f"({', '.join(map(str, LORA_RANKS))}).", "Use the next rank up from your adapters'.")
        if self.kv_cache_dtype != "auto" and self.kv_cache_dtype not in KV_CACHE_DTYPE_BYTES:
            raise _bad_setting(f"kv_cache_dtype '{self.kv_cache_dtype}' is not one vLLM 0.26 accepts.",
                               "Use auto or fp8.")


@dataclass(frozen=True)
class ModelSpec:
    """What is known about a model before downloading it."""

    name: str
    geometry: ModelGeometry
    checkpoint_format: QuantFormat
    weights_bytes: int
    weights_source: str  # how weights_bytes was found, for people
    # What `vllm serve` takes for it: a folder with weights or a repo id; None for a bare config.json.
    serve_target: str | None = None


@dataclass(frozen=True)
class Allowance:
    bytes: int
    why: str


@dataclass(frozen=True)
class FitReport:
    model: str
    gpu_name: str
    gpu_count: int
    verdict: str
    summary: str  # one plain sentence
    quantization: str  # the format label served
    tensor_parallel_size: int
    weights_bytes: int
    weights_bytes_per_gpu: int
    weights_source: str
    kv_bytes_per_token: int  # per GPU, over every layer that keeps a KV cache
    requested_bytes_per_gpu: int
    cuda_total_bytes: int  # one GPU's memory as CUDA sees it
    allowances: dict[str, Allowance]
    cuda_graphs_in_kv_budget: bool  # whether the graphs' memory was taken from the KV cache
    kv_cache_bytes: int  # per GPU (best estimate; <= 0 when nothing is left)
    kv_cache_tokens: int  # what vLLM would log as "GPU KV cache size"
    model_max_len: int
    max_model_len: int  # the context to launch with (requested, or the largest that safely fits)
    largest_max_model_len: int  # the largest context that safely fits (0 if none)
    max_concurrency: float  # requests of max_model_len tokens that fit at once
    max_num_seqs: int
    max_num_batched_tokens: int
    gpu_support: str
    free_memory_ok: bool
    notes: tuple[str, ...] = ()
    suggested_args: tuple[str, ...] = ()
    serve_target: str | None = None  # ModelSpec.serve_target
    # What real vLLM did with this format on this GPU generation (kernel, speed), when measured.
    measured: FormatMeasurement | None = None

    @property
    def serve_command(self) -> str:
        """The `vllm serve` line to copy: the target shell-quoted, MODEL where there is none."""
        target = shlex.quote(self.serve_target) if self.serve_target else "MODEL"
        return " ".join(["vllm", "serve", target, *map(shlex.quote, self.suggested_args)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "gpu": self.gpu_name, "gpu_count": self.gpu_count,
            "verdict": self.verdict, "summary": self.summary, "quantization": self.quantization,
            "tensor_parallel_size": self.tensor_parallel_size,
            "weights_bytes": self.weights_bytes, "weights_bytes_per_gpu": self.weights_bytes_per_gpu,
            "weights_source": self.weights_source, "kv_bytes_per_token": self.kv_bytes_per_token,
            "requested_bytes_per_gpu": self.requested_bytes_per_gpu, "cuda_total_bytes": self.cuda_total_bytes,
            "cuda_graphs_in_kv_budget": self.cuda_graphs_in_kv_budget,
            "allowances": {k: {"bytes": a.bytes, "why": a.why} for k, a in self.allowances.items()},
            "kv_cache_bytes": self.kv_cache_bytes, "kv_cache_tokens": self.kv_cache_tokens,
            "model_max_len": self.model_max_len, "max_model_len": self.max_model_len,
            "largest_max_model_len": self.largest_max_model_len,
            "max_concurrency": round(self.max_concurrency, 2), "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens, "gpu_support": self.gpu_support,
            "free_memory_ok": self.free_memory_ok, "notes": list(self.notes),
            "suggested_args": list(self.suggested_args), "serve_target": self.serve_target,
            "serve_command": self.serve_command,
            "measured": None if self.measured is None else {
                "kernels": list(self.measured.kernels), "card": self.measured.card, "date": self.measured.date,
                "shape": self.measured.shape,
                "output_tokens_per_s": {str(c): v for c, v in self.measured.tokens_per_s.items()}},
        }


# --- the pieces of the model -------------------------------------------------------------------

def cuda_total_bytes(gpu: GpuInfo) -> int:
    """What CUDA (and so vLLM) sees as the card's total: NVML's total less the driver's reserve."""
    return gpu.memory_total_bytes - (gpu.memory_reserved_bytes or 0)


def vllm_batch_defaults(gpu: GpuInfo) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) that `vllm serve` 0.26 picks for this GPU."""
    large = cuda_total_bytes(gpu) >= 70 * GIB and "A100" not in gpu.name.upper()
    return (1024, 8192) if large else (256, 2048)


def kv_dtype_bytes(geometry: ModelGeometry, fmt: QuantFormat, kv_cache_dtype: str) -> float:
    if kv_cache_dtype == "auto":
        if fmt.kv_cache_dtype_hint == "fp8":
            return 1
        return geometry.dtype_bytes if geometry.dtype_bytes == 2 else 2  # vLLM runs fp32 models in 16 bits
    return KV_CACHE_DTYPE_BYTES[kv_cache_dtype]


def kv_heads_per_gpu(geometry: ModelGeometry, tp: int) -> int:
    return max(1, geometry.num_kv_heads // tp)  # replicated when tp exceeds the KV heads


def kv_bytes_per_token_per_layer(geometry: ModelGeometry, dtype_bytes: float, tp: int) -> float:
    if geometry.mla is not None:  # one latent per token, not split over TP
        return geometry.mla.latent_size * dtype_bytes
    return 2 * kv_heads_per_gpu(geometry, tp) * geometry.head_dim * dtype_bytes


def rope_table_bytes(geometry: ModelGeometry) -> int:
    """What vLLM's "Model loading took" counts beyond the checkpoint: each RoPE's cos/sin table over every
    position (rotary_embedding/base.py). Sized as float32, which the #21 records bear out (Llama, Gemma 3,
    DeepSeek MLA, Mixtral: 45-100 MiB above the checkpoint, within ±2% of the loaded figure with this term);
    Gemma 3 keeps two (local and global)."""
    dim = geometry.mla.qk_rope_head_dim if geometry.mla is not None else geometry.head_dim
    tables = 2 if geometry.model_type.startswith("gemma3") else 1
    return tables * geometry.max_position_embeddings * dim * 4


def kv_layer_slots(geometry: ModelGeometry) -> tuple[int, int]:
    """(full, sliding) layers as vLLM's hybrid KV-cache manager lays them out: with both kinds, each kind is cut
    into groups of one size (the smaller count, or the larger when it is under 1.5× the smaller) and the last
    group padded with empty layers that take memory all the same (vllm/v1/core/kv_cache_utils.py,
    "Add N padding layers"): Gemma 3 1B's 22 sliding + 4 full take 24 + 4."""
    full, sliding = geometry.full_layers, geometry.sliding_layers
    if not full or not sliding:
        return full, sliding
    group = max(full, sliding) if max(full, sliding) < 1.5 * min(full, sliding) else min(full, sliding)
    return math.ceil(full / group) * group, math.ceil(sliding / group) * group


def request_kv_bytes(geometry: ModelGeometry, per_layer: float, length: int, batched_tokens: int) -> int:
    """KV bytes one request of `length` tokens holds on one GPU, in whole blocks per layer."""
    full_layers, sliding_layers = kv_layer_slots(geometry)
    total = full_layers * math.ceil(length / BLOCK_SIZE)
    if sliding_layers:
        window_tokens = min(geometry.sliding_window - 1 + batched_tokens, length)
        total += sliding_layers * (math.ceil(window_tokens / BLOCK_SIZE) + 1)
    return int(total * BLOCK_SIZE * per_layer)


def largest_length(geometry: ModelGeometry, per_layer: float, budget: int, batched_tokens: int,
                   ceiling: int) -> int:
    """The largest max_model_len (a multiple of the block size, <= ceiling) whose request fits."""
    if budget <= 0 or request_kv_bytes(geometry, per_layer, BLOCK_SIZE, batched_tokens) > budget:
        return 0
    low, high = 1, max(1, ceiling // BLOCK_SIZE)
    while low < high:  # request_kv_bytes grows with length: binary search on blocks
        mid = (low + high + 1) // 2
        if request_kv_bytes(geometry, per_layer, mid * BLOCK_SIZE, batched_tokens) <= budget:
            low = mid
        else:
            high = mid - 1
    return min(ceiling, low * BLOCK_SIZE)


def activation_peak(geometry: ModelGeometry, tp: int, max_num_seqs: int, batched_tokens: int) -> Allowance:
    """The profiling run's peak: the larger of the MLP (or MoE) activations of one batch of
    `batched_tokens` and the sampler's fp32 logits for `max_num_seqs` rows, plus workspaces."""
    if geometry.moe is not None:
        moe = geometry.moe
        mlp = batched_tokens * moe.experts_per_token * 2 * (
            MOE_PEAK_FACTOR * geometry.hidden_size + MOE_EXPERT_PEAK_FACTOR * moe.expert_intermediate_size / tp)
        if geometry.architecture in NEW_RUNNER_MOE_ARCHITECTURES:
            mlp *= NEW_RUNNER_MOE_PEAK_SHARE
        elif geometry.architecture in MXFP4_TRITON_MOE_ARCHITECTURES:
            mlp *= MXFP4_TRITON_MOE_PEAK_SHARE
    else:
        mlp = MLP_PEAK_FACTOR * batched_tokens * geometry.intermediate_size * 2 / tp
    logits = max_num_seqs * geometry.vocab_size * LOGITS_BYTES
    peak = ACTIVATION_BASE + max(mlp, logits)
    larger = "sampler logits" if logits >= mlp else ("MoE" if geometry.moe else "MLP") + " activations"
    return Allowance(int(peak), f"profiling peak: {larger} for {batched_tokens} batched tokens and "
                                f"{max_num_seqs} sequences, plus workspaces")


# MoE architectures vLLM 0.26 runs on its new model runner all the same (vllm/config/vllm.py,
# DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES).
NEW_RUNNER_MOE_ARCHITECTURES = frozenset({"DeepseekV2ForCausalLM", "GraniteMoeForCausalLM", "InklingForCausalLM",
                                          "LongcatFlashNgramForCausalLM", "Qwen2MoeForCausalLM"})


def graphs_taken_from_kv(geometry: ModelGeometry) -> bool:
    """vLLM 0.26 runs dense decoders (and a few MoE architectures) on its new model runner, which captures CUDA
    graphs after sizing the KV cache; other MoE models still go through the older runner, which first estimates
    the graphs' memory and takes it from the KV cache (seen: "CUDA graph memory profiling is enabled" only there;
    DeepSeek-V2-Lite and Mixtral records of #21)."""
    return geometry.moe is not None and geometry.architecture not in NEW_RUNNER_MOE_ARCHITECTURES


def capture_sizes(geometry: ModelGeometry, max_num_seqs: int, batched_tokens: int) -> list[int]:
    """The batch sizes vLLM 0.26 captures CUDA graphs for (VllmConfig._set_cudagraph_sizes): 1, 2, 4, then steps
    of 8 to 256 and of 16 above, up to twice max_num_seqs and at most 512 — or the architecture's own largest
    (gpt-oss: 1024, whatever max_num_seqs) — and never beyond the batched tokens."""
    largest = MAX_CAPTURE_SIZE_BY_ARCHITECTURE.get(geometry.architecture) or min(2 * max_num_seqs,
                                                                                 DEFAULT_MAX_CAPTURE_SIZE)
    largest = max(1, min(largest, batched_tokens))
    sizes = [1, 2, 4, *range(8, 256, 8), *range(256, largest + 1, 16)]
    return [size for size in sizes if size <= largest]


def cuda_graph_allowance(geometry: ModelGeometry, max_num_seqs: int, batched_tokens: int,
                         enforce_eager: bool) -> Allowance:
    if enforce_eager:
        return Allowance(0, "no CUDA graphs (--enforce-eager)")
    sizes = capture_sizes(geometry, max_num_seqs, batched_tokens)
    if graphs_taken_from_kv(geometry):
        size = OLDER_RUNNER_GRAPH_BASE + OLDER_RUNNER_GRAPH_PER_SIZE * len(sizes)
        where = "vLLM's estimate, taken from the KV cache"
    else:
        size = (CUDA_GRAPH_BASE + CUDA_GRAPH_PER_LAYER * geometry.num_layers) * sizes[-1] / DEFAULT_MAX_CAPTURE_SIZE
        where = "captured after the KV cache, on top of the requested share"
    return Allowance(int(size), f"CUDA graphs for {len(sizes)} batch sizes up to {sizes[-1]}, {where}")


# --- the verdict --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    tp: int
    requested: int
    weights: int
    allowances: dict[str, Allowance]
    kv_budget: int  # best estimate
    safe_budget: int  # what verdicts use
    per_layer: float
    largest: int


def check_context_length(model: ModelSpec, max_model_len: int | None) -> None:
    """BadInput for a context longer than the model allows: vLLM refuses it at start-up, after
    loading the weights, so it is said before anything starts."""
    model_max = model.geometry.max_position_embeddings
    if max_model_len and max_model_len > model_max:
        raise _bad_setting(f"A context of {max_model_len:,} tokens is more than {model.name} allows: "
                           f"at most {model_max:,} (its max_position_embeddings). vLLM refuses to start with it.",
                           f"Use --max-model-len {model_max} or less, or leave it out for the model's full context.")


def plan_fit(model: ModelSpec, gpus: Sequence[GpuInfo], settings: LaunchSettings = LaunchSettings()) -> FitReport:
    settings.validate()
    if not gpus:
        raise BadInput(Problem("No GPU to judge the fit for", "This computer has no NVIDIA GPU, and no GPU was "
                               "chosen to plan for.", "Choose the GPU you plan to use: Plan for on the Machine "
                               "page, or --gpu NAME on the command line."))
    geometry = model.geometry
    fmt = online_format(settings.quantization, model.checkpoint_format) if settings.quantization \
        else model.checkpoint_format
    gpu = gpus[0]
    seqs, batched = vllm_batch_defaults(gpu)
    seqs = settings.max_num_seqs or seqs
    batched = settings.max_num_batched_tokens or batched
    model_max = geometry.max_position_embeddings
    wanted_len = settings.max_model_len or model_max
    notes: list[str] = []
    check_context_length(model, settings.max_model_len)
    if settings.max_num_batched_tokens is None:
        batched = min(batched, seqs * wanted_len)  # vLLM caps its default the same way
    weights_bytes = weights_for_format(model, fmt)
    support = gpu_support(fmt, gpu.compute_capability)
    dtype_bytes = kv_dtype_bytes(geometry, fmt, settings.kv_cache_dtype)

    layouts: dict[int, _Layout] = {}

    def layout(tp: int) -> _Layout:
        if tp not in layouts:
            layouts[tp] = _layout(tp)
        return layouts[tp]

    def _layout(tp: int) -> _Layout:
        requested = math.ceil(cuda_total_bytes(gpu) * settings.gpu_memory_utilization)
        weights = weights_bytes // tp
        allowances = {
            "activation_peak": activation_peak(geometry, tp, seqs, batched),
            "non_torch": Allowance(int(NON_TORCH_TP1 if tp == 1 else NON_TORCH_TP),
                                   "CUDA context and library workspaces" + (", NCCL buffers" if tp > 1 else "")),
            "rope_tables": Allowance(rope_table_bytes(geometry), "RoPE cos/sin tables for every position, built "
                                     "while the weights load"),
        }
        if settings.max_loras:
            lora = lora_buffer_bytes(geometry, settings.max_loras, settings.max_lora_rank, tp)
            if lora is not None:
                allowances["lora"] = Allowance(lora, f"{settings.max_loras} adapter slot"
                                               f"{'s' if settings.max_loras > 1 else ''} of rank {settings.max_lora_rank}, "
                                               "reserved at start whether adapters are loaded or not")
        allowances["cuda_graphs"] = cuda_graph_allowance(geometry, seqs, batched, settings.enforce_eager)
        taken = [a for key, a in allowances.items() if key != "cuda_graphs" or graphs_taken_from_kv(geometry)]
        budget = requested - weights - sum(a.bytes for a in taken)
        safe = budget - max(SAFETY_MIN, int(SAFETY_FRACTION * requested))
        per_layer = kv_bytes_per_token_per_layer(geometry, dtype_bytes, tp)
        largest = largest_length(geometry, per_layer, safe, batched, model_max)
        return _Layout(tp, requested, weights, allowances, budget, safe, per_layer, largest)

    candidates = valid_tensor_parallel_sizes(geometry)
    if settings.tensor_parallel_size:
        tp = settings.tensor_parallel_size
        if tp not in candidates:
            raise _bad_setting(f"tensor_parallel_size {tp} does not divide the model's "
                               f"{geometry.num_attention_heads} attention heads and "
                               f"{geometry.num_kv_heads} KV heads.",
                               f"Use one of {', '.join(map(str, candidates))}.")
        chosen = layout(tp)
    else:
        useful = min(wanted_len, MIN_USEFUL_CONTEXT)
        chosen = next((layout(tp) for tp in candidates if tp <= len(gpus) and layout(tp).largest >= useful),
                      layout(1))

    verdict, summary, suggested_tp = _verdict(chosen, wanted_len, settings.max_model_len is not None, len(gpus),
                                              candidates, layout, support.status, support.reason)
    chosen = layout(suggested_tp)  # with more GPUs needed, show what they would give
    launch_len = {VERDICT_FITS: wanted_len, VERDICT_SHORTER: chosen.largest,
                  VERDICT_NEEDS_TP: min(wanted_len, chosen.largest)}.get(verdict, 0)
    request = request_kv_bytes(geometry, chosen.per_layer, launch_len or wanted_len, batched)
    concurrency = max(0.0, chosen.kv_budget / request) if request else 0.0
    per_token = int(chosen.per_layer * (geometry.full_layers + geometry.sliding_layers))
    if geometry.sliding_layers:  # vLLM reports group-aware capacity: concurrency × length
        kv_tokens = int(concurrency * (launch_len or wanted_len))
    else:
        kv_tokens = max(0, chosen.kv_budget) // (BLOCK_SIZE * max(1, per_token)) * BLOCK_SIZE

    free_ok = all(g.memory_free_bytes >= math.ceil(cuda_total_bytes(g) * settings.gpu_memory_utilization)
                  for g in gpus[:chosen.tp])
    if not free_ok:
        notes.append(_free_memory_note(gpus[:chosen.tp], settings.gpu_memory_utilization))
    if support.status == "fallback":
        notes.append(support.reason)
    needed = runtime_package(fmt)
    if needed:
        notes.append(f"vLLM runs {fmt.label} only with the {needed[0]} package (≥ {needed[1]}) in its own "
                     f"environment, which installing vLLM does not bring; without it vLLM stops with: "
                     f"{missing_package_error(*needed)}")
    if settings.max_loras and "lora" not in chosen.allowances:
        notes.append("LoRA adapters take memory from the KV cache that this fit does not count for a mixture-of-"
                     "experts or MLA model: expect fewer KV-cache tokens than shown.")
    graphs = chosen.allowances["cuda_graphs"].bytes
    if not graphs_taken_from_kv(geometry) and chosen.requested + graphs > cuda_total_bytes(gpu):
        notes.append("The requested share leaves no room for CUDA graphs: lower gpu_memory_utilization "
                     "or use --enforce-eager.")

    report = FitReport(
        model=model.name, gpu_name=gpu.name, gpu_count=len(gpus), verdict=verdict, summary=summary,
        quantization=fmt.label, tensor_parallel_size=suggested_tp, weights_bytes=weights_bytes,
        weights_bytes_per_gpu=chosen.weights, weights_source=model.weights_source,
        kv_bytes_per_token=per_token, requested_bytes_per_gpu=chosen.requested,
        cuda_total_bytes=cuda_total_bytes(gpu), allowances=chosen.allowances,
        cuda_graphs_in_kv_budget=graphs_taken_from_kv(geometry), kv_cache_bytes=chosen.kv_budget,
        kv_cache_tokens=max(0, kv_tokens),
        model_max_len=model_max, max_model_len=launch_len, largest_max_model_len=chosen.largest,
        max_concurrency=concurrency if launch_len else 0.0, max_num_seqs=seqs, max_num_batched_tokens=batched,
        gpu_support=support.status, free_memory_ok=free_ok, notes=tuple(notes), serve_target=model.serve_target,
        measured=measurement(fmt, gpu.compute_capability))
    return replace(report, suggested_args=tuple(suggested_vllm_args(report, settings, fmt, gpu.compute_capability)))


def _verdict(chosen: _Layout, wanted_len: int, asked: bool, gpu_count: int, candidates: Sequence[int], layout,
             support_status: str, support_reason: str) -> tuple[str, str, int]:
    if support_status == "unsupported":
        return VERDICT_UNSUPPORTED, support_reason, chosen.tp
    if chosen.largest >= wanted_len:
        where = f" on {chosen.tp} GPUs" if chosen.tp > 1 else ""
        return VERDICT_FITS, f"Fits{where} with the full {wanted_len:,}-token context.", chosen.tp
    if chosen.largest >= min(wanted_len, MIN_USEFUL_CONTEXT):
        return (VERDICT_SHORTER, f"Fits with a shorter context: at most {chosen.largest:,} tokens "
                                 f"({'you asked for' if asked else 'the model allows'} {wanted_len:,}).", chosen.tp)
    bigger = [tp for tp in candidates if tp > chosen.tp]
    for tp in bigger:
        if layout(tp).largest >= min(wanted_len, MIN_USEFUL_CONTEXT):
            have = f", {gpu_count} available" if tp > gpu_count else ""
            return VERDICT_NEEDS_TP, f"Needs tensor_parallel_size={tp}: {tp} of these GPUs{have}.", tp
    even = f", even on {bigger[-1]} of these GPUs" if bigger else ""
    if chosen.kv_budget <= 0:
        return VERDICT_NO, f"Does not fit{even}: the weights alone take more than vLLM's share of memory.", chosen.tp
    return VERDICT_NO, f"Does not fit{even}: too little memory is left for a useful KV cache.", chosen.tp


def valid_tensor_parallel_sizes(geometry: ModelGeometry, limit: int = 8) -> list[int]:
    """TP sizes vLLM accepts: they divide the attention heads, and KV heads split or replicate evenly."""
    sizes = []
    for tp in (1, 2, 4, 8, 16):
        if tp > limit:
            break
        kv = geometry.num_kv_heads
        if geometry.num_attention_heads % tp == 0 and (kv % tp == 0 or tp % kv == 0 or geometry.mla):
            sizes.append(tp)
    return sizes


def weights_for_format(model: ModelSpec, fmt: QuantFormat) -> int:
    """Checkpoint bytes, or for on-the-fly quantization what the quantized weights will take."""
    if fmt.key == "fp32":
        return model.weights_bytes // 2  # vLLM loads float32 checkpoints in 16 bits (--dtype auto)
    if not fmt.online:
        return model.weights_bytes
    from llmdesk.core.fit.parameters import quantized_split

    quantized, kept = quantized_split(model.geometry, fmt.experts_only)
    return int(quantized * fmt.bytes_per_weight + kept * model.geometry.dtype_bytes)


def suggested_vllm_args(report: FitReport, settings: LaunchSettings, fmt: QuantFormat,
                        capability: tuple[int, int]) -> list[str]:
    if report.verdict in (VERDICT_UNSUPPORTED, VERDICT_NO):
        return []
    args: list[str] = []
    if report.tensor_parallel_size > 1:
        args += ["--tensor-parallel-size", str(report.tensor_parallel_size)]
    if report.max_model_len and (settings.max_model_len or report.max_model_len != report.model_max_len):
        args += ["--max-model-len", str(report.max_model_len)]
    if settings.gpu_memory_utilization != DEFAULT_GPU_MEMORY_UTILIZATION:
        args += ["--gpu-memory-utilization", f"{settings.gpu_memory_utilization:g}"]
    if fmt.online:
        args += ["--quantization", settings.quantization or fmt.vllm_quantization or ""]
    if settings.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", settings.kv_cache_dtype]
    if settings.max_num_seqs:
        args += ["--max-num-seqs", str(settings.max_num_seqs)]
    if settings.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(settings.max_num_batched_tokens)]
    if settings.enforce_eager:
        args.append("--enforce-eager")
    if settings.max_loras:
        args += ["--enable-lora", "--max-loras", str(settings.max_loras), "--max-lora-rank", str(settings.max_lora_rank)]
    args += [flag for flag in (*fmt.flags, *gpu_support(fmt, capability).flags) if flag not in args]
    return args


def _free_memory_note(gpus: Sequence[GpuInfo], utilization: float) -> str:
    worst = min(gpus, key=lambda g: g.memory_free_bytes / max(1, cuda_total_bytes(g)))
    share = max(0.0, math.floor((worst.memory_free_bytes - 512 * MIB) / cuda_total_bytes(worst) * 100) / 100)
    return (f"GPU {worst.index} has only {worst.memory_free_bytes / GIB:.1f} GiB free (other programs use the "
            f"rest), less than the {utilization:g} share vLLM asks for: it would refuse to start. Close them, "
            f"or use --gpu-memory-utilization {share:g}.")


def _bad_setting(what: str, fix: str | None) -> BadInput:
    return BadInput(Problem("Impossible launch setting", what, fix))
