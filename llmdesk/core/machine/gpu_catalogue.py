"""Common NVIDIA GPUs, so that a user without the hardware can still plan what fits on it.

Names and memory totals are what NVML (and nvidia-smi) report, not the marketing figures: an
"80 GB" H100 reports 81559 MiB, an "80 GB" A100 81920 MiB. Each MiB figure below was checked
against public nvidia-smi outputs ("<name>, <MiB> MiB" from --query-gpu=name,memory.total) with
drivers 535-595; the H200 figure was measured on the project's own H200. Older drivers (470 era)
reported a few hundred MiB less for some cards, e.g. 40536 MiB for an A100 40GB.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.base.units import GIB, MIB
from llmdesk.core.machine.gpus import GpuInfo


@dataclass(frozen=True)
class CatalogueGpu:
    key: str  # short stable id, e.g. "h100-80gb"
    name: str  # the name NVML reports
    memory_total_bytes: int  # what NVML reports as total, not the marketing number
    compute_capability: tuple[int, int]
    aliases: tuple[str, ...] = ()  # other spellings, including other NVML names of the same card
    # What CUDA (and so vLLM) sees as the total: NVML's total less the driver's reserve. From
    # vLLM's "Free memory on device (x/TOTAL GiB)" line and PyTorch's "total capacity" messages.
    cuda_total_gib: float | None = None
    # False where no nvidia-smi output was found for the card: the total is its spec sheet's memory
    # less what NVML typically keeps back on cards of its kind (an estimate, shown with "≈").
    total_seen: bool = True

    @property
    def estimated(self) -> tuple[str, ...]:
        """Which figures are estimates: "memory" (NVML total), "cuda" (what CUDA sees)."""
        return (() if self.total_seen else ("memory",)) + (() if self.cuda_total_gib is not None else ("cuda",))

    @property
    def cuda_total_bytes(self) -> int:
        if self.cuda_total_gib is None:
            return self.memory_total_bytes - 512 * MIB  # a typical reserve where none was measured
        return int(self.cuda_total_gib * GIB)

    def as_gpu_info(self, index: int = 0) -> GpuInfo:
        """A GPU to plan for: empty (free = what CUDA can use), no driver."""
        return GpuInfo(
            index=index,
            name=self.name,
            uuid=f"catalogue-{self.key}",
            memory_total_bytes=self.memory_total_bytes,
            memory_free_bytes=self.cuda_total_bytes,
            memory_used_bytes=self.memory_total_bytes - self.cuda_total_bytes,
            compute_capability=self.compute_capability,
            driver_version=None,
            cuda_driver_version=None,
            memory_reserved_bytes=self.memory_total_bytes - self.cuda_total_bytes,
        )


BLACKWELL_DATACENTER, BLACKWELL = (10, 0), (12, 0)
HOPPER, ADA, AMPERE_DATACENTER, AMPERE, TURING, VOLTA = (9, 0), (8, 9), (8, 0), (8, 6), (7, 5), (7, 0)

# cuda_total_gib: H200 and H100 80GB measured by vLLM 0.26 on the project's GPU hosts; the others from
# public PyTorch out-of-memory reports (the lowest common figure where drivers differ; ECC off for
# the 48 GB workstation cards). The RTX 4080 and the Blackwell cards have no Linux report yet, nor
# do the H100 NVL, L40 and A40: they use the typical reserve. B200, H100 NVL and RTX 5090 totals are
# from public nvidia-smi outputs; RTX PRO 6000, L40 and A40 are marked total_seen=False.
CATALOGUE: tuple[CatalogueGpu, ...] = (
    CatalogueGpu("b200", "NVIDIA B200", 183359 * MIB, BLACKWELL_DATACENTER, ("B200 SXM", "B200 180GB")),
    CatalogueGpu("h200", "NVIDIA H200", 143771 * MIB, HOPPER, ("H200 SXM", "H200 141GB"), cuda_total_gib=139.8),
    CatalogueGpu("h100-80gb", "NVIDIA H100 80GB HBM3", 81559 * MIB, HOPPER,
                 ("H100", "H100 SXM", "H100 SXM5", "H100 80GB", "H100 SXM 80GB", "H100 HBM3"), cuda_total_gib=79.18),
    CatalogueGpu("h100-pcie", "NVIDIA H100 PCIe", 81559 * MIB, HOPPER, ("H100 PCIe 80GB",), cuda_total_gib=79.18),
    CatalogueGpu("h100-nvl", "NVIDIA H100 NVL", 95830 * MIB, HOPPER, ("H100 NVL 94GB", "H100 94GB")),
    CatalogueGpu("a100-80gb", "NVIDIA A100-SXM4-80GB", 81920 * MIB, AMPERE_DATACENTER,
                 ("A100", "A100 80GB", "A100 SXM", "A100 SXM4", "A100 SXM 80GB"), cuda_total_gib=79.15),
    CatalogueGpu("a100-80gb-pcie", "NVIDIA A100 80GB PCIe", 81920 * MIB, AMPERE_DATACENTER,
                 ("A100 PCIe", "A100 PCIe 80GB"), cuda_total_gib=79.15),
    # The 40 GB PCIe card reports the same memory and capability as the SXM one.
    CatalogueGpu("a100-40gb", "NVIDIA A100-SXM4-40GB", 40960 * MIB, AMPERE_DATACENTER,
                 ("A100 40GB", "A100 SXM4 40GB", "NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"), cuda_total_gib=39.38),
    CatalogueGpu("rtx-pro-6000", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition", 97887 * MIB, BLACKWELL,
                 ("RTX PRO 6000", "RTX PRO 6000 Blackwell", "NVIDIA RTX PRO 6000 Blackwell Server Edition",
                  "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"), total_seen=False),
    CatalogueGpu("l40s", "NVIDIA L40S", 46068 * MIB, ADA, cuda_total_gib=44.39),
    CatalogueGpu("l40", "NVIDIA L40", 46068 * MIB, ADA, total_seen=False),
    CatalogueGpu("a40", "NVIDIA A40", 46068 * MIB, AMPERE, total_seen=False),
    CatalogueGpu("l4", "NVIDIA L4", 23034 * MIB, ADA, cuda_total_gib=21.95),
    CatalogueGpu("a10g", "NVIDIA A10G", 23028 * MIB, AMPERE, cuda_total_gib=21.99),
    CatalogueGpu("a10", "NVIDIA A10", 23028 * MIB, AMPERE, cuda_total_gib=21.99),
    CatalogueGpu("rtx-6000-ada", "NVIDIA RTX 6000 Ada Generation", 49140 * MIB, ADA,
                 ("RTX 6000 Ada", "6000 Ada"), cuda_total_gib=47.5),
    CatalogueGpu("rtx-a6000", "NVIDIA RTX A6000", 49140 * MIB, AMPERE, ("A6000",), cuda_total_gib=47.54),
    CatalogueGpu("rtx-5090", "NVIDIA GeForce RTX 5090", 32607 * MIB, BLACKWELL, ("RTX 5090", "5090")),
    CatalogueGpu("rtx-4090", "NVIDIA GeForce RTX 4090", 24564 * MIB, ADA, ("RTX 4090", "4090"), cuda_total_gib=23.64),
    CatalogueGpu("rtx-4080", "NVIDIA GeForce RTX 4080", 16376 * MIB, ADA, ("RTX 4080", "4080")),
    CatalogueGpu("rtx-3090", "NVIDIA GeForce RTX 3090", 24576 * MIB, AMPERE, ("RTX 3090", "3090"), cuda_total_gib=23.68),
    CatalogueGpu("t4", "Tesla T4", 15360 * MIB, TURING, ("NVIDIA T4",), cuda_total_gib=14.56),
    CatalogueGpu("v100-32gb", "Tesla V100-SXM2-32GB", 32768 * MIB, VOLTA,
                 ("V100 32GB", "V100 SXM2 32GB", "Tesla V100-PCIE-32GB", "V100 PCIe 32GB"), cuda_total_gib=31.74),
    CatalogueGpu("v100-16gb", "Tesla V100-SXM2-16GB", 16384 * MIB, VOLTA,
                 ("V100", "V100 16GB", "V100 SXM2 16GB", "Tesla V100-PCIE-16GB", "V100 PCIe 16GB"), cuda_total_gib=15.78),
)

# Brand words add nothing to tell cards apart, and people type them inconsistently.
_BRAND_WORDS = re.compile(r"\b(nvidia|geforce|tesla)\b")


def _normalise(name: str) -> str:
    """"NVIDIA GeForce RTX 4090" -> "rtx4090", "H100-SXM" -> "h100sxm"."""
    return re.sub(r"[^a-z0-9]", "", _BRAND_WORDS.sub("", name.lower()))


def _spellings(gpu: CatalogueGpu) -> tuple[str, ...]:
    return (gpu.key, gpu.name, *gpu.aliases)


def _build_index() -> dict[str, CatalogueGpu]:
    index: dict[str, CatalogueGpu] = {}
    for gpu in CATALOGUE:
        for spelling in _spellings(gpu):
            form = _normalise(spelling)
            if index.setdefault(form, gpu) is not gpu:
                raise ValueError(f"GPU catalogue: {spelling!r} names both {index[form].key} and {gpu.key}")
    return index


_INDEX = _build_index()


class UnknownGpu(BadInput):
    def __init__(self, name: str):
        self.name = name
        self.matches = close_matches(name)
        suggestion = f"Did you mean {', '.join(self.matches)}? " if self.matches else ""
        super().__init__(Problem(
            f"Unknown GPU: {name!r}",
            f"{name!r} is not in llmdesk's catalogue of common GPUs.",
            suggestion + "Pick a GPU from the catalogue by its key, e.g. h100-80gb or rtx-4090; "
            "`llmdesk gpus --catalogue` lists them all."))


def match_detected(gpu_name: str) -> CatalogueGpu | None:
    """The catalogue entry for a name NVML reports, or None (e.g. "NVIDIA H800" is not in it)."""
    return _INDEX.get(_normalise(gpu_name))


def find_gpu(name: str) -> CatalogueGpu:
    """Look a GPU up by key, NVML name or alias, ignoring case, spaces, dashes and brand words."""
    gpu = match_detected(name)
    if gpu is None:
        raise UnknownGpu(name)
    return gpu


def close_matches(name: str, n: int = 3) -> list[str]:
    """Keys of up to n catalogue GPUs whose spellings look like name, best first."""
    typed = _normalise(name)
    if not typed:
        return []
    # A name cut short ("H10") most likely means the cards it starts; similar spellings come after.
    starting = sorted((form for form in _INDEX if form.startswith(typed)), key=lambda form: form != typed)
    similar = difflib.get_close_matches(typed, list(_INDEX), n=len(_INDEX), cutoff=0.5)
    keys: list[str] = []
    for form in starting + similar:
        key = _INDEX[form].key
        if key not in keys:
            keys.append(key)
    return keys[:n]
