"""The fit panel: a FitReport for people. Reused by the Models page (and later the Server page).

A verdict badge, one GPU's memory drawn as a bar (weights, allowances, KV cache, what vLLM leaves
free), the context and concurrency it leaves, notes, and the vLLM arguments to launch with.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPalette
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.base.errors import Problem
from llmdesk.core.base.units import format_gib
from llmdesk.core.fit.format_measurements import measured_line
from llmdesk.core.fit.memory_model import (VERDICT_FITS, VERDICT_NEEDS_TP, VERDICT_NO, VERDICT_SHORTER,
                                           VERDICT_UNSUPPORTED, FitReport)
from llmdesk.ui import design
from llmdesk.ui.problems import log_shown

VERDICT_STYLE = {  # label, design tone: the same status colours wherever a verdict is shown
    VERDICT_FITS: ("Fits", "ok"),
    VERDICT_SHORTER: ("Fits, shorter context", "warn"),
    VERDICT_NEEDS_TP: ("Needs more GPUs", "warn"),
    VERDICT_NO: ("Does not fit", "error"),
    VERDICT_UNSUPPORTED: ("Not supported here", "error"),
}
SEGMENT_COLOURS = design.SEGMENT_COLORS
SEGMENT_LABELS = {"weights": "Weights", "activation_peak": "Activation peak", "non_torch": "Non-torch",
                  "lora": "LoRA adapters",
                  "cuda_graphs": "CUDA graphs", "kv_cache": "KV cache", "left": "Not given to vLLM"}


def memory_segments(report: FitReport) -> list[tuple[str, int]]:
    """(segment, bytes) across one GPU's memory, in the order vLLM fills it."""
    # the RoPE tables load with the weights and are counted with them, as vLLM's "Model loading took" does
    rope = report.allowances["rope_tables"].bytes if "rope_tables" in report.allowances else 0
    segments = [("weights", report.weights_bytes_per_gpu + rope)]
    for key in ("activation_peak", "non_torch", "lora"):
        if key in report.allowances:
            segments.append((key, report.allowances[key].bytes))
    if report.cuda_graphs_in_kv_budget:
        segments.append(("cuda_graphs", report.allowances["cuda_graphs"].bytes))
    segments.append(("kv_cache", max(0, report.kv_cache_bytes)))
    used = sum(size for _, size in segments)
    segments.append(("left", max(0, report.cuda_total_bytes - used)))
    return segments


class MemoryBar(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.segments: list[tuple[str, int]] = []
        self.setMinimumHeight(26)

    def sizeHint(self) -> QSize:
        return QSize(400, 26)

    def set_segments(self, segments: list[tuple[str, int]]) -> None:
        self.segments = segments
        self.update()

    def paintEvent(self, event) -> None:
        total = sum(size for _, size in self.segments) or 1
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        x, width, height = 0.0, float(self.width()), float(self.height())
        empty = self.palette().color(QPalette.ColorRole.Mid)
        for key, size in self.segments:
            w = width * size / total
            colour = SEGMENT_COLOURS.get(key)
            painter.fillRect(QRectF(x, 0, w, height), QColor(colour) if colour else empty)
            x += w
        painter.end()


class FitPanel(QFrame):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.report: FitReport | None = None
        self.badge = QLabel()
        self.badge.setObjectName("fitBadge")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.bar = MemoryBar()
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.figures = QGridLayout()
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        design.tone(self.notes, "warn")
        self.launch = QLabel()
        self.launch.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        design.mono(self.launch)
        self.launch.setWordWrap(True)
        self.copy = design.action(QPushButton("Copy"), "mdi6.content-copy")
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.launch.text()))

        head = QHBoxLayout()
        head.addWidget(self.badge)
        head.addWidget(self.summary, 1)
        launch_row = QHBoxLayout()
        launch_row.addWidget(self.launch, 1)
        launch_row.addWidget(self.copy)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.bar)
        layout.addWidget(self.legend)
        layout.addLayout(self.figures)
        layout.addWidget(self.notes)
        layout.addLayout(launch_row)
        self.show_message("Choose a model and a GPU to see whether it fits.")

    def show_message(self, text: str) -> None:
        self.report = None
        self._set_badge("", None)
        self.summary.setText(text)
        for widget in (self.bar, self.legend, self.notes, self.launch, self.copy):
            widget.hide()
        self._set_figures([])

    def show_problem(self, problem: Problem) -> None:
        log_shown("a fit panel", problem.title, problem.explanation)
        self.show_message(f"<b>{problem.title}</b><br>{problem.explanation}"
                          + (f"<br>{problem.fix}" if problem.fix else ""))
        self._set_badge("Cannot tell", "neutral")

    def show_report(self, report: FitReport, ranking_note: str = "") -> None:
        """ranking_note: why the variant list ranked this one where it is (measured speed), if it says."""
        self.report = report
        label, tone = VERDICT_STYLE.get(report.verdict, (report.verdict, "neutral"))
        self._set_badge(label, tone)
        self.summary.setText(report.summary)
        segments = memory_segments(report)
        self.bar.set_segments(segments)
        self.legend.setText("   ".join(
            f"<span style='color:{SEGMENT_COLOURS[key] or design.html_color('muted', self)}'>■</span> "
            f"{SEGMENT_LABELS[key]} {format_gib(size)}"
            for key, size in segments if size > 0))
        per_gpu = " per GPU" if report.tensor_parallel_size > 1 else ""
        self._set_figures([
            ("Context", f"{report.max_model_len:,} of {report.model_max_len:,} tokens"),
            ("Concurrent requests", f"{report.max_concurrency:.1f} at that length"),
            ("KV cache", f"{report.kv_cache_tokens:,} tokens ({format_gib(max(0, report.kv_cache_bytes))}{per_gpu})"),
            ("Weights", f"{format_gib(report.weights_bytes, 2)} — {report.weights_source}"),
            ("Format", report.quantization),
            *([("Measured", line)] if (line := measured_line(report.measured)) else []),
            ("GPUs", f"{report.tensor_parallel_size}× {report.gpu_name}"),
        ])
        notes = [*report.notes, *([ranking_note] if ranking_note else [])]
        self.notes.setText("\n".join(f"! {note}" for note in notes))
        self.notes.setVisible(bool(notes))
        self.launch.setText(report.serve_command)
        can_launch = report.verdict not in (VERDICT_NO, VERDICT_UNSUPPORTED)
        for widget in (self.bar, self.legend):
            widget.show()
        self.launch.setVisible(can_launch)
        self.copy.setVisible(can_launch)

    def _set_badge(self, text: str, tone: str | None) -> None:
        self.badge.setText(text)
        self.badge.setVisible(bool(text))
        if tone:
            design.badge(self.badge, tone)

    def _set_figures(self, rows: list[tuple[str, str]]) -> None:
        while self.figures.count():
            item = self.figures.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for row, (name, value) in enumerate(rows):
            key = QLabel(name)
            key.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            text = QLabel(value)
            text.setWordWrap(True)  # the measured line is a sentence; a narrow window must not cut it
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.figures.addWidget(key, row, 0)
            self.figures.addWidget(text, row, 1)
        self.figures.setColumnStretch(1, 1)
