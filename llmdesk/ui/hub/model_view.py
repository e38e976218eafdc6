"""One model: its card, facts and files, and every variant with a fit verdict for the chosen GPUs."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.base.units import format_gib
from llmdesk.core.hub.details import ModelDetail, model_detail
from llmdesk.core.hub.variants import Variant, evaluate_variants, find_variant_ids, rank_variants, refit_variants
from llmdesk.ui import design
from llmdesk.ui.fit.panel import VERDICT_STYLE, FitPanel
from llmdesk.ui.hub.search_view import short_count
from llmdesk.ui.hub.tables import NarrowColumns, RowsModel, rows_table
from llmdesk.ui.problems import log_shown
from llmdesk.ui.tasks import TaskRunner
from llmdesk.ui.widgets import EmptyState, scroll_area

COLUMNS = ("Variant", "Format", "Size", "Verdict", "Context", "Concurrency")
FILES_NAMED = 4
CARD_MIN_VIEW_HEIGHT = 520  # px of this view; at 960x600 it has ~390


class VariantsModel(RowsModel):
    COLUMNS = COLUMNS

    def __init__(self):
        super().__init__()
        self.recommended: Variant | None = None

    def cell(self, v: Variant, column: int, role):
        report = v.report
        if role == design.TONE_ROLE and column == 3:  # the verdict as a badge in the status colours
            return VERDICT_STYLE.get(report.verdict, ("", "neutral"))[1] if report is not None else "neutral"
        if role == Qt.ItemDataRole.ToolTipRole:
            said = report.summary if report else (v.problem.title if v.problem else None)
            return "\n".join(x for x in (said, v.rank_note) if x) or None
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        star = "★ " if v is self.recommended else ""
        if report is None:
            verdict = "Not servable" if v.unsupported else "Cannot tell"  # the reason is in the tooltip and panel
            return (star + v.repo_id, v.format_label, _size(v), verdict, "—", "—")[column]
        return (star + v.repo_id, v.format_label, _size(v), VERDICT_STYLE.get(report.verdict, (report.verdict,))[0],
                f"{report.max_model_len:,}" if report.max_model_len else "—",
                f"{report.max_concurrency:.1f}" if report.max_model_len else "—")[column]

    def show(self, rows: list[Variant], recommended: Variant | None) -> None:
        self.recommended = recommended
        self.replace(rows)


def _size(variant: Variant) -> str:
    return format_gib(variant.size_bytes) if variant.size_bytes else "—"


class ModelView(QWidget):
    download_requested = Signal(str)  # repo id
    variants_shown = Signal(int)

    def __init__(self, tasks: TaskRunner, fit_target, token_source=lambda: None, parent: QWidget | None = None):
        """fit_target() -> (gpus, LaunchSettings): what the variants are judged against."""
        super().__init__(parent)
        self.tasks = tasks
        self.fit_target = fit_target
        self.token_source = token_source
        self.repo_id: str | None = None
        self.detail: ModelDetail | None = None
        self._generation = 0

        self.title = QLabel()
        design.role(self.title, "heading")
        self.title.setWordWrap(True)
        self.facts = QLabel()
        self.facts.setWordWrap(True)
        self.files = QLabel()
        self.files.setWordWrap(True)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.card.setMaximumHeight(115)
        self.variants = VariantsModel()
        self.table = rows_table(self.variants, stretch=(0, 1))
        self.verdicts = design.BadgeDelegate(self.table)  # kept: the view does not own its delegates
        self.table.setItemDelegateForColumn(3, self.verdicts)
        # narrow: the variant's name before its context and concurrency (the fit panel below says both)
        self.narrow = NarrowColumns(self.table, optional=(4, 5), name_min=90)
        self.table.setMinimumHeight(90)  # three variants at least, the pick among them
        self.variants_status = QLabel()
        self.variants_status.setWordWrap(True)  # "recommended: Qwen/Qwen2" was cut beside Download
        self.panel = FitPanel()
        self.download = design.action(QPushButton("Download"), "mdi6.download", primary=True)
        self.download.setEnabled(False)
        self.download.clicked.connect(self._download)

        actions = QHBoxLayout()
        actions.addWidget(self.variants_status, 1)
        actions.addWidget(self.download)
        # before a model is chosen: what this side will show
        self.empty = EmptyState("mdi6.cube-outline")
        self.empty.say("Choose a model from the results", "Its quantized variants appear here, best fit first, each "
                       "with what it needs and the context and requests it leaves on these GPUs — before anything is "
                       "downloaded.")
        self.details = QWidget()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.empty)
        outer.addWidget(self.details, 1)
        outer.addStretch()
        self.details.hide()
        layout = QVBoxLayout(self.details)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.facts)
        layout.addWidget(self.files)
        layout.addWidget(self.card)
        layout.addWidget(QLabel("<b>Variants</b> — best fit first; ★ is the pick for these GPUs"))
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        layout.addWidget(scroll_area(self.panel), 1)  # a short window scrolls the fit's details, never squeezes them
        self.table.selectionModel().currentRowChanged.connect(self._variant_chosen)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        # a short window gives the variants the room: the card's few lines (a README's title) are the Hub's
        self.card.setVisible(self.height() >= CARD_MIN_VIEW_HEIGHT)

    def show_model(self, repo_id: str) -> None:
        self._generation += 1
        self.repo_id = repo_id
        self.empty.hide()
        self.details.show()
        self.title.setText(repo_id)
        self.facts.setText("Reading the model card…")
        self.files.clear()
        self.card.clear()
        self.variants.show([], None)
        self.variants_status.setText("Looking for quantized variants…")
        self.download.setEnabled(False)
        self.panel.show_message("Choose a variant to see how it fits.")
        self.tasks.run(self._load(self._generation, repo_id), f"reading {repo_id}")

    async def _load(self, generation: int, repo_id: str) -> None:
        token = self.token_source()
        try:
            detail = await asyncio.to_thread(model_detail, repo_id, token=token)
        except ProblemError as exc:
            if generation == self._generation:
                log_shown("the Models page's model view", exc.problem.title, exc.problem.explanation)
                self.facts.setText(f"<b>{exc.problem.title}</b><br>{exc.problem.explanation}")
                self.variants_status.setText("")
            return
        if generation != self._generation:
            return
        self.detail = detail
        self._show_detail(detail)
        ids = await asyncio.to_thread(find_variant_ids, repo_id, token=token)
        gpus, settings = self.fit_target()
        variants = await asyncio.to_thread(evaluate_variants, ids, gpus, settings, token=token)
        if generation == self._generation:
            self._show_variants(variants)

    def refit(self) -> None:
        """The GPUs or launch settings changed: judge the variants again (pure arithmetic, no I/O)."""
        if self.variants.rows:
            gpus, settings = self.fit_target()
            self._show_variants(refit_variants(self.variants.rows, gpus, settings))

    def _show_detail(self, detail: ModelDetail) -> None:
        s = detail.summary
        facts = [detail.architecture or "architecture unknown",
                 f"{short_count(s.parameters)} parameters" if s.parameters else None,
                 f"{detail.context_length:,}-token context" if detail.context_length else None,
                 f"licence {s.license}" if s.license else None,
                 "gated: accept the licence on huggingface.co and add a token" if s.gated else "open",
                 f"{short_count(s.downloads)} downloads, {short_count(s.likes)} likes"]
        self.facts.setText(" · ".join(f for f in facts if f))
        total = sum(size for _, size in detail.files)
        # four names at most: twelve took four lines of a narrow pane, above the variants (all in the tooltip)
        self.files.setText(f"{len(detail.files)} files, {format_gib(total)}: "
                           + ", ".join(name for name, _ in detail.files[:FILES_NAMED])
                           + (", …" if len(detail.files) > FILES_NAMED else ""))
        self.files.setToolTip("\n".join(f"{name}  {format_gib(size, 2)}" for name, size in detail.files))
        self.card.setMarkdown(detail.card_markdown or "*No model card.*")

    def _show_variants(self, variants: list[Variant]) -> None:
        ranked, pick = rank_variants(variants)
        self.variants.show(ranked, pick)
        self.variants_status.setText(f"{len(ranked)} variant{'s' if len(ranked) != 1 else ''}"
                                     + (f"; recommended: {pick.repo_id}" if pick else ""))
        self.variants_shown.emit(len(ranked))
        if pick is not None:
            self.table.selectRow(ranked.index(pick))

    def _variant_chosen(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        variant = self.variants.rows[current.row()]
        if variant.report is not None:
            self.panel.show_report(variant.report, ranking_note=variant.rank_note)
        elif variant.problem is not None:
            self.panel.show_problem(variant.problem)
        self.download.setEnabled(variant.servable)

    def _download(self) -> None:
        index = self.table.selectionModel().currentIndex()
        if index.isValid():
            self.download_requested.emit(self.variants.rows[index.row()].repo_id)
