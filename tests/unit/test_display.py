"""Before Qt starts: can the window open, and does the README's apt line name what Qt's xcb plugin needs?"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmdesk.core.machine import display
from llmdesk.core.machine.display import LIBRARY_PACKAGES, check_window, missing_libraries, qt_plugin_dir

ROOT = Path(__file__).resolve().parents[2]
XCB = qt_plugin_dir() / "libqxcb.so"


def readme_apt_packages() -> list[str]:
    line = re.search(r"^sudo apt-get install (.+)$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    assert line, "the README has no apt-get line"
    return line.group(1).split()


def test_no_display_is_said_plainly():
    check = check_window({"PATH": os.environ["PATH"]})
    assert check.problem.title == "No display to open the window on"
    assert check.no_display  # the doctor warns, not fails: every job still runs headless
    assert "llmdesk --help" in check.problem.fix


def test_a_local_display_with_no_x_server_is_said():
    check = check_window({"DISPLAY": ":987"})
    assert check.problem.title == "No X server at DISPLAY=:987"


def test_missing_libraries_are_named_with_their_packages(monkeypatch, tmp_path):
    (tmp_path / "libqxcb.so").write_bytes(b"")
    monkeypatch.setattr(display, "missing_libraries", lambda lib: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1",
                                                                   "libweird.so.9"])
    monkeypatch.setattr(display.Path, "exists", lambda self: True)  # any X socket
    check = check_window({"DISPLAY": ":0"}, plugin_dir=tmp_path)
    assert check.packages == ("libxcb-icccm4", "libxcb-keysyms1")
    assert check.problem.fix.startswith("sudo apt-get install libxcb-icccm4 libxcb-keysyms1; also libweird.so.9")
    assert "libxcb-icccm.so.4" in check.problem.explanation


def test_the_real_plugin_is_read_with_ldd():
    ldd = subprocess.run(["ldd", str(XCB)], capture_output=True, text=True).stdout
    assert missing_libraries(XCB) == list(dict.fromkeys(re.findall(r"(\S+) => not found", ldd)))


def test_a_platform_qt_does_not_have_is_said():
    check = check_window({"QT_QPA_PLATFORM": "nonesuch", "DISPLAY": ":0"})
    assert check.problem.title == "Qt has no 'nonesuch' platform"


def test_the_window_command_exits_1_with_the_message_instead_of_qt_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["LLMDESK_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "llmdesk"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "No display to open the window on" in result.stderr and "llmdesk --help" in result.stderr
    assert "Traceback" not in result.stderr and "qt.qpa" not in result.stderr


@pytest.mark.skipif(not shutil.which("dpkg-query") or not shutil.which("apt-cache"), reason="needs Debian's dpkg/apt")
def test_the_readme_apt_line_covers_every_library_the_xcb_plugin_links():
    """Every library ldd lists for Qt's xcb plugin is installed by the README's line: named in it, a
    dependency of something named in it, or part of every Debian system (priority required/important)."""
    named = readme_apt_packages()
    closure = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                              "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *named], capture_output=True, text=True).stdout
    provided = set(named) | {line.split(":", 1)[1].strip().strip("<>") for line in closure.splitlines()
                             if ":" in line and line.startswith(" ")} | set(re.findall(r"^(\S+)$", closure, re.M))
    ldd = subprocess.run(["ldd", str(XCB)], capture_output=True, text=True).stdout
    uncovered = []
    for name, path in re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M):
        if path == "not":
            package = LIBRARY_PACKAGES.get(name, f"? ({name})")
        else:
            if Path(path).resolve().is_relative_to(XCB.parents[3]):
                continue  # shipped inside PySide6
            owner = subprocess.run(["dpkg", "-S", str(Path(path).resolve())], capture_output=True, text=True)
            if owner.returncode != 0:  # /lib vs /usr/lib: try the other spelling
                other = str(Path(path).resolve()).replace("/usr/lib/", "/lib/", 1)
                owner = subprocess.run(["dpkg", "-S", other], capture_output=True, text=True)
            package = owner.stdout.split(":", 1)[0].strip() or f"? ({name})"
            priority = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", package], capture_output=True,
                                      text=True).stdout
            if priority in ("required", "important"):
                continue
        if package not in provided:
            uncovered.append(f"{name} ({package})")
    assert not uncovered, "add to the README's apt line: " + ", ".join(uncovered)
