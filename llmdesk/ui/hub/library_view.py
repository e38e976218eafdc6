"""The models on this computer: the Hugging Face cache and folders the user added."""

from __future__ import annotations

import asyncio
import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget)

from llmdesk.core.base.units import format_gib
from llmdesk.core.hub.library import LocalModel, delete_model, scan_library
from llmdesk.ui.hub.tables import RowsModel, rows_table
from llmdesk.ui.tasks import TaskRunner

COLUMNS = ("Model", "Format", "Size", "Last used", "Where")
CONFIRM_MS = 5000


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(timestamp)) if timestamp else "—"


class LibraryModel(RowsModel):
    COLUMNS = COLUMNS

    def cell(self, m: LocalModel, column: int, role):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        name = m.name + ("" if m.complete else "  (incomplete)")
        where = "Hugging Face cache" if m.source == "hf-cache" else str(m.path)
        return (name, m.format_label or "—", format_gib(m.size_on_disk), _when(m.last_used or m.last_modified),
                where)[column]

    def show(self, rows: list[LocalModel]) -> None:
        self.replace(rows)


class LibraryView(QWidget):
    serve_requested = Signal(object)  # LocalModel

    folder_added = Signal(str)

    def __init__(self, tasks: TaskRunner, scan=scan_library, parent: QWidget | None = None):
        """scan() -> the models on disk (blocking; run in a thread)."""
        super().__init__(parent)
        self.tasks = tasks
        self.scan = scan
        self.add_folder = QPushButton("Add folder…")
        self.add_folder.setToolTip("A folder holding models (each with its config.json), e.g. ~/models")
        self.add_folder.clicked.connect(self._choose_folder)
        self.models = LibraryModel()
        self.table = rows_table(self.models)
        self.status = QLabel()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.serve = QPushButton("Serve")
        self.serve.clicked.connect(self._serve)
        self.delete = QPushButton("Delete…")
        self.delete.clicked.connect(self._delete_clicked)
        self._armed: LocalModel | None = None
        self._disarm = QTimer(self)
        self._disarm.setSingleShot(True)
        self._disarm.setInterval(CONFIRM_MS)
        self._disarm.timeout.connect(self._reset_delete)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        for button in (self.add_folder, self.refresh_button, self.serve, self.delete):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._reset_delete())

    def selected(self) -> LocalModel | None:
        index = self.table.selectionModel().currentIndex()
        return self.models.rows[index.row()] if index.isValid() else None

    def refresh(self) -> None:
        self.status.setText("Looking at the disk…")
        self.tasks.run(self._scan(), "listing the models on this computer")

    async def _scan(self) -> None:
        rows = await asyncio.to_thread(self.scan)
        self.models.show(rows)
        total = sum(m.size_on_disk for m in rows)
        self.status.setText(f"{len(rows)} model{'s' if len(rows) != 1 else ''}, {format_gib(total)} on disk"
                            if rows else "No models yet: download one on the Find tab.")

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder with models")
        if folder:
            self.folder_added.emit(folder)

    def _serve(self) -> None:
        if (model := self.selected()) is not None:
            self.serve_requested.emit(model)

    def _delete_clicked(self) -> None:
        """Two clicks, no modal dialog: the first arms, the second (within 5 s) deletes."""
        model = self.selected()
        if model is None:
            return
        if self._armed is not model:
            self._armed = model
            self.delete.setText(f"Delete {format_gib(model.size_on_disk)}? Click again")
            self._disarm.start()
            return
        self._reset_delete()
        self.tasks.run(self._delete(model), f"deleting {model.name}")

    async def _delete(self, model: LocalModel) -> None:
        freed = await asyncio.to_thread(delete_model, model)
        await self._scan()
        self.status.setText(f"Deleted {model.name}: {format_gib(freed)} freed. " + self.status.text())

    def _reset_delete(self) -> None:
        self._armed = None
        self._disarm.stop()
        self.delete.setText("Delete…")
