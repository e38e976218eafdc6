"""The server's log beside the launch form: vLLM's lines as a person reads them, the whole lines one click away.

vLLM starts every line with ~60 characters that repeat (process, pid, level, date, source file): in a pane a
third of a small window wide, every visible line read "(APIServer pid=15094) INFO 1…". Shown compact and
wrapped (core/server/log_lines.compact) by default; "Whole lines" shows them as vLLM wrote them. Copy always
copies the whole lines, for a bug report.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QGuiApplication, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.server.log_lines import compact
from llmdesk.ui import design

LINES_KEPT = 5000


class LogHighlighter(QSyntaxHighlighter):
    def __init__(self, document):
        super().__init__(document)
        self.tones = {"ERROR": "error", "Traceback": "error", "WARNING": "warn"}

    def highlightBlock(self, text: str) -> None:
        for word, tone in self.tones.items():
            if word in text:
                fmt = QTextCharFormat()
                fmt.setForeground(QColor(design.colors().tone(tone)))  # the theme shown when the line came
                self.setFormat(0, len(text), fmt)
                return


class LogPane(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._lines: deque[str] = deque(maxlen=LINES_KEPT)  # as vLLM wrote them
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(LINES_KEPT)
        design.mono(self.view, small=True)
        self._highlighter = LogHighlighter(self.view.document())
        self.find = QLineEdit()
        # one word: beside two buttons in the pane of the smallest window "find in the log" was cut
        self.find.setPlaceholderText("find")
        self.find.setToolTip("Find in the log (Enter: the next one)")
        self.find.setMinimumWidth(self.find.fontMetrics().horizontalAdvance("find") + 24)
        self.find.returnPressed.connect(self.find_next)
        # icons alone: beside the find box they must fit the log pane of the smallest window (158 px)
        self.whole = design.action(QPushButton(), "mdi6.format-text-wrapping-overflow")
        self.whole.setCheckable(True)
        self.whole.setToolTip("Whole lines: as vLLM wrote them (process, level, date, source file), unwrapped")
        self.whole.setAccessibleName("Whole lines")
        self.whole.toggled.connect(self._show_all_again)
        self.copy = design.action(QPushButton(), "mdi6.content-copy")
        self.copy.setToolTip("Copy the whole log")
        self.copy.setAccessibleName("Copy log")
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text()))
        tools = QHBoxLayout()
        tools.addWidget(self.find, 1)
        tools.addWidget(self.whole)
        tools.addWidget(self.copy)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(tools)
        layout.addWidget(self.view, 1)
        self._set_wrap()
        # The log follows its end unless the person scrolled up to read. appendPlainText's own "was at the
        # bottom" test failed with wrapped lines (the range shrinks and grows as lines are laid out): the view
        # stayed near the top, at value 3 of 203, once the server was ready.
        self.following = True
        bar = self.view.verticalScrollBar()
        bar.rangeChanged.connect(self._keep_following)
        bar.actionTriggered.connect(lambda _action: QTimer.singleShot(0, self._note_where_read))

    def text(self) -> str:
        """The whole lines, as vLLM wrote them."""
        return "\n".join(self._lines)

    def append(self, lines: list[str]) -> None:
        lines = [line.rstrip("\r\n") for line in lines]
        self._lines.extend(lines)
        self.view.appendPlainText("\n".join(self._shown(lines)))

    def clear(self) -> None:
        self._lines.clear()
        self.view.clear()
        self.following = True

    def find_next(self) -> None:
        if not self.view.find(self.find.text()):
            self.view.moveCursor(self.view.textCursor().MoveOperation.Start)
            self.view.find(self.find.text())

    def _keep_following(self, *_range: int) -> None:
        if self.following:
            self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().maximum())

    def _note_where_read(self) -> None:
        bar = self.view.verticalScrollBar()
        self.following = bar.value() >= bar.maximum() - 1

    def _shown(self, lines) -> list[str]:
        return list(lines) if self.whole.isChecked() else [compact(line) for line in lines]

    def _set_wrap(self) -> None:
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap if self.whole.isChecked()
                                  else QPlainTextEdit.LineWrapMode.WidgetWidth)

    def _show_all_again(self) -> None:
        self._set_wrap()
        self.view.setPlainText("\n".join(self._shown(self._lines)))
        self._keep_following()
