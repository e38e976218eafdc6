"""The models on this computer: the Hugging Face cache and folders the user added."""

from __future__ import annotations

import asyncio
import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget)

from llmdesk.core.base.units import format_gib
from llmdesk.core.hub.library import LocalModel, added_folder_of, delete_model, scan_library
from llmdesk.ui import design
from llmdesk.ui.hub.tables import RowsModel, rows_table
from llmdesk.ui.tasks import TaskRunner
from llmdesk.ui.widgets import choose_folder

COLUMNS = ("Model", "Format", "Size", "Last used", "Where")
CONFIRM_MS = 5000
DELETE_TEXT, CONFIRM_TEXT = "Delete…", "Delete it"


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
    find_requested = Signal()  # the empty list's way on: the Find tab

    folder_added = Signal(str)
    folder_removed = Signal(str)  # an entry of the added folders: out of the list, files kept

    def __init__(self, tasks: TaskRunner, scan=scan_library, added_folders=lambda: [],
                 parent: QWidget | None = None):
        """scan() -> the models on disk (blocking; run in a thread); added_folders() -> the folders
        the user added (Settings' model_folders)."""
        super().__init__(parent)
        self.tasks = tasks
        self.scan = scan
        self.added_folders = added_folders
        self.add_folder = design.action(QPushButton("Add folder…"), "mdi6.folder-plus-outline")
        self.add_folder.setToolTip("A folder holding models (each with its config.json), e.g. ~/models")
        self.add_folder.clicked.connect(self._choose_folder)
        self.models = LibraryModel()
        self.table = rows_table(self.models)
        self.status = QLabel()
        self.find = QPushButton("Find a model")  # shown while the list is empty: where models come from
        self.find.clicked.connect(self.find_requested)
        self.find.hide()
        self.refresh_button = design.action(QPushButton("Refresh"), "mdi6.refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.serve = design.action(QPushButton("Serve"), "mdi6.play", primary=True)
        self.serve.clicked.connect(self._serve)
        self.remove = design.action(QPushButton("Remove from list"), "mdi6.playlist-remove")
        self.remove.setToolTip("Stop listing this folder; its files stay on disk")
        self.remove.clicked.connect(self._remove_clicked)
        self.remove.hide()
        self.delete = design.action(QPushButton(DELETE_TEXT), "mdi6.delete-outline")
        self.delete.clicked.connect(self._delete_clicked)
        # One width for both texts: the button must not grow under the cursor and push the others.
        self.delete.setMinimumWidth(max(self.delete.fontMetrics().horizontalAdvance(text) for text in
                                        (DELETE_TEXT, CONFIRM_TEXT)) + 24)
        self._armed: LocalModel | None = None
        self._disarm = QTimer(self)
        self._disarm.setSingleShot(True)
        self._disarm.setInterval(CONFIRM_MS)
        self._disarm.timeout.connect(self._reset_delete)
        # The status on its own line above the buttons: a longer message never moves a button.
        self.status.setWordWrap(True)
        # Remove from list comes and goes with the selection: at the left, apart, it moves nothing.
        buttons = QHBoxLayout()
        buttons.addWidget(self.remove)
        buttons.addWidget(self.find)
        buttons.addStretch(1)
        for button in (self.add_folder, self.refresh_button, self.serve, self.delete):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.table.selectionModel().currentChanged.connect(lambda *_: self._selection_changed())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())

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
                            if rows else "No models on this computer yet: find one that fits and download it, or add "
                                         "a folder that holds models.")
        self.find.setVisible(not rows)
        self._selection_changed()

    def _choose_folder(self) -> None:
        self.folder_dialog = choose_folder(self, "A folder with models", self.folder_added.emit)

    def _serve(self) -> None:
        if (model := self.selected()) is not None:
            self.serve_requested.emit(model)

    def _selection_changed(self) -> None:
        self._reset_delete()
        model = self.selected()
        self.remove.setVisible(model is not None and added_folder_of(model, self.added_folders()) is not None)

    def _remove_clicked(self) -> None:
        model = self.selected()
        entry = added_folder_of(model, self.added_folders()) if model is not None else None
        if entry is None:
            return
        self._reset_delete()
        self.remove.hide()
        self.folder_removed.emit(entry)
        self.status.setText(f"{entry} is no longer listed; its files are still on disk.")

    def _delete_clicked(self) -> None:
        """Two clicks, no modal dialog: the first names what will go and arms, the second (within 5 s) deletes."""
        model = self.selected()
        if model is None:
            return
        if self._armed is not model:
            self._armed = model
            where = "from the Hugging Face cache" if model.source == "hf-cache" else f"from disk: {model.path}"
            keep = " (Remove from list keeps the files.)" if self.remove.isVisible() else ""
            self.status.setText(f"Delete {model.name} {where}, {format_gib(model.size_on_disk)}? "
                                f"Click {CONFIRM_TEXT!r} within {CONFIRM_MS // 1000} s.{keep}")
            self.delete.setText(CONFIRM_TEXT)
            self._disarm.start()
            return
        self._reset_delete()
        self.tasks.run(self._delete(model), f"deleting {model.name}")

    async def _delete(self, model: LocalModel) -> None:
        freed = await asyncio.to_thread(delete_model, model)
        await self._scan()
        self.status.setText(f"Deleted {model.name}: {format_gib(freed)} freed. " + self.status.text())

    def _reset_delete(self) -> None:
        if self._armed is not None and self.status.text().startswith("Delete "):
            self.status.setText("Nothing deleted.")
        self._armed = None
        self._disarm.stop()
        self.delete.setText(DELETE_TEXT)
