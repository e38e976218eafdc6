"""Settings: the user's choices, saved to settings.json in the config folder."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from llmdesk.core.base import secrets
from llmdesk.core.base import settings as settings_store
from llmdesk.core.base.settings import Settings
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.server.runtimes_panel import RuntimesPanel
from llmdesk.ui.widgets import scrolling_page, section_title

THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PathField(QWidget):
    def __init__(self, placeholder: str, pick_folder: bool):
        super().__init__()
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        browse = design.action(QPushButton("Browse…"), "mdi6.folder-open-outline")
        browse.clicked.connect(self._browse)
        self._pick_folder = pick_folder
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def _browse(self) -> None:
        if self._pick_folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", self.edit.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a Python interpreter", self.edit.text())
        if chosen:
            self.edit.setText(chosen)


class SettingsPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        layout = scrolling_page(self, "Settings", "Saved in " + str(settings_store.settings_path()))

        self.theme = QComboBox()
        for key, label in THEME_LABELS.items():
            self.theme.addItem(label, key)
        self.runtime_python = PathField("Look for vLLM in the usual places", pick_folder=False)
        self.models_dir = PathField("The Hugging Face cache", pick_folder=True)
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.gpu_util = QDoubleSpinBox()
        self.gpu_util.setRange(0.05, 1.0)
        self.gpu_util.setSingleStep(0.01)
        self.gpu_util.setDecimals(2)
        self.metrics_interval = QDoubleSpinBox()
        self.metrics_interval.setRange(0.25, 5.0)
        self.metrics_interval.setSingleStep(0.25)
        self.metrics_interval.setSuffix(" s")

        for spin in (self.port, self.gpu_util, self.metrics_interval):
            spin.setMaximumWidth(160)
        form = QFormLayout()  # one form, so every label column lines up
        form.addRow(section_title("Appearance"))
        form.addRow("Theme", self.theme)
        form.addRow(section_title("vLLM"))
        form.addRow("Python with vLLM", self.runtime_python)
        form.addRow("Models folder", self.models_dir)
        form.addRow("GPU memory share", self.gpu_util)
        form.addRow(section_title("vLLM runtimes"))
        self.runtimes = RuntimesPanel(ctx)
        form.addRow(self.runtimes)
        self.guide_button = QPushButton("Open the first-run guide")
        self.guide_button.setToolTip("Hardware, vLLM, a first model and a first answer, step by step")
        self.guide_button.clicked.connect(ctx.guide_requested.emit)
        self.guide_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        form.addRow("", self.guide_button)
        form.addRow(section_title("Hugging Face"))
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_… (for gated and private models)")
        self.save_token = design.action(QPushButton("Save token"), "mdi6.key-plus")
        self.save_token.clicked.connect(self._save_token)
        self.remove_token = design.action(QPushButton("Remove"), "mdi6.delete-outline")
        self.remove_token.clicked.connect(self._remove_token)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.save_token)
        token_row.addWidget(self.remove_token)
        self.token_status = QLabel("Looking for a stored token…")
        self.token_status.setWordWrap(True)
        form.addRow("Access token", token_row)
        form.addRow("", self.token_status)
        form.addRow(section_title("Server"))
        form.addRow("Listen on", self.host)
        form.addRow("Port", self.port)
        form.addRow("Metrics every", self.metrics_interval)
        self.preload = QCheckBox("Keep vLLM imported for the next Start")
        self.preload.setToolTip("After a server stops (and when llmdesk opens), the vLLM runtime's Python imports "
                                "vLLM and waits: the next Start skips that import. With the forked engine (Server "
                                "page) an 8B model on an H100 was ready in 18 s instead of 59. The waiting process "
                                "holds about 1 GB of memory (no GPU memory). Not used when the next start needs "
                                "other GPUs than the waiting one was made for.")
        form.addRow("Faster Start", self.preload)
        self.theme.setMaximumWidth(260)
        self.host.setMaximumWidth(260)
        form_box = QWidget()
        form_box.setMaximumWidth(820)
        box = QVBoxLayout(form_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(form)
        layout.addWidget(form_box)

        self.message = QLabel()
        self.message.setWordWrap(True)
        box.addWidget(self.message)
        buttons = QHBoxLayout()
        buttons.addStretch()
        self.revert = design.action(QPushButton("Revert"), "mdi6.undo")
        self.revert.clicked.connect(lambda: self.load(self.ctx.settings))
        self.save = design.action(QPushButton("Save"), "mdi6.content-save", primary=True)
        self.save.setDefault(True)
        self.save.clicked.connect(self._save)
        buttons.addWidget(self.revert)
        buttons.addWidget(self.save)
        box.addLayout(buttons)
        layout.addStretch()

        self.host.textChanged.connect(self._warn_about_host)
        self.load(ctx.settings)
        ctx.settings_changed.connect(self._follow)

    def start(self) -> None:
        """Background work, once the event loop runs (never from the constructor)."""
        self.ctx.tasks.run(self._show_token(), "reading the stored Hugging Face token")
        self.runtimes.start()

    def _fields(self) -> dict[str, tuple]:
        """Settings field -> (read the form, write the form): load, edited and following saves share one table."""
        return {
            "theme": (self.theme.currentData,
                      lambda v: self.theme.setCurrentIndex(max(0, self.theme.findData(v)))),
            "runtime_python": (lambda: self.runtime_python.edit.text().strip(), self.runtime_python.edit.setText),
            "models_dir": (lambda: self.models_dir.edit.text().strip(), self.models_dir.edit.setText),
            "server_host": (lambda: self.host.text().strip(), self.host.setText),
            "server_port": (self.port.value, self.port.setValue),
            "gpu_memory_utilization": (lambda: round(self.gpu_util.value(), 2), self.gpu_util.setValue),
            "metrics_interval_s": (self.metrics_interval.value, self.metrics_interval.setValue),
            "preload_vllm": (self.preload.isChecked, self.preload.setChecked),
        }

    def load(self, s: Settings) -> None:
        for name, (_, write) in self._fields().items():
            write(getattr(s, name))
        self._loaded = s
        self.message.setText("")

    def _follow(self, saved: Settings) -> None:
        """Settings saved elsewhere (the Models page's planning GPU and folders, a script) show here, except a
        field the person is editing: that edit is theirs until they save or revert."""
        for name, (read, write) in self._fields().items():
            if read() == getattr(self._loaded, name):
                write(getattr(saved, name))
        self._loaded = saved

    def edited(self) -> Settings:
        return dataclasses.replace(self.ctx.settings,
                                   **{name: read() for name, (read, _) in self._fields().items()})

    def _warn_about_host(self, host: str) -> None:
        if host.strip() and not is_loopback(host.strip()):
            self.message.setText(f"Listening on {host.strip()} makes the server reachable from other "
                                 "computers; llmdesk will require an API key for it.")
        else:
            self.message.setText("")

    def _save(self) -> None:
        new = self.edited()
        problems = new.problems() + ([] if new.server_host else ["the server address cannot be empty"])
        if problems:
            self.message.setText("Not saved: " + "; ".join(problems) + ".")
            return
        self.ctx.tasks.run(self._save_async(new), "saving settings")

    async def _save_async(self, new: Settings) -> None:
        await self.ctx.save_settings(new)
        self.message.setText("Saved.")

    # The keyring is a synchronous D-Bus service that can hang on a locked desktop: a thread and a timeout.
    async def _token_call(self, fn, *args):
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout=10)

    async def _show_token(self) -> None:
        stored = await self._token_call(secrets.load_hf_token)
        if stored.token:
            self.token_status.setText(f"A token ({stored.masked}) is in use, from {stored.source}.")
        else:
            self.token_status.setText("No token: gated models such as Llama or Gemma cannot be downloaded. "
                                      "Create one at huggingface.co/settings/tokens (read access is enough).")
        self.remove_token.setEnabled(bool(stored.token) and stored.source != secrets.SOURCE_ENV)

    def _save_token(self) -> None:
        token = self.token.text().strip()
        if not token:
            self.token_status.setText("Paste a token first.")
            return
        self.ctx.tasks.run(self._store_token(token), "saving the Hugging Face token")

    async def _store_token(self, token: str) -> None:
        where = await self._token_call(secrets.save_hf_token, token)
        self.token.clear()
        await self._show_token()
        self.token_status.setText(self.token_status.text() + f" Saved to {where}.")

    def _remove_token(self) -> None:
        self.ctx.tasks.run(self._forget_token(), "removing the Hugging Face token")

    async def _forget_token(self) -> None:
        await self._token_call(secrets.forget_hf_token)
        await self._show_token()
