"""A tool call the model made, as a card under its message: the function, its arguments, what does not
fit the tool's schema, and a box for the result (Send result); and the badge that says whether a
structured reply fits its schema, pattern or choices."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.chat.tools import ToolCall
from llmdesk.ui.theme import is_dark

WARN_COLORS = {False: "#92400e", True: "#fbbf24"}  # amber, readable on the light / dark window
BADGE_COLORS = {True: ("rgba(22,163,74,0.15)", "#15803d", "#4ade80"), False: ("rgba(220,38,38,0.12)", "#b91c1c",
                                                                               "#f87171")}


def pretty_arguments(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False) if arguments.strip() else "{}"
    except ValueError:
        return arguments


class ToolCallCard(QFrame):
    result_submitted = Signal(object, str)  # the ToolCall, the result typed

    def __init__(self, call: ToolCall, parent: QWidget | None = None):
        super().__init__(parent)
        self.call = call
        self.setObjectName("toolCallCard")
        self.setStyleSheet("#toolCallCard { border: 1px solid palette(mid); border-radius: 8px; }")
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-weight: 600;")
        self.arguments = QLabel()
        self.arguments.setTextFormat(Qt.TextFormat.PlainText)
        self.arguments.setWordWrap(True)
        self.arguments.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.arguments.setStyleSheet("font-family: monospace;")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.hide()
        self.result = QPlainTextEdit()
        self.result.setPlaceholderText("The tool's result (text or JSON), sent back to the model")
        self.result.setFixedHeight(58)
        self.send = QPushButton("Send result")
        self.send.clicked.connect(self._submit)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.answer.setTextFormat(Qt.TextFormat.PlainText)
        self.answer.setForegroundRole(self.foregroundRole())
        self.answer.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.result, 1)
        row.addWidget(self.send, 0, Qt.AlignmentFlag.AlignBottom)
        self.entry = QWidget()
        self.entry.setLayout(row)
        self.entry.hide()  # until the reply has ended: a call still streaming cannot be answered
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.arguments)
        layout.addWidget(self.note)
        layout.addWidget(self.entry)
        layout.addWidget(self.answer)
        self.update_call(call)

    def update_call(self, call: ToolCall) -> None:
        self.call = call
        self.title.setText(f"Tool call: {call.name}")
        self.title.setToolTip(f"call id {call.id}")
        self.arguments.setText(pretty_arguments(call.arguments))

    def set_problem(self, why: str | None) -> None:
        """What does not fit the tool (unknown tool, arguments not JSON or off the schema): shown, not blocking."""
        self.note.setStyleSheet(f"color: {WARN_COLORS[is_dark(self.palette())]};")
        self.note.setText(f"Note: {why}" if why else "")
        self.note.setVisible(bool(why))

    def ask_for_result(self) -> None:
        if not self.answered:
            self.entry.show()

    @property
    def answered(self) -> bool:
        return not self.answer.isHidden()

    def set_answered(self, result: str) -> None:
        self.entry.hide()
        self.answer.setText(f"Result sent: {result}")
        self.answer.show()

    def _submit(self) -> None:
        self.result_submitted.emit(self.call, self.result.toPlainText())


class VerdictBadge(QLabel):
    """"✓ Matches the JSON schema" or "✗ Does not match the JSON schema: $.temp_c: …"."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.ok: bool | None = None
        self.hide()

    def show_verdict(self, verdict: dict | None) -> None:
        if not isinstance(verdict, dict) or not isinstance(verdict.get("ok"), bool):
            self.ok = None
            self.hide()
            return
        self.ok = verdict["ok"]
        detail = verdict.get("detail") or ""
        self.setText(("✓ " if self.ok else "✗ ") + str(verdict.get("title", "")) + (f": {detail}" if detail else ""))
        background, light, dark = BADGE_COLORS[self.ok]
        self.setStyleSheet(f"background: {background}; color: {dark if is_dark(self.palette()) else light}; "
                           "border-radius: 4px; padding: 3px 6px;")
        self.show()
