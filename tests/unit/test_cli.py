import json
import subprocess
import sys

import pytest

from llmdesk import cli
from llmdesk.core.machine.gpus import GpuScan


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], capture_output=True, text=True, timeout=60)


def test_gpus_json_is_a_list_and_exits_0():
    result = run_cli("gpus", "--json")
    assert result.returncode == 0, result.stderr
    gpus = json.loads(result.stdout)
    assert isinstance(gpus, list)
    for gpu in gpus:  # on a GPU host
        assert {"index", "name", "memory_total_bytes", "compute_capability"} <= set(gpu)


def test_gpus_json_is_empty_without_a_driver(monkeypatch, capsys):
    import llmdesk.core.machine.gpus as gpus

    monkeypatch.setattr(gpus, "scan_gpus", lambda: GpuScan((), None, None, None))
    assert cli.main(["gpus", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_gpus_text_explains_a_missing_driver(monkeypatch, capsys):
    import llmdesk.core.machine.gpus as gpus
    from llmdesk.core.base.errors import Problem

    problem = Problem("No NVIDIA driver found", "NVML is not installed.", "Install the NVIDIA driver.")
    monkeypatch.setattr(gpus, "scan_gpus", lambda: GpuScan((), None, None, problem))
    assert cli.main(["gpus"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "No NVIDIA driver found", "  NVML is not installed.", "  → Install the NVIDIA driver."]


def test_doctor_says_what_is_missing_and_how_to_fix_it():
    result = run_cli("doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1)
    names = [check["name"] for check in report["checks"]]
    assert names == ["llmdesk", "Window", "NVIDIA driver", "GPUs", "vLLM runtime", "Hugging Face cache",
                     "Settings"]
    for check in report["checks"]:
        if check["status"] == "fail":
            assert check["fix"], check


def test_doctor_text_on_this_machine_names_fixes():
    result = run_cli("doctor")
    assert "vLLM runtime" in result.stdout and "NVIDIA driver" in result.stdout
    if result.returncode == 1:
        assert "→ " in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [["no-such-command"], ["gpus", "--bogus"], ["screenshot"]])
def test_bad_input_exits_2(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "usage: llmdesk" in result.stderr


def test_problem_errors_become_a_message_and_exit_code(tmp_path):
    result = run_cli("screenshot", str(tmp_path), "--gpu", "H10")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "h100" in result.stderr.lower() and "Traceback" not in result.stderr
    result = run_cli("screenshot", str(tmp_path), "--size", "12")
    assert result.returncode == 2 and "Bad window size" in result.stderr


def test_unexpected_errors_are_logged_not_shown(monkeypatch, capsys):
    import llmdesk.core.machine.gpus as gpus

    def broken():
        raise RuntimeError("nvml exploded")

    monkeypatch.setattr(gpus, "scan_gpus", broken)
    assert cli.main(["gpus", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out == {"error": {"title": "Something went wrong while running `llmdesk gpus`",
                             "explanation": "nvml exploded",
                             "fix": "The full details are in the log file; please include it in a bug report."}}
    from llmdesk.core.base.app_log import log_file
    assert "RuntimeError: nvml exploded" in log_file().read_text()


def test_version_and_help():
    assert run_cli("--version").stdout.strip().startswith("llmdesk ")
    help_text = run_cli("--help").stdout
    for command in ("gui", "gpus", "doctor", "screenshot"):
        assert command in help_text
