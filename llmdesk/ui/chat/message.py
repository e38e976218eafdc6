"""One message of the conversation: who, the text (markdown for replies), reasoning folded away,
the reply's stats and what can be done with it (copy, edit, regenerate)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from llmdesk.core.chat.session import stats_text
from llmdesk.core.chat.tools import ToolCall
from llmdesk.ui import design
from llmdesk.ui.chat.markdown_view import MarkdownView
from llmdesk.ui.chat.tool_cards import ToolCallCard, VerdictBadge

STATE_NOTES = {
    "stopped": "Stopped",
    "interrupted": "Cut off: the connection or the server failed mid-reply",
    "error": "No reply",
}


def _action(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


class MessageWidget(QFrame):
    """A message; assistant replies can be streamed into with begin_stream/append/end_stream."""

    copy_requested = Signal(object)  # self
    edit_requested = Signal(object)
    regenerate_requested = Signal(object)
    tool_result_submitted = Signal(object, object, str)  # self, the ToolCall, the result typed

    def __init__(self, role: str, content: str = "", *, reasoning: str = "", stats: dict | None = None,
                 state: str = "complete", who: str = "", message_id: int | None = None,
                 excluded: bool = False, tool_calls: tuple[ToolCall, ...] = (), tool_call_id: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.state = state
        self.stats = stats
        self._content = content
        self._reasoning = reasoning
        self.tool_calls: tuple[ToolCall, ...] = ()
        self.tool_call_id = tool_call_id
        self.cards: dict[int, ToolCallCard] = {}  # by the call's position
        self.setObjectName({"user": "userMessage", "tool": "toolMessage"}.get(role, "assistantMessage"))
        self.setStyleSheet(
            "#userMessage { background: palette(alternate-base); border-radius: 10px; }"
            " #toolMessage { border-left: 3px solid palette(mid); }"
            " #assistantMessage { background: transparent; }")

        self.who = QLabel(who or {"user": "You", "tool": "Tool result"}.get(role, "Assistant"))
        design.role(self.who, "strong")
        self.note = QLabel()
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.who)
        header.addWidget(self.note, 1)

        self.reasoning_toggle = _action("▸ Thinking", "Show the model's reasoning")
        self.reasoning_toggle.setCheckable(True)
        self.reasoning_toggle.toggled.connect(self._show_reasoning)
        self.reasoning_view: MarkdownView | None = None  # made when reasoning arrives: most messages have none
        self.reasoning_toggle.setVisible(bool(reasoning))

        if role in ("user", "tool"):
            self.body: QWidget = QLabel(content)
            self.body.setTextFormat(Qt.TextFormat.PlainText)  # what the user typed, exactly
            self.body.setWordWrap(True)
            self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.body.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        else:
            self.body = MarkdownView(fit_height=True)
            if content:
                self.body.set_markdown(content)

        self.stats_label = QLabel()
        self.stats_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.stats_label.setWordWrap(True)
        self.copy_button = _action("Copy", "Copy the message's text")
        self.edit_button = _action("Edit", "Put this message back in the box to change and resend it")
        self.regenerate_button = _action("Regenerate", "Ask again for this reply")
        self.copy_button.clicked.connect(lambda: self.copy_requested.emit(self))
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit(self))
        self.regenerate_button.clicked.connect(lambda: self.regenerate_requested.emit(self))
        self.edit_button.setVisible(role == "user")
        self.regenerate_button.setVisible(False)
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addWidget(self.stats_label, 1)
        for button in (self.copy_button, self.edit_button, self.regenerate_button):
            footer.addWidget(button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.reasoning_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)
        self.calls_box = QVBoxLayout()
        self.calls_box.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.calls_box)
        self.verdict = VerdictBadge()
        layout.addWidget(self.verdict)  # full width: aligned, a wrapped label kept its first height and clipped
        self.mark = QLabel()
        self.mark.setWordWrap(True)
        self.mark.setTextFormat(Qt.TextFormat.PlainText)
        self.mark.hide()
        self.unanswered: str | None = None
        layout.addWidget(self.mark)
        layout.addLayout(footer)
        if reasoning and role != "user":
            self._reasoning_view().set_markdown(reasoning)
        if tool_calls:
            self.show_calls(tool_calls)
        self.verdict.show_verdict((stats or {}).get("validation"))
        self._show_footer()
        self.set_excluded(excluded)

    # -- content --

    def content(self) -> str:
        return self._content if self.role in ("user", "tool") else self.body.markdown()

    # -- tool calls and structured replies --

    def show_calls(self, calls: tuple[ToolCall, ...] | list[ToolCall]) -> None:
        """One card per call (made or updated: while streaming, the arguments grow)."""
        self.tool_calls = tuple(calls)
        for i, call in enumerate(calls):
            card = self.cards.get(i)
            if card is None:
                card = ToolCallCard(call)
                card.result_submitted.connect(lambda c, text: self.tool_result_submitted.emit(self, c, text))
                self.calls_box.addWidget(card)
                self.cards[i] = card
            else:
                card.update_call(call)

    def card_for(self, call_id: str | None) -> ToolCallCard | None:
        return next((c for c in self.cards.values() if c.call.id == call_id), None)

    def set_verdict(self, verdict: dict | None) -> None:
        self.verdict.show_verdict(verdict)

    def reasoning(self) -> str:
        return self.reasoning_view.markdown() if self.reasoning_view is not None else ""

    def begin_stream(self) -> None:
        self.state = "streaming"
        self.body.begin_stream()
        if self.reasoning_view is not None:
            self.reasoning_view.begin_stream()
        self.note.setText("writing…")
        self._show_footer()

    def append(self, content: str, reasoning: str = "") -> None:
        if reasoning:
            if not self.reasoning_toggle.isVisible():
                self.reasoning_toggle.show()
            self._reasoning_view().append(reasoning)
        if content:
            self.body.append(content)

    def end_stream(self, stats: dict | None, state: str) -> None:
        self.body.end_stream()
        if self.reasoning_view is not None:
            self.reasoning_view.end_stream()
        self.stats, self.state = stats, state
        self._show_footer()

    def set_regenerable(self, on: bool) -> None:
        self.regenerate_button.setVisible(on and self.role == "assistant")

    def set_excluded(self, excluded: bool) -> None:
        """Dropped from the context: still shown (nothing is lost), dimmed, not sent."""
        self.excluded = excluded
        if self.state != "streaming":
            self.note.setText("left out of the context: not sent" if excluded else STATE_NOTES.get(self.state, ""))
        self.who.setForegroundRole(QPalette.ColorRole.PlaceholderText if excluded else QPalette.ColorRole.WindowText)

    def set_unanswered(self, reason: str | None) -> None:
        """A question no reply came for: marked, so the mark stays after the notice is dismissed."""
        self.unanswered = reason
        if reason:
            design.tone(self.mark, "warn")
            self.mark.setText(f"Not answered: {reason}")
        self.mark.setVisible(bool(reason))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.unanswered:
            self.set_unanswered(self.unanswered)  # the mark's colour for the new theme

    def _reasoning_view(self) -> MarkdownView:
        if self.reasoning_view is None:
            view = MarkdownView(fit_height=True)
            view.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            view.hide()
            if self.state == "streaming":
                view.begin_stream()
            layout = self.layout()
            layout.insertWidget(layout.indexOf(self.reasoning_toggle) + 1, view)
            self.reasoning_view = view
        return self.reasoning_view

    # -- looks --

    def _show_footer(self) -> None:
        streaming = self.state == "streaming"
        self.stats_label.setText("" if streaming else stats_text(self.stats))
        if not streaming:
            self.note.setText("left out of the context: not sent" if getattr(self, "excluded", False)
                              else STATE_NOTES.get(self.state, ""))
        self.copy_button.setVisible(not streaming)

    def _show_reasoning(self, shown: bool) -> None:
        self._reasoning_view().setVisible(shown)
        self.reasoning_toggle.setText("▾ Thinking" if shown else "▸ Thinking")
