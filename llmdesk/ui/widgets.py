"""Small shared widgets: page headers, section titles, status glyphs, a folder chooser, a problem box, an
empty state."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QScrollArea,
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
    button = design.action(QPushButton("Browse…"), "mdi6.folder-open-outline")

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


class EmptyState(QFrame):
    """What a page shows before it has anything to show: what will be here, and the one action that gets
    there (a card: an icon, a title, a line of explanation, a primary button)."""

    def __init__(self, icon_name: str, parent: QWidget | None = None, steps_aside: tuple = ()):
        """steps_aside: the page's primary buttons, plain while this state's action is the main one."""
        super().__init__(parent)
        self.steps_aside = steps_aside
        self.setObjectName("emptyState")
        design.card(self)
        self.icon_name = icon_name
        self.glyph = QLabel()
        self.glyph.setFixedSize(40, 40)
        self.title = design.role(QLabel(), "subsection")
        self.title.setWordWrap(True)
        self.text = design.role(QLabel(), "muted")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.action = design.action(QPushButton(), "mdi6.arrow-right", primary=True)  # each leads to a page
        self.action.hide()
        words = QVBoxLayout()  # the action under the words: it fits a narrow column (Chat's at 960 px)
        words.setSpacing(design.SPACE_XS)
        words.addWidget(self.title)
        words.addWidget(self.text)
        words.addSpacing(design.SPACE_XS)
        words.addWidget(self.action, 0, Qt.AlignmentFlag.AlignLeft)
        row = QHBoxLayout(self)
        row.setContentsMargins(design.SPACE_L, design.SPACE_M, design.SPACE_L, design.SPACE_M)
        row.setSpacing(design.SPACE_M)
        row.addWidget(self.glyph, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(words, 1)
        self._paint_glyph()

    def say(self, title: str, text: str, action: str = "", icon_name: str = "") -> None:
        """Show it with these words; `action` names the button (none: no button)."""
        if icon_name and icon_name != self.icon_name:
            self.icon_name = icon_name
            self._paint_glyph()
        self.title.setText(title)
        self.text.setText(text)
        self.action.setText(action)
        self.action.setVisible(bool(action))
        self.setVisible(True)

    def setVisible(self, visible: bool) -> None:
        super().setVisible(visible)
        leading = visible and bool(self.action.text())
        for button in self.steps_aside:
            design.set_primary(button, not leading)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.glyph.setVisible(event.size().width() >= 300)  # a narrow column keeps the words and the action

    def _paint_glyph(self) -> None:
        self.glyph.setPixmap(design.icon(self.icon_name, self, tone="muted").pixmap(36, 36))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._paint_glyph()  # drawn in the old theme's colours otherwise
