"""Small shared widgets: page headers, section titles, status glyphs, a folder chooser, a problem box."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFileDialog, QFrame, QHeaderView, QLabel, QLineEdit, QPushButton, QScrollArea,
                               QTableWidget, QVBoxLayout, QWidget)
from llmdesk.ui import design

# glyph and the design tone it is shown in (the theme's status colours keep 4.5:1 on its background)
STATUS_GLYPHS = {"ok": ("✔", "ok"), "warn": ("!", "warn"), "fail": ("✘", "error")}


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
    heading = design.role(QLabel(title), "title")
    heading.setObjectName("pageTitle")
    sub = design.role(QLabel(subtitle), "muted")
    sub.setWordWrap(True)
    sub.setObjectName("pageSubtitle")
    layout.addWidget(heading)
    layout.addWidget(sub)
    return box


def section_title(text: str) -> QLabel:
    return design.role(QLabel(text), "section")


class StatusGlyph(QLabel):
    """✔ ! ✘ in the theme's status colour (the application's sheet follows a theme switch)."""

    def __init__(self, status: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFixedWidth(22)
        design.role(self, "glyph")
        self.set_status(status)

    def set_status(self, status: str) -> None:
        self.status = status
        glyph, tone = STATUS_GLYPHS.get(status, ("?", "muted"))
        self.setText(glyph)
        design.tone(self, tone)


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
    design.banner(label, "error")
    label.hide()
    return label
