"""install_managed_runtime against a hand-made local `vllm` wheel: no network (pip --no-index)."""

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from llmdesk.core.base import paths
from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.server import runtime
from llmdesk.core.server.runtime_install import (STEP_CHECKING, STEP_CREATING, STEP_DONE, STEP_FAILED,
                                                 STEP_INSTALLING, InstallProgress, check_base_python,
                                                 find_base_python, install_managed_runtime)

NO_INDEX = ["--no-index"]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_fake_vllm_wheel(folder: Path, version: str = "0.26.0") -> Path:
    """A pure-Python wheel of a distribution called vllm with one empty module."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"vllm-{version}.dist-info"
    files = {
        "vllm/__init__.py": b"",
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
                                  "Summary: stand-in for tests\n").encode(),
        f"{dist_info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: llmdesk-tests\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    wheel = folder / f"vllm-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist_info}/RECORD", record)
    return wheel


def make_slow_project(folder: Path, pid_file: Path) -> Path:
    """A local project whose in-tree build backend writes its pid and then sleeps."""
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "slowbackend"\nbackend-path = ["."]\n')
    (folder / "slowbackend.py").write_text(
        "import os, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(120)\n")
    return folder


def processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                "utf-8", "replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.asyncio
async def test_installs_a_local_wheel_with_progress_and_log(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    target = tmp_path / "rt"
    log_path = tmp_path / "logs" / "install.log"
    seen: list[InstallProgress] = []

    python = await install_managed_runtime(
        python=sys.executable, spec="vllm==0.26.0", target=target,
        extra_pip_args=[*NO_INDEX, "--find-links", str(wheels)],
        on_progress=seen.append, log_path=log_path)

    assert python == target / "bin" / "python"
    assert runtime.vllm_version_of(str(python)) == "0.26.0"
    steps = [p.step for p in seen]
    order = [STEP_CREATING, STEP_INSTALLING, STEP_CHECKING, STEP_DONE]
    assert [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s] == order
    fractions = [p.fraction for p in seen if p.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    lines = [p.line for p in seen if p.step == STEP_INSTALLING and p.line]
    assert any("Successfully installed vllm-0.26.0" in line for line in lines)
    log = log_path.read_text()
    assert "Successfully installed vllm-0.26.0" in log and "--progress-bar off" in log
    assert all(p.problem is None for p in seen)


@pytest.mark.asyncio
async def test_default_target_and_log_and_retry_reuses_the_venv(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    args = dict(python=sys.executable, extra_pip_args=[*NO_INDEX, "--find-links", str(wheels)])
    python = await install_managed_runtime(**args)
    assert python == runtime.managed_runtime_dir() / "bin" / "python"
    assert list(paths.log_dir().glob("runtime-install-*.log"))
    assert runtime.find_vllm_runtime("").runtime.source == runtime.SOURCE_MANAGED

    seen: list[InstallProgress] = []
    await install_managed_runtime(**args, on_progress=seen.append)
    assert any(p.line and p.line.startswith("reusing the existing environment") for p in seen)


@pytest.mark.asyncio
async def test_impossible_version_without_an_index_says_pip_could_not_reach_it(tmp_path):
    seen: list[InstallProgress] = []
    with pytest.raises(ProblemError) as caught:
        await install_managed_runtime(python=sys.executable, spec="vllm==99",
                                      target=tmp_path / "rt", extra_pip_args=NO_INDEX,
                                      on_progress=seen.append, log_path=tmp_path / "i.log")
    problem = caught.value.problem
    assert problem.explanation.startswith("pip could not reach the package index")
    assert "vllm==99" in problem.explanation
    assert seen[-1].step == STEP_FAILED and seen[-1].problem == problem
    assert "Could not find a version that satisfies" in (tmp_path / "i.log").read_text()


@pytest.mark.asyncio
async def test_other_pip_failures_show_the_last_lines(tmp_path):
    with pytest.raises(ProblemError) as caught:
        await install_managed_runtime(python=sys.executable, spec="vllm==0.26.0",
                                      target=tmp_path / "rt",
                                      extra_pip_args=["--no-such-pip-option"],
                                      log_path=tmp_path / "i.log")
    problem = caught.value.problem
    assert problem.title == "Failed while installing vLLM"
    assert "no-such-pip-option" in problem.explanation
    assert str(tmp_path / "i.log") in problem.fix


@pytest.mark.asyncio
async def test_disk_full_is_recognised(tmp_path, monkeypatch):
    from llmdesk.core.server import runtime_install

    async def full(argv, on_line):
        on_line("ERROR: Could not install packages due to an OSError: [Errno 28] "
                "No space left on device")
        return 1, ["ERROR: Could not install packages due to an OSError: [Errno 28] "
                   "No space left on device"]

    monkeypatch.setattr(runtime_install, "_stream", full)
    with pytest.raises(ProblemError) as caught:
        await install_managed_runtime(python=sys.executable, target=tmp_path / "rt",
                                      log_path=tmp_path / "i.log")
    assert caught.value.problem.title == "The disk is full"


@pytest.mark.asyncio
async def test_cancelling_kills_the_pip_process_group(tmp_path):
    pid_file = tmp_path / "backend.pid"
    project = make_slow_project(tmp_path / "slow", pid_file)
    target = tmp_path / "rt"
    task = asyncio.create_task(install_managed_runtime(
        python=sys.executable, spec=str(project), target=target, extra_pip_args=NO_INDEX,
        log_path=tmp_path / "i.log"))
    deadline = time.monotonic() + 90
    while not pid_file.exists() or not pid_file.read_text():
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline, "the slow build backend never started"
        await asyncio.sleep(0.1)
    backend = int(pid_file.read_text())
    assert alive(backend) and processes_mentioning(str(target))

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not alive(backend) and not processes_mentioning(str(target)):
            break
        await asyncio.sleep(0.1)
    assert not alive(backend)
    assert processes_mentioning(str(target)) == []
    assert "# cancelled" in (tmp_path / "i.log").read_text()


@pytest.mark.asyncio
async def test_cancelling_right_after_start_leaves_nothing_running(tmp_path):
    target = tmp_path / "rt"
    task = asyncio.create_task(install_managed_runtime(
        python=sys.executable, target=target, extra_pip_args=NO_INDEX,
        log_path=tmp_path / "i.log"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert processes_mentioning(str(target)) == []


@pytest.mark.asyncio
async def test_a_broken_venv_is_recreated(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    target = tmp_path / "rt"
    (target / "bin").mkdir(parents=True)
    (target / "pyvenv.cfg").write_text("home = /nonexistent\n")
    (target / "bin" / "python").symlink_to("/nonexistent/python3")
    python = await install_managed_runtime(
        python=sys.executable, target=target, log_path=tmp_path / "i.log",
        extra_pip_args=[*NO_INDEX, "--find-links", str(wheels)])
    assert runtime.vllm_version_of(str(python)) == "0.26.0"


@pytest.mark.asyncio
async def test_a_foreign_folder_is_not_overwritten(tmp_path):
    target = tmp_path / "rt"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(ProblemError) as caught:
        await install_managed_runtime(python=sys.executable, target=target,
                                      log_path=tmp_path / "i.log")
    assert "not a virtual environment" in caught.value.problem.explanation
    assert (target / "precious.txt").read_text() == "keep me"


@pytest.mark.asyncio
async def test_unusable_python_is_bad_input(tmp_path):
    fake = tmp_path / "python2"
    fake.write_text("#!/bin/sh\necho CPython 2 7 18\n")
    fake.chmod(0o755)
    assert "needs 3.10 to 3.14" in check_base_python(str(fake))
    with pytest.raises(BadInput):
        await install_managed_runtime(python=str(fake), target=tmp_path / "rt",
                                      log_path=tmp_path / "i.log")


def test_no_suitable_python(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    found, tried = find_base_python(path_env=str(tmp_path))
    assert found is None and tried == [("PATH", "no python3 found")]
    from llmdesk.core.server import runtime_install

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProblemError) as caught:
        runtime_install._choose_python(None)
    assert caught.value.problem.title == "No suitable Python found"


def test_finds_a_python_on_path_when_frozen(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    found, _tried = find_base_python()
    assert found is not None and found != sys.executable
    assert check_base_python(found) == ""


def test_cli_runtime_json_without_vllm_lists_the_places_tried(tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin")
    result = subprocess.run([sys.executable, "-m", "llmdesk", "runtime", "--json"],
                            capture_output=True, text=True, timeout=60, env=env)
    report = json.loads(result.stdout)
    if report["runtime"] is not None:
        pytest.skip("this machine has vLLM")
    assert result.returncode == 1
    wheres = [t["where"] for t in report["tried"]]
    assert any("llmdesk's own vLLM environment" in w for w in wheres)
    assert report["problem"]["title"] == "vLLM is not installed"


def test_cli_python_without_install_is_bad_input():
    result = subprocess.run([sys.executable, "-m", "llmdesk", "runtime", "--python", "python3"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
