from __future__ import annotations

import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.machine.gpu_catalogue import (CATALOGUE, CatalogueGpu, UnknownGpu, close_matches, find_gpu,
                                                match_detected)
from llmdesk.core.machine.gpus import GpuInfo

MIB = 1024**2

# key -> (NVML name, MiB that NVML reports, compute capability)
EXPECTED = {
    "b200": ("NVIDIA B200", 183359, (10, 0)),
    "h200": ("NVIDIA H200", 143771, (9, 0)),
    "h100-80gb": ("NVIDIA H100 80GB HBM3", 81559, (9, 0)),
    "h100-pcie": ("NVIDIA H100 PCIe", 81559, (9, 0)),
    "h100-nvl": ("NVIDIA H100 NVL", 95830, (9, 0)),
    "a100-80gb": ("NVIDIA A100-SXM4-80GB", 81920, (8, 0)),
    "a100-80gb-pcie": ("NVIDIA A100 80GB PCIe", 81920, (8, 0)),
    "a100-40gb": ("NVIDIA A100-SXM4-40GB", 40960, (8, 0)),
    "rtx-pro-6000": ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", 97887, (12, 0)),
    "l40s": ("NVIDIA L40S", 46068, (8, 9)),
    "l40": ("NVIDIA L40", 46068, (8, 9)),
    "a40": ("NVIDIA A40", 46068, (8, 6)),
    "l4": ("NVIDIA L4", 23034, (8, 9)),
    "a10g": ("NVIDIA A10G", 23028, (8, 6)),
    "a10": ("NVIDIA A10", 23028, (8, 6)),
    "rtx-6000-ada": ("NVIDIA RTX 6000 Ada Generation", 49140, (8, 9)),
    "rtx-a6000": ("NVIDIA RTX A6000", 49140, (8, 6)),
    "rtx-5090": ("NVIDIA GeForce RTX 5090", 32607, (12, 0)),
    "rtx-4090": ("NVIDIA GeForce RTX 4090", 24564, (8, 9)),
    "rtx-4080": ("NVIDIA GeForce RTX 4080", 16376, (8, 9)),
    "rtx-3090": ("NVIDIA GeForce RTX 3090", 24576, (8, 6)),
    "t4": ("Tesla T4", 15360, (7, 5)),
    "v100-32gb": ("Tesla V100-SXM2-32GB", 32768, (7, 0)),
    "v100-16gb": ("Tesla V100-SXM2-16GB", 16384, (7, 0)),
}


def test_catalogue_has_exactly_the_expected_cards():
    assert {gpu.key: (gpu.name, gpu.memory_total_bytes // MIB, gpu.compute_capability)
            for gpu in CATALOGUE} == EXPECTED


@pytest.mark.parametrize("gpu", CATALOGUE, ids=lambda gpu: gpu.key)
def test_every_entry_is_sane(gpu: CatalogueGpu):
    assert gpu.memory_total_bytes % MIB == 0
    assert 15 * 1024 <= gpu.memory_total_bytes // MIB <= 180 * 1024  # 15 GiB (T4) to 179 GiB (B200)
    assert gpu.compute_capability in {(7, 0), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)}
    assert gpu.key == gpu.key.lower() and " " not in gpu.key
    assert find_gpu(gpu.key) is gpu
    assert find_gpu(gpu.name) is gpu
    assert match_detected(gpu.name) is gpu
    for alias in gpu.aliases:
        assert find_gpu(alias) is gpu, alias


def test_keys_are_unique():
    keys = [gpu.key for gpu in CATALOGUE]
    assert len(keys) == len(set(keys))


def test_h200_matches_the_projects_real_card():
    assert find_gpu("h200").memory_total_bytes == 143771 * 1024**2 == 150_754_820_096


@pytest.mark.parametrize("spelling, key", [
    ("h100", "h100-80gb"),
    ("H100", "h100-80gb"),
    ("H100 80GB", "h100-80gb"),
    ("nvidia h100", "h100-80gb"),
    ("NVIDIA H100 80GB HBM3", "h100-80gb"),
    ("h100 sxm", "h100-80gb"),
    ("H100-SXM5", "h100-80gb"),
    ("  h100_80gb  ", "h100-80gb"),
    ("H100 PCIe", "h100-pcie"),
    ("nvidia h100 pcie", "h100-pcie"),
    ("H200", "h200"),
    ("a100", "a100-80gb"),
    ("A100 80GB", "a100-80gb"),
    ("A100-SXM4-80GB", "a100-80gb"),
    ("a100 pcie", "a100-80gb-pcie"),
    ("A100 40GB", "a100-40gb"),
    ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
    ("l40s", "l40s"),
    ("L4", "l4"),
    ("a10g", "a10g"),
    ("A10", "a10"),
    ("rtx4090", "rtx-4090"),
    ("RTX 4090", "rtx-4090"),
    ("GeForce RTX 4090", "rtx-4090"),
    ("4090", "rtx-4090"),
    ("rtx 4080", "rtx-4080"),
    ("RTX-3090", "rtx-3090"),
    ("RTX 6000 Ada", "rtx-6000-ada"),
    ("a6000", "rtx-a6000"),
    ("RTX A6000", "rtx-a6000"),
    ("T4", "t4"),
    ("nvidia t4", "t4"),
    ("Tesla T4", "t4"),
    ("v100", "v100-16gb"),
    ("V100 32GB", "v100-32gb"),
    ("Tesla V100-PCIE-16GB", "v100-16gb"),
])
def test_find_gpu_spellings(spelling, key):
    assert find_gpu(spelling).key == key


def test_unknown_gpu_offers_close_matches():
    with pytest.raises(UnknownGpu) as caught:
        find_gpu("H10")
    error = caught.value
    assert isinstance(error, BadInput)
    assert error.name == "H10"
    assert error.matches[0] == "h100-80gb"
    assert len(error.matches) <= 3
    assert error.problem.title == "Unknown GPU: 'H10'"
    assert error.problem.fix.startswith("Did you mean h100-80gb, h100-pcie, h100-nvl? ")
    assert str(error) == "Unknown GPU: 'H10'"


def test_unknown_gpu_without_any_close_match():
    with pytest.raises(UnknownGpu) as caught:
        find_gpu("Radeon 7900 XTX")
    assert caught.value.matches == []
    assert "Did you mean" not in caught.value.problem.fix
    assert "h100-80gb" in caught.value.problem.fix


@pytest.mark.parametrize("name", ["", "   ", "RTX 6000", "H100 NVM", "gpu"])
def test_ambiguous_or_unknown_names_raise(name):
    with pytest.raises(UnknownGpu):
        find_gpu(name)


def test_close_matches():
    assert close_matches("H10") == ["h100-80gb", "h100-pcie", "h100-nvl"]
    assert close_matches("rtx 409") == ["rtx-4090", "rtx-5090", "rtx-4080"]
    assert close_matches("RTX 6000", n=2) == ["rtx-6000-ada", "rtx-a6000"]
    assert close_matches("l40")[:2] == ["l40", "l40s"]  # the exact key first
    assert close_matches("a1000", n=1) == ["a100-80gb"]
    assert close_matches("zzzzzz") == []
    assert close_matches("") == []
    matches = close_matches("H10", n=10)
    assert len(matches) == len(set(matches)) <= 10


@pytest.mark.parametrize("nvml_name, key", [
    ("NVIDIA H100 80GB HBM3", "h100-80gb"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("Tesla T4", "t4"),
])
def test_match_detected(nvml_name, key):
    assert match_detected(nvml_name).key == key


@pytest.mark.parametrize("nvml_name", [
    "NVIDIA H200 NVL",
    "NVIDIA GeForce RTX 4090 Laptop GPU",  # 16 GB
    "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
    "NVIDIA B300",
])
def test_match_detected_does_not_guess(nvml_name):
    assert match_detected(nvml_name) is None


def test_as_gpu_info_is_an_empty_card_to_plan_for():
    cuda_total = int(79.18 * 1024**3)  # what vLLM logged on the project's H100
    assert find_gpu("h100").as_gpu_info(index=2) == GpuInfo(
        index=2, name="NVIDIA H100 80GB HBM3", uuid="catalogue-h100-80gb",
        memory_total_bytes=85_520_809_984, memory_free_bytes=cuda_total,
        memory_used_bytes=85_520_809_984 - cuda_total,
        compute_capability=(9, 0), driver_version=None, cuda_driver_version=None,
        utilization_percent=None, temperature_c=None, power_draw_w=None, power_limit_w=None,
        memory_reserved_bytes=85_520_809_984 - cuda_total)


def test_every_card_keeps_a_plausible_driver_reserve():
    for gpu in CATALOGUE:
        reserve = gpu.memory_total_bytes - gpu.cuda_total_bytes
        assert 0 < reserve < 2.2 * 1024**3, (gpu.key, reserve)
    assert find_gpu("t4").as_gpu_info().as_dict()["compute_capability"] == "7.5"


def test_estimated_figures_are_marked():
    assert find_gpu("h100").estimated == ()  # both measured
    assert find_gpu("rtx-5090").estimated == ("cuda",)  # nvidia-smi total seen, CUDA reserve typical
    assert find_gpu("a40").estimated == ("memory", "cuda")


def test_an_unknown_gpu_points_to_the_catalogue_listing():
    with pytest.raises(UnknownGpu) as caught:
        find_gpu("nonsense")
    assert "llmdesk gpus --catalogue" in caught.value.problem.fix
