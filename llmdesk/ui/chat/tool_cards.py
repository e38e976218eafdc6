"""A tool call the model made, as a card under its message: the function, its arguments, what does not
fit the tool's schema, and a box for the result (Send result); and the badge that says whether a
structured reply fits its schema, pattern or choices."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.chat.tools import ToolCall
from llmdesk.ui import design


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
        design.role(self.title, "strong")
        self.arguments = QLabel()
        self.arguments.setTextFormat(Qt.TextFormat.PlainText)
        self.arguments.setWordWrap(True)
        self.arguments.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        design.mono(self.arguments)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.hide()
        self.result = QPlainTextEdit()
        self.result.setPlaceholderText("The tool's result (text or JSON), sent back to the model")
        self.result.setFixedHeight(58)
        self.send = design.action(QPushButton("Send result"), "mdi6.send")
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
        design.tone(self.note, "warn")
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
        design.soft_badge(self, "ok" if self.ok else "error")
        self.show()
