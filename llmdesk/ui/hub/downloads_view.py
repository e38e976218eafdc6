"""The download queue: progress, speed and ETA per model; cancel, resume, remove.

Progress arrives many times a second from the worker threads (via the event loop); the rows are
redrawn at most 10 times a second.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout,
                               QWidget)

from llmdesk.core.base.units import GIB
from llmdesk.core.hub.downloads import CANCELLED, DONE, FAILED, Download, DownloadProgress, DownloadQueue
from llmdesk.core.hub.library import LocalModel, downloaded_model
from llmdesk.ui import design
from llmdesk.ui.widgets import fill_with_scrolling

REDRAW_MS = 100


def progress_text(p: DownloadProgress) -> str:
    done = f"{p.bytes_done / GIB:.2f} of {p.bytes_total / GIB:.2f} GiB"
    if p.state == DONE:
        return f"Done: {p.bytes_total / GIB:.2f} GiB"
    if p.state == CANCELLED:
        return f"Stopped at {done}: resume continues from there"
    if p.state == FAILED:
        return f"Failed at {done}: {p.problem.title if p.problem else 'unknown error'}"
    if p.state in ("queued", "planning"):
        return "Waiting…" if p.state == "queued" else "Listing files…"
    speed = f" · {p.speed_bps / 1e6:.1f} MB/s" if p.speed_bps else ""
    eta = f" · {_duration(p.eta_s)} left" if p.eta_s is not None else ""
    return f"{done}{speed}{eta}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class DownloadRow(QFrame):
    serve_requested = Signal(object)  # LocalModel: a finished download, to the Server page

    def __init__(self, job: Download, queue: DownloadQueue):
        super().__init__()
        self.job, self.queue = job, queue
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.name = QLabel(f"<b>{job.repo_id}</b>")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setFont(design.tabular_font(self.detail))  # bytes, speed and time left tick: no jitter
        self.cancel = design.action(QPushButton("Cancel"), "mdi6.close")
        self.cancel.clicked.connect(lambda: self.queue.cancel(self.job))
        self.resume = design.action(QPushButton("Resume"), "mdi6.play")
        self.resume.clicked.connect(lambda: self.queue.add(self.job))
        self.remove = design.action(QPushButton("Remove"), "mdi6.playlist-remove")
        self.remove.clicked.connect(lambda: self.queue.remove(self.job))
        # the next step where the download ends: the Server page with this model filled in
        self.serve = design.action(QPushButton("Serve"), "mdi6.play")
        self.serve.setToolTip("Open the Server page with this model filled in")
        self.serve.clicked.connect(self._serve)
        buttons = QHBoxLayout()
        buttons.addWidget(self.detail, 1)
        for button in (self.cancel, self.resume, self.serve, self.remove):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.name)
        layout.addWidget(self.bar)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        p = self.job.progress
        self.bar.setValue(round(1000 * p.fraction))
        self.detail.setText(progress_text(p))
        running = p.state not in (DONE, CANCELLED, FAILED)
        self.cancel.setVisible(running)
        self.resume.setVisible(p.state in (CANCELLED, FAILED))
        self.remove.setVisible(not running)
        self.serve.setVisible(p.state == DONE and self.job.snapshot_path is not None)

    def _serve(self) -> None:
        if self.job.snapshot_path is not None:
            self.serve_requested.emit(self.served_model())

    def served_model(self) -> LocalModel:
        return downloaded_model(self.job.repo_id, self.job.snapshot_path, self.job.progress.bytes_total)


class DownloadsView(QWidget):
    serve_requested = Signal(object)  # LocalModel

    def __init__(self, queue: DownloadQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.rows: dict[int, DownloadRow] = {}
        self.empty = QLabel("Nothing is downloading. Choose a variant on the Find tab and press Download.")
        self.empty.setWordWrap(True)
        self.list = QVBoxLayout()
        content = QWidget()
        column = QVBoxLayout(content)
        column.addWidget(self.empty)
        column.addLayout(self.list)
        column.addStretch()
        fill_with_scrolling(self, content)
        self._dirty = False
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._refresh)
        self._redraw.start()
        self._unsubscribe = queue.subscribe(self._on_queue)
        self.destroyed.connect(lambda *_: self._unsubscribe())

    def _on_queue(self, event: str, job: Download) -> None:
        if event == "added":
            row = DownloadRow(job, self.queue)
            row.serve_requested.connect(self.serve_requested)
            self.rows[id(job)] = row
            self.list.addWidget(row)
        elif event == "removed" and (row := self.rows.pop(id(job), None)) is not None:
            row.deleteLater()
        self._dirty = True  # progress events only mark; the timer redraws
        self.empty.setVisible(not self.rows)

    def _refresh(self) -> None:
        if self._dirty:
            self._dirty = False
            for row in self.rows.values():
                row.refresh()
