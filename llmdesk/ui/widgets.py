"""Small shared widgets: page headers, section titles, status glyphs, a folder chooser, a problem box."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (QFileDialog, QFrame, QHeaderView, QLabel, QLineEdit, QPushButton, QScrollArea,
                               QTableWidget, QVBoxLayout, QWidget)
from llmdesk.ui.theme import is_dark

# glyph, colour on the light theme, colour on the dark theme (each 4.5:1 or more on its background)
STATUS_GLYPHS = {"ok": ("✔", "#166534", "#4ade80"), "warn": ("!", "#b45309", "#fbbf24"),
                 "fail": ("✘", "#b91c1c", "#f87171")}


def set_font(widget: QWidget, points: float, bold: bool = False) -> None:
    """Size and weight through the font: a style sheet would pin the label to the palette of the
    theme it was polished in, and its text would stay dark after a switch to the dark theme."""
    font = QFont(widget.font())
    font.setPointSizeF(points)
    font.setWeight(QFont.Weight.DemiBold if bold else QFont.Weight.Normal)
    widget.setFont(font)


@contextlib.contextmanager
def batch_fill(table: QTableWidget):
    """Fill a table in one go: a header that sizes its columns to their contents would measure every
    column again at each cell set (90 ms for 200 cells here); it measures once at the end instead."""
    header = table.horizontalHeader()
    modes = [header.sectionResizeMode(i) for i in range(header.count())]
    table.setUpdatesEnabled(False)
    for i in range(header.count()):
        header.setSectionResizeMode(i, QHeaderView.ResizeMode.Interactive)
    try:
        yield table
    finally:
        for i, mode in enumerate(modes):
            header.setSectionResizeMode(i, mode)
        table.setUpdatesEnabled(True)


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


class StatusGlyph(QLabel):
    """✔ ! ✘ in a colour that keeps 4.5:1 contrast in the theme it is shown in, also after a switch."""

    def __init__(self, status: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.status = status
        self.setFixedWidth(22)
        self._paint_status()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._paint_status()

    def set_status(self, status: str) -> None:
        self.status = status
        self._paint_status()

    def _paint_status(self) -> None:
        glyph, light_color, dark_color = STATUS_GLYPHS.get(self.status, ("?", "#4b5563", "#9ca3af"))
        self.setText(glyph)
        color = dark_color if is_dark(self.palette()) else light_color
        sheet = f"color: {color}; font-weight: 700; font-size: 13pt;"
        if self.styleSheet() != sheet:
            self.setStyleSheet(sheet)


def status_glyph(status: str) -> QLabel:
    return StatusGlyph(status)


def scroll_area(content: QWidget, *, keep_width: bool = False) -> QScrollArea:
    """`content` in a frameless scroll area that resizes it to its width. keep_width: never narrower
    than the content's minimum (a pane in a splitter, which would otherwise cut its fields at the side)."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(content)
    if keep_width:
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(content.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 2)
    return scroll


def fill_with_scrolling(parent: QWidget, content: QWidget) -> QScrollArea:
    """Make `content`, scrollable, the whole of `parent` (pages taller than the window)."""
    scroll = scroll_area(content)
    layout = QVBoxLayout(parent)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(scroll)
    return scroll


def scrolling_page(page: QWidget, title: str, subtitle: str) -> QVBoxLayout:
    """A page that scrolls when taller than the window, headed by its title: the layout to fill."""
    content = QWidget()
    fill_with_scrolling(page, content)
    layout = QVBoxLayout(content)
    layout.addWidget(page_header(title, subtitle))
    return layout


def choose_folder(parent: QWidget, title: str, on_chosen, start: str = "") -> QFileDialog:
    """Ask for a folder; on_chosen(path) when one is picked. The dialog is opened with open(), not
    exec(): a nested event loop inside qasync's would stall every running task."""
    dialog = QFileDialog(parent.window(), title)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    if start and Path(start).expanduser().is_dir():
        dialog.setDirectory(str(Path(start).expanduser()))
    dialog.fileSelected.connect(lambda path: path and on_chosen(path))
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()
    return dialog


def choose_save_file(parent: QWidget, title: str, name: str, name_filter: str, on_chosen) -> QFileDialog:
    """Ask where to save a file; on_chosen(path) when one is given. open(), as choose_folder does."""
    dialog = QFileDialog(parent.window(), title)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setNameFilter(name_filter)
    dialog.selectFile(name)
    dialog.fileSelected.connect(lambda path: path and on_chosen(path))
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()
    return dialog


def browse_button(target: QLineEdit, title: str = "Choose a model folder") -> QPushButton:
    """A "Browse…" button that puts a chosen folder into `target`."""
    button = QPushButton("Browse…")

    def choose() -> None:
        button.dialog = choose_folder(target, title, target.setText, target.text().strip())  # tests find it here

    button.clicked.connect(choose)
    return button


def problem_box() -> QLabel:
    """Where a page says what went wrong: hidden until there is something to say."""
    label = QLabel()
    label.setObjectName("problemBox")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setStyleSheet("background: rgba(220,38,38,0.12); border-radius: 4px; padding: 6px;")
    label.hide()
    return label
