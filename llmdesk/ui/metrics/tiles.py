"""Headline tiles: a title, a big value and a small line under it; "—" for what is not known."""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter, QPalette, QPen
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout

from llmdesk.core.base.units import GIB
from llmdesk.ui import design

NONE = "—"


class Tile(QFrame):
    def __init__(self, title: str, tooltip: str = ""):
        super().__init__()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(tooltip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(0)
        self.title = design.role(QLabel(title), "caption")
        self.value = design.role(QLabel(NONE), "figure")
        self.value.setFont(design.tabular_font(self.value))  # live figures of one width: they do not jitter
        self.detail = design.role(QLabel(""), "caption")
        for label in (self.title, self.value, self.detail):
            label.setMinimumWidth(1)  # a long text never widens the whole row: it wraps
            layout.addWidget(label)
        self.title.setWordWrap(True)
        self.detail.setWordWrap(True)

    def paintEvent(self, event) -> None:
        # Painted rather than styled: a style sheet's palette() colours stay those of the theme the
        # tile was first shown in, and the theme can change while the app runs.
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)

    def show_value(self, value: str, detail: str = "") -> None:
        if self.value.text() != value:
            self.value.setText(value)
        if self.detail.text() != detail:
            self.detail.setText(detail)
            self.detail.setToolTip(detail)


def rate(v: float | None) -> str:
    if v is None or math.isnan(v):
        return NONE
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def count(v: int | None) -> str:
    return NONE if v is None else f"{v:,}"


def percent(fraction: float | None, digits: int = 1) -> str:
    if fraction is None or math.isnan(fraction):
        return NONE
    return f"{fraction * 100:.{digits}f} %"


def duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return NONE
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def gib(n_bytes: float) -> str:
    value = n_bytes / GIB
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
