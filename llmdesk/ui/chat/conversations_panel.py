"""The list of saved conversations: search, new, rename (in place), delete (two clicks), export, import.

The store is SQLite on disk, so every call goes through a worker thread; the list is refreshed
after each change and, while typing a search, at most every 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QMenu, QPushButton, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import BadInput, Problem
from llmdesk.core.chat.conversations import (ConversationStore, ConversationSummary, parse_import_text,
                                             to_markdown)
from llmdesk.ui import design
from llmdesk.ui.tasks import TaskRunner

CONFIRM_MS = 5000
ID_ROLE = Qt.ItemDataRole.UserRole


def when_text(epoch: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    age = max(0.0, now - epoch)
    if age < 60:
        return "just now"
    if age < 3600:
        return f"{age // 60:.0f} min ago"
    if age < 86400:
        return f"{age // 3600:.0f} h ago"
    return time.strftime("%d %b %Y", time.localtime(epoch))


class ConversationsPanel(QWidget):
    opened = Signal(int)  # conversation id
    new_requested = Signal()
    deleted = Signal(int)

    def __init__(self, store: ConversationStore, tasks: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tasks = store, tasks
        self.current_id: int | None = None
        self.new_chat = design.action(QPushButton("New chat"), "mdi6.plus")
        self.new_chat.clicked.connect(self.new_requested)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.list = QListWidget()
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)  # long titles end in "…"; the tooltip has all
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemChanged.connect(self._renamed)
        self.empty = QLabel("No saved chats yet.")
        self.empty.setWordWrap(True)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Conversations from a JSON file (llmdesk's export, or OpenAI-style messages)")
        self.import_button.clicked.connect(self._choose_import)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._delete_clicked)
        self._armed: int | None = None
        self._disarm = QTimer(self)
        self._disarm.setSingleShot(True)
        self._disarm.setInterval(CONFIRM_MS)
        self._disarm.timeout.connect(self._reset_delete)

        for button in (self.import_button, self.delete_button):
            button.setMinimumWidth(40)  # the panel may be narrow; the text is elided by the style
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.new_chat)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        self._filling = False

    def least_comfortable_width(self) -> int:
        """As narrow as it gets with its buttons' words whole (the walkthrough counts a squeezed button)."""
        spacing = self.layout().spacing() if self.layout().spacing() >= 0 else 6
        return self.import_button.sizeHint().width() + self.delete_button.sizeHint().width() + spacing

    # -- listing --

    def refresh(self) -> None:
        self.tasks.run(self._refresh(), "listing the saved chats")

    async def _refresh(self) -> None:
        rows = await asyncio.to_thread(self.store.list, self.search.text().strip())
        self.show_rows(rows)

    def show_rows(self, rows: list[ConversationSummary]) -> None:
        self._filling = True
        self.list.clear()
        now = time.time()
        for row in rows:
            item = QListWidgetItem(row.title or "Untitled")
            item.setData(ID_ROLE, row.id)
            item.setToolTip(f"{row.title}\n{row.message_count} messages · {row.model or 'no model'} · "
                            f"{when_text(row.updated, now)}\n{row.preview}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if row.id == self.current_id:
                self.list.setCurrentItem(item)
        self._filling = False
        searching = bool(self.search.text().strip())
        self.empty.setText("No chat matches." if searching else "No saved chats yet.")
        self.empty.setVisible(not rows)

    def select(self, conversation_id: int | None) -> None:
        self.current_id = conversation_id
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(ID_ROLE) == conversation_id:
                self.list.setCurrentItem(item)
                return
        self.list.clearSelection()

    def _clicked(self, item: QListWidgetItem) -> None:
        self._reset_delete()
        self.opened.emit(int(item.data(ID_ROLE)))

    # -- rename, delete --

    def _renamed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        title = item.text().strip()
        if title:
            self.tasks.run(self._rename(int(item.data(ID_ROLE)), title), "renaming the chat")

    async def _rename(self, conversation_id: int, title: str) -> None:
        await asyncio.to_thread(self.store.rename, conversation_id, title)
        await self._refresh()

    def _delete_clicked(self) -> None:
        """Two clicks, no modal dialog: the first arms, the second (within 5 s) deletes."""
        item = self.list.currentItem()
        if item is None:
            return
        conversation_id = int(item.data(ID_ROLE))
        if self._armed != conversation_id:
            self._armed = conversation_id
            self.delete_button.setText("Sure?")
            self.delete_button.setToolTip("Click again within 5 s to delete this chat")
            self._disarm.start()
            return
        self._reset_delete()
        self.tasks.run(self._delete(conversation_id), "deleting the chat")

    async def _delete(self, conversation_id: int) -> None:
        await asyncio.to_thread(self.store.delete, conversation_id)
        self.deleted.emit(conversation_id)
        await self._refresh()

    def _reset_delete(self) -> None:
        self._armed = None
        self._disarm.stop()
        self.delete_button.setText("Delete")
        self.delete_button.setToolTip("Delete the selected chat (click twice)")

    # -- export, import --

    def _menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        conversation_id = int(item.data(ID_ROLE))
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Export as Markdown…", lambda: self.export(conversation_id, "md"))
        menu.addAction("Export as JSON…", lambda: self.export(conversation_id, "json"))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.tasks.run(self._delete(conversation_id), "deleting the chat"))
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def export(self, conversation_id: int, fmt: str, path: str | None = None) -> None:
        if path is None:
            item = next((self.list.item(i) for i in range(self.list.count())
                         if self.list.item(i).data(ID_ROLE) == conversation_id), None)
            stem = _file_stem(item.text() if item else "chat")
            path, _ = QFileDialog.getSaveFileName(self, "Export the chat", f"{stem}.{fmt}",
                                                  "Markdown (*.md)" if fmt == "md" else "JSON (*.json)")
            if not path:
                return
        self.tasks.run(self._export(conversation_id, fmt, Path(path)), "exporting the chat")

    async def _export(self, conversation_id: int, fmt: str, path: Path) -> None:
        def write() -> None:
            conversation = self.store.get(conversation_id)
            if fmt == "md":
                text = to_markdown(conversation)
            else:
                text = json.dumps(self.store.export_json([conversation_id]), ensure_ascii=False, indent=2)
            path.write_text(text, encoding="utf-8")
        await asyncio.to_thread(write)

    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import chats", "", "JSON (*.json);;All files (*)")
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        self.tasks.run(self._import(Path(path)), "importing chats")

    async def _import(self, path: Path) -> None:
        def read_and_import() -> list[int]:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, ValueError) as exc:
                raise BadInput(Problem("Not a JSON file", f"{path.name} could not be read as JSON ({exc}).",
                                       "Pick a file exported by llmdesk or a JSON list of messages.")) from None
            return self.store.import_json(parse_import_text(text, path.name))
        ids = await asyncio.to_thread(read_and_import)
        await self._refresh()
        if ids:
            self.opened.emit(ids[0])


def _file_stem(title: str) -> str:
    keep = "".join(c if c.isalnum() or c in " -_" else " " for c in title).strip()
    return "-".join(keep.split())[:60] or "chat"
