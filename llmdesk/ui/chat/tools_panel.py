"""Tools and structured output for the playground: tool definitions as JSON (checked as you type), the
tool choice, and a constraint on the reply (none, a JSON schema, a regular expression or a choice).
The checks are core/chat/tools.py's and structured.py's; this only shows them."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.chat import structured as shapes
from llmdesk.core.chat.tools import TOOL_CHOICES, check_tool_choice, parse_tools, tool_names
from llmdesk.ui import design
from llmdesk.ui.widgets import section_title

CHECK_MS = 250  # typing pauses this long before the JSON is checked
EXAMPLE_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}}]
SHAPES = (("No constraint", None), ("JSON schema", "json_schema"), ("Regular expression", "regex"),
          ("Choice", "choice"))
TOOLS_KEY, CHOICE_KEY, STRUCTURED_KEY = "tools", "tool_choice", "structured"  # kept with a conversation


class ToolsPanel(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.use_tools = QCheckBox("Send tools")
        self.use_tools.setToolTip("The server needs tool calling on (Server page: Tool calls)")
        self.use_tools.toggled.connect(self._check_tools)
        self.tools_edit = QPlainTextEdit()
        self.tools_edit.setPlaceholderText('[{"type": "function", "function": {"name": …, "parameters": {…}}}]')
        self.tools_edit.setFixedHeight(120)
        self.tools_edit.setStyleSheet("font-family: monospace;")
        self.example = QPushButton("Example")
        self.example.setToolTip("Put a small get_weather tool in the box")
        self.example.clicked.connect(lambda: self.tools_edit.setPlainText(json.dumps(EXAMPLE_TOOLS, indent=2)))
        self.tool_choice = QComboBox()
        self.tool_choice.addItems(TOOL_CHOICES)
        self.tool_choice.setToolTip("auto: the model decides; required: it must call one; none: no call; "
                                    "a name: that tool")
        self.tools_status = QLabel()
        self.tools_status.setWordWrap(True)
        self._tools: list[dict] | None = None
        self._tools_problem: str | None = None

        self.shape = QComboBox()
        for label, kind in SHAPES:
            self.shape.addItem(label, kind)
        self.shape.currentIndexChanged.connect(self._shape_chosen)
        self.schema_edit = QPlainTextEdit()
        self.schema_edit.setFixedHeight(100)
        self.schema_edit.setStyleSheet("font-family: monospace;")
        self.pattern = QLineEdit()
        self.shape_status = QLabel()
        self.shape_status.setWordWrap(True)
        self._structured: shapes.Structured | None = None
        self._shape_problem: str | None = None

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(CHECK_MS)
        self._timer.timeout.connect(self.check)
        self.tools_edit.textChanged.connect(self._timer.start)
        self.schema_edit.textChanged.connect(self._timer.start)
        self.pattern.textChanged.connect(self._timer.start)

        top = QHBoxLayout()
        top.addWidget(self.use_tools, 1)
        top.addWidget(self.example)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Tool choice", self.tool_choice)
        shape_form = QFormLayout()
        shape_form.setContentsMargins(0, 0, 0, 0)
        shape_form.addRow("Reply", self.shape)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section_title("Tools"))
        layout.addLayout(top)
        layout.addWidget(self.tools_edit)
        layout.addLayout(form)
        layout.addWidget(self.tools_status)
        layout.addWidget(section_title("Structured output"))
        layout.addLayout(shape_form)
        layout.addWidget(self.schema_edit)
        layout.addWidget(self.pattern)
        layout.addWidget(self.shape_status)
        self._shape_chosen()
        self._check_tools()

    # -- what a request gets --

    def request(self) -> dict[str, Any] | None:
        """tools / tool_choice / structured for ChatClient.stream; None (with the reason shown) when the
        tools or the constraint do not parse."""
        self.check()
        if self._tools_problem is not None or self._shape_problem is not None:
            return None
        tools = self._tools if self.use_tools.isChecked() else None
        choice = check_tool_choice(self.tool_choice.currentText(), tools) if tools else None
        return {"tools": tools, "tool_choice": choice, "structured": self._structured}

    @property
    def tools(self) -> list[dict]:
        """The tools as last checked (also when not sent: their schemas check the calls shown)."""
        return self._tools or []

    @property
    def structured(self) -> shapes.Structured | None:
        return self._structured

    def problem(self) -> str | None:
        return self._tools_problem or self._shape_problem

    def settings(self) -> dict[str, Any]:
        """Kept with the conversation; ``show_settings`` reads them back."""
        out: dict[str, Any] = {}
        if self.use_tools.isChecked() and self._tools:
            out[TOOLS_KEY] = self._tools
            if self.tool_choice.currentText() != "auto":
                out[CHOICE_KEY] = self.tool_choice.currentText()
        if self._structured is not None:
            out[STRUCTURED_KEY] = self._structured.as_dict()
        return out

    def show_settings(self, settings: dict | None) -> None:
        settings = settings or {}
        tools = settings.get(TOOLS_KEY)
        self.use_tools.setChecked(isinstance(tools, list) and bool(tools))
        if isinstance(tools, list) and tools:
            self.tools_edit.setPlainText(json.dumps(tools, indent=2, ensure_ascii=False))
        structured = shapes.from_dict(settings.get(STRUCTURED_KEY))
        kind = structured.kind if structured else None
        self.shape.setCurrentIndex(next(i for i, (_l, k) in enumerate(SHAPES) if k == kind))
        if structured is not None and structured.kind == "json_schema":
            self.schema_edit.setPlainText(json.dumps(structured.schema, indent=2, ensure_ascii=False))
        elif structured is not None and structured.kind == "regex":
            self.pattern.setText(structured.pattern)
        elif structured is not None:
            self.schema_edit.setPlainText("\n".join(structured.choices))
        self.check()
        choice = settings.get(CHOICE_KEY)
        if isinstance(choice, str) and self.tool_choice.findText(choice) >= 0:
            self.tool_choice.setCurrentText(choice)

    # -- checks as you type --

    def check(self) -> None:
        self._timer.stop()
        self._check_tools()
        self._check_shape()

    def _check_tools(self) -> None:
        text = self.tools_edit.toPlainText().strip()
        self._tools, self._tools_problem = None, None
        if text:
            try:
                self._tools = parse_tools(text, "The tools")
            except ProblemError as exc:
                self._tools_problem = exc.problem.explanation
        on = self.use_tools.isChecked()
        if on and not text:
            self._tools_problem = "Type the tools (or press Example) to send them."
        shown = self._tools_problem if on else None
        if shown:
            self._say(self.tools_status, shown, error=True)
        elif self._tools:
            self._say(self.tools_status, f"{len(self._tools)} tool{'s' if len(self._tools) != 1 else ''}: "
                                         f"{', '.join(tool_names(self._tools))}" + ("" if on else " (not sent)"))
        else:
            self._say(self.tools_status, "")
        if not on:
            self._tools_problem = None  # tools not sent cannot stop a message
        current = self.tool_choice.currentText()
        self.tool_choice.blockSignals(True)
        self.tool_choice.clear()
        self.tool_choice.addItems([*TOOL_CHOICES, *tool_names(self._tools or [])])
        self.tool_choice.setCurrentText(current if self.tool_choice.findText(current) >= 0 else "auto")
        self.tool_choice.blockSignals(False)
        self.tool_choice.setEnabled(on and bool(self._tools))
        self.changed.emit()

    def _shape_chosen(self) -> None:
        kind = self.shape.currentData()
        self.schema_edit.setVisible(kind in ("json_schema", "choice"))
        self.pattern.setVisible(kind == "regex")
        self.schema_edit.setPlaceholderText('{"type": "object", "properties": {"answer": {"type": "string"}}}'
                                            if kind == "json_schema" else "one choice per line")
        self.pattern.setPlaceholderText(r"e.g. \d{4}-\d{2}-\d{2}  (the whole reply must match)")
        self._check_shape()

    def _check_shape(self) -> None:
        kind = self.shape.currentData()
        self._structured, self._shape_problem = None, None
        try:
            if kind == "json_schema" and not self.schema_edit.toPlainText().strip():
                self._shape_problem = "Type the JSON schema the reply must follow."
            elif kind == "json_schema":
                self._structured = shapes.json_schema(self.schema_edit.toPlainText(), "The schema")
            elif kind == "regex":
                self._structured = shapes.regex(self.pattern.text())
            elif kind == "choice":
                self._structured = shapes.choice(self.schema_edit.toPlainText())
        except ProblemError as exc:
            self._shape_problem = exc.problem.explanation
        if self._shape_problem:
            self._say(self.shape_status, self._shape_problem, error=True)
        else:
            self._say(self.shape_status, f"The reply must be {self._structured.describe()}; it is checked when it "
                                         "ends." if self._structured else "")
        self.changed.emit()

    @staticmethod
    def _say(label: QLabel, text: str, *, error: bool = False) -> None:
        label.setText(text)
        design.tone(label, "error" if error else "muted")
        label.setVisible(bool(text))
