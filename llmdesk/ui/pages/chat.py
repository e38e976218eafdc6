"""Chat: a streaming playground for the server this app runs, or any OpenAI-compatible URL.

Saved conversations on the left, the conversation in the middle, the system prompt and sampling
parameters on the right (Settings, hidden by default where the page is narrow: the thread gets the
room). Replies stream into a markdown view; deltas are buffered and drawn at most once per frame so
a fast model never stalls the window. Every message is saved as soon as it is sent or its reply ends
(also when stopped or cut off), so nothing typed is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QScrollArea, QSplitter, QStyle, QToolButton, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.chat.client import ChatClient, ContextTooLong, ModelNotFound, StreamInterrupted
from llmdesk.core.chat.conversations import Conversation, ConversationStore
from llmdesk.core.chat.session import Turn, oldest_droppable, params_from_dict, params_to_dict, request_messages
from llmdesk.core.chat.tools import ToolCall, calls_from_openai, check_arguments, choice_after_results
from llmdesk.core.server.endpoint import ServerUnreachable, Unauthorized, default_base_url, normalise_base_url
from llmdesk.core.server.supervisor import ServerState, ServerStatus
from llmdesk.ui import design
from llmdesk.ui.chat.conversations_panel import ConversationsPanel
from llmdesk.ui.chat.message import MessageWidget
from llmdesk.ui.chat.notice import ChatNotice
from llmdesk.ui.chat.params_panel import ParamsPanel
from llmdesk.ui.chat.tools_panel import ToolsPanel
from llmdesk.ui.context import AppContext
from llmdesk.ui.widgets import EmptyState, page_header, scroll_area, section_title

log = logging.getLogger(__name__)

FLUSH_MS = 16  # one frame: deltas arriving faster are drawn together
EXCLUDED_KEY = "excluded_message_ids"  # kept with the conversation's settings


def _warm_up_imports() -> None:
    """What the first reply would otherwise import on the GUI thread (measured: a 40-120 ms stall):
    the HTTP stack's asyncio backend and the code highlighter's common lexers."""
    import anyio._backends._asyncio  # noqa: F401
    import jsonschema.validators  # noqa: F401 - the tools and schema checks (first use: ~0.1 s)
    from pygments.lexers import get_lexer_by_name

    for name in ("python", "bash", "json"):
        get_lexer_by_name(name)


class _SendOnEnter(QObject):
    """Enter sends, Shift+Enter starts a new line (as in every chat app)."""

    def __init__(self, send, parent: QObject):
        super().__init__(parent)
        self._send = send

    def eventFilter(self, obj, event) -> bool:
        if (event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self._send()
            return True
        return False


SIDE_SHOWN_FROM = 900  # px of the three columns: below it the thread would get under ~450 px beside Settings


class ChatPage(QWidget):
    start_server_requested = Signal()
    open_server_page_requested = Signal()
    start_model_requested = Signal()  # the empty state's Start a model

    def __init__(self, ctx: AppContext, store: ConversationStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.store = store
        self.conversation_id: int | None = None
        self.messages: list[MessageWidget] = []
        self._editing: MessageWidget | None = None
        self._reply_task: asyncio.Task | None = None
        self._streaming: MessageWidget | None = None
        self._client: ChatClient | None = None
        self._buffer: tuple[list[str], list[str]] = ([], [])
        self._buffer_calls: tuple[ToolCall, ...] = ()  # the latest snapshot of the calls being streamed
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)
        self._excluded: set[int] = set()
        self._last_problem: ProblemError | None = None

        self.conversations = ConversationsPanel(store, ctx.tasks)  # type: ignore[arg-type]
        self.conversations.opened.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_chat)
        self.conversations.deleted.connect(self._conversation_deleted)
        self.conversations.setMinimumWidth(130)

        self.params = ParamsPanel()
        self.params.save_for_model_requested.connect(self._save_model_default)
        middle = self._middle()
        side = QWidget()
        side_column = QVBoxLayout(side)
        side_column.setContentsMargins(0, 0, 4, 0)
        side_column.addWidget(section_title("Server"))
        server_form = QFormLayout()
        server_form.addRow("URL", self.url)
        server_form.addRow("API key", self.api_key)
        side_column.addLayout(server_form)
        side_column.addWidget(self.params, 1)
        self.tools_panel = ToolsPanel()
        side_column.addWidget(self.tools_panel)
        params_scroll = self.side = scroll_area(side, keep_width=True)

        splitter = self.columns = QSplitter()
        splitter.addWidget(self.conversations)
        splitter.addWidget(middle)
        splitter.addWidget(params_scroll)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([200, 600, 260])
        splitter.setChildrenCollapsible(False)
        self._columns_moved = False  # once the person drags a divider, their widths are kept
        self._side_chosen = False  # once the person shows or hides Settings, the page no longer decides
        splitter.splitterMoved.connect(lambda *_: setattr(self, "_columns_moved", True))
        layout = QVBoxLayout(self)  # the title where every page has it; three columns need the width at the right
        margin = self.style().pixelMetric(QStyle.PixelMetric.PM_LayoutLeftMargin)  # a child widget's, as elsewhere
        layout.setContentsMargins(margin, margin, 0, 0)
        layout.addWidget(page_header("Chat", "Talk to the model; Settings holds the server, the parameters, tools "
                                             "and structured output."))
        layout.addWidget(splitter, 1)

        ctx.server.subscribe(on_status=self._server_changed)
        self._show_empty_state()

    # -- layout --

    def _middle(self) -> QWidget:
        self.url = QLineEdit()
        self.url.setPlaceholderText("empty: this app's server")
        self.url.setToolTip("Any OpenAI-compatible server: its root (http://host:8000) or its /v1 base. "
                            "Empty: the server this app runs.")
        self.url.editingFinished.connect(self.refresh_models)
        self.url.textChanged.connect(self._show_empty_state)  # as it is typed (or filled in), not on leaving it
        self.api_key = QLineEdit()
        self.api_key.setPlaceholderText("if the server needs one")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.editingFinished.connect(self.refresh_models)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setMinimumWidth(140)
        self.model.lineEdit().setPlaceholderText("model")
        self.model.currentTextChanged.connect(self._model_changed)
        self.refresh = QToolButton()
        self.refresh.setText("↻")
        self.refresh.setToolTip("Ask the server which models it serves")
        self.refresh.clicked.connect(self.refresh_models)
        self.settings_toggle = design.action(QPushButton("Settings"), "mdi6.tune-variant")
        self.settings_toggle.setCheckable(True)
        self.settings_toggle.setChecked(True)
        self.settings_toggle.setToolTip("Show or hide the server, system prompt, parameters, tools and JSON shape")
        self.settings_toggle.clicked.connect(self._side_toggled)  # clicked: the person's choice, not the page's
        target = QHBoxLayout()
        target.addWidget(QLabel("Model"))
        target.addWidget(self.model, 1)
        target.addWidget(self.refresh)
        target.addWidget(self.settings_toggle)

        self.thread = QWidget()
        self.thread_layout = QVBoxLayout(self.thread)
        self.thread_layout.setContentsMargins(4, 4, 12, 4)
        self.thread_layout.setSpacing(8)
        self.empty = EmptyState("mdi6.message-text-outline")  # what a new chat shows, and Start a model
        self.empty.action.clicked.connect(self.start_model_requested)
        self.thread_layout.addWidget(self.empty)
        self.thread_layout.addStretch()
        self.scroll: QScrollArea = scroll_area(self.thread)
        self.scroll.verticalScrollBar().rangeChanged.connect(self._follow_bottom)
        self._at_bottom = True
        self.scroll.verticalScrollBar().valueChanged.connect(self._scrolled)

        self.notice = ChatNotice()
        self.edit_bar = QFrame()
        edit_row = QHBoxLayout(self.edit_bar)
        edit_row.setContentsMargins(0, 0, 0, 0)
        self.edit_label = QLabel("Editing an earlier message: sending replaces it and everything after it.")
        self.edit_label.setWordWrap(True)
        cancel_edit = QPushButton("Cancel edit")
        cancel_edit.clicked.connect(self.cancel_edit)
        edit_row.addWidget(self.edit_label, 1)
        edit_row.addWidget(cancel_edit)
        self.edit_bar.hide()

        self.composer = QPlainTextEdit()
        self.composer.setPlaceholderText("Ask something…  (Enter sends, Shift+Enter for a new line)")
        self.composer.setFixedHeight(84)
        self.composer.setMinimumWidth(120)  # a narrow window gives the width to the thread and the buttons
        self.composer.installEventFilter(_SendOnEnter(self.send, self.composer))
        self.send_button = design.action(QPushButton("Send"), "mdi6.send", primary=True)
        self.send_button.setDefault(True)
        # one width for Send and Stop, plain or primary: a style sheet's padding reaches the size hint a turn of
        # the loop late, and the layout kept the old width (the text was cut when it stepped up to primary)
        metrics = self.send_button.fontMetrics()
        self.send_button.setFixedWidth(max(metrics.horizontalAdvance(t) for t in ("Send", "Stop"))
                                       + self.send_button.iconSize().width() + 3 * design.SPACE_L)
        self.empty.steps_aside = (self.send_button,)
        self.send_button.clicked.connect(self._send_or_stop)
        self.status = QLabel()
        self.status.setWordWrap(True)
        design.role(self.status, "muted")
        send_column = QVBoxLayout()
        send_column.addWidget(self.send_button)
        send_column.addStretch()
        compose = QHBoxLayout()
        compose.addWidget(self.composer, 1)
        compose.addLayout(send_column)

        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(8, 0, 8, 0)
        column.addLayout(target)
        column.addWidget(self.scroll, 1)
        column.addWidget(self.notice)
        column.addWidget(self.edit_bar)
        column.addLayout(compose)
        column.addWidget(self.status)
        return box

    # -- start-up --

    def start(self) -> None:
        """Once the loop runs: open the store (disk) and list the saved chats."""
        self.ctx.tasks.run(self._open_store(), "opening the saved chats")

    async def _open_store(self) -> None:
        await asyncio.to_thread(_warm_up_imports)
        if self.store is None:
            self.store = await asyncio.to_thread(ConversationStore)
            self.conversations.store = self.store
        notice = getattr(self.store, "notice", None)
        if notice:
            self.ctx.problems.show_problem(notice if isinstance(notice, Problem) else
                                           Problem("Saved chats could not be read", str(notice), None))
        await self.conversations._refresh()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._columns_moved:
            self._fit_columns()

    def _side_toggled(self, shown: bool) -> None:
        self._side_chosen = True
        self.side.setVisible(shown)
        if not self._columns_moved:
            self._fit_columns()

    def _fit_columns(self) -> None:
        """The thread gets the room: at the smallest window the side columns kept 200 + 260 px and the
        conversation had 247 (its stats a column of words, a tool call's result box 70 px wide), so where the
        columns have less than SIDE_SHOWN_FROM px Settings starts hidden; the chat list keeps what its buttons
        need."""
        total = self.columns.width()  # not the sizes' sum: a hidden Settings counts nothing there
        if total <= 0:
            return
        if not self._side_chosen:
            shown = total >= SIDE_SHOWN_FROM
            self.side.setVisible(shown)
            self.settings_toggle.setChecked(shown)
        chats = max(self.conversations.least_comfortable_width(), min(220, round(0.16 * total)))
        params = max(self.side.minimumWidth(), min(300, round(0.22 * total))) if self.side.isVisibleTo(self) else 0
        handles = self.columns.handleWidth() * (2 if params else 1)
        self.columns.setSizes([chats, max(0, total - chats - params - handles), params])

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_warmed", False):
            self._warmed = True
            self._warm_up_widgets()

    def _warm_up_widgets(self) -> None:
        """Qt lays out and paints its first rich text slowly (fonts, styles: 60-110 ms here). Pay it
        when the page is first shown, not when the first reply starts streaming."""
        probe = MessageWidget("assistant", "**warm** `up`\n\n| a |\n|---|\n| 1 |\n")
        probe.begin_stream()
        probe.append("text\n\n", "thinking")
        probe.end_stream(None, "complete")
        self.thread_layout.insertWidget(0, probe)
        QTimer.singleShot(0, lambda: (probe.setParent(None), probe.deleteLater()))

    @property
    def streaming(self) -> bool:
        return self._reply_task is not None and not self._reply_task.done()

    # -- target --

    async def target(self) -> tuple[str, str | None]:
        """The base URL and API key: the typed URL, else the server this app runs (with its key)."""
        typed_key = self.api_key.text().strip() or None
        if self.url.text().strip():
            return normalise_base_url(self.url.text()), typed_key
        status = self.ctx.server.status
        if status.url and status.state in (ServerState.READY, ServerState.STARTING):
            key = status.config.api_key if status.config else None
            return status.url, typed_key or key
        return await asyncio.to_thread(default_base_url), typed_key

    async def _client_for(self) -> ChatClient:
        url, key = await self.target()
        if self._client is None or (self._client.base_url, self._client.api_key) != (url, key):
            if self._client is not None:
                await self._client.aclose()
            # Building the client builds its SSL context (20-35 ms): not on the GUI thread.
            self._client = await asyncio.to_thread(ChatClient, url, key)
        return self._client

    def refresh_models(self) -> None:
        self.ctx.tasks.run(self._refresh_models(quiet=False), "asking the server for its models")

    async def _refresh_models(self, *, quiet: bool) -> list[str]:
        client = await self._client_for()
        try:
            served = await client.models()
        except ProblemError as exc:
            if not quiet:
                self._show_problem(exc)
            return []
        current = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems(served)
        self.model.setCurrentText(current if current in served or (current and not served) else
                                  (served[0] if served else ""))
        self.model.blockSignals(False)
        self._model_changed(self.model.currentText())
        self.status.setText(f"{client.base_url} serves {len(served)} model{'s' if len(served) != 1 else ''}.")
        return served

    def _server_changed(self, status: ServerStatus) -> None:
        self._show_empty_state()
        if status.state == ServerState.READY and not self.url.text().strip():
            self.ctx.tasks.run(self._refresh_models(quiet=True), "asking the server for its models")

    def _model_changed(self, model: str) -> None:
        if model and self.store is not None:
            self.ctx.tasks.run(self._load_model_default(model), "reading the model's default parameters")

    async def _load_model_default(self, model: str) -> None:
        asked = self._defaults_version = getattr(self, "_defaults_version", 0) + 1
        params = await asyncio.to_thread(self.store.model_params, model)
        if asked != self._defaults_version or model != self.model.currentText().strip():
            return  # another model was picked, or a default saved, while this was read
        self.params.set_model_default(params)
        if params is not None and not self.messages:  # a new chat starts from the model's default
            self.params.show_params(params)

    def _save_model_default(self) -> None:
        model = self.model.currentText().strip()
        params = self.params.params_or_none()
        if not model or params is None or self.store is None:
            self.status.setText("Pick a model first." if not model else self.status.text())
            return
        self.ctx.tasks.run(self._store_model_default(model, params_to_dict(params)), "saving the model's parameters")

    async def _store_model_default(self, model: str, params: dict) -> None:
        self._defaults_version = getattr(self, "_defaults_version", 0) + 1
        await asyncio.to_thread(self.store.set_model_params, model, params)
        self.params.set_model_default(params)
        self.params.show_params(params)
        self.status.setText(f"New chats with {model} start with these parameters.")

    # -- conversations --

    def new_chat(self) -> None:
        self.ctx.tasks.run(self._switch(None), "starting a new chat")

    def open_conversation(self, conversation_id: int) -> None:
        if conversation_id != self.conversation_id:
            self.ctx.tasks.run(self._switch(conversation_id), "opening the chat")

    async def _switch(self, conversation_id: int | None) -> None:
        await self.stop()
        conversation = await asyncio.to_thread(self.store.get, conversation_id) if conversation_id else None
        self.show_conversation(conversation)

    def show_conversation(self, conversation: Conversation | None) -> None:
        self.cancel_edit()
        self.notice.clear()
        for widget in self.messages:
            widget.setParent(None)
            widget.deleteLater()
        self.messages.clear()
        self.conversation_id = conversation.id if conversation else None
        self.conversations.select(self.conversation_id)
        if conversation is None:
            self._excluded = set()
            self._show_empty_state()
            return
        settings = conversation.params or {}
        self._excluded = set(settings.get(EXCLUDED_KEY, []))
        self.params.system_prompt.setPlainText(conversation.system_prompt or "")
        self.params.show_params(params_from_dict(settings))
        self.tools_panel.show_settings(settings)
        if conversation.model:
            self.model.setCurrentText(conversation.model)
        if conversation.base_url is not None:
            self.url.setText(conversation.base_url)
        for message in conversation.messages:
            if message.role == "system":
                continue
            calls = tuple(calls_from_openai(message.tool_calls))
            who = conversation.model or ""
            if message.role == "tool":
                asked = self._card_for(message.tool_call_id)
                who = f"Tool result · {asked.call.name}" if asked else "Tool result"
                if asked is not None:
                    asked.set_answered(message.content)
            widget = self._add_message(message.role, message.content, reasoning=message.reasoning,
                                       stats=message.stats, state=message.state, message_id=message.id, who=who,
                                       tool_calls=calls, tool_call_id=message.tool_call_id)
            for card in widget.cards.values():
                card.set_problem(check_arguments(self.tools_panel.tools, card.call) if self.tools_panel.tools else None)
        self._ask_for_results()
        self._update_regenerate()
        self._show_empty_state()
        self._at_bottom = True

    def _conversation_deleted(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            self.new_chat()

    # -- sending --

    def _send_or_stop(self) -> None:
        if self.streaming:
            self.ctx.tasks.run(self.stop(), "stopping the reply")
        else:
            self.send()

    def send(self) -> None:
        text = self.composer.toPlainText()
        if not text.strip() or self.streaming:
            return
        self._reply_task = self.ctx.tasks.run(self._send(text), "sending the message")
        self._show_streaming(True)

    async def _send(self, text: str) -> None:
        params = self.params.params_or_none()
        if params is None:
            return
        if self.conversation_id is None:
            model = self.model.currentText().strip()
            self.conversation_id = await asyncio.to_thread(
                self.store.create, model=model or None,
                system_prompt=self.params.system_prompt.toPlainText(), params=self._settings_dict(params))
            self.conversations.current_id = self.conversation_id
        if self._editing is not None:
            await self._truncate_from(self._editing)
            self.cancel_edit()
        for widget in self.messages:  # calls left unanswered stay so: the conversation moved on
            for card in widget.cards.values():
                card.entry.hide()
        message = await asyncio.to_thread(self.store.add_message, self.conversation_id, "user", text)
        self.composer.clear()  # only now: the text is on disk
        self._add_message("user", text, message_id=message.id)
        self._at_bottom = True
        await self._reply(params)
        await self.conversations._refresh()

    async def _reply(self, params=None) -> None:
        """Stream one reply to the conversation as it stands; save it however it ends."""
        params = params or self.params.params_or_none()
        if params is None:
            return
        extras = self.tools_panel.request()
        if extras is None:
            self.status.setText(f"Not sent: {self.tools_panel.problem()}")
            return
        if self.messages and self.messages[-1].role == "tool":  # the forced call is made; the model may answer
            extras["tool_choice"] = choice_after_results(extras["tool_choice"])
        self.notice.clear()
        if self.messages and self.messages[-1].role in ("user", "tool"):
            self.messages[-1].set_unanswered(None)  # asked again
        client = await self._client_for()
        model = self.model.currentText().strip()
        if not model:
            served = await self._refresh_models(quiet=False)
            if not served:
                return
            model = served[0]
        await asyncio.to_thread(self.store.update_settings, self.conversation_id, model=model,
                                system_prompt=self.params.system_prompt.toPlainText(),
                                params=self._settings_dict(params),
                                base_url=self.url.text().strip())
        messages = request_messages(self.params.system_prompt.toPlainText(), self._turns())
        widget = self._add_message("assistant", who=model)
        widget.begin_stream()
        self._streaming = widget
        self._update_regenerate()
        self.status.setText(f"{model} is writing…")
        state, problem = "complete", None
        try:
            async with contextlib.aclosing(client.stream(model, messages, params, **extras)) as deltas:
                async for delta in deltas:
                    self._buffer[0].append(delta.content)
                    self._buffer[1].append(delta.reasoning)
                    if delta.tool_calls:
                        self._buffer_calls = delta.tool_calls
                    if not self._flush_timer.isActive():
                        self._flush_timer.start()
        except asyncio.CancelledError:
            state = "stopped"
        except StreamInterrupted as exc:
            state, problem = "interrupted", exc
        except ProblemError as exc:
            state, problem = "error", exc
        finally:
            self._flush()
            self._streaming = None
        stats = client.last_stats.as_dict() if client.last_stats else None
        calls = tuple(client.last_tool_calls) if state == "complete" else ()
        structured = extras["structured"]
        if structured is not None and state == "complete" and not calls and stats is not None:
            stats["validation"] = structured.check(widget.content(), stats.get("finish_reason")).as_dict()
        widget.end_stream(stats, state)
        if calls:
            widget.show_calls(calls)
            for card in widget.cards.values():
                card.set_problem(check_arguments(self.tools_panel.tools, card.call,
                                                 stats.get("finish_reason") if stats else None))
        if stats is not None and "validation" in stats:
            widget.set_verdict(stats["validation"])
        if state == "error":  # nothing came: the message would only be noise
            self._remove_message(widget)
        else:
            saved = await asyncio.to_thread(
                self.store.add_message, self.conversation_id, "assistant", widget.content(),
                reasoning=widget.reasoning(), stats=stats, state=state,
                tool_calls=[c.as_openai() for c in calls] or None)
            widget.message_id = saved.id
        self._ask_for_results()
        self._update_regenerate()
        called = ", ".join(dict.fromkeys(c.name for c in calls))
        self.status.setText("Stopped; the part received is kept." if state == "stopped" else
                            f"{model} called {called}: type each result and press Send result." if calls else
                            "" if problem is None else problem.problem.title)
        if problem is not None:
            self._show_problem(problem)

    async def stop(self) -> None:
        """Stop the reply being written (the server aborts it); what came is saved as stopped."""
        task = self._reply_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._show_streaming(False)

    def stop_soon(self) -> None:
        """From a synchronous handler (closing the window): cancel now; the task saves what came."""
        if self.streaming:
            self._reply_task.cancel()

    def _show_streaming(self, on: bool) -> None:
        self.send_button.setText("Stop" if on else "Send")
        design.action(self.send_button, "mdi6.stop" if on else "mdi6.send", primary=True)
        if not on:
            return
        task = self._reply_task
        if task is not None:
            task.add_done_callback(lambda _t: self._show_streaming(False))

    # -- streaming display --

    def _flush(self) -> None:
        content, reasoning = self._buffer
        if self._streaming is not None and (content or reasoning):
            self._streaming.append("".join(content), "".join(reasoning))
        if self._streaming is not None and self._buffer_calls:
            self._streaming.show_calls(self._buffer_calls)
        content.clear()
        reasoning.clear()
        self._buffer_calls = ()

    def _scrolled(self, value: int) -> None:
        bar = self.scroll.verticalScrollBar()
        self._at_bottom = value >= bar.maximum() - 24

    def _follow_bottom(self, _minimum: int, maximum: int) -> None:
        if self._at_bottom:
            self.scroll.verticalScrollBar().setValue(maximum)

    # -- messages --

    def _add_message(self, role: str, content: str = "", **kwargs) -> MessageWidget:
        message_id = kwargs.get("message_id")
        widget = MessageWidget(role, content, excluded=message_id in self._excluded, **kwargs)
        widget.copy_requested.connect(self._copy)
        widget.edit_requested.connect(self.edit)
        widget.regenerate_requested.connect(self.regenerate)
        widget.tool_result_submitted.connect(self.submit_tool_result)
        self.thread_layout.insertWidget(self.thread_layout.count() - 1, widget)
        self.messages.append(widget)
        self._show_empty_state()
        return widget

    def _remove_message(self, widget: MessageWidget) -> None:
        self.messages.remove(widget)
        widget.setParent(None)
        widget.deleteLater()
        self._show_empty_state()

    def _turns(self) -> list[Turn]:
        return [Turn(w.role, w.content(), w.excluded, w.tool_calls, w.tool_call_id) for w in self.messages]

    # -- tool results --

    def _card_for(self, call_id: str | None):
        for widget in reversed(self.messages):
            if (card := widget.card_for(call_id)) is not None:
                return card
        return None

    def _pending_calls(self):
        """The last assistant message's cards still without a result, when only results follow it."""
        for widget in reversed(self.messages):
            if widget.role == "tool":
                continue
            if widget.role == "assistant" and widget.cards:
                return widget, [c for c in widget.cards.values() if not c.answered]
            return None, []
        return None, []

    def _ask_for_results(self) -> None:
        _widget, cards = self._pending_calls()
        for card in cards:
            card.ask_for_result()

    def submit_tool_result(self, widget: MessageWidget, call: ToolCall, text: str) -> None:
        """A result typed in a card: saved as a "tool" message; once every call has one, the model goes on."""
        pending, cards = self._pending_calls()
        if self.streaming or pending is not widget or call.id not in {c.call.id for c in cards}:
            return
        self._reply_task = self.ctx.tasks.run(self._send_tool_result(widget, call, text), "sending the tool's result")

    async def _send_tool_result(self, widget: MessageWidget, call: ToolCall, text: str) -> None:
        saved = await asyncio.to_thread(self.store.add_message, self.conversation_id, "tool", text,
                                        tool_call_id=call.id)
        widget.card_for(call.id).set_answered(text)
        self._add_message("tool", text, message_id=saved.id, who=f"Tool result · {call.name}", tool_call_id=call.id)
        self._at_bottom = True
        _widget, cards = self._pending_calls()
        if cards:
            self.status.setText(f"{len(cards)} more result{'s' if len(cards) != 1 else ''} to send.")
            return
        self._show_streaming(True)
        await self._reply()

    def _settings_dict(self, params) -> dict:
        settings = params_to_dict(params)
        settings.update(self.tools_panel.settings())
        if self._excluded:
            settings[EXCLUDED_KEY] = sorted(self._excluded)
        return settings

    def _update_regenerate(self) -> None:
        last = self.messages[-1] if self.messages else None
        for widget in self.messages:
            widget.set_regenerable(widget is last and self._streaming is None)

    def _show_empty_state(self) -> None:
        if self.messages:
            self.empty.hide()
            return
        state = self.ctx.server.status.state
        if self.url.text().strip() or state == ServerState.READY:
            self.empty.say("Ask the model something", "Type below: Enter sends, Shift+Enter starts a new line, "
                           "Escape stops a reply. Parameters, tools and a required JSON shape are under Settings.")
        elif state == ServerState.STARTING:
            self.empty.say("The model is starting", "You can write your question now; it can be sent as soon as "
                           "the Server page says ready.")
        else:
            self.empty.say("No model is running", "Replies come from the model this app serves, or from any "
                           "OpenAI-compatible server whose address you type under Settings.", "Start a model")

    def _copy(self, widget: MessageWidget) -> None:
        QGuiApplication.clipboard().setText(widget.content())
        self.status.setText("Copied.")

    def edit(self, widget: MessageWidget) -> None:
        if self.streaming:
            return
        self._editing = widget
        self.composer.setPlainText(widget.content())
        self.composer.setFocus()
        self.edit_bar.show()

    def cancel_edit(self) -> None:
        self._editing = None
        self.edit_bar.hide()

    def regenerate(self, widget: MessageWidget | None = None) -> None:
        if self.streaming or not self.messages:
            return
        widget = widget or self.messages[-1]
        self._reply_task = self.ctx.tasks.run(self._regenerate(widget), "regenerating the reply")
        self._show_streaming(True)

    async def _regenerate(self, widget: MessageWidget) -> None:
        if widget.role == "assistant":
            await self._truncate_from(widget)
        await self._reply()

    async def _truncate_from(self, widget: MessageWidget) -> None:
        index = self.messages.index(widget)
        if widget.message_id is not None:
            await asyncio.to_thread(self.store.truncate_from, self.conversation_id, widget.message_id)
        for later in self.messages[index:]:
            self._remove_message(later)

    # -- problems --

    def _show_problem(self, exc: ProblemError) -> None:
        self._last_problem = exc
        actions: list[tuple[str, object]] = []
        if isinstance(exc, ServerUnreachable) and not self.url.text().strip():
            actions.append(("Start the server", self.start_server_requested.emit))
            actions.append(("Server page", self.open_server_page_requested.emit))
        elif isinstance(exc, Unauthorized):
            actions.append(("Enter the API key", self.api_key.setFocus))
        elif isinstance(exc, ContextTooLong):
            if oldest_droppable(self._turns()):
                actions.append(("Leave out the oldest exchange and retry", self.drop_oldest_and_retry))
            actions.append(("Lower max tokens", self.params.fields["max_tokens"].setFocus))
        elif isinstance(exc, ModelNotFound):
            actions.append(("Refresh the model list", self.refresh_models))
        waiting = bool(self.messages) and self.messages[-1].role in ("user", "tool")  # a question, or a tool's result
        if waiting or isinstance(exc, StreamInterrupted):
            actions.append(("Try again", self.regenerate))
        if waiting:
            self.messages[-1].set_unanswered(exc.problem.title)
        self.notice.show_problem(exc.problem, tuple(actions))

    def drop_oldest_and_retry(self) -> None:
        indexes = oldest_droppable(self._turns())
        for i in indexes:
            widget = self.messages[i]
            widget.set_excluded(True)
            if widget.message_id is not None:
                self._excluded.add(widget.message_id)
        self.regenerate()
