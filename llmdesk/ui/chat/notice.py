"""A problem of the chat shown where the user is typing, with the actions that fix it
(start the server, enter the API key, drop old turns, regenerate)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.base.errors import Problem
from llmdesk.ui import design
from llmdesk.ui.problems import log_shown, plain_text


class ChatNotice(QFrame):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatNotice")
        design.banner(self, "warn")
        self.title = design.role(QLabel(), "strong")
        self.title.setWordWrap(True)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column = QVBoxLayout()
        column.addWidget(self.title)
        column.addWidget(self.text)
        # Up to two buttons a row: one long row would widen the chat column past the window.
        self.buttons = QGridLayout()
        column.addLayout(self.buttons)
        row = QHBoxLayout(self)
        row.addLayout(column, 1)
        self.actions: dict[str, QPushButton] = {}
        self.hide()

    def show_problem(self, problem: Problem, actions: tuple[tuple[str, Callable[[], None]], ...] = ()) -> None:
        log_shown("the Chat page", problem.title, problem.explanation)
        self.title.setText(plain_text(problem.title))
        fix = f" {problem.fix}" if problem.fix else ""
        self.text.setText(plain_text(problem.explanation + fix))
        for button in self.actions.values():
            self.buttons.removeWidget(button)
            button.deleteLater()
        self.actions = {}
        for i, (label, act) in enumerate((*actions, ("Dismiss", self.clear))):
            button = QPushButton(label)
            button.clicked.connect(lambda _checked=False, act=act: (self.clear(), act()))
            self.buttons.addWidget(button, i // 2, i % 2)
            self.actions[label] = button
        self.show()

    def clear(self) -> None:
        self.hide()
        self.title.clear()
        self.text.clear()

    @property
    def showing(self) -> str:
        return self.title.text() if self.isVisible() else ""
