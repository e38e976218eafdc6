"""A problem of the chat shown where the user is typing, with the actions that fix it
(start the server, enter the API key, drop old turns, regenerate)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.base.errors import Problem
from llmdesk.ui.problems import log_shown


class ChatNotice(QFrame):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatNotice")
        self.setStyleSheet(
            "#chatNotice { background: rgba(217, 119, 6, 0.12); border: 1px solid rgba(217, 119, 6, 0.55);"
            " border-radius: 6px; }")
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: 600;")
        self.title.setWordWrap(True)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column = QVBoxLayout()
        column.addWidget(self.title)
        column.addWidget(self.text)
        self.buttons = QHBoxLayout()
        self.buttons.addStretch()
        column.addLayout(self.buttons)
        row = QHBoxLayout(self)
        row.addLayout(column, 1)
        self.actions: dict[str, QPushButton] = {}
        self.hide()

    def show_problem(self, problem: Problem, actions: tuple[tuple[str, Callable[[], None]], ...] = ()) -> None:
        log_shown("the Chat page", problem.title, problem.explanation)
        self.title.setText(problem.title)
        fix = f" {problem.fix}" if problem.fix else ""
        self.text.setText(problem.explanation + fix)
        for button in self.actions.values():
            self.buttons.removeWidget(button)
            button.deleteLater()
        self.actions = {}
        for label, act in (*actions, ("Dismiss", self.clear)):
            button = QPushButton(label)
            button.clicked.connect(lambda _checked=False, act=act: (self.clear(), act()))
            self.buttons.addWidget(button)
            self.actions[label] = button
        self.show()

    def clear(self) -> None:
        self.hide()
        self.title.clear()
        self.text.clear()

    @property
    def showing(self) -> str:
        return self.title.text() if self.isVisible() else ""
