"""Finding a Python with vLLM, using real (fake) interpreters: small executable scripts."""

from __future__ import annotations

import importlib.metadata
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from llmdesk.core.server import runtime
from llmdesk.core.server.runtime import (RuntimeSearch, VllmRuntime, find_vllm_runtime, interpreter_of_script,
                                         managed_runtime_dir, vllm_version_of)

NOT_INSTALLED = ("echo 'importlib.metadata.PackageNotFoundError: No package metadata was found "
                 "for vllm' >&2; exit 1")


def make_script(path: Path, body: str, shebang: str = "#!/bin/sh") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{shebang}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def fake_python(path: Path, version: str | None) -> str:
    """An 'interpreter' that answers the version query like a Python with (or without) vLLM."""
    return make_script(path, f"echo {version}" if version else NOT_INSTALLED)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """LLMDESK_HOME in tmp; the app environment (this venv) never has vLLM unless a test says so."""
    monkeypatch.setenv("LLMDESK_HOME", str(tmp_path / "home"))
    monkeypatch.delattr(sys, "frozen", raising=False)

    def no_vllm(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", no_vllm)


@pytest.fixture
def empty_path(tmp_path) -> str:
    d = tmp_path / "empty-bin"
    d.mkdir()
    return str(d)


# --- vllm_version_of --------------------------------------------------------------------------

def test_version_of_fake_python(tmp_path):
    assert vllm_version_of(fake_python(tmp_path / "py", "0.26.0")) == "0.26.0"


def test_version_of_python_without_vllm(tmp_path):
    assert vllm_version_of(fake_python(tmp_path / "py", None)) is None
    assert runtime._probe(fake_python(tmp_path / "py", None), 5) == (None, "vLLM is not installed in it")


def test_version_of_missing_and_not_executable(tmp_path):
    assert vllm_version_of(str(tmp_path / "nope")) is None
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\necho 0.26.0\n")
    plain.chmod(0o644)
    assert vllm_version_of(str(plain)) is None


def test_version_of_garbage_answer(tmp_path):
    py = make_script(tmp_path / "py", "echo 'hello world'")
    assert vllm_version_of(py) is None
    assert runtime._probe(py, 5) == (None, "gave an answer that is not a version ('hello world')")


def test_version_of_other_failure_reports_exit_code(tmp_path):
    py = make_script(tmp_path / "py", "echo 'boom' >&2; exit 3")
    assert runtime._probe(py, 5) == (None, "failed (exit code 3: boom)")


def test_version_of_hanging_interpreter_is_killed_on_timeout(tmp_path):
    # `sleep` is a child of the shell and holds the pipe: only killing the group returns early.
    py = make_script(tmp_path / "py", "sleep 30")
    start = time.monotonic()
    assert runtime._probe(py, 0.5) == (None, "did not answer within 0.5 s")
    assert time.monotonic() - start < 5
    start = time.monotonic()
    assert vllm_version_of(py, timeout_s=0.3) is None
    assert time.monotonic() - start < 5


def test_version_of_real_python_reads_dist_info_without_importing(tmp_path):
    """The real query against a real interpreter: a dist-info folder only, no vllm package."""
    site = tmp_path / "site"
    dist = site / "vllm-0.26.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.26.0\n")
    py = make_script(tmp_path / "py", f'PYTHONPATH="{site}" exec "{sys.executable}" "$@"')
    assert vllm_version_of(py) == "0.26.0"
    # ... and the same interpreter without it:
    bare = make_script(tmp_path / "bare", f'PYTHONPATH= exec "{sys.executable}" -I "$@"')
    assert runtime._probe(bare, 15) == (None, "vLLM is not installed in it")


# --- VllmRuntime ------------------------------------------------------------------------------

@pytest.mark.parametrize("version,tested", [
    ("0.26.0", True), ("0.26.3", True), ("0.26.0+cu130", True), ("0.26", True),
    ("0.25.1", False), ("0.27.0", False), ("0.2.6", False), ("1.26.0", False), ("dev", False),
])
def test_is_tested(version, tested):
    assert VllmRuntime("/x/python", version, "PATH").is_tested is tested


def test_managed_runtime_dir(tmp_path):
    assert managed_runtime_dir() == tmp_path / "home" / "data" / "runtimes" / "vllm-0.26.0"


# --- shebangs ---------------------------------------------------------------------------------

def test_shebang_absolute(tmp_path):
    py = fake_python(tmp_path / "venv" / "bin" / "python", "0.26.0")
    script = make_script(tmp_path / "bin" / "vllm", "...", shebang=f"#!{py}")
    assert interpreter_of_script(script) == (py, "")


def test_shebang_env(tmp_path):
    py = fake_python(tmp_path / "bin" / "python3", "0.26.0")
    script = make_script(tmp_path / "bin" / "vllm", "...", shebang="#!/usr/bin/env -S python3 -u")
    assert interpreter_of_script(script, str(tmp_path / "bin")) == (py, "")
    assert interpreter_of_script(script, str(tmp_path / "nothing-here")) == (
        None, "runs python3 through env, which is not on PATH")


@pytest.mark.parametrize("quote", ['"', "'", ""])
def test_shebang_sh_exec_trick_of_pip_and_uv(tmp_path, quote):
    py = fake_python(tmp_path / ("deep" * 30) / "bin" / "python", "0.26.0")
    script = make_script(tmp_path / "vllm", f"'''exec' {quote}{py}{quote} \"$0\" \"$@\"\n' '''\n",
                         shebang="#!/bin/sh")
    assert interpreter_of_script(script) == (py, "")


def test_shebang_unusable(tmp_path):
    sh = make_script(tmp_path / "vllm", 'exec "$(dirname "$0")/python" -m vllm "$@"')
    assert interpreter_of_script(sh) == (
        None, "starts with #!/bin/sh, so the Python it runs cannot be told; "
              "set the interpreter in Settings → vLLM runtime")
    binary = tmp_path / "vllm-bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00")
    assert interpreter_of_script(str(binary)) == (
        None, "is not a script with a #! line, so its Python cannot be told")
    gone = make_script(tmp_path / "vllm-gone", "...", shebang="#!/no/such/python")
    assert interpreter_of_script(gone) == (None, "runs /no/such/python, which does not exist")


# --- find_vllm_runtime ------------------------------------------------------------------------

def test_nothing_found(empty_path):
    search = find_vllm_runtime("", path_env=empty_path)
    assert search.runtime is None
    assert search.tried == (
        (f"llmdesk's own vLLM environment ({managed_runtime_dir()})", "not created yet"),
        (f"this app's environment ({sys.executable})", "vLLM is not installed in it"),
        ("a vllm command on PATH", "none found"),
    )
    assert search.problem is not None
    assert search.problem.title == "vLLM is not installed"
    assert "Looked at: llmdesk's own vLLM environment" in search.problem.explanation
    assert ("python3 -m venv ~/vllm-venv && ~/vllm-venv/bin/pip install vllm==0.26.0"
            in search.problem.fix)
    assert "Settings → vLLM runtime" in search.problem.fix
    assert 'pip install "llmdesk[vllm]"' in search.problem.fix


def test_frozen_app_skips_own_environment_and_pip_hint(empty_path, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    search = find_vllm_runtime("", path_env=empty_path)
    assert search.tried[1] == ("this app's environment", "a packaged app cannot hold vLLM")
    assert "llmdesk[vllm]" not in search.problem.fix


def test_configured_found(tmp_path, empty_path):
    py = fake_python(tmp_path / "venv" / "bin" / "python", "0.26.0")
    assert find_vllm_runtime(py, path_env=empty_path) == RuntimeSearch(
        VllmRuntime(py, "0.26.0", "configured"), (), None)


def test_configured_venv_folder_means_its_python(tmp_path, empty_path):
    py = fake_python(tmp_path / "venv" / "bin" / "python", "0.26.1")
    search = find_vllm_runtime(str(tmp_path / "venv"), path_env=empty_path)
    assert search.runtime == VllmRuntime(py, "0.26.1", "configured")


def test_configured_older_version_is_found_but_not_tested(tmp_path, empty_path):
    py = fake_python(tmp_path / "py", "0.25.1")
    search = find_vllm_runtime(py, path_env=empty_path)
    assert search.runtime == VllmRuntime(py, "0.25.1", "configured")
    assert search.runtime.is_tested is False
    assert search.problem is None


def test_configured_missing_is_reported_when_nothing_else(tmp_path, empty_path):
    missing = str(tmp_path / "gone" / "python")
    search = find_vllm_runtime(missing, path_env=empty_path)
    assert search.runtime is None
    assert search.tried[0] == (missing, "does not exist")
    assert search.problem.title == "vLLM is not installed"
    assert search.problem.explanation.startswith(
        f"The interpreter chosen in Settings, {missing}, does not exist. ")
    assert search.problem.fix.startswith("Correct the interpreter in Settings → vLLM runtime, or: ")


def test_configured_not_executable(tmp_path, empty_path):
    plain = tmp_path / "python"
    plain.write_text("#!/bin/sh\necho 0.26.0\n")
    plain.chmod(0o644)
    search = find_vllm_runtime(str(plain), path_env=empty_path)
    assert search.runtime is None
    assert search.tried[0] == (str(plain), "is not executable")


def test_configured_without_vllm_falls_back_but_says_so(tmp_path):
    configured = fake_python(tmp_path / "configured" / "python", None)
    py = fake_python(tmp_path / "venv" / "bin" / "python", "0.26.0")
    bin_dir = tmp_path / "bin"
    make_script(bin_dir / "vllm", "...", shebang=f"#!{py}")
    search = find_vllm_runtime(configured, path_env=str(bin_dir))
    assert search.runtime == VllmRuntime(py, "0.26.0", "PATH")
    assert search.tried[0] == (configured, "vLLM is not installed in it")
    assert search.problem.title == "The configured vLLM runtime cannot be used"
    assert search.problem.explanation == (
        f"The interpreter chosen in Settings, {configured}, vLLM is not installed in it. "
        f"llmdesk uses vLLM 0.26.0 from {py} (PATH) instead.")
    assert search.problem.fix == "Correct or clear the interpreter in Settings → vLLM runtime."


def test_configured_hanging_interpreter_times_out(tmp_path, empty_path):
    py = make_script(tmp_path / "py", "sleep 30")
    start = time.monotonic()
    search = find_vllm_runtime(py, path_env=empty_path, timeout_s=0.5)
    assert time.monotonic() - start < 5
    assert search.runtime is None
    assert search.tried[0] == (py, "did not answer within 0.5 s")


def test_managed_comes_before_app_environment_and_path(tmp_path, monkeypatch):
    managed = fake_python(managed_runtime_dir() / "bin" / "python", "0.26.0")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.26.0")
    other = fake_python(tmp_path / "other" / "python", "0.26.0")
    make_script(tmp_path / "bin" / "vllm", "...", shebang=f"#!{other}")
    search = find_vllm_runtime("", path_env=str(tmp_path / "bin"))
    assert search == RuntimeSearch(VllmRuntime(managed, "0.26.0", "managed"), (), None)


def test_managed_without_vllm(empty_path):
    managed = fake_python(managed_runtime_dir() / "bin" / "python", None)
    search = find_vllm_runtime("", path_env=empty_path)
    assert search.runtime is None
    assert search.tried[0] == (managed, "vLLM is not installed in it")


def test_app_environment_before_path(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "0.26.0" if name == "vllm" else "1")
    other = fake_python(tmp_path / "other" / "python", "0.26.0")
    make_script(tmp_path / "bin" / "vllm", "...", shebang=f"#!{other}")
    search = find_vllm_runtime("", path_env=str(tmp_path / "bin"))
    assert search.runtime == VllmRuntime(sys.executable, "0.26.0", "app environment")
    assert search.problem is None


def test_vllm_on_path(tmp_path):
    py = fake_python(tmp_path / "venv" / "bin" / "python", "0.25.1")
    bin_dir = tmp_path / "bin"
    script = make_script(bin_dir / "vllm", "...", shebang=f"#!{py}")
    search = find_vllm_runtime("", path_env=os.pathsep.join([str(tmp_path / "x"), str(bin_dir)]))
    assert search.runtime == VllmRuntime(py, "0.25.1", "PATH")
    assert search.runtime.is_tested is False
    assert [where for where, _ in search.tried] == [
        f"llmdesk's own vLLM environment ({managed_runtime_dir()})",
        f"this app's environment ({sys.executable})"]
    assert script == str(bin_dir / "vllm")


def test_vllm_on_path_with_unusable_shebang(tmp_path):
    bin_dir = tmp_path / "bin"
    script = make_script(bin_dir / "vllm", 'exec "$(dirname "$0")/python" -m vllm "$@"')
    search = find_vllm_runtime("", path_env=str(bin_dir))
    assert search.runtime is None
    assert search.tried[-1] == (script, "starts with #!/bin/sh, so the Python it runs cannot be "
                                        "told; set the interpreter in Settings → vLLM runtime")


def test_vllm_on_path_whose_python_lacks_vllm(tmp_path):
    py = fake_python(tmp_path / "venv" / "bin" / "python", None)
    bin_dir = tmp_path / "bin"
    script = make_script(bin_dir / "vllm", "...", shebang=f"#!{py}")
    search = find_vllm_runtime("", path_env=str(bin_dir))
    assert search.runtime is None
    assert search.tried[-1] == (f"{script} (runs {py})", "vLLM is not installed in it")


def test_vllm_on_path_running_the_configured_python_is_not_probed_twice(tmp_path):
    py = fake_python(tmp_path / "venv" / "bin" / "python", None)
    bin_dir = tmp_path / "bin"
    script = make_script(bin_dir / "vllm", "...", shebang=f"#!{py}")
    search = find_vllm_runtime(py, path_env=str(bin_dir))
    assert search.tried[0] == (py, "vLLM is not installed in it")
    assert search.tried[-1] == (script, f"runs {py}, already checked above")


def test_core_runtime_never_imports_vllm_or_torch():
    assert "vllm" not in sys.modules
    assert "torch" not in sys.modules
