"""Search as you type (debounced), sort and filters, more results as the list is scrolled."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QLineEdit,
                               QVBoxLayout, QWidget)

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.hub.search import ModelSummary, SearchQuery, search_models
from llmdesk.ui import design
from llmdesk.ui.hub.tables import NarrowColumns, RowsModel, rows_table
from llmdesk.ui.problems import log_shown
from llmdesk.ui.tasks import TaskRunner

PAGE = 30
DEBOUNCE_MS = 350
SORT_LABELS = {"downloads": "Most downloaded", "likes": "Most liked", "trending": "Trending",
               "updated": "Recently updated"}
COLUMNS = ("Model", "Params", "Downloads", "Likes", "Updated", "Licence")


def short_count(n: int | float | None, suffix: str = "") -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}{suffix}".replace(".0" + unit, unit)
    return f"{n:.0f}{suffix}"


class _Pages:
    """One search's rows, taken a page at a time in a worker thread. Even starting the search
    imports huggingface_hub (a few hundred ms the first time), so that happens off the GUI thread."""

    def __init__(self, query: SearchQuery, token: str | None):
        self.query, self.token = query, token
        self._rows: Iterator[ModelSummary] | None = None

    def take(self, count: int) -> list[ModelSummary]:
        if self._rows is None:
            self._rows = search_models(self.query, token=self.token)
        return list(itertools.islice(self._rows, count))


class ResultsModel(RowsModel):
    COLUMNS = COLUMNS

    def cell(self, m: ModelSummary, column: int, role):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        name = m.repo_id + ("  (gated)" if m.gated else "")
        return (name, short_count(m.parameters), short_count(m.downloads), short_count(m.likes),
                m.last_modified.date().isoformat() if m.last_modified else "—", m.license or "—")[column]

    def extend(self, rows: list[ModelSummary]) -> None:
        if rows:
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(rows) - 1)
            self.rows.extend(rows)
            self.endInsertRows()


class SearchView(QWidget):
    model_chosen = Signal(str)  # a repo id
    results_shown = Signal(int)  # how many rows, after each page

    def __init__(self, tasks: TaskRunner, token_source=lambda: None, parent: QWidget | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.token_source = token_source
        self._generation = 0
        self._pages: _Pages | None = None
        self._fetching = False
        self.exhausted = True

        self.query = QLineEdit()
        self.query.setPlaceholderText("Search Hugging Face: llama, qwen 7b, mistral awq…")
        self.query.setClearButtonEnabled(True)
        self.sort = QComboBox()
        for key, label in SORT_LABELS.items():
            self.sort.addItem(label, key)
        self.author = QLineEdit()
        self.author.setPlaceholderText("author")
        self.author.setMaximumWidth(180)
        self.min_params, self.max_params = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, none_text in ((self.min_params, "any"), (self.max_params, "any")):
            spin.setRange(0, 2000)
            spin.setDecimals(1)
            spin.setSuffix(" B")
            spin.setSpecialValueText(none_text)  # 0 means no bound
            spin.setMaximumWidth(80)
        self.vllm_only = QCheckBox("Served by vLLM")
        self.vllm_only.setChecked(True)
        self.open_only = QCheckBox("No gate")
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        design.banner(self.banner, "warn")
        self.banner.hide()
        self.results = ResultsModel()
        self.table = rows_table(self.results, elide=Qt.TextElideMode.ElideLeft)  # a name's end tells variants apart
        self.narrow = NarrowColumns(self.table, optional=(3, 4, 5))  # Likes, Updated, Licence: the detail has them
        self.status = QLabel("Type to search.")

        row = QHBoxLayout()
        row.addWidget(self.query, 1)
        row.addWidget(self.sort)
        # Two short rows rather than one long one: the pane is narrow beside the model view.
        self.author.setMinimumWidth(110)
        filters = QHBoxLayout()
        filters.addWidget(self.author, 1)
        filters.addWidget(QLabel("params"))
        filters.addWidget(self.min_params)
        filters.addWidget(QLabel("to"))
        filters.addWidget(self.max_params)
        checks = QHBoxLayout()
        checks.addWidget(self.vllm_only)
        checks.addWidget(self.open_only)
        checks.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addLayout(filters)
        layout.addLayout(checks)
        layout.addWidget(self.banner)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.search_now)
        self.query.textChanged.connect(self._debounce.start)
        self.author.textChanged.connect(self._debounce.start)
        self.min_params.valueChanged.connect(self._debounce.start)
        self.max_params.valueChanged.connect(self._debounce.start)
        for box in (self.vllm_only, self.open_only):
            box.toggled.connect(self.search_now)
        self.sort.currentIndexChanged.connect(self.search_now)
        self.table.verticalScrollBar().valueChanged.connect(self._maybe_fetch_more)
        self.table.selectionModel().currentRowChanged.connect(self._row_chosen)

    def current_query(self) -> SearchQuery:
        return SearchQuery(text=self.query.text().strip(), sort=self.sort.currentData(),
                           author=self.author.text().strip() or None, vllm_only=self.vllm_only.isChecked(),
                           min_params=self.min_params.value() or None, max_params=self.max_params.value() or None,
                           gated=False if self.open_only.isChecked() else None, limit=10_000)

    def search_now(self) -> None:
        self._debounce.stop()
        self._generation += 1
        self.results.replace([])
        self.exhausted = False
        self._pages = _Pages(self.current_query(), self.token_source())
        self._fetching = False
        self.fetch_more()

    def fetch_more(self) -> None:
        if self._fetching or self.exhausted or self._pages is None:
            return
        self._fetching = True
        self.status.setText("Searching…")
        self.tasks.run(self._fetch(self._generation, self._pages), "searching Hugging Face")

    async def _fetch(self, generation: int, pages: _Pages) -> None:
        try:
            rows = await asyncio.to_thread(pages.take, PAGE)
        except ProblemError as exc:  # offline, Hub down: say so here; the rest of the app works
            if generation == self._generation:
                log_shown("the Models page's search", exc.problem.title, exc.problem.explanation)
                self._fetching, self.exhausted = False, True
                self.banner.setText(f"<b>{exc.problem.title}.</b> {exc.problem.fix or exc.problem.explanation} "
                                    "Models already on this computer keep working.")
                self.banner.show()
                self.status.setText("")
            return
        if generation != self._generation:  # a newer search started meanwhile
            return
        self.banner.hide()
        self._fetching = False
        self.exhausted = len(rows) < PAGE
        self.results.extend(rows)
        count = len(self.results.rows)
        self.status.setText(f"{count} model{'s' if count != 1 else ''}" + ("" if self.exhausted else ", scroll for more"))
        self.results_shown.emit(count)
        self._maybe_fetch_more()

    def _maybe_fetch_more(self, *_args) -> None:
        bar = self.table.verticalScrollBar()
        if self.table.isVisible() and not self.exhausted and bar.value() >= bar.maximum() - 2:
            self.fetch_more()

    def _row_chosen(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.model_chosen.emit(self.results.rows[current.row()].repo_id)
