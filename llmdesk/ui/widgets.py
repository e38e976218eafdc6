"""Small shared widgets: page headers, section titles, status glyphs."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

STATUS_GLYPHS = {"ok": ("✔", "#16a34a"), "warn": ("!", "#d97706"), "fail": ("✘", "#dc2626")}


def page_header(title: str, subtitle: str) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 8)
    heading = QLabel(title)
    heading.setObjectName("pageTitle")
    heading.setStyleSheet("font-size: 20pt; font-weight: 600;")
    sub = QLabel(subtitle)
    sub.setWordWrap(True)
    sub.setObjectName("pageSubtitle")
    sub.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # dimmed, in light and dark alike
    layout.addWidget(heading)
    layout.addWidget(sub)
    return box


def section_title(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-size: 12pt; font-weight: 600; margin-top: 10px;")
    return label


def status_glyph(status: str) -> QLabel:
    glyph, color = STATUS_GLYPHS.get(status, ("?", "#6b7280"))
    label = QLabel(glyph)
    label.setStyleSheet(f"color: {color}; font-weight: 700; font-size: 13pt;")
    label.setFixedWidth(22)
    return label


def scroll_area(content: QWidget) -> QScrollArea:
    """`content` in a frameless scroll area that resizes it to its width."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(content)
    return scroll


def fill_with_scrolling(parent: QWidget, content: QWidget) -> QScrollArea:
    """Make `content`, scrollable, the whole of `parent` (pages taller than the window)."""
    scroll = scroll_area(content)
    layout = QVBoxLayout(parent)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(scroll)
    return scroll
