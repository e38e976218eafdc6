import asyncio
import dataclasses
import json
import sys
import time

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel

from llmdesk.core.base import settings as settings_store
from llmdesk.core.base.app_log import log_file, setup_logging
from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.machine.gpus import GpuScan
from llmdesk.ui.main_window import gpu_status_text
from llmdesk.ui.pages.machine import GpuCard
from llmdesk.ui.stall_monitor import StallMonitor
from tests.ui.conftest import NO_DRIVER, scan_of

PAGES = ["machine", "models", "server", "dashboard", "chat", "benchmark", "deploy", "settings", "start"]


def texts(widget) -> str:
    return "\n".join(label.text() for label in widget.findChildren(QLabel))


def test_sidebar_lists_every_page_and_switches_between_them(make_window, qtbot):
    window = make_window()
    assert window.page_keys == PAGES
    assert [window.sidebar.item(i).text() for i in range(window.sidebar.count())] == [
        "Machine", "Models", "Server", "Dashboard", "Chat", "Benchmark", "Deploy", "Settings", "Get started"]
    for row, key in enumerate(PAGES):
        window.sidebar.setCurrentRow(row)
        assert window.current_page == key
        assert window.stack.currentIndex() == row


def test_every_page_is_built(make_window):
    window = make_window()
    assert "Not built yet" not in texts(window.stack)
    assert window.stack.widget(PAGES.index("deploy")) is window.deploy_page
    assert window.stack.widget(PAGES.index("dashboard")) is window.dashboard_page
    assert window.stack.widget(PAGES.index("benchmark")) is window.bench_page


def test_every_page_has_one_anatomy(make_window, qtbot):
    """#25: each page opens with its title and purpose at the same place, and has at most one main action
    (a primary button) in view at a time."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QPushButton

    window = make_window()
    window.resize(1024, 640)
    places = {}
    for key in PAGES:
        window.show_page(key)
        for _ in range(3):  # the layout passes a person would wait for
            QApplication.sendPostedEvents()
            QApplication.processEvents()
        page = window.stack.currentWidget()
        title = page.findChild(QLabel, "pageTitle")
        assert title is not None and title.isVisible(), key
        assert page.findChild(QLabel, "pageSubtitle").text(), key
        places[key] = title.mapTo(window, QPoint(0, 0))
        primaries = [b for b in page.findChildren(QPushButton) if b.property("primary") and b.isVisible()]
        assert len(primaries) <= 1, (key, [b.text() for b in primaries])
    assert len(set(places.values())) == 1, str({key: (p.x(), p.y()) for key, p in places.items()})


def test_headings_line_up_with_the_text_under_them(make_window):
    """A style sheet's margin gives a label a frame, and a framed QLabel indents its text by half an "x":
    the guide's step titles and every section title stood 5 px right of their page's text."""
    from llmdesk.ui import design

    def first_ink_x(label: QLabel) -> int:
        image = label.grab().toImage()
        for x in range(image.width()):
            if any(image.pixelColor(x, y).lightness() < 110 for y in range(image.height())):
                return x
        return -1

    window = make_window()
    plain = QLabel("Welcome")
    plain.resize(300, 60)
    for name in ("title", "section", "subsection", "heading", "strong", "caption"):
        label = design.role(QLabel("Welcome"), name)
        label.resize(300, 60)
        assert first_ink_x(label) == first_ink_x(plain), name
    titled = [label for label in window.findChildren(QLabel) if label.property("role") in ("title", "section")]
    assert titled and all(label.indent() == 0 for label in titled)


def test_action_icons_follow_a_theme_switch(make_window, qapp):
    from llmdesk.ui import design, theme

    def darkest(button) -> int:  # the icon's strongest ink: dark in the light theme, light in the dark one
        image = button.icon().pixmap(16, 16).toImage()
        inks = [image.pixelColor(x, y) for x in range(16) for y in range(16)]
        return min(c.lightness() for c in inks if c.alpha() > 200)

    window = make_window()
    start, stop = window.server_page.start_button, window.server_page.stop_button
    assert start.property("primary") and start.property("actionIcon") == "mdi6.play"
    assert not stop.property("primary") and stop.property("actionIcon") == "mdi6.stop"
    stop.setEnabled(True)
    light_ink = darkest(stop)
    theme.apply_theme(qapp, "dark")
    try:
        assert darkest(stop) > light_ink + 100  # drawn again in the new theme's text colour
        assert design.DARK.accent in start.styleSheet()
    finally:
        theme.apply_theme(qapp, "light")


def test_status_bar_without_gpu_and_with_two(make_window):
    window = make_window(NO_DRIVER)
    assert window.gpu_status.text() == "No NVIDIA GPU"
    assert window.server_status.text() == "Server: stopped"
    window.show_page("machine")
    empty = window.machine_page.no_gpu  # #25: what the page will show, and the one action meanwhile
    assert empty.isVisible() and "No NVIDIA driver found" in empty.title.text()
    assert "the GPU you plan to use" in empty.text.text() and empty.action.text() == "Choose a GPU to plan for"
    empty.action.click()
    plan = window.machine_page.plan_choice
    assert plan.view().isVisible()
    plan.hidePopup()
    plan.setCurrentIndex(plan.findData("l4"))
    assert not empty.action.isVisible()  # planned: nothing left to lead to

    window = make_window(scan_of("h100", 2))
    assert window.gpu_status.text() == "2× NVIDIA H100 80GB HBM3 · 158.4 GiB free of 159.3 GiB"
    assert len(window.machine_page.findChildren(GpuCard)) == 2


def test_gpu_status_text_for_mixed_and_single_gpus():
    single = scan_of("l4")
    assert gpu_status_text(single) == "NVIDIA L4 · 21.9 GiB free of 22.5 GiB"
    mixed = GpuScan(gpus=scan_of("l4").gpus + scan_of("t4").gpus, driver_version=None,
                    cuda_driver_version=None, problem=None)
    assert gpu_status_text(mixed).startswith("2× mixed GPUs · ")
    assert gpu_status_text(None) == "Looking for GPUs…"
    assert gpu_status_text(NO_DRIVER, "NVIDIA H200 (140 GiB)") == "No NVIDIA GPU · planning for NVIDIA H200 (140 GiB)"


def test_doctor_checks_are_shown(make_window):
    window = make_window(NO_DRIVER)
    shown = texts(window.machine_page)
    assert "<b>GPUs</b> — 0 GPUs" in shown
    assert "→ Install the driver." in shown


def test_planning_gpu_is_shown_and_saved(make_window, qtbot, arun):
    window = make_window(NO_DRIVER)
    page = window.machine_page
    page.plan_choice.setCurrentIndex(page.plan_choice.findData("h200"))
    qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0)
    cards = page.findChildren(GpuCard)
    assert len(cards) == 1 and "Planning for: NVIDIA H200" in texts(cards[0])
    assert settings_store.load_settings()[0].planning_gpu == "h200"
    assert window.gpu_status.text().startswith("No NVIDIA GPU · planning for NVIDIA H200")


@pytest.mark.default_settings
def test_geometry_and_last_page_are_remembered(make_window, qtbot, arun):
    window = make_window()
    size = (window.minimumWidth(), window.minimumHeight() + 17)  # the offscreen screen is 800 wide: no wider
    window.resize(*size)
    window.show_page("chat")
    window.ctx.state.first_run_done = True  # else the first-run guide opens first
    window.close()
    arun(window.ctx.save_state())
    state = json.loads(settings_store.state_path().read_text())
    assert state["schema_version"] == 1 and state["values"]["last_page"] == "chat"

    again = make_window()
    assert again.current_page == "chat"
    assert (again.width(), again.height()) == size
    assert not settings_store.settings_path().exists()  # state never lands in the user's settings


def test_failed_task_reaches_the_banner_without_a_traceback(make_window, qtbot):
    setup_logging()
    window = make_window()

    async def broken():
        await asyncio.sleep(0.01)
        raise RuntimeError("disk on fire")

    window.ctx.tasks.run(broken(), "loading the model list")
    qtbot.waitUntil(window.ctx.banner.isVisible)
    banner = window.ctx.banner
    assert banner.title.text() == "Something went wrong while loading the model list"
    assert banner.explanation.text() == "disk on fire"
    assert "Traceback" not in texts(banner)
    assert "Traceback" in log_file().read_text() and "disk on fire" in log_file().read_text()


def test_expected_problems_show_their_own_words_and_queue_up(make_window, qtbot):
    window = make_window()

    async def gated():
        raise ProblemError(Problem("This model is gated", "Accept its licence first.", "Add a token."))

    window.ctx.tasks.run(gated(), "downloading")
    window.ctx.problems.show_problem(Problem("Port 8000 is taken", "Another program uses it.", None))
    qtbot.waitUntil(lambda: len(window.ctx.problems.pending) == 2)
    banner = window.ctx.banner
    assert banner.title.text() == "This model is gated"
    assert banner.fix.text() == "What to do: Add a token."
    assert banner.more.text() == "1 more after this one"
    qtbot.mouseClick(banner.dismiss, Qt.MouseButton.LeftButton)
    assert banner.title.text() == "Port 8000 is taken" and banner.fix.isHidden()
    qtbot.mouseClick(banner.dismiss, Qt.MouseButton.LeftButton)
    assert banner.isHidden()


def test_exception_in_a_slot_reaches_the_banner(make_window, qtbot):
    window = make_window()

    def broken_slot():
        raise ValueError("bad slot")

    QTimer.singleShot(0, broken_slot)
    qtbot.waitUntil(window.ctx.banner.isVisible)
    assert window.ctx.banner.explanation.text() == "bad slot"


@pytest.mark.default_settings
def test_corrupt_settings_are_moved_aside_with_a_notice(make_window):
    path = settings_store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    window = make_window()
    assert window.ctx.banner.title.text() == "Your settings could not be read"
    assert not path.exists()
    assert len(list(path.parent.glob("settings.json.corrupt-*"))) == 1
    assert window.ctx.settings.server_port == 8000


def test_settings_page_saves_and_rejects_bad_values(make_window, qtbot):
    window = make_window()
    page = window.settings_page
    page.port.setValue(8123)
    page.host.setText("0.0.0.0")
    assert "llmdesk will require an API key" in page.message.text()
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.message.text() == "Saved.")
    saved = settings_store.load_settings()[0]
    assert (saved.server_port, saved.server_host) == (8123, "0.0.0.0")

    page.host.setText("")
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    assert page.message.text() == "Not saved: the server address cannot be empty."
    assert settings_store.load_settings()[0].server_host == "0.0.0.0"


def test_settings_saved_elsewhere_show_on_the_page_but_an_edit_in_progress_stays(make_window, qtbot, arun):
    window = make_window()
    page = window.settings_page
    page.port.setValue(8123)  # being edited, not saved
    saved = dataclasses.replace(window.ctx.settings, theme="dark", server_port=9000)
    arun(window.ctx.save_settings(saved))
    assert page.theme.currentData() == "dark"  # untouched here: follows what was saved
    assert page.port.value() == 8123  # the person's edit is theirs until Save or Revert
    qtbot.mouseClick(page.revert, Qt.MouseButton.LeftButton)
    assert page.port.value() == 9000


def test_dark_theme_applies_at_once(make_window, qtbot, qapp):
    window = make_window()
    page = window.settings_page
    page.theme.setCurrentIndex(page.theme.findData("dark"))
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.message.text() == "Saved.")
    assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
    page.theme.setCurrentIndex(page.theme.findData("light"))
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: qapp.palette().color(QPalette.ColorRole.Window).lightness() > 180)


def test_slow_gpu_scan_does_not_stall_the_event_loop(qapp, qtbot, aio):
    from llmdesk.ui.app import build_window

    def slow_scan():
        time.sleep(0.4)  # NVML on a busy multi-GPU machine; runs in a worker thread
        return NO_DRIVER

    window = build_window(qapp, scan=slow_scan)
    qtbot.addWidget(window)
    window.show()
    with StallMonitor(5) as monitor:
        window.start()
        qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=20000)
    # A scan on the GUI thread would stall it for its whole 400 ms; the bound sits well under that and well
    # over what a loaded 2-core CI machine does to one turn of the loop (79 ms seen once at start()). The
    # window's own stall budget is measured by the bench scripts, not asserted here.
    assert monitor.max_ms < 200, monitor.summary()


def test_void_qt_calls_keep_none_refcount():
    """PySide6 6.12.0 on Python 3.11 drops a reference to None on each void call, then aborts."""
    from PySide6.QtWidgets import QWidget
    widget = QWidget()
    before = sys.getrefcount(None)
    for _ in range(1000):
        widget.setEnabled(True)
    assert sys.getrefcount(None) - before > -100


def test_hf_token_is_saved_masked_and_removed(make_window, qtbot, monkeypatch):
    from llmdesk.core.base import secrets
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: None)  # the file fallback, in the test's HF_HOME
    page = make_window().settings_page
    qtbot.waitUntil(lambda: "No token" in page.token_status.text())
    page.token.setText("hf_abcdefghijklmnopqrstuv")
    qtbot.mouseClick(page.save_token, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Saved to" in page.token_status.text())
    assert "hf_…stuv" in page.token_status.text() and "hf_abcdefghijklmnopqrstuv" not in page.token_status.text()
    assert page.token.text() == "" and secrets.hf_token_file().read_text() == "hf_abcdefghijklmnopqrstuv"
    qtbot.mouseClick(page.remove_token, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "No token" in page.token_status.text())
    assert not secrets.hf_token_file().exists()


def test_keyboard_pages_escape_and_the_servers_state_on_the_sidebar(make_window, qtbot):
    """#25: Ctrl+1…9 open the pages in the sidebar's order; Escape puts the problem banner away; the
    Server row carries the server's state."""
    from PySide6.QtTest import QTest

    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    for number, key in ((2, "models"), (5, "chat"), (3, "server"), (1, "machine")):
        QTest.keyClick(window, Qt.Key(Qt.Key.Key_0 + number), Qt.KeyboardModifier.ControlModifier)
        assert window.current_page == key
    assert window.sidebar.item(1).toolTip() == "Models (Ctrl+2)"
    window.ctx.problems.show_problem(Problem("Port 8000 is taken", "Another program uses it.", None))
    assert window.ctx.banner.isVisible()
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert window.ctx.banner.isHidden()
    server_row = window.sidebar.item(PAGES.index("server"))
    assert server_row.text() == "Server" and not server_row.icon().isNull()
    from llmdesk.core.server.supervisor import ServerState, ServerStatus
    window._show_server(ServerStatus(ServerState.READY, url="http://127.0.0.1:8000/v1",
                                     sleep={"state": "paused"}))
    assert server_row.text() == "Server · paused" and window.server_status.text().startswith("Server: paused")
    window._show_server(ServerStatus(ServerState.CRASHED))
    assert server_row.text() == "Server · crashed"


def test_the_server_row_says_every_state_whole(make_window):
    """The sidebar read "Server · starti…" while a server started: each state's words fit beside the icon."""
    from PySide6.QtGui import QFontMetrics

    from llmdesk.ui import design
    from llmdesk.ui.main_window import SERVER_STATE_ICONS

    window = make_window()
    row = window.page_keys.index("server")
    font = window.sidebar.font()
    font.setPointSizeF(design.TYPE_SIDEBAR)
    metrics = QFontMetrics(font)
    room = (window.sidebar.width() - 2 * (design.SIDEBAR_ITEM_MARGIN_X + design.SIDEBAR_ITEM_PADDING_X)
            - window.sidebar.iconSize().width() - 14)  # the icon, the space after it, what the style adds
    for state in SERVER_STATE_ICONS:
        window.server_state = state
        window._paint_server_item()
        text = window.sidebar.item(row).text()
        assert metrics.horizontalAdvance(text) <= room, (text, metrics.horizontalAdvance(text), room)
