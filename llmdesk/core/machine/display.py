"""Can this machine open llmdesk's window? Asked before QApplication exists, because Qt aborts the
process (exit 134, with a hint that names the wrong library) when its platform plugin cannot load.

Without importing Qt: PySide6 is found with importlib, its platform plugin's shared libraries are
listed with ``ldd``, and every one that is "not found" is named with the Debian/Ubuntu package that
provides it (shared reference qt.md 2a-2b). Blocking (one ldd, a few ms); called once at start-up.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmdesk.core.base.errors import Problem

# The libraries Qt's platform plugins link against that a bare desktop may lack, and their packages
# (Debian 12 / Ubuntu 22.04 names; checked against the venv's libqxcb.so by tests/unit/test_display.py).
LIBRARY_PACKAGES = {
    "libGL.so.1": "libgl1", "libEGL.so.1": "libegl1", "libGLX.so.0": "libglx0", "libGLdispatch.so.0": "libglvnd0",
    "libxkbcommon.so.0": "libxkbcommon0", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0", "libdbus-1.so.3": "libdbus-1-3",
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-util.so.1": "libxcb-util1", "libxcb-image.so.0": "libxcb-image0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-sync.so.1": "libxcb-sync1", "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6", "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0", "libwayland-egl.so.1": "libwayland-egl1",
}
HEADLESS_HINT = "Every job also runs without a window: see llmdesk --help."


@dataclass(frozen=True)
class WindowCheck:
    platform: str | None  # the Qt platform plugin that would be used ("xcb", "wayland", "offscreen", …)
    problem: Problem | None  # None: the window can open
    missing_libraries: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()  # what to apt-get install for them
    no_display: bool = False  # nothing is broken: this session has no desktop (every job runs headless)


def qt_plugin_dir() -> Path | None:
    """PySide6's platform plugin folder, found without importing PySide6; None if it is not installed."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms"


def platform_to_use(env: Mapping[str, str]) -> str | None:
    """The platform Qt would pick: QT_QPA_PLATFORM if set, else wayland in a Wayland session, else xcb
    where there is an X display, else None (nothing to show a window on)."""
    chosen = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].split(";", 1)[0].strip()
    if chosen:
        return chosen
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return None


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries `library` needs (directly or through others) that the loader cannot find."""
    try:
        result = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []  # no ldd (not glibc): Qt will say what it says
    missing = re.findall(r"^\s*(\S+)\s+=>\s+not found", result.stdout, re.M)
    return list(dict.fromkeys(missing))


def apt_line(packages: list[str] | tuple[str, ...]) -> str:
    return "sudo apt-get install " + " ".join(packages)


def check_window(env: Mapping[str, str] | None = None, plugin_dir: Path | None = None) -> WindowCheck:
    """Whether QApplication would start with a window here, and if not, what to do."""
    env = os.environ if env is None else env
    plugin_dir = plugin_dir if plugin_dir is not None else qt_plugin_dir()
    if plugin_dir is None:
        return WindowCheck(None, Problem(
            "The window's toolkit is not installed",
            "PySide6 (Qt for Python) could not be found in this Python environment.",
            f"Reinstall llmdesk with its dependencies (pip install llmdesk). {HEADLESS_HINT}"))
    platform = platform_to_use(env)
    if platform is None:
        return WindowCheck(None, Problem(
            "No display to open the window on",
            "Neither DISPLAY nor WAYLAND_DISPLAY is set: this session has no graphical desktop "
            "(an SSH login or a server, say).",
            f"Start llmdesk from a desktop session, or use ssh -X. {HEADLESS_HINT}"), no_display=True)
    local = re.fullmatch(r":(\d+)(?:\.\d+)?", env.get("DISPLAY", ""))
    if platform == "xcb" and local and not Path(f"/tmp/.X11-unix/X{local.group(1)}").exists():
        return WindowCheck(platform, Problem(
            f"No X server at DISPLAY={env['DISPLAY']}",
            "DISPLAY names a local X display that is not running.",
            f"Start llmdesk from the desktop session, or correct DISPLAY. {HEADLESS_HINT}"))
    plugin = plugin_dir / f"libq{platform}.so"
    if not plugin.is_file():
        return WindowCheck(platform, Problem(
            f"Qt has no '{platform}' platform",
            f"QT_QPA_PLATFORM asks for '{platform}', which this PySide6 does not have ({plugin_dir}).",
            f"Unset QT_QPA_PLATFORM, or set it to xcb or wayland. {HEADLESS_HINT}"))
    missing = missing_libraries(plugin)
    if not missing:
        return WindowCheck(platform, None)
    packages = tuple(dict.fromkeys(LIBRARY_PACKAGES.get(name, "") for name in missing if name in LIBRARY_PACKAGES))
    unknown = [name for name in missing if name not in LIBRARY_PACKAGES]
    fix = apt_line(packages) if packages else ""
    if unknown:
        fix += ("; also " if fix else "Install the packages that provide ") + ", ".join(unknown) \
            + " (apt-file search NAME finds them)"
    return WindowCheck(platform, Problem(
        "The window cannot open: system libraries are missing",
        f"Qt's {platform} platform needs {', '.join(missing)}, which this system does not have.",
        f"{fix}. {HEADLESS_HINT}"), tuple(missing), packages)
