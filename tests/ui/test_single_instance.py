"""A second `llmdesk` raises the first window and exits; the CLI runs beside the window."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def start_window(home: Path) -> subprocess.Popen:
    env = dict(os.environ, LLMDESK_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen([sys.executable, "-m", "llmdesk"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_llmdesk(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LLMDESK_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "llmdesk", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def wait_for(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def log_text(home: Path) -> str:
    from llmdesk.core.base.app_log import log_file

    os.environ["LLMDESK_HOME"] = str(home)  # the test's own home (the autouse fixture restores it)
    log = log_file()
    return log.read_text(encoding="utf-8") if log.exists() else ""


def test_a_second_start_raises_the_first_window_and_exits(tmp_path):
    home = tmp_path / "home"
    first = start_window(home)
    try:
        wait_for(lambda: _answers(home), timeout_s=30)
        second = run_llmdesk(home)
        assert second.returncode == 0
        assert "already open" in second.stderr
        wait_for(lambda: "asked this window to come to the front" in log_text(home), timeout_s=10)
        assert first.poll() is None  # the first window is still there
        beside = run_llmdesk(home, "gpus", "--json")  # the CLI is not a second window
        assert beside.returncode == 0, beside.stderr
        other_home = run_llmdesk(tmp_path / "other", "doctor", "--json")
        assert "already open" not in other_home.stderr
    finally:
        first.terminate()
        first.wait(20)


def _answers(home: Path) -> bool:
    code = ("import sys; from PySide6.QtNetwork import QLocalSocket; from llmdesk.ui.single_instance import "
            "socket_name; s = QLocalSocket(); s.connectToServer(socket_name()); "
            "sys.exit(0 if s.waitForConnected(300) else 1)")
    env = dict(os.environ, LLMDESK_HOME=str(home))
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=30).returncode == 0
