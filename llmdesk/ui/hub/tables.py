"""What the Models page's tables have in common: rows of objects under fixed column titles."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView


class RowsModel(QAbstractTableModel):
    """Subclasses set COLUMNS and implement cell(row, column, role)."""

    COLUMNS: tuple[str, ...] = ()

    def __init__(self):
        super().__init__()
        self.rows: list[Any] = []

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        return self.cell(self.rows[index.row()], index.column(), role) if index.isValid() else None

    def cell(self, row: Any, column: int, role) -> Any:
        raise NotImplementedError

    def replace(self, rows) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()


def rows_table(model: RowsModel, stretch=(0,), elide=Qt.TextElideMode.ElideMiddle) -> QTableView:
    """A read-only, one-row-at-a-time table: compact rows, no wrapping, the `stretch` columns take
    the room left, long names elided."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    for column in stretch:
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
    table.setWordWrap(False)
    table.setTextElideMode(elide)
    return table


class NarrowColumns(QObject):
    """Hides a table's ``optional`` columns, last first, while its stretching columns (the names) would get
    less than ``name_min`` px each: at 960x600 the search results' Model column was 20 px wide ("…t") beside
    Likes, Updated and Licence. They come back as the table widens."""

    def __init__(self, table: QTableView, optional: tuple[int, ...], name_min: int = 170):
        super().__init__(table)
        self.table, self.optional, self.name_min = table, optional, name_min
        table.viewport().installEventFilter(self)
        model = table.model()
        model.modelReset.connect(self.fit)
        model.rowsInserted.connect(self.fit)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    def _width(self, column: int) -> int:
        return max(self.table.horizontalHeader().sectionSizeHint(column), self.table.sizeHintForColumn(column))

    def fit(self, *_args) -> None:
        header = self.table.horizontalHeader()
        columns = range(self.table.model().columnCount())
        names = [c for c in columns if header.sectionResizeMode(c) == QHeaderView.ResizeMode.Stretch]
        shown = [c for c in columns if c not in names]
        for column in reversed(self.optional):
            if self.table.viewport().width() - sum(self._width(c) for c in shown) >= self.name_min * len(names):
                break
            shown.remove(column)
        for column in self.optional:
            self.table.setColumnHidden(column, column not in shown)
