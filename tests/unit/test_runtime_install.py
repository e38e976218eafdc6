"""Managed runtimes against hand-made local `vllm` wheels, with uv and with pip: no network (--no-index)."""

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

from llmdesk.core.base.errors import BadInput, ProblemError
from llmdesk.core.server import runtime
from llmdesk.core.server import runtimes
from llmdesk.core.server.runtime_install import (STEP_CHECKING, STEP_CREATING, STEP_DONE, STEP_FAILED,
                                                 STEP_INSTALLING, InstallProgress, check_base_python,
                                                 find_base_python)

NO_INDEX = ["--no-index"]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_fake_vllm_wheel(folder: Path, version: str = "0.26.0", init: bytes = b"") -> Path:
    """A pure-Python wheel of a distribution called vllm with one module (`init` its code)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"vllm-{version}.dist-info"
    files = {
        "vllm/__init__.py": init,
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


def make_slow_sdist(folder: Path, pid_file: Path) -> Path:
    """vllm-0.26.0.tar.gz whose in-tree build backend writes its pid and then sleeps."""
    import io
    import tarfile

    folder.mkdir(parents=True)
    files = {"pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "slowbackend"\nbackend-path = ["."]\n',
             "slowbackend.py": f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n",
             "PKG-INFO": "Metadata-Version: 2.1\nName: vllm\nVersion: 0.26.0\n"}
    sdist = folder / "vllm-0.26.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"vllm-0.26.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sdist


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def install(tmp_path, wheels: Path | None = None, **kwargs):
    """install_runtime offline (no index is ever asked), from `wheels`, with this interpreter as the base."""
    kwargs.setdefault("python", sys.executable)
    kwargs.setdefault("log_path", tmp_path / "i.log")
    kwargs.setdefault("check_disk", False)
    return runtimes.install_runtime(kwargs.pop("version", "0.26.0"), wheels=wheels, extra_args=NO_INDEX, **kwargs)


@pytest.mark.asyncio
@pytest.mark.parametrize("installer", ["uv", "pip"])
async def test_installs_a_wheel_folder_with_progress_log_and_health_check_then_uses_it(tmp_path, installer):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    seen: list[InstallProgress] = []
    installed = await install(tmp_path, wheels, on_progress=seen.append, uv=installer == "uv")
    assert installed.in_use and installed.path == runtimes.runtime_dir("0.26.0")
    assert runtime.vllm_version_of(str(installed.python)) == "0.26.0"
    assert runtime.find_vllm_runtime("").runtime.python == str(installed.python)
    assert runtime.find_vllm_runtime("").runtime.source == runtime.SOURCE_MANAGED
    steps = [p.step for p in seen]
    assert [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s] == [
        STEP_CREATING, STEP_INSTALLING, STEP_CHECKING, STEP_DONE]
    fractions = [p.fraction for p in seen if p.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(p.line and p.line.startswith("vLLM, PyTorch, CUDA: vLLM 0.26.0") for p in seen)  # import vllm ran
    log = (tmp_path / "i.log").read_text()
    assert ("uv " in log.splitlines()[0]) == (installer == "uv") and "# done" in log
    assert not list(runtimes.runtimes_dir().glob("*.partial"))


@pytest.mark.asyncio
async def test_versions_live_side_by_side_and_use_switches_atomically(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels, "0.26.0")
    make_fake_vllm_wheel(wheels, "0.27.1")
    await install(tmp_path, wheels)
    newer = await install(tmp_path, wheels, version="0.27.1", use=False)
    assert [(r.version, r.in_use) for r in runtimes.list_runtimes()] == [("0.26.0", True), ("0.27.1", False)]
    assert not newer.in_use
    runtimes.use_runtime("0.27.1")
    assert runtime.find_vllm_runtime("").runtime.vllm_version == "0.27.1"
    with pytest.raises(BadInput, match="in use"):
        runtimes.remove_runtime("0.27.1")
    assert runtimes.remove_runtime("0.26.0") > 0
    assert [r.version for r in runtimes.list_runtimes()] == ["0.27.1"]
    with pytest.raises(BadInput, match="not installed"):
        runtimes.use_runtime("0.26.0")


@pytest.mark.asyncio
async def test_a_failed_install_never_breaks_the_runtime_in_use(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels, "0.26.0")
    make_fake_vllm_wheel(wheels, "0.27.1", init=b"raise ImportError('libcudart.so.13: cannot open shared object file')")
    await install(tmp_path, wheels)
    with pytest.raises(ProblemError) as caught:
        await install(tmp_path, wheels, version="0.27.1")
    assert caught.value.problem.title == "vLLM 0.27.1 was installed but does not start"
    assert "libcudart.so.13" in caught.value.problem.explanation and "runtime in use was not changed" in \
        caught.value.problem.explanation
    assert [(r.version, r.in_use) for r in runtimes.list_runtimes()] == [("0.26.0", True)]
    assert runtime.find_vllm_runtime("").runtime.vllm_version == "0.26.0"


@pytest.mark.asyncio
async def test_reinstalling_the_version_in_use_replaces_it_only_once_the_new_copy_works(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    first = await install(tmp_path, wheels)
    (first.path / "marker").write_text("old copy")
    again = await install(tmp_path, wheels)
    assert again.in_use and not (again.path / "marker").exists()
    assert runtime.vllm_version_of(str(again.python)) == "0.26.0"
    assert [p.name for p in runtimes.runtimes_dir().iterdir() if p.name.startswith(".old")] == []


@pytest.mark.asyncio
async def test_an_install_cut_short_continues_from_what_is_there(tmp_path):
    """A network drop: the install fails; the next one reuses the partial runtime instead of starting over."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_fake_vllm_wheel(tmp_path / "later", "0.26.0")
    (wheels / "vllm-0.26.0.tar.gz").write_bytes(b"not a real sdist")  # passes the folder check, fails to build
    with pytest.raises(ProblemError):
        await install(tmp_path, wheels, uv=False)
    partial = runtimes.runtime_dir("0.26.0").with_name("vllm-0.26.0.partial")
    assert (partial / "bin" / "python").exists() and runtimes.list_runtimes() == []
    seen: list[InstallProgress] = []
    installed = await install(tmp_path, tmp_path / "later", uv=False, on_progress=seen.append)
    assert any(p.line and p.line.startswith("continuing the install in") for p in seen)
    assert installed.in_use and not partial.exists()


@pytest.mark.asyncio
async def test_a_second_install_while_one_runs_is_refused(tmp_path):
    from llmdesk.core.base import locks

    runtimes.runtimes_dir().mkdir(parents=True)
    with locks.exclusive(runtimes.runtimes_dir() / ".install.lock", 1, None):
        with pytest.raises(ProblemError) as caught:
            await install(tmp_path, None)
    assert caught.value.problem.title == "Another vLLM install is running"


@pytest.mark.asyncio
async def test_a_wheel_folder_without_vllm_is_bad_input(tmp_path):
    (tmp_path / "wheels").mkdir()
    make_fake_vllm_wheel(tmp_path / "wheels", "0.25.0")
    with pytest.raises(BadInput) as caught:
        await install(tmp_path, tmp_path / "wheels")
    assert caught.value.problem.title == f"No vLLM 0.26.0 wheel in {tmp_path / 'wheels'}"
    assert "vllm-0.25.0" in caught.value.problem.explanation


@pytest.mark.asyncio
async def test_not_enough_disk_space_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(runtimes.paths, "free_bytes", lambda _p: 2 * 1024**3)
    with pytest.raises(ProblemError) as caught:
        await install(tmp_path, None, check_disk=True)
    assert caught.value.problem.title == "Not enough disk space for vLLM"
    assert "2.0 GiB are free" in caught.value.problem.explanation
    assert not list(runtimes.runtimes_dir().glob("vllm-*"))


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["../x", "0.26", "latest", "0.26.0; rm -rf /", ""])
async def test_a_version_that_is_not_a_release_number_is_bad_input(tmp_path, bad):
    if bad == "0.26":
        assert runtimes.check_version(bad) == bad  # two parts are a release number too
        return
    with pytest.raises(BadInput):
        await install(tmp_path, None, version=bad)


@pytest.mark.asyncio
async def test_an_unreachable_index_says_so(tmp_path):
    seen: list[InstallProgress] = []
    with pytest.raises(ProblemError) as caught:
        await install(tmp_path, None, version="99.0.0", on_progress=seen.append, uv=False)
    problem = caught.value.problem
    assert problem.title == "vLLM could not be downloaded" and "vllm==99.0.0" in problem.explanation
    assert seen[-1].step == STEP_FAILED and seen[-1].problem == problem


@pytest.mark.asyncio
async def test_disk_full_during_the_install_is_recognised(tmp_path, monkeypatch):
    async def full(argv, on_line, env=None):
        line = "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"
        on_line(line)
        return 1, [line]

    monkeypatch.setattr(runtimes, "stream_lines", full)
    with pytest.raises(ProblemError) as caught:
        await install(tmp_path, None)
    assert caught.value.problem.title == "The disk is full"


@pytest.mark.asyncio
async def test_cancelling_kills_the_installers_process_group(tmp_path):
    pid_file = tmp_path / "backend.pid"
    wheels = tmp_path / "wheels"
    make_slow_sdist(wheels, pid_file)
    task = asyncio.create_task(install(tmp_path, wheels, uv=False))
    deadline = time.monotonic() + 90
    while not pid_file.exists() or not pid_file.read_text():
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline, "the slow build backend never started"
        await asyncio.sleep(0.1)
    backend = int(pid_file.read_text())
    assert alive(backend)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not alive(backend):
            break
        await asyncio.sleep(0.1)
    assert not alive(backend)
    assert "# cancelled" in (tmp_path / "i.log").read_text()
    assert runtimes.list_runtimes() == []


@pytest.mark.asyncio
async def test_a_foreign_folder_is_not_overwritten(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    target = runtimes.runtime_dir("0.26.0")
    target.mkdir(parents=True)
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(ProblemError) as caught:
        await install(tmp_path, wheels)
    assert "not a virtual environment" in caught.value.problem.explanation
    assert (target / "precious.txt").read_text() == "keep me"


@pytest.mark.asyncio
async def test_unusable_python_is_bad_input(tmp_path):
    fake = tmp_path / "python2"
    fake.write_text("#!/bin/sh\necho CPython 2 7 18\n")
    fake.chmod(0o755)
    assert "needs 3.10 to 3.14" in check_base_python(str(fake))
    with pytest.raises(BadInput):
        await install(tmp_path, None, python=str(fake))


def test_no_suitable_python(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    found, tried = find_base_python(path_env=str(tmp_path))
    assert found is None and tried == [("PATH", "no python3 found")]
    from llmdesk.core.server import runtime_install

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProblemError) as caught:
        runtime_install.choose_python(None)
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


def test_cli_install_list_use_remove(tmp_path):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels, "0.26.0")
    make_fake_vllm_wheel(wheels, "0.27.1")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "llmdesk", "runtime", *args], capture_output=True, text=True,
                              timeout=300)

    for version in ("0.26.0", "0.27.1"):
        done = cli("install", version, "--wheels", str(wheels), "--python", sys.executable, "--json")
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["in_use"] is True
    listed = json.loads(cli("list", "--json").stdout)["runtimes"]
    assert [(r["version"], r["in_use"]) for r in listed] == [("0.26.0", False), ("0.27.1", True)]
    assert cli("use", "0.26.0").returncode == 0
    assert "* vLLM 0.26.0" in cli("list").stdout
    refused = cli("remove", "0.26.0")
    assert refused.returncode == 2 and "is the runtime in use" in refused.stderr
    assert cli("remove", "0.27.1").returncode == 0
    bad = cli("install", "../../x")
    assert bad.returncode == 2 and "Not a vLLM version" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.asyncio
async def test_a_driver_too_old_for_the_cuda_build_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    from llmdesk.core.machine import gpus

    scan = gpus.GpuScan(gpus=(object(),), driver_version="550.54", cuda_driver_version="12.4", problem=None)
    monkeypatch.setattr(gpus, "scan_gpus", lambda: scan)
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    with pytest.raises(ProblemError) as caught:
        await install(tmp_path, wheels, check_driver=True)
    assert caught.value.problem.title == "The NVIDIA driver is too old for vLLM 0.26.0"
    assert "CUDA 12.4" in caught.value.problem.explanation and "580" in caught.value.problem.fix
    assert not runtimes.runtimes_dir().exists() or runtimes.list_runtimes() == []
    installed = await install(tmp_path, wheels, check_driver=False)  # --force
    assert installed.in_use


def test_the_progress_follows_uvs_download_sizes():
    fraction = runtimes.InstallFraction()
    lines = ["Using Python 3.11.7 environment at: rt", "Resolved 198 packages in 2.1s",
             "Downloading torch (800.0MiB)", "Downloading nvidia-cublas (400.0MiB)", "Downloading triton (200.0MiB)",
             " Downloaded triton", " Downloaded nvidia-cublas", " Downloaded torch", "Prepared 198 packages in 30s",
             "Installed 198 packages in 5s", " + vllm==0.26.0"]
    values = [fraction(line) for line in lines]
    assert values == sorted(values)
    assert values[1] == 0.1 and values[4] == 0.1  # announced, nothing fetched yet
    assert abs(values[5] - (0.1 + 0.75 * 200 / 1400)) < 1e-9 and abs(values[7] - 0.85) < 1e-9
    assert values[8] == 0.9 and values[-1] == 0.95


def make_forwarding_uv_wheel(folder: Path) -> Path:
    """A wheel called uv whose only content is a bin/uv script that runs this machine's real uv."""
    from uv import find_uv_bin

    files = {"uv-0.13.9.data/scripts/uv": f'#!/bin/sh\nexec {find_uv_bin()} "$@"\n'.encode(),
             "uv-0.13.9.dist-info/METADATA": b"Metadata-Version: 2.1\nName: uv\nVersion: 0.13.9\n",
             "uv-0.13.9.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: llmdesk-tests\nRoot-Is-Purelib: true\n"
                                          b"Tag: py3-none-any\n"}
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    wheel = folder / "uv-0.13.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o100755 << 16  # a regular, executable file, as in the real uv wheel
            zf.writestr(info, data)
        zf.writestr("uv-0.13.9.dist-info/RECORD", record + "uv-0.13.9.dist-info/RECORD,,\n")
    return wheel


@pytest.mark.asyncio
async def test_without_uv_at_hand_pip_puts_uv_into_the_runtime_and_uv_fills_it(tmp_path, monkeypatch):
    """As in the packaged app, which carries no uv."""
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)
    make_forwarding_uv_wheel(wheels)
    monkeypatch.setattr(runtimes, "find_uv", lambda: None)
    installed = await install(tmp_path, wheels, uv=True)
    log = (tmp_path / "i.log").read_text()
    assert "with uv from pip" in log and "-m pip install --progress-bar off --no-color --no-index" in log
    assert f"{runtimes.runtime_dir('0.26.0')}.partial/bin/uv pip install" in log
    assert installed.in_use and runtime.vllm_version_of(str(installed.python)) == "0.26.0"


@pytest.mark.asyncio
async def test_when_uv_cannot_be_had_pip_installs_vllm(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    make_fake_vllm_wheel(wheels)  # offline, and no uv wheel in the folder
    monkeypatch.setattr(runtimes, "find_uv", lambda: None)
    installed = await install(tmp_path, wheels, uv=True)
    log = (tmp_path / "i.log").read_text()
    assert "uv could not be installed into the runtime; pip installs vLLM" in log
    assert installed.in_use
