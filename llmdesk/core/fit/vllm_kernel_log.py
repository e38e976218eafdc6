"""Which GEMM kernel vLLM 0.26 chose for a quantized checkpoint, read from its start-up log.

vLLM says it once per method: "Using MarlinLinearKernel for AutoGPTQLinearMethod" (auto_gptq.py,
auto_awq.py, the compressed-tensors schemes) or "Selected CutlassFP8ScaledMMLinearKernel for
Fp8LinearMethod" (model_executor/kernels/linear). The GPU runs of #21 record these per format on
Hopper, so the fit can name the kernel a format will run on before anything is downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHOICE = re.compile(r"\b(?:Using|Selected) ([A-Z]\w*(?:Kernel|Experts|Method)\w*) for ([\w ./-]+?)\s*$", re.M)
# MoE experts are named without "for": "[mxfp4.py:1719] Using OAITritonMxfp4ExpertsMonolithic" (gpt-oss on Hopper)
_EXPERTS = re.compile(r"\bUsing ([A-Z]\w*Experts\w*)\s*$", re.M)
MOE_EXPERTS = "MoE experts"


@dataclass(frozen=True)
class KernelChoice:
    kernel: str  # e.g. "MarlinLinearKernel", "MacheteLinearKernel", "CutlassFP8ScaledMMLinearKernel"
    used_for: str  # the method or GEMM it was chosen for


def kernel_choices(log_text: str) -> tuple[KernelChoice, ...]:
    """Each distinct choice in the order vLLM logged it."""
    found = [(m.start(), m.group(1), m.group(2).strip()) for m in _CHOICE.finditer(log_text)]
    found += [(m.start(), m.group(1), MOE_EXPERTS) for m in _EXPERTS.finditer(log_text)]
    seen = dict.fromkeys((kernel, used_for) for _, kernel, used_for in sorted(found))
    return tuple(KernelChoice(k, u) for k, u in seen)


def short_name(kernel: str) -> str:
    """'MacheteLinearKernel' -> 'Machete', 'CutlassFP8ScaledMMLinearKernel' -> 'CutlassFP8ScaledMM',
    'OAITritonMxfp4ExpertsMonolithic' -> 'OAITritonMxfp4'."""
    for suffix in ("LinearKernel", "Kernel", "ExpertsMonolithic", "Experts"):
        if kernel.endswith(suffix) and len(kernel) > len(suffix):
            return kernel[: -len(suffix)]
    return kernel
