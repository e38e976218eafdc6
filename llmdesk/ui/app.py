"""Start the GUI: QApplication, theme, settings, main window, and the qasync loop.

The main coroutine waits for the window to close and then shuts down inside the still-running
loop, so async clean-up (saving state, later stopping the server) completes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from importlib import resources

from llmdesk import APP_ID
from llmdesk.core.base import settings as settings_store

STARTUP_PROBE_ENV = "LLMDESK_STARTUP_PROBE"  # bench/startup.py: report first paint, then quit


def create_application():
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    # Worker threads (downloads, Hub reads, NVML) hold the GIL in 5 ms slices by default; with
    # several of them the GUI thread waits tens of ms for its turn. Shorter slices keep it responsive.
    sys.setswitchinterval(0.001)
    if not hasattr(app, "_llmdesk_collector"):
        from llmdesk.ui.gc_guard import GuiThreadCollector

        app._llmdesk_collector = GuiThreadCollector(app)
    app.setApplicationName("llmdesk")
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(QIcon(str(resources.files("llmdesk.resources") / f"{APP_ID}.svg")))
    app.setQuitOnLastWindowClosed(False)  # the main coroutine decides when to finish
    return app


def build_window(app, **context_kwargs):
    """The window with its context; context_kwargs stand in for hardware (tests, screenshots)."""
    from llmdesk.ui.context import AppContext
    from llmdesk.ui.main_window import MainWindow
    from llmdesk.ui.theme import apply_theme, follow_system_scheme

    from llmdesk.ui.wheel_guard import install_wheel_guard

    install_wheel_guard(app)
    settings, settings_notice = settings_store.load_settings()
    remembered = settings_store.take_remembered_notice()  # the CLI may have moved the file aside earlier
    settings_notice = settings_notice or remembered
    state, _state_notice = settings_store.load_state()  # a lost window size needs no notice
    ctx = AppContext(settings, state, **context_kwargs)
    apply_theme(app, settings.theme)
    follow_system_scheme(app, lambda: ctx.settings.theme)
    ctx.settings_changed.connect(lambda s: apply_theme(app, s.theme))
    ctx.problems.install_excepthook()
    window = MainWindow(ctx)
    if settings_notice is not None:
        from llmdesk.core.base.errors import Problem
        ctx.problems.show_problem(Problem(settings_notice.title, settings_notice.message(),
                                          "Check the settings on the Settings page and save them again."))
    return window


async def run_window(window) -> None:
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    window.show()
    window.start()
    await closed.wait()
    window.ctx.downloads.cancel_all()  # finished parts stay on disk: the next start resumes
    await window.ctx.close_server()  # a server this window started leaves with it (no orphan holds the GPU)
    await window.ctx.tasks.shutdown()
    await window.ctx.save_state()


def run_app() -> int:
    import qasync

    from llmdesk.ui.single_instance import InstanceServer, ask_running_window_to_raise

    app = create_application()
    if ask_running_window_to_raise():
        print("llmdesk is already open: its window was brought to the front.", file=sys.stderr)
        return 0
    instance = InstanceServer(app)
    instance.listen()
    window = build_window(app)
    instance.raise_requested.connect(lambda: bring_to_front(window))
    close_on_signals(window)
    if os.environ.get(STARTUP_PROBE_ENV):
        _install_startup_probe(window)
    try:
        qasync.run(run_window(window))
    except RuntimeError as exc:
        if "Event loop stopped before Future completed" not in str(exc):
            raise
        # Qt quit by itself: the display went away (a dead X server, a logout). Nothing can be shown or
        # asked any more; vLLM, if this window started one, dies with this process (PR_SET_PDEATHSIG).
        print("llmdesk: the display went away, so the window closed; a server it started stops with it.",
              file=sys.stderr)
        return 1
    finally:
        instance.close()
    return 0


def close_on_signals(window) -> None:
    """SIGTERM (a logout, kill) and SIGHUP (the terminal closed) close the window as its close button
    does: the server it started is stopped, the state saved. Python runs signal handlers only between
    bytecodes, so the signal's wake-up byte is watched by Qt to give it the chance at once."""
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier, QTimer

    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)
    notifier.activated.connect(lambda *_: _drain(reader))

    def close(*_args) -> None:
        window.confirm_close_while_streaming = lambda: True  # nobody is there to answer
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, close)
    window._signal_wakeup = (reader, writer, notifier)  # kept as long as the window


def _drain(reader) -> None:
    try:
        reader.recv(256)
    except OSError:
        pass


def bring_to_front(window) -> None:
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


def _install_startup_probe(window) -> None:
    """Print when the window first painted and the RSS then, as JSON on stdout, and close."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and not getattr(self, "seen", False):
                self.seen = True
                QTimer.singleShot(0, report)  # after this paint has finished
            return False

    def report():
        heavy = sorted({"torch", "vllm", "transformers"} & set(sys.modules))
        # Imported when first needed, never at start: each costs a tenth of a second or more.
        later = sorted({"httpx", "huggingface_hub", "pyqtgraph", "aiohttp", "numpy"} & set(sys.modules))
        print(json.dumps({"painted_at": time.time(), "rss_bytes": _rss_bytes(), "heavy_modules": heavy,
                          "imported_early": later}), flush=True)
        window.close()

    probe = FirstPaint(window)
    window.installEventFilter(probe)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # not on Windows; peak RSS is the nearest figure there is

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
