"""Tool calls and reasoning on the Server page's launch form: the model family's vLLM parsers by default
("Auto: hermes"), any parser vLLM 0.26 registers, or off; and a line that says what the model's chat
template allows. The match is core's (server/tool_parsers.py); the files are read in a thread."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from llmdesk.core.hub.chat_template import chat_facts
from llmdesk.core.server.tool_parsers import (ALL_PARSER_TOKENS, AUTO, NONE, REASONING_PARSERS, TOOL_CALL_PARSERS,
                                              ParserMatch, match_parsers)
from llmdesk.ui import design


def _template_file(extra_args: list[str]) -> str | None:
    for i, arg in enumerate(extra_args):
        if arg == "--chat-template" and i + 1 < len(extra_args):
            return extra_args[i + 1]
        if arg.startswith("--chat-template="):
            return arg.split("=", 1)[1]
    return None


class ParserChoice(QWidget):
    changed = Signal()

    def __init__(self, tasks, parent: QWidget | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.match: ParserMatch | None = None
        self._asked: tuple[str, str | None] | None = None
        self.tool = QComboBox()
        self.reasoning = QComboBox()
        for combo, names in ((self.tool, TOOL_CALL_PARSERS), (self.reasoning, REASONING_PARSERS)):
            combo.addItem("Auto", AUTO)
            combo.addItem("Off", NONE)
            for name in sorted(names):
                combo.addItem(name, name)
            combo.currentIndexChanged.connect(self._chosen)
            # sized by a short name, not the longest (minimax_m2_append_think): the form must not push the log aside
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
        self.tool.setToolTip("--enable-auto-tool-choice --tool-call-parser NAME: the format the model writes its "
                             "tool calls in. Auto: its family's, when its chat template takes tools.")
        self.reasoning.setToolTip("--reasoning-parser NAME: the model's thinking goes to its own field "
                                  "(shown folded in the chat). Auto: its family's.")
        self.note = QLabel()
        self.note.setWordWrap(True)
        design.role(self.note, "muted")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Tool calls", self.tool)
        form.addRow("Reasoning", self.reasoning)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.note)
        self.show_match(None)

    # -- the model --

    def match_model(self, source: str, extra_args: list[str] | None = None) -> None:
        """Read the model's config and chat template (or a --chat-template among the extra arguments)."""
        asked = (source, _template_file(extra_args or []))
        if asked == self._asked:
            return
        self._asked = asked
        if not source:
            self.show_match(None)
            return
        self.tasks.run(self._match(*asked), "reading the model's chat template")

    async def _match(self, source: str, template_file: str | None) -> None:
        facts = await asyncio.to_thread(chat_facts, source, chat_template_file=template_file,
                                        look_for=ALL_PARSER_TOKENS)
        if self._asked == (source, template_file):  # not typed over meanwhile
            self.show_match(match_parsers(**facts.match_args()))

    def show_match(self, match: ParserMatch | None) -> None:
        self.match = match
        tool = match.auto_tool_call_parser if match else None
        reasoning = match.reasoning_parser if match else None
        self.tool.setItemText(0, f"Auto: {tool}" if tool else "Auto: off")
        self.reasoning.setItemText(0, f"Auto: {reasoning}" if reasoning else "Auto: none")
        self._chosen()

    # -- the launch --

    def launch_fields(self) -> dict:
        """LaunchConfig's tool_call_parser / enable_auto_tool_choice / reasoning_parser (names from the
        lists, checked again by LaunchConfig.validate)."""
        tool = self._value(self.tool, self.match.auto_tool_call_parser if self.match else None)
        reasoning = self._value(self.reasoning, self.match.reasoning_parser if self.match else None)
        return {"tool_call_parser": tool, "enable_auto_tool_choice": tool is not None, "reasoning_parser": reasoning}

    def set_choice(self, tool: str = AUTO, reasoning: str = AUTO) -> None:
        for combo, value in ((self.tool, tool), (self.reasoning, reasoning)):
            index = combo.findData(value)
            if index >= 0:
                combo.setCurrentIndex(index)

    @staticmethod
    def _value(combo: QComboBox, matched: str | None) -> str | None:
        data = combo.currentData()
        return matched if data == AUTO else None if data == NONE else data

    def _chosen(self) -> None:
        m = self.match
        lines = []
        if m is not None:
            lines.append(f"{m.family or 'Unknown model family'}: " +
                         ("its chat template takes tools." if m.tools_supported else
                          "tool calling stays off." if self.tool.currentData() == AUTO else ""))
            lines += list(m.notes)
            tool = self.launch_fields()["tool_call_parser"]
            if tool and self.tool.currentData() not in (AUTO, NONE):  # set by hand: what speaks against it
                lines += m.hand_picked_warnings(tool)
        self.note.setText("\n".join(line for line in lines if line.strip()))
        self.note.setVisible(bool(self.note.text()))
        self.changed.emit()
