"""A closed terminal, a logout or a kill stop what llmdesk started (issue: hardening, item 4)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.standin_server import DEMO_MODEL, free_port
from tests.fakes.vllm_standin.runtime import make_fake_runtime


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def serve(tmp_path, home: Path):
    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.002)
    env = dict(os.environ, LLMDESK_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "llmdesk", "serve", DEMO_MODEL, "--port", str(free_port()),
                             "--runtime", str(python)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().startswith("http://127.0.0.1")
    import json
    (record,) = (home / "state" / "servers").glob("*.json")
    return proc, json.loads(record.read_text())["pid"]


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_serve_stops_vllm_on_sighup_and_sigterm(tmp_path, sig):
    proc, vllm = serve(tmp_path, tmp_path / "home")
    proc.send_signal(sig)
    proc.wait(30)
    assert wait(lambda: gone(vllm), 20), "vLLM kept serving after llmdesk serve was told to stop"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_vllm_dies_with_llmdesk_even_after_sigkill(tmp_path):
    proc, vllm = serve(tmp_path, tmp_path / "home")
    proc.kill()
    proc.wait(10)
    assert wait(lambda: gone(vllm), 20), "vLLM outlived a SIGKILLed llmdesk"


def test_the_window_closes_cleanly_on_sigterm(tmp_path):
    env = dict(os.environ, LLMDESK_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    gui = subprocess.Popen([sys.executable, "-m", "llmdesk"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    state = tmp_path / "home" / "state" / "state.json"
    time.sleep(3)  # up and idle
    assert gui.poll() is None
    gui.send_signal(signal.SIGTERM)
    gui.wait(30)
    assert gui.returncode == 0 and state.exists()  # closed as by its close button: state saved


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt-get install xvfb; CI installs it)")
def test_a_display_that_goes_away_closes_the_window_with_a_plain_message(tmp_path):
    display = f":{random.randint(200, 900)}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
        env.update(LLMDESK_HOME=str(tmp_path / "home"), DISPLAY=display)
        gui = subprocess.Popen([sys.executable, "-m", "llmdesk"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        time.sleep(4)  # up and idle
        assert gui.poll() is None, gui.stderr.read()
    finally:
        xvfb.kill()
        xvfb.wait(5)
    _out, err = gui.communicate(timeout=30)
    assert gui.returncode == 1
    assert "the display went away" in err
    assert "Something went wrong" not in err and "bug report" not in err and "Traceback" not in err
