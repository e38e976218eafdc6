"""The Server page's Tools tab: what Claude Code, Codex, Continue, Aider or Open WebUI need to use the
running server, with Copy, and a Test that sends the tool's own request.

Thin: the settings are `core/server/tool_endpoints.py`, the reading and the Test `core/server/tool_check.py`,
run as tasks. It follows the app's server by itself (ready: read what it serves; stopped: say so and
what to do); `show_server` points it at any URL. Nothing the server sends reaches a label as rich text."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout,
                               QWidget)

from llmdesk.core.base import secrets
from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.server.supervisor import ServerState, ServerStatus
from llmdesk.core.server.tool_check import check_tool, read_endpoint
from llmdesk.core.server.tool_endpoints import TOOLS, Endpoint, printable, tool_settings
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.problems import log_shown, plain_text

NO_SERVER = ("No server is running. Start one on the left (Start), or in a terminal with `llmdesk serve MODEL`; "
             "the settings for each tool appear here once it is ready.")
STARTING = "The server is starting; the settings for each tool appear here once it is ready."
STORED_KEY_WAIT_S = 10.0


class EndpointPanel(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.endpoint: Endpoint | None = None
        self._source: tuple[str, str | None] | None = None  # (url, key) being shown
        self._read_task: asyncio.Task | None = None
        self._test_task: asyncio.Task | None = None
        self._followed: tuple | None = None  # (state, url) of the app's server last acted on

        self.state = QLabel(NO_SERVER)
        self.state.setWordWrap(True)
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tool = QComboBox()
        for tool, title in TOOLS.items():
            self.tool.addItem(title, tool)
        self.model = QComboBox()
        self.model.setToolTip("The served model or LoRA adapter the tool asks for")
        self.show_key = QCheckBox("Show the key")
        self.show_key.setToolTip("Write the API key itself into the settings instead of a $LLMDESK_API_KEY reference")
        self.refresh_button = design.action(QPushButton("Refresh"), "mdi6.refresh")
        self.refresh_button.setToolTip("Read the served models again (after loading a LoRA adapter, say)")
        pick = QVBoxLayout()  # two short rows: the log pane beside the launch form is narrow in a small window
        choose = QHBoxLayout()
        choose.addWidget(QLabel("Tool"))
        choose.addWidget(self.tool, 1)
        choose.addWidget(QLabel("Model"))
        choose.addWidget(self.model, 1)
        options = QHBoxLayout()
        options.addWidget(self.show_key)
        options.addStretch(1)
        options.addWidget(self.refresh_button)
        pick.addLayout(choose)
        pick.addLayout(options)

        self.how = QLabel()
        self.how.setWordWrap(True)
        self.how.setTextFormat(Qt.TextFormat.PlainText)
        self.settings_view = QPlainTextEdit()
        self.settings_view.setReadOnly(True)
        self.settings_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        design.mono(self.settings_view)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setTextFormat(Qt.TextFormat.PlainText)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = design.action(QPushButton("Copy"), "mdi6.content-copy")
        self.test_button = design.action(QPushButton("Test"), "mdi6.lan-check")
        self.test_button.setToolTip("Send one request the way this tool does and say what happened")
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextFormat(Qt.TextFormat.PlainText)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        actions = QHBoxLayout()
        actions.addWidget(self.test_button)
        actions.addWidget(self.test_result, 1)
        actions.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.state)
        layout.addLayout(pick)
        layout.addWidget(self.how)
        layout.addWidget(self.settings_view, 1)
        layout.addLayout(actions)
        layout.addWidget(self.notes)

        self.tool.currentIndexChanged.connect(self._render)
        self.model.currentIndexChanged.connect(self._render)
        self.show_key.toggled.connect(self._render)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.settings_view.toPlainText()))
        self.test_button.clicked.connect(self.test)
        self.refresh_button.clicked.connect(self.refresh)
        self._set_enabled(False)
        self.refresh_button.setEnabled(False)
        ctx.server.subscribe(on_status=self._follow)
        self._follow(ctx.server.status)

    # -- which server --
    def _follow(self, status: ServerStatus) -> None:
        """The app's server: read it once it is ready, say so while it starts or after it stopped."""
        key = (status.state, status.url)
        if key == self._followed:
            return
        self._followed = key
        if status.state == ServerState.READY and status.url:
            self.show_server(status.url, status.config.api_key if status.config else None)
        elif status.state == ServerState.STARTING:
            self.show_no_server(STARTING)
        elif status.state in (ServerState.STOPPED, ServerState.CRASHED):
            self.show_no_server()

    def show_server(self, url: str, api_key: str | None) -> None:
        self._source = (url, api_key)
        self.refresh()

    def show_no_server(self, text: str = NO_SERVER) -> None:
        self._cancel()
        self._source = None
        self.endpoint = None
        self.state.setText(plain_text(text))
        self.model.clear()
        self._clear_settings()
        self._set_enabled(False)
        self.refresh_button.setEnabled(False)

    def refresh(self) -> None:
        if self._source is None:
            return
        self._cancel()
        self.state.setText(f"Reading what {self._source[0]} serves…")
        self._set_enabled(False)
        self._read_task = self.ctx.tasks.run(self._read(*self._source), "reading what the server serves")

    async def _read(self, url: str, api_key: str | None) -> None:
        from llmdesk.core.server.endpoint import Unauthorized

        try:
            try:
                endpoint = await read_endpoint(url, api_key)
            except Unauthorized:
                stored = None if api_key else await self._stored_key()
                if not stored:
                    raise
                endpoint = await read_endpoint(url, stored)
        except ProblemError as exc:
            self._show_problem(exc.problem)
            return
        self.endpoint = endpoint
        self.state.setText(f"vLLM at {endpoint.root_url} · OpenAI base URL {endpoint.openai_url} · Anthropic "
                           f"base URL {endpoint.anthropic_url} · API key {'set' if endpoint.api_key else 'none'}")
        current = self.model.currentData()
        self.model.blockSignals(True)
        self.model.clear()
        for m in endpoint.models:
            self.model.addItem(printable(m.id) + (f" (LoRA on {printable(m.parent)})" if m.is_adapter else ""), m.id)
        index = self.model.findData(current) if current else -1
        self.model.setCurrentIndex(index if index >= 0 else max(0, self.model.findData(endpoint.default_model)))
        self.model.blockSignals(False)
        self.refresh_button.setEnabled(True)
        self._set_enabled(True)
        self._render()

    async def _stored_key(self) -> str | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(secrets.load_server_api_key), STORED_KEY_WAIT_S)
        except (TimeoutError, OSError):
            return None

    def _show_problem(self, problem: Problem) -> None:
        log_shown("the Server page's Tools tab", problem.title, problem.explanation)
        fix = f"\nWhat to do: {plain_text(problem.fix)}" if problem.fix else ""
        self.state.setText(f"{problem.title}\n{plain_text(problem.explanation)}{fix}")
        self.endpoint = None
        self._clear_settings()
        self._set_enabled(False)
        self.refresh_button.setEnabled(self._source is not None)

    # -- the settings --
    def _render(self) -> None:
        self.test_result.clear()
        if self.endpoint is None or self.model.currentData() is None:
            return
        try:
            s = tool_settings(self.endpoint, self.tool.currentData(), model=self.model.currentData(),
                              show_key=self.show_key.isChecked())
        except BadInput as exc:
            self._clear_settings()
            self.notes.setText(f"{exc.problem.title}: {exc.problem.explanation}")
            return
        self.how.setText(plain_text(s.how_to_use))
        self.settings_view.setPlainText(s.text)
        self.notes.setText("\n".join(f"• {plain_text(n)}" for n in s.notes))
        self.copy_button.setEnabled(True)
        self.test_button.setEnabled(True)

    def _clear_settings(self) -> None:
        self.how.clear()
        self.settings_view.clear()
        self.notes.clear()
        self.test_result.clear()

    def _set_enabled(self, on: bool) -> None:
        for widget in (self.tool, self.model, self.show_key, self.copy_button, self.test_button):
            widget.setEnabled(on)

    # -- the test --
    def test(self) -> None:
        if self.endpoint is None:
            return
        if self._test_task is not None and not self._test_task.done():
            self._test_task.cancel()
        tool, model = self.tool.currentData(), self.model.currentData()
        self.test_result.setText(f"Testing {TOOLS[tool]}…")
        self.test_button.setEnabled(False)
        self._test_task = self.ctx.tasks.run(self._test(self.endpoint, tool, model), "testing the endpoint")

    async def _test(self, endpoint: Endpoint, tool: str, model: str) -> None:
        try:
            check = await check_tool(endpoint, tool, model=model)
        finally:
            self.test_button.setEnabled(self.endpoint is not None)
        if endpoint is not self.endpoint or tool != self.tool.currentData() or model != self.model.currentData():
            return  # the choice changed while it ran: its result would be about something else
        mark = "✔" if check.ok else "✘"
        self.test_result.setText(f"{mark} {TOOLS[tool]}: {plain_text(check.line)}")

    def _cancel(self) -> None:
        for task in (self._read_task, self._test_task):
            if task is not None and not task.done():
                task.cancel()
