"""`llmdesk doctor` with injected GPU scans and runtime searches: exact statuses and fixes."""

from __future__ import annotations

import json
import platform
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

import llmdesk
from llmdesk.core.base.errors import Problem
from llmdesk.core.base.settings import Settings, save_settings, settings_path
from llmdesk.core.doctor import checks as doctor
from llmdesk.core.doctor.checks import Check, DoctorReport, run_doctor
from llmdesk.core.machine.gpus import PLAN_WITHOUT_GPU, GpuInfo, GpuScan
from llmdesk.core.server.runtime import RuntimeSearch, VllmRuntime, managed_runtime_dir

GIB = 1024**3
Usage = namedtuple("Usage", "total used free")


def h100(index: int = 0, cc: tuple[int, int] = (9, 0), name: str = "NVIDIA H100 80GB HBM3") -> GpuInfo:
    return GpuInfo(index=index, name=name, uuid=f"GPU-{index}", memory_total_bytes=80 * GIB,
                   memory_free_bytes=79 * GIB, memory_used_bytes=1 * GIB, compute_capability=cc,
                   driver_version="580.159.04", cuda_driver_version="13.0",
                   utilization_percent=0, temperature_c=31, power_draw_w=70.5, power_limit_w=700.0)


GOOD_SCAN = GpuScan((h100(),), "580.159.04", "13.0", None)
NO_DRIVER = Problem("No NVIDIA driver found",
                    "The NVIDIA driver library (NVML) is not installed on this computer, so no NVIDIA GPU can be used.",
                    "Install the NVIDIA driver. " + PLAN_WITHOUT_GPU)
NO_DRIVER_SCAN = GpuScan((), None, None, NO_DRIVER)
GOOD_RUNTIME = RuntimeSearch(VllmRuntime("/opt/vllm/bin/python", "0.26.0", "configured"), (), None)
NOT_INSTALLED = Problem("vLLM is not installed", "No Python with vLLM was found.",
                        "python3 -m venv ~/vllm-venv && ~/vllm-venv/bin/pip install vllm==0.26.0")
NO_RUNTIME = RuntimeSearch(None, (("a vllm command on PATH", "none found"),), NOT_INSTALLED)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLMDESK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(1000 * GIB, 500 * GIB, 500 * GIB))
    return tmp_path / "home"


@pytest.fixture
def models(tmp_path) -> Path:
    d = tmp_path / "models"
    (d / "models--Qwen--Qwen3-8B").mkdir(parents=True)
    (d / "models--meta-llama--Llama-3.1-8B-Instruct").mkdir()
    (d / ".locks").mkdir()
    return d


def statuses(report: DoctorReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


@pytest.fixture(autouse=True)
def window_opens(monkeypatch):
    """The window check of this machine (a display or not) is not what these tests are about."""
    from llmdesk.core.machine.display import WindowCheck

    monkeypatch.setattr(doctor, "check_window", lambda: WindowCheck("xcb", None))


def test_all_good(models, home):
    report = run_doctor(Settings(models_dir=str(models)), gpu_scan=GOOD_SCAN, runtime_search=GOOD_RUNTIME)
    assert report.ok is True
    assert statuses(report) == {"llmdesk": "ok", "Window": "ok", "NVIDIA driver": "ok", "GPUs": "ok",
                                "vLLM runtime": "ok", "Hugging Face cache": "ok", "Settings": "ok"}
    python = platform.python_version()
    where = f"{platform.system()} {platform.machine()}"
    assert report.render_text() == "\n".join([
        f"✔ llmdesk             {llmdesk.__version__} on Python {python} ({where})",
        "✔ Window              Qt can open the window (platform xcb)",
        "✔ NVIDIA driver       580.159.04 (CUDA 13.0)",
        "✔ GPUs                1 GPU: 0: NVIDIA H100 80GB HBM3, 80.0 GiB (79.0 GiB free), compute 9.0",
        "✔ vLLM runtime        vLLM 0.26.0 in /opt/vllm/bin/python (configured)",
        f"✔ Hugging Face cache  {models} (2 models, 500.0 GiB free)",
        f"✔ Settings            defaults (no {home / 'config' / 'settings.json'} yet)",
    ])


def test_nothing_installed_says_what_is_missing_and_how_to_fix_it(models):
    report = run_doctor(Settings(models_dir=str(models)), gpu_scan=NO_DRIVER_SCAN, runtime_search=NO_RUNTIME)
    assert report.ok is False
    assert statuses(report) == {"llmdesk": "ok", "Window": "ok", "NVIDIA driver": "fail", "GPUs": "fail",
                                "vLLM runtime": "fail", "Hugging Face cache": "ok", "Settings": "ok"}
    driver, gpus, vllm = report.check("NVIDIA driver"), report.check("GPUs"), report.check("vLLM runtime")
    assert driver.summary == ("No NVIDIA driver found: The NVIDIA driver library (NVML) is not installed "
                              "on this computer, so no NVIDIA GPU can be used.")
    assert driver.fix == "Install the NVIDIA driver."
    assert gpus.summary == "none usable without the NVIDIA driver (see above)"
    assert gpus.fix == "You can still plan for a GPU from the catalogue: Plan for, on the Machine page, or llmdesk fit MODEL --gpu NAME."
    assert vllm.summary == "vLLM is not installed (looked at a vllm command on PATH: none found)"
    assert vllm.fix == NOT_INSTALLED.fix
    lines = report.render_text().splitlines()
    assert lines[2:8] == [
        "✘ NVIDIA driver       " + driver.summary,
        "    → Install the NVIDIA driver.",
        "✘ GPUs                none usable without the NVIDIA driver (see above)",
        "    → You can still plan for a GPU from the catalogue: Plan for, on the Machine page, or llmdesk fit MODEL --gpu NAME.",
        "✘ vLLM runtime        vLLM is not installed (looked at a vllm command on PATH: none found)",
        "    → python3 -m venv ~/vllm-venv && ~/vllm-venv/bin/pip install vllm==0.26.0",
    ]


def test_driver_without_gpus():
    problem = Problem("No NVIDIA GPU found", "The NVIDIA driver is installed but reports no GPU on this computer.",
                      "Check that nvidia-smi lists it. " + PLAN_WITHOUT_GPU)
    report = run_doctor(Settings(), gpu_scan=GpuScan((), "580.159.04", "13.0", problem),
                        runtime_search=GOOD_RUNTIME)
    assert report.check("NVIDIA driver").status == "ok"
    gpus = report.check("GPUs")
    assert (gpus.status, gpus.summary) == ("fail", "none: No NVIDIA GPU found")
    assert gpus.fix == ("Check that nvidia-smi lists it. "
                        "You can still plan for a GPU from the catalogue: Plan for, on the Machine page, or llmdesk fit MODEL --gpu NAME.")
    assert gpus.details["count"] == 0


def test_some_gpus_unreadable_warns():
    problem = Problem("Some GPUs could not be read", "1 of 2 GPUs could be read. GPU 1: Unknown Error.",
                      "Run nvidia-smi to check the GPU.")
    report = run_doctor(Settings(), gpu_scan=GpuScan((h100(),), "580.159.04", "13.0", problem),
                        runtime_search=GOOD_RUNTIME)
    gpus = report.check("GPUs")
    assert gpus.status == "warn"
    assert gpus.summary.endswith(". Some GPUs could not be read: 1 of 2 GPUs could be read. GPU 1: Unknown Error.")
    assert gpus.fix == "Run nvidia-smi to check the GPU."
    assert report.ok is True


def test_two_gpus_and_an_old_one():
    scan = GpuScan((h100(0), h100(1, cc=(7, 0), name="Tesla V100-SXM2-32GB")), "580.159.04", "13.0", None)
    gpus = run_doctor(Settings(), gpu_scan=scan, runtime_search=GOOD_RUNTIME).check("GPUs")
    assert gpus.status == "warn"
    assert gpus.summary.startswith("2 GPUs: 0: NVIDIA H100 80GB HBM3, 80.0 GiB (79.0 GiB free), compute 9.0; "
                                   "1: Tesla V100-SXM2-32GB, 80.0 GiB (79.0 GiB free), compute 7.0. ")
    assert gpus.summary.endswith("GPU 1 (Tesla V100-SXM2-32GB, compute 7.0) cannot run it")
    assert gpus.details["count"] == 2
    assert gpus.details["gpus"][1]["compute_capability"] == "7.0"


def test_old_cuda_driver_warns():
    scan = GpuScan((h100(),), "550.54.15", "12.4", None)
    driver = run_doctor(Settings(), gpu_scan=scan, runtime_search=GOOD_RUNTIME).check("NVIDIA driver")
    assert driver.status == "warn"
    assert driver.summary == ("550.54.15 (CUDA 12.4): vLLM 0.26.0 is built for CUDA 13, "
                              "which this driver does not support")
    assert driver.fix == "Update the NVIDIA driver to version 580 or newer (it supports CUDA 13)."


def test_untested_vllm_version_warns():
    search = RuntimeSearch(VllmRuntime("/usr/bin/python3", "0.25.1", "PATH"), (), None)
    report = run_doctor(Settings(), gpu_scan=GOOD_SCAN, runtime_search=search)
    check = report.check("vLLM runtime")
    assert check.status == "warn"
    assert check.summary == ("vLLM 0.25.1 in /usr/bin/python3 (PATH). "
                             "llmdesk is verified with vLLM 0.26.0")
    assert check.fix.startswith("Install vLLM 0.26.0 into that environment "
                                "(/usr/bin/python3 -m pip install vllm==0.26.0)")
    assert check.details["is_tested"] is False
    assert report.ok is True
    assert "    → Install vLLM 0.26.0 into that environment" in report.render_text()


def test_configured_runtime_broken_but_fallback_found_warns():
    problem = Problem("The configured vLLM runtime cannot be used",
                      "The interpreter chosen in Settings, /gone/python, does not exist.",
                      "Correct or clear the interpreter in Settings → vLLM runtime.")
    search = RuntimeSearch(VllmRuntime("/venv/bin/python", "0.26.0", "managed"),
                           (("/gone/python", "does not exist"),), problem)
    check = run_doctor(Settings(), gpu_scan=GOOD_SCAN, runtime_search=search).check("vLLM runtime")
    assert check.status == "warn"
    assert check.fix == "Correct or clear the interpreter in Settings → vLLM runtime."
    assert check.details["tried"] == [{"where": "/gone/python", "why": "does not exist"}]


def test_low_disk_warns_with_the_reason(models, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(100 * GIB, 88 * GIB, 12 * GIB))
    check = run_doctor(Settings(models_dir=str(models)), gpu_scan=GOOD_SCAN,
                       runtime_search=GOOD_RUNTIME).check("Hugging Face cache")
    assert check.status == "warn"
    assert check.summary == (f"{models} (2 models, 12.0 GiB free): that is little room for models, "
                             "a 7B model in BF16 is about 15 GB")
    assert check.fix == "Free up disk space or choose another models folder in Settings."
    assert check.details["free_bytes"] == 12 * GIB


def test_cache_not_created_yet_measures_the_nearest_parent(tmp_path, monkeypatch):
    seen = []

    def usage(path):
        seen.append(Path(path))
        return Usage(1000 * GIB, 0, 100 * GIB)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "a" / "b" / "hub"))
    check = run_doctor(Settings(), gpu_scan=GOOD_SCAN, runtime_search=GOOD_RUNTIME).check("Hugging Face cache")
    assert check.status == "ok"
    assert check.summary == f"{tmp_path / 'a' / 'b' / 'hub'} (not created yet, 100.0 GiB free)"
    assert seen == [tmp_path]
    assert check.details["exists"] is False
    assert check.details["configured"] is False


def test_cache_location_is_a_file(tmp_path):
    f = tmp_path / "models"
    f.write_text("oops")
    check = run_doctor(Settings(models_dir=str(f)), gpu_scan=GOOD_SCAN,
                       runtime_search=GOOD_RUNTIME).check("Hugging Face cache")
    assert (check.status, check.summary) == ("fail", f"{f} is a file, not a folder")


def test_settings_problems_warn_each_one(home):
    save_settings(Settings())
    bad = Settings(server_port=0, theme="purple")
    check = run_doctor(bad, gpu_scan=GOOD_SCAN, runtime_search=GOOD_RUNTIME).check("Settings")
    assert check.status == "warn"
    assert check.summary == (f"{settings_path()}: theme must be one of system, light, dark; "
                             "server_port must be between 1 and 65535")
    assert check.fix == f"Fix these in Settings or edit {settings_path()}."
    assert check.details["config_dir"] == str(home / "config")
    assert check.details["settings_file_exists"] is True
    assert check.details["problems"] == ["theme must be one of system, light, dark",
                                         "server_port must be between 1 and 65535"]


def test_as_dict_is_json_with_the_documented_keys(models):
    report = run_doctor(Settings(models_dir=str(models)), gpu_scan=GOOD_SCAN, runtime_search=NO_RUNTIME)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["ok"] is False
    assert [c["name"] for c in data["checks"]] == ["llmdesk", "Window", "NVIDIA driver", "GPUs", "vLLM runtime",
                                                   "Hugging Face cache", "Settings"]
    for c in data["checks"]:
        assert set(c) == {"name", "status", "summary", "fix", "details"}
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["NVIDIA driver"]["details"] == {"driver_version": "580.159.04", "cuda_driver_version": "13.0"}
    assert by_name["GPUs"]["details"]["gpus"][0]["memory_total_bytes"] == 80 * GIB
    assert by_name["vLLM runtime"]["status"] == "fail"
    assert by_name["vLLM runtime"]["details"]["managed_dir"] == str(managed_runtime_dir())
    assert by_name["vLLM runtime"]["details"]["problem"]["title"] == "vLLM is not installed"
    assert by_name["Hugging Face cache"]["details"]["free_bytes"] == 500 * GIB
    assert by_name["Hugging Face cache"]["details"]["models"] == 2
    assert by_name["llmdesk"]["details"]["version"] == llmdesk.__version__
    assert by_name["llmdesk"]["details"]["python_version"] == platform.python_version()


def test_report_ok_and_marks():
    report = DoctorReport((Check("A", "ok", "fine"), Check("Bee", "warn", "hmm", "do x"),
                           Check("C", "ok", "fine", "ignored for ok")))
    assert report.ok is True
    assert report.render_text() == "✔ A    fine\n! Bee  hmm\n    → do x\n✔ C    fine"
    assert DoctorReport((Check("A", "fail", "no"),)).ok is False


def test_run_doctor_scans_and_searches_when_not_given(monkeypatch):
    calls = []
    monkeypatch.setattr(doctor, "scan_gpus", lambda: calls.append("scan") or GOOD_SCAN)
    monkeypatch.setattr(doctor, "find_vllm_runtime",
                        lambda configured: calls.append(("find", configured)) or GOOD_RUNTIME)
    report = run_doctor(Settings(runtime_python="/opt/vllm/bin/python"))
    assert calls == ["scan", ("find", "/opt/vllm/bin/python")]
    assert report.ok is True


def test_the_window_check_fails_when_qt_cannot_open_and_warns_without_a_display(models):
    """A machine where PySide6 could not open its window used to pass every check."""
    from llmdesk.core.base.errors import Problem
    from llmdesk.core.machine.display import WindowCheck

    broken = WindowCheck("xcb", Problem("The window cannot open: system libraries are missing",
                                        "Qt's xcb platform needs libxcb-icccm.so.4.", "sudo apt-get install libxcb-icccm4"),
                         ("libxcb-icccm.so.4",), ("libxcb-icccm4",))
    report = run_doctor(Settings(models_dir=str(models)), gpu_scan=GOOD_SCAN, runtime_search=NO_RUNTIME, window=broken)
    window = report.check("Window")
    assert window.status == "fail" and window.fix == "sudo apt-get install libxcb-icccm4"
    assert window.details["packages"] == ["libxcb-icccm4"]
    no_display = WindowCheck(None, Problem("No display to open the window on", "No DISPLAY.", "Use a desktop."),
                             no_display=True)
    warned = run_doctor(Settings(models_dir=str(models)), gpu_scan=GOOD_SCAN, runtime_search=NO_RUNTIME,
                        window=no_display).check("Window")
    assert warned.status == "warn"
    fine = run_doctor(Settings(models_dir=str(models)), gpu_scan=GOOD_SCAN, runtime_search=NO_RUNTIME,
                      window=WindowCheck("xcb", None)).check("Window")
    assert fine.status == "ok" and "xcb" in fine.summary
