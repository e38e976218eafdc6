"""The main window: a sidebar of pages, the problem banner, and a status bar (GPUs, server)."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QSize, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow, QMessageBox,
                               QStackedWidget, QVBoxLayout, QWidget)

from llmdesk.core.base.units import format_gib
from llmdesk.core.machine.gpus import GpuScan
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.pages.bench import BenchmarkPage
from llmdesk.ui.pages.chat import ChatPage
from llmdesk.ui.pages.hub import ModelsPage
from llmdesk.ui.pages.machine import MachinePage
from llmdesk.ui.pages.metrics import DashboardPage
from llmdesk.ui.pages.deploy import DeployPage
from llmdesk.ui.pages.server import ServerPage
from llmdesk.ui.pages.settings import SettingsPage
from llmdesk.ui.pages.start import StartPage

DEFAULT_SIZE = QSize(1120, 720)
PAGE_ICONS = {"machine": "mdi6.expansion-card", "models": "mdi6.cube-outline", "server": "mdi6.server",
              "dashboard": "mdi6.chart-line", "chat": "mdi6.chat-outline", "benchmark": "mdi6.speedometer",
              "deploy": "mdi6.rocket-launch-outline", "settings": "mdi6.cog-outline", "start": "mdi6.flag-checkered"}
# the server's state on its sidebar row: icon, design tone
SERVER_STATE_ICONS = {"stopped": ("mdi6.server-off", "muted"), "starting": ("mdi6.progress-clock", "running"),
                      "ready": ("mdi6.server", "ok"), "stopping": ("mdi6.progress-close", "running"),
                      "crashed": ("mdi6.alert-circle-outline", "error"), "pausing": ("mdi6.pause-circle-outline", "info"),
                      "paused": ("mdi6.pause-circle-outline", "info"), "resuming": ("mdi6.progress-clock", "running")}
# The smallest window every page is laid out for (tests/ui/test_walkthrough.py checks nothing is cut there).
MINIMUM_SIZE = QSize(960, 600)


def gpu_status_text(scan: GpuScan | None, planning_name: str = "") -> str:
    if scan is None:
        return "Looking for GPUs…"
    if not scan.gpus:
        plan = f" · planning for {planning_name}" if planning_name else ""
        return f"No NVIDIA GPU{plan}"
    names = {g.name for g in scan.gpus}
    name = names.pop() if len(names) == 1 else "mixed GPUs"
    count = f"{len(scan.gpus)}× " if len(scan.gpus) > 1 else ""
    free = sum(g.memory_free_bytes for g in scan.gpus)
    total = sum(g.memory_total_bytes for g in scan.gpus)
    return f"{count}{name} · {format_gib(free)} free of {format_gib(total)}"


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self.setWindowTitle("llmdesk")
        self.setMinimumSize(MINIMUM_SIZE)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(design.SIDEBAR_WIDTH)
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # no focus frame around the current page
        self.sidebar.setIconSize(QSize(20, 20))
        design.sidebar(self.sidebar)
        self.stack = QStackedWidget()
        self.page_keys: list[str] = []

        self.machine_page = MachinePage(ctx)
        self.models_page = ModelsPage(ctx)
        self.settings_page = SettingsPage(ctx)
        self._add_page("machine", "Machine", self.machine_page)
        self._add_page("models", "Models", self.models_page)
        self.server_page = ServerPage(ctx)
        self._add_page("server", "Server", self.server_page)
        self.chat_page = ChatPage(ctx)
        self.chat_page.start_server_requested.connect(self._start_server_for_chat)
        self.chat_page.open_server_page_requested.connect(lambda: self.show_page("server"))
        self.chat_page.start_model_requested.connect(self.start_a_model)
        self.dashboard_page = DashboardPage(ctx)
        self.dashboard_page.start_model_requested.connect(self.start_a_model)
        self._add_page("dashboard", "Dashboard", self.dashboard_page)
        self._add_page("chat", "Chat", self.chat_page)
        self.bench_page = BenchmarkPage(ctx)
        self.bench_page.start_model_requested.connect(self.start_a_model)
        self._add_page("benchmark", "Benchmark", self.bench_page)
        self.deploy_page = DeployPage(ctx, self.server_page.launch_config)
        self.deploy_page.open_page_requested.connect(self.show_page)
        self.deploy_page.choose_model_requested.connect(self.start_a_model)
        self._add_page("deploy", "Deploy", self.deploy_page)
        self._add_page("settings", "Settings", self.settings_page)
        self.start_page = StartPage(ctx)
        self._add_page("start", "Get started", self.start_page)
        self.start_page.finished.connect(self._guide_finished)
        self.start_page.quick_benchmark_requested.connect(self._quick_benchmark)
        ctx.guide_requested.connect(self._open_guide)
        self.sidebar.setRowHidden(self.page_keys.index("start"), ctx.state.first_run_done)
        self.sidebar.currentRowChanged.connect(self._page_changed)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(18, 12, 18, 6)
        column.addWidget(ctx.banner)
        column.addWidget(self.stack, 1)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self._sidebar_column())
        row.addWidget(content, 1)
        self.setCentralWidget(central)

        self.gpu_status = QLabel(gpu_status_text(None))
        self.server_status = QLabel("Server: stopped")
        for label in (self.gpu_status, self.server_status):
            label.setFont(design.tabular_font(label))  # free memory changes: digits of one width
        self.statusBar().addWidget(self.gpu_status, 1)
        self.statusBar().addPermanentWidget(self.server_status)
        ctx.machine.changed.connect(self._show_scan)
        ctx.settings_changed.connect(lambda _s: self._show_scan(ctx.machine.scan))
        ctx.serve_requested.connect(lambda _model: self.show_page("server"))
        ctx.server.subscribe(on_status=self._show_server)

        # Escape: stop the reply being written on the Chat page, else put the problem banner away
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        escape.setContext(Qt.ShortcutContext.WindowShortcut)
        escape.activated.connect(self._escape)
        self.server_state = "stopped"
        self._paint_icons()
        self._restore_state()

    def show_page(self, key: str) -> None:
        self.sidebar.setCurrentRow(self.page_keys.index(key))

    @property
    def current_page(self) -> str:
        return self.page_keys[self.stack.currentIndex()]

    def start(self) -> None:
        """Background work once the window is up: GPU scan, the doctor's checks, the stored token."""
        self.machine_page.refresh()
        self.settings_page.start()
        self.start_page.start()
        self.server_page.start_checks()
        self.chat_page.start()
        self.dashboard_page.start()

    def closeEvent(self, event) -> None:
        if self.chat_page.streaming:
            if not self.confirm_close_while_streaming():
                event.ignore()
                return
            self.chat_page.stop_soon()
        self.dashboard_page.stop()
        self.bench_page.stop()
        self.ctx.state.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        self.ctx.state.last_page = self.current_page
        super().closeEvent(event)
        self.closed.emit()

    def confirm_close_while_streaming(self) -> bool:
        """A reply is being written: closing stops it (the part received is saved)."""
        answer = QMessageBox.question(
            self, "A reply is still being written",
            "Closing stops the reply; the part received so far is saved with the chat. Close anyway?",
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Close

    def _escape(self) -> None:
        if self.current_page == "chat" and self.chat_page.streaming:
            self.ctx.tasks.run(self.chat_page.stop(), "stopping the reply")
        elif self.ctx.banner.isVisible():
            self.ctx.banner.dismissed.emit()

    def _guide_finished(self) -> None:
        self.sidebar.setRowHidden(self.page_keys.index("start"), True)
        self.show_page("machine")

    def _open_guide(self) -> None:
        self.start_page.restart()
        self.sidebar.setRowHidden(self.page_keys.index("start"), False)
        self.show_page("start")

    def _quick_benchmark(self) -> None:
        self.show_page("benchmark")
        self.bench_page.start_quick()

    def start_a_model(self) -> None:
        """An empty state's "Start a model": the Server page with the model started last filled in (its Start
        is the user's: the settings are in view); none yet: the Models page, where one is found."""
        if self.server_page.fill_last_model() or self.ctx.server.running:
            self.show_page("server")
        else:
            self.models_page.tabs.setCurrentWidget(self.models_page.library)  # downloaded ones have Serve
            self.show_page("models")

    def _start_server_for_chat(self) -> None:
        self.show_page("server")
        self.server_page.start()

    def _sidebar_column(self) -> QWidget:
        brand = design.role(QLabel("llmdesk"), "brand")
        column = QWidget()
        column.setObjectName("sidebarColumn")
        design.surface(column)
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(brand)
        layout.addWidget(self.sidebar, 1)
        return column

    def _show_server(self, status) -> None:
        where = f" at {status.url}" if status.url and status.state.value in ("starting", "ready") else ""
        state = status.state.value
        if state == "ready" and status.sleep and status.sleep.get("state") != "awake":
            state = status.sleep["state"]  # paused, pausing, resuming: the GPU is not serving
        self.server_status.setText(f"Server: {state}{where}")
        self.server_state = state
        self._paint_server_item()

    def _paint_server_item(self) -> None:
        """The Server row says the server's state at all times: its icon in the state's colour and a word."""
        icon_name, tone = SERVER_STATE_ICONS.get(self.server_state, SERVER_STATE_ICONS["stopped"])
        item = self.sidebar.item(self.page_keys.index("server"))
        item.setIcon(design.icon(icon_name, self, tone))
        item.setText("Server" if self.server_state == "stopped" else f"Server · {self.server_state}")
        item.setToolTip(f"Server: {self.server_state} (Ctrl+{self.page_keys.index('server') + 1})")

    def _paint_icons(self) -> None:
        for row, key in enumerate(self.page_keys):
            if key != "server":
                self.sidebar.item(row).setIcon(design.icon(PAGE_ICONS[key], self))
        self._paint_server_item()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.page_keys:
            self._paint_icons()  # drawn in the old theme's colours otherwise

    def _add_page(self, key: str, title: str, widget: QWidget) -> None:
        self.page_keys.append(key)
        self.stack.addWidget(widget)
        item = QListWidgetItem(title)
        item.setSizeHint(QSize(170, 38))
        number = len(self.page_keys)
        if number <= 9:  # Ctrl+1 … Ctrl+9, in the sidebar's order
            item.setToolTip(f"{title} (Ctrl+{number})")
            shortcut = QShortcut(QKeySequence(f"Ctrl+{number}"), self)
            shortcut.activated.connect(lambda key=key: not self.sidebar.isRowHidden(self.page_keys.index(key))
                                       and self.show_page(key))
        self.sidebar.addItem(item)

    def _page_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)

    def _restore_state(self) -> None:
        geometry = self.ctx.state.window_geometry
        if not (geometry and self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))):
            self.resize(DEFAULT_SIZE)
        last = self.ctx.state.last_page
        if not self.ctx.state.first_run_done:
            self.show_page("start")  # the first-run guide, where it stopped
        else:
            self.show_page(last if last in self.page_keys and last != "start" else "machine")

    def _show_scan(self, scan: GpuScan | None) -> None:
        planning = self.machine_page.plan_choice.currentText() if self.ctx.settings.planning_gpu else ""
        self.gpu_status.setText(gpu_status_text(scan, planning))
