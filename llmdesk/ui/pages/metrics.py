"""Dashboard: live figures of a vLLM server (the one this app runs, or any URL) and of this computer's GPUs.

A row of headline tiles (refreshed at every scrape) and six rolling charts over 1, 5 or 15 minutes
(redrawn at most once a second, and only while the page is shown). Scraping runs while the page is
shown and, unless unticked, goes on in the background, so the history is there when the user comes
back; Pause stops scraping and redrawing and keeps what was recorded. Export CSV writes the figures
kept (the last 15 minutes), one row per scrape, with the same columns as `llmdesk metrics --csv`.

pyqtgraph takes about half a second to import, so the charts module is imported in a worker thread
the first time the page is shown, and the charts are then built one per event-loop turn.
"""

from __future__ import annotations

import asyncio
import csv
import html
import importlib
import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import Problem
from llmdesk.core.server.endpoint import normalise_base_url
from llmdesk.core.server.supervisor import ServerState, ServerStatus
from llmdesk.ui.context import AppContext
from llmdesk.ui.gc_guard import freeze_long_lived
from llmdesk.ui.steps import STEP_MS, Stepper
from llmdesk.ui.metrics import tiles as fmt
from llmdesk.ui.metrics.recorder import MetricsRecorder, Target, is_local_url
from llmdesk.ui.metrics.tiles import NONE, Tile
from llmdesk.ui.problems import log_shown, rich_text
from llmdesk.ui import design
from llmdesk.ui.widgets import EmptyState, fill_with_scrolling, page_header

INTERVALS_S = (0.25, 0.5, 1.0, 2.0, 5.0)
RANGES = ((60, "1 min"), (300, "5 min"), (900, "15 min"))
REDRAW_MIN_S = 1.0
CHARTS_MODULE = "llmdesk.ui.metrics.charts"


class _ScanSampler:
    """A stand-in GPU source (tests, screenshots) behind the GpuSampler interface."""

    def __init__(self, scan):
        self._scan = scan

    def sample(self):
        return self._scan()

    def close(self) -> None:
        pass


def default_sampler(ctx: AppContext):
    """This computer's GPUs, or the hardware the window was built to pretend it has."""
    from llmdesk.core.machine.gpus import GpuSampler, scan_gpus

    # build_window(scan=...) stands in for NVML on every page; the dashboard follows suit.
    scan = getattr(ctx.machine, "_scan", None)
    if scan is not None and scan is not scan_gpus:
        return _ScanSampler(scan)
    return GpuSampler()


def _interval_text(seconds: float) -> str:
    return f"{seconds:g} s"


class DashboardPage(QWidget):
    start_model_requested = Signal()  # the empty state's Start a model (Open the Server page while one starts)

    def __init__(self, ctx: AppContext, sampler=None, parent: QWidget | None = None, *,
                 redraw_min_s: float = REDRAW_MIN_S):
        super().__init__(parent)
        self.ctx = ctx
        self.redraw_min_s = redraw_min_s
        self.range_s = RANGES[0][0]
        self.charts = None  # ChartsPanel, once pyqtgraph is loaded
        self._charts_task: asyncio.Task | None = None
        self._paused_at: float | None = None
        interval = float(getattr(ctx.settings, "metrics_interval_s", 1.0) or 1.0)
        self.recorder = MetricsRecorder(self._target, sampler if sampler is not None else default_sampler(ctx),
                                        interval, on_crash=self._crashed, parent=self)
        self.recorder.ticked.connect(self._ticked)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.timeout.connect(self.redraw)
        self.drawing = Stepper(self)  # the steps of the redraw under way

        content = QWidget()
        column = QVBoxLayout(content)  # the style's margins, as every page
        column.setSpacing(8)
        column.addWidget(page_header("Dashboard", "Live figures from the server's /metrics and the GPUs: "
                                                  "throughput, queue, KV cache, latency."))
        column.addLayout(self._controls(interval))
        column.addLayout(self._status_row())
        column.addWidget(self.empty_state)
        column.addLayout(self._tiles())
        self.lora_line = QLabel()  # vllm:lora_requests_info: which adapters have requests now
        self.lora_line.setWordWrap(True)
        self.lora_line.setTextFormat(Qt.TextFormat.PlainText)
        self.lora_line.setToolTip("From vllm:lora_requests_info. vLLM 0.26 names the adapters with requests, not "
                                  "how many each has, and puts every adapter with a request in both its running "
                                  "and its waiting list.")
        self.lora_line.hide()
        column.addWidget(self.lora_line)
        column.addLayout(self._history_header())
        self.charts_area = QVBoxLayout()
        self.charts_placeholder = QLabel("Loading charts…")
        self.charts_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.charts_placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.charts_placeholder.setMinimumHeight(300)
        self.charts_area.addWidget(self.charts_placeholder)
        column.addLayout(self.charts_area, 1)
        fill_with_scrolling(self, content)

        ctx.server.subscribe(on_status=self._server_changed)
        self._show_gpu_note()
        self._show_status()

    # -- layout --

    def _controls(self, interval: float) -> QHBoxLayout:
        self.url = QLineEdit()
        self.url.setPlaceholderText("empty: this app's server")
        self.url.setToolTip("Any vLLM server: its root (http://host:8000) or its /v1 base. "
                            "Empty: the server this app runs.")
        self.url.editingFinished.connect(self._target_edited)
        self.api_key = QLineEdit()
        self.api_key.setPlaceholderText("if needed")
        self.api_key.setToolTip("Only if a proxy in front of the server wants a key for /metrics "
                                "(vLLM itself leaves /metrics open).")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setMaximumWidth(130)
        self.api_key.editingFinished.connect(self._target_edited)
        self.interval = QComboBox()
        choices = sorted(set(INTERVALS_S) | {interval})
        for seconds in choices:
            self.interval.addItem(_interval_text(seconds), seconds)
        self.interval.setCurrentIndex(choices.index(interval))
        self.interval.setToolTip("How often the server's /metrics and the GPUs are read")
        self.interval.currentIndexChanged.connect(self._interval_changed)
        self.pause_button = design.action(QPushButton("Pause"), "mdi6.pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Stop reading and redrawing; what was recorded is kept")
        self.pause_button.toggled.connect(self._pause_toggled)
        self.export_button = design.action(QPushButton("Export CSV…"), "mdi6.export")
        self.export_button.setToolTip("Save the figures recorded (up to the last 15 minutes), one row per reading")
        self.export_button.clicked.connect(lambda: self.export_csv())
        row = QHBoxLayout()
        row.addWidget(QLabel("Server"))
        row.addWidget(self.url, 1)
        row.addWidget(QLabel("API key"))
        row.addWidget(self.api_key)
        row.addWidget(QLabel("every"))
        row.addWidget(self.interval)
        row.addWidget(self.pause_button)
        row.addWidget(self.export_button)
        return row

    def _status_row(self) -> QHBoxLayout:
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setFont(design.tabular_font(self.status))
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        # no server to read: what this page will show, and Start a model
        self.empty_state = EmptyState("mdi6.chart-line")
        self.empty_state.hide()
        self.open_server_button = self.empty_state.action
        self.open_server_button.clicked.connect(self.start_model_requested)
        self.note = QLabel()  # the outcome of an export
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.note.hide()
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.note)
        return row

    def _tiles(self) -> QGridLayout:
        self.tiles = {
            "generation": Tile("Generation tok/s", "Output tokens per second, averaged over the last 10 s; "
                                                   "the small figure is the last reading."),
            "prompt": Tile("Prompt tok/s", "Prompt tokens per second, averaged over the last 10 s."),
            "requests": Tile("Running / waiting", "Requests being generated / queued now."),
            "kv_cache": Tile("KV cache used", "Share of the KV cache holding tokens now."),
            "prefix": Tile("Prefix-cache hits", "Prompt tokens found in the prefix cache, over the last 60 s."),
            "ttft": Tile("Time to first token", "Median over the last 60 s; p95 below."),
            "itl": Tile("Inter-token latency", "Median over the last 60 s; p95 below."),
            "e2e": Tile("End to end", "Median request time over the last 60 s; p95 below."),
            "gpu_util": Tile("GPU utilisation", "Average over this computer's GPUs."),
            "gpu_memory": Tile("GPU memory (GiB)", "Used / total, summed over this computer's GPUs."),
        }
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(8)
        for i, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, i // 5, i % 5)
        for col in range(5):
            grid.setColumnStretch(col, 1)
        return grid

    def _history_header(self) -> QHBoxLayout:
        self.range_group = QButtonGroup(self)
        self.range_buttons: dict[int, QToolButton] = {}
        row = QHBoxLayout()
        title = design.role(QLabel("History"), "subsection")
        row.addWidget(title)
        row.addSpacing(8)
        for seconds, text in RANGES:
            button = QToolButton()
            button.setText(text)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setChecked(seconds == self.range_s)
            self.range_group.addButton(button, seconds)
            self.range_buttons[seconds] = button
            row.addWidget(button)
        self.range_group.idClicked.connect(self.set_range)
        self.gpu_note = QLabel()
        self.gpu_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        row.addSpacing(12)
        row.addWidget(self.gpu_note, 1)
        self.keep_recording = QCheckBox("Keep recording in the background")
        self.keep_recording.setChecked(True)
        self.keep_recording.setToolTip("Go on reading the figures while another page is shown "
                                       "(about 0.5 % of one CPU core at 1 s)")
        row.addWidget(self.keep_recording)
        return row

    # -- life --

    def start(self) -> None:
        """Once the loop runs: begin if the page is already on screen (the window opened on it)."""
        if self.isVisible():
            self._begin()

    def stop(self) -> None:
        """The window closes: stop reading, close the connection, release NVML."""
        self._redraw_timer.stop()
        self.ctx.tasks.run(self.recorder.aclose(), "stopping the dashboard")

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._begin()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self._redraw_timer.stop()
        self.drawing.cancel()
        if not self.keep_recording.isChecked():
            self.recorder.stop()

    def _begin(self) -> None:
        self._refresh()
        if not self.paused:
            self.recorder.start()
            self._restart_redraw_timer()
        self._ensure_charts()
        self.redraw()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.charts is not None:
            self.charts.apply_palette(self.palette())

    def _crashed(self, exc: BaseException) -> None:
        self.ctx.problems.show_exception(exc, "reading the server's figures")

    # -- target --

    def _target(self) -> Target:
        """The typed URL, else the server this app runs (with its key); ProblemError for a bad URL."""
        typed_key = self.api_key.text().strip() or None
        text = self.url.text().strip()
        if text:
            return Target(normalise_base_url(text), typed_key)
        status = self.ctx.server.status
        if status.state == ServerState.READY and status.url:
            key = status.config.api_key if status.config else None
            return Target(status.url, typed_key or key, app_server=True)
        if status.state == ServerState.STARTING:
            why = Problem("This app's server is starting",
                          "Its figures appear as soon as it is ready.", None)
        else:
            why = Problem("This app's server is not running",
                          "Start it on the Server page, or type the URL of another vLLM server above.", None)
        return Target(None, app_server=True, why=why, offer_server_page=True)

    def _target_edited(self) -> None:
        self._show_gpu_note()
        self.recorder.wake()

    def _server_changed(self, status: ServerStatus) -> None:
        if not self.url.text().strip():
            self.recorder.wake()

    def _interval_changed(self) -> None:
        self.recorder.set_interval(float(self.interval.currentData()))
        if self._redraw_timer.isActive():
            self._restart_redraw_timer()
        self._show_status()

    # -- pause, range, export --

    def _pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        design.action(self.pause_button, "mdi6.play" if paused else "mdi6.pause")
        if paused:
            self._paused_at = time.monotonic()
            self.recorder.stop()
            self._redraw_timer.stop()
            self.redraw()  # up to the moment of the pause
        else:
            self._paused_at = None
            if self.isVisible():
                self._begin()
        self._show_status()

    def set_range(self, seconds: int) -> None:
        self.range_s = seconds
        self.range_buttons[seconds].setChecked(True)
        if self.charts is not None:
            self.charts.set_range(seconds)
        self.redraw()

    def export_csv(self, path: str | None = None) -> None:
        if path is None:
            name = f"llmdesk-metrics-{datetime.now():%Y%m%d-%H%M%S}.csv"
            path, _ = QFileDialog.getSaveFileName(self, "Export the figures", name, "CSV (*.csv)")
            if not path:
                return
        # Copied here, on the GUI thread: the recorder keeps adding and trimming while the file is written.
        snapshots = self.recorder.window.snapshots
        self.ctx.tasks.run(self._export(Path(path), snapshots), "exporting the figures")

    async def _export(self, path: Path, snapshots) -> None:
        rows = await asyncio.to_thread(write_csv, path, snapshots)
        self.note.setText(f"Saved {rows} row{'s' if rows != 1 else ''} to {path.name}")
        self.note.setToolTip(str(path))
        self.note.show()

    # -- drawing --

    def _ensure_charts(self) -> None:
        if self.charts is None and self._charts_task is None:
            self._charts_task = self.ctx.tasks.run(self._load_charts(), "loading the charts")

    async def _load_charts(self) -> None:
        try:
            module = await asyncio.to_thread(importlib.import_module, CHARTS_MODULE)
        except BaseException:
            self._charts_task = None
            raise
        freeze_long_lived()
        panel = module.ChartsPanel(self.palette(), self.range_s)
        self.charts_area.removeWidget(self.charts_placeholder)
        self.charts_placeholder.deleteLater()
        self.charts_area.addWidget(panel, 1)
        while panel.add_next():  # one chart per turn of the loop: a few ms each, not all at once
            await asyncio.sleep(0.01)
        self.charts = panel
        self.redraw()
        while self.drawing.busy:  # done when drawn: screenshots wait for this task
            await asyncio.sleep(STEP_MS / 1000)

    def _restart_redraw_timer(self) -> None:
        self._redraw_timer.start(int(max(self.redraw_min_s, self.recorder.interval_s) * 1000))

    def redraw(self) -> None:
        """Feed the charts from the recorder, one chart per step (at most once a second, from the timer).

        Feeding and painting all six at once takes 20-40 ms on a 2-core machine; one at a time, each
        turn of the event loop holds it for a few."""
        if self.charts is None or not self.isVisible():
            return
        now = self._paused_at if self._paused_at is not None else time.monotonic()
        self.drawing.run(self.charts.draw_steps(self.recorder, now))

    def redraw_now(self) -> None:
        """All charts in one go (tests, pictures)."""
        self.redraw()
        self.drawing.finish()

    def _ticked(self) -> None:
        if self.isVisible():
            self._refresh()

    def _refresh(self) -> None:
        self._show_status()
        self._show_tiles()

    def _show_status(self) -> None:
        rec = self.recorder
        every = _interval_text(rec.interval_s)
        target, problem = rec.target, rec.problem
        stopped = target is not None and target.offer_server_page
        if self.paused:
            glyph, color = "❚❚", None
            text = "Paused. What was recorded is kept; <b>Resume</b> goes on."
        elif problem is not None:
            log_shown("the Dashboard", problem.title, problem.explanation)
            glyph, color = "●", (None if stopped else design.html_color("warn", self))
            text = f"<b>{rich_text(problem.title)}</b> — {rich_text(problem.explanation)}"
            if problem.fix and not stopped:
                text += f" {rich_text(problem.fix)}"
            if not stopped:
                text += f" <i>Trying again every {every}.</i>"
            if len(rec.window):
                text += " The figures shown are the last ones read."
        elif target is None or not len(rec.window):
            glyph, color, text = "●", None, "Connecting…"
        else:
            latest = rec.window.latest
            models = ", ".join(latest.models) if latest and latest.models else "no model named"
            glyph, color = "●", design.html_color("ok", self)
            text = f"Reading {_escape(rec.window_url or '')} · {_escape(models)} · every {every}"
        style = f" style='color: {color};'" if color else ""
        self.status.setText(f"<span{style}>{glyph}</span>&nbsp; {text}")
        empty = stopped and not self.paused and problem is not None
        if empty:
            starting = self.ctx.server.status.state == ServerState.STARTING
            self.empty_state.say(problem.title, "Throughput, queue, KV cache and latency appear here as soon as a "
                                 "model runs. " + problem.explanation,
                                 "Open the Server page" if starting else "Start a model")
        self.empty_state.setVisible(empty)
        self.status.setVisible(not empty)

    def _show_tiles(self) -> None:
        snap = self.recorder.window.latest
        t = self.tiles
        self._show_lora(snap)
        if snap is None:
            for key in ("generation", "prompt", "requests", "kv_cache", "prefix", "ttft", "itl", "e2e"):
                t[key].show_value(NONE)
        else:
            t["generation"].show_value(fmt.rate(snap.generation_tokens_per_s_avg),
                                       f"now {fmt.rate(snap.generation_tokens_per_s)}")
            t["prompt"].show_value(fmt.rate(snap.prompt_tokens_per_s_avg), f"now {fmt.rate(snap.prompt_tokens_per_s)}")
            finished = snap.requests_finished
            t["requests"].show_value(f"{fmt.count(snap.requests_running)} / {fmt.count(snap.requests_waiting)}",
                                     f"{fmt.count(finished)} finished in {_window_text(snap.window_s)}"
                                     if finished is not None else "")
            capacity = snap.kv_cache_capacity_tokens
            t["kv_cache"].show_value(fmt.percent(snap.kv_cache_usage),
                                     f"of {capacity:,} tokens" if capacity is not None else "")
            t["prefix"].show_value(fmt.percent(snap.prefix_cache_hit_rate, 0),
                                   f"over {_window_text(snap.window_s)}"
                                   if snap.window_s and snap.prefix_cache_hit_rate is not None else "")
            for key, p50, p95 in (("ttft", snap.ttft_p50_s, snap.ttft_p95_s), ("itl", snap.itl_p50_s, snap.itl_p95_s),
                                  ("e2e", snap.e2e_p50_s, snap.e2e_p95_s)):
                t[key].show_value(fmt.duration(p50), f"p95 {fmt.duration(p95)}" if p95 is not None else "")
        self._show_gpu_tiles()

    def _show_lora(self, snap) -> None:
        text = lora_line_text(snap)
        self.lora_line.setText(text or "")
        self.lora_line.setVisible(bool(text))

    def _show_gpu_tiles(self) -> None:
        scan = self.recorder.gpus.latest
        util, memory = self.tiles["gpu_util"], self.tiles["gpu_memory"]
        if scan is None:
            util.show_value(NONE)
            memory.show_value(NONE)
            return
        if not scan.gpus:
            why = scan.problem.title if scan.problem else "No NVIDIA GPU"
            util.show_value(NONE, why)
            memory.show_value(NONE, why)
            return
        known = [g.utilization_percent for g in scan.gpus if g.utilization_percent is not None]
        n = len(scan.gpus)
        gpus = f"{n} GPU{'s' if n != 1 else ''}"
        util.show_value(f"{sum(known) / len(known):.0f} %" if known else NONE,
                        f"average of {gpus}" if n > 1 else scan.gpus[0].name)
        used = sum(g.memory_used_bytes for g in scan.gpus)
        total = sum(g.memory_total_bytes for g in scan.gpus)
        memory.show_value(f"{fmt.gib(used)} / {fmt.gib(total)}", gpus if n > 1 else scan.gpus[0].name)

    def _show_gpu_note(self) -> None:
        text = self.url.text().strip()
        remote = bool(text) and not is_local_url(text)
        self.gpu_note.setText("GPU figures are this computer's, not the server's" if remote else "")
        self.gpu_note.setToolTip("The GPUs of a server on another computer cannot be read from here."
                                 if remote else "")
        for key in ("gpu_util", "gpu_memory"):
            self.tiles[key].title.setText(("This computer: " if remote else "")
                                          + ("GPU utilisation" if key == "gpu_util" else "GPU memory (GiB)"))




def lora_line_text(snap) -> str | None:
    """The Dashboard's LoRA line: the adapter slots and the adapters with requests now; None with LoRA off."""
    if snap is None or snap.lora_slots is None:
        return None
    slots = f"LoRA adapters ({snap.lora_slots} slot{'s' if snap.lora_slots != 1 else ''}): "
    running, waiting = snap.lora_adapters_running, snap.lora_adapters_waiting
    if not running and not waiting:
        return slots + "no adapter has requests now"
    if set(running) == set(waiting):  # vLLM 0.26 lists each adapter with a request in both
        return slots + "requests for " + ", ".join(running)
    return slots + f"running {', '.join(running) or NONE} · waiting {', '.join(waiting) or NONE}"


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _window_text(seconds: float | None) -> str:
    if not seconds:
        return NONE
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def write_csv(path: Path, snapshots) -> int:
    """MetricsWindow.to_csv's rows, for a copy of the snapshots; returns the number of rows."""
    from llmdesk.core.metrics.window import CSV_COLUMNS

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for snap in snapshots:
            writer.writerow({k: ("" if v is None else v) for k, v in snap.row().items()})
    return len(snapshots)
