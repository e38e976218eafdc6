"""Saved benchmark runs, newest first: pick one to show it, tick others to draw them beside it, export
(JSON with vLLM's key names, or CSV) or delete. The page loads and saves; this is the list."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from llmdesk.core.bench.sweep import BenchRun
from llmdesk.ui import design
from llmdesk.ui.widgets import batch_fill

COLUMNS = ("Compare", "Run", "When", "Model", "Levels", "Knee", "Status")


class RunsPanel(QWidget):
    show_requested = Signal(object)  # BenchRun
    compare_changed = Signal(list)  # [BenchRun]
    export_requested = Signal(object, str)  # BenchRun, "json" | "csv"
    delete_requested = Signal(object)  # BenchRun

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs: list[BenchRun] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(140)
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.itemChanged.connect(self._ticked)
        self.export_json = design.action(QPushButton("Export JSON…"), "mdi6.export")
        self.export_csv = design.action(QPushButton("Export CSV…"), "mdi6.export")
        self.delete = design.action(QPushButton("Delete"), "mdi6.delete-outline")
        self.export_json.clicked.connect(lambda: self._with_selected(lambda run: self.export_requested.emit(run, "json")))
        self.export_csv.clicked.connect(lambda: self._with_selected(lambda run: self.export_requested.emit(run, "csv")))
        self.delete.clicked.connect(lambda: self._with_selected(self.delete_requested.emit))
        buttons = QHBoxLayout()
        buttons.addStretch()
        for button in (self.export_json, self.export_csv, self.delete):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._filling = False
        self._enable()

    def set_runs(self, runs: list[BenchRun], selected_id: str | None = None) -> None:
        ticked = {run.id for run in self.compared()}
        self._filling = True
        try:
            with batch_fill(self.table):
                self._fill(runs, ticked)
            if selected_id is not None:
                for row, run in enumerate(runs):
                    if run.id == selected_id:
                        self.table.selectRow(row)
        finally:
            self._filling = False
        self._enable()

    def _fill(self, runs: list[BenchRun], ticked: set[str]) -> None:
        self.runs = list(runs)
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            tick = QTableWidgetItem()
            tick.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            tick.setCheckState(Qt.CheckState.Checked if run.id in ticked else Qt.CheckState.Unchecked)
            tick.setToolTip("Draw this run beside the one shown")
            self.table.setItem(row, 0, tick)
            knee = (run.saturation or {}).get("knee")
            cells = (run.name, run.started_at.replace("T", " ")[:16], run.model, str(len(run.levels)),
                     "—" if knee is None else f"{knee:g}", run.status)
            for column, text in enumerate(cells, 1):
                self.table.setItem(row, column, QTableWidgetItem(text))

    def selected(self) -> BenchRun | None:
        rows = self.table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows and rows[0].row() < len(self.runs) else None

    def compared(self) -> list[BenchRun]:
        out = []
        for row, run in enumerate(self.runs):
            item = self.table.item(row, 0)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(run)
        return out

    def _selected(self) -> None:
        self._enable()
        run = self.selected()
        if run is not None and not self._filling:
            self.show_requested.emit(run)

    def _ticked(self, item: QTableWidgetItem) -> None:
        if not self._filling and item.column() == 0:
            self.compare_changed.emit(self.compared())

    def _with_selected(self, action) -> None:
        run = self.selected()
        if run is not None:
            action(run)

    def _enable(self) -> None:
        chosen = self.selected() is not None
        for button in (self.export_json, self.export_csv, self.delete):
            button.setEnabled(chosen)
