"""The managed vLLM runtimes, as Settings and the first-run wizard show them: which are there and which
is in use, the plan of an install before it starts, its progress, and Use / Remove / Check.

Thin: everything is `core/server/runtimes.py`, run in threads or as tasks; a failure lands in this
panel's own problem box, and the runtime in use stays as it was."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from llmdesk.core.base import paths
from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.base.units import GIB
from llmdesk.core.server import runtimes
from llmdesk.core.server.runtime import INSTALL_CONTENTS, INSTALL_SIZE, TESTED_VLLM
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.problems import show_in_box
from llmdesk.ui.widgets import choose_folder, problem_box


class RuntimesPanel(QWidget):
    changed = Signal()  # a runtime was installed, chosen or removed

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self._install_task: asyncio.Task | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["vLLM", "In use", "Folder"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setMaximumHeight(130)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.empty = QLabel("No managed runtime yet: llmdesk installs vLLM into one of its own, beside any others.")
        self.empty.setWordWrap(True)
        self.plan = QLabel()
        self.plan.setWordWrap(True)
        self.install_button = design.action(QPushButton(f"Install vLLM {TESTED_VLLM}"), "mdi6.download")
        self.install_button.clicked.connect(self.install_or_cancel)
        self.wheels_button = design.action(QPushButton("From a wheel folder…"), "mdi6.folder-open-outline")
        self.wheels_button.setToolTip("For a computer without network: a folder made with "
                                      f"pip download vllm=={TESTED_VLLM} -d FOLDER on another one")
        self.wheels_button.clicked.connect(self._choose_wheels)
        self.use_button = design.action(QPushButton("Use"), "mdi6.check")
        self.use_button.clicked.connect(self._use)
        self.check_button = design.action(QPushButton("Check"), "mdi6.stethoscope")
        self.check_button.setToolTip("Runs import vllm in that runtime (in its own process)")
        self.check_button.clicked.connect(self._check)
        self.remove_button = design.action(QPushButton("Remove"), "mdi6.delete-outline")
        self.remove_button.clicked.connect(self._remove)
        buttons = QHBoxLayout()
        for button in (self.install_button, self.wheels_button, self.use_button, self.check_button,
                       self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.hide()
        self.problem = problem_box()
        for widget in (self.table, self.empty, self.plan):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        for widget in (self.progress, self.status, self.problem):
            layout.addWidget(widget)
        self._runtimes: list[runtimes.ManagedRuntime] = []
        self._update_buttons()

    # -- reading
    def start(self) -> None:
        self.ctx.tasks.run(self.refresh(), "reading the managed vLLM runtimes")

    async def refresh(self) -> None:
        self._runtimes = await asyncio.to_thread(runtimes.list_runtimes)
        free = await asyncio.to_thread(paths.free_bytes, runtimes.runtimes_dir()) or 0
        self.table.setRowCount(len(self._runtimes))
        for row, found in enumerate(self._runtimes):
            for column, text in enumerate((found.version, "✔ in use" if found.in_use else "", str(found.path))):
                item = QTableWidgetItem(text)
                item.setToolTip(str(found.python))
                self.table.setItem(row, column, item)
        self.table.setVisible(bool(self._runtimes))
        self.empty.setVisible(not self._runtimes)
        self.plan.setText(f"Installing vLLM {TESTED_VLLM} fetches {INSTALL_CONTENTS}: {INSTALL_SIZE}, into "
                          f"{runtimes.runtimes_dir()} ({free / GIB:.0f} GiB free there). The runtime in use keeps "
                          "working until the new one has passed its check.")
        self._update_buttons()

    def _selected(self) -> runtimes.ManagedRuntime | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self._runtimes[rows[0].row()] if rows and rows[0].row() < len(self._runtimes) else None

    def _update_buttons(self) -> None:
        chosen = self._selected()
        busy = self._install_task is not None
        self.use_button.setEnabled(not busy and chosen is not None and not chosen.in_use)
        self.remove_button.setEnabled(not busy and chosen is not None and not chosen.in_use)
        self.check_button.setEnabled(chosen is not None)
        self.wheels_button.setEnabled(not busy)

    # -- installing
    def install_or_cancel(self, wheels: Path | None = None) -> None:
        if self._install_task is not None:
            self._install_task.cancel()
            return
        self.problem.hide()
        self.progress.setValue(0)
        self.progress.show()
        self.install_button.setText("Cancel")
        self._install_task = self.ctx.tasks.run(self._install(wheels if isinstance(wheels, Path) else None),
                                                "installing vLLM")
        self._update_buttons()

    def _choose_wheels(self) -> None:
        choose_folder(self, "Choose the folder of vLLM wheels", lambda folder: self.install_or_cancel(Path(folder)))

    async def _install(self, wheels: Path | None) -> None:
        def progress(p) -> None:
            if p.fraction is not None:
                self.progress.setValue(round(1000 * p.fraction))
            self._say(f"Installing vLLM: {p.step}…" + (f"\n{p.line[:200]}" if p.line else ""))

        try:
            installed = await runtimes.install_runtime(TESTED_VLLM, wheels=wheels, on_progress=progress)
        except asyncio.CancelledError:
            self._say("Install stopped; what was downloaded is kept and the next install continues "
                                "from it. The runtime in use did not change.")
        except ProblemError as exc:
            self._show_problem(exc.problem)
            self._say("")
        else:
            self._say(f"vLLM {installed.version} is installed and in use ({installed.path}).")
            self.changed.emit()
        finally:
            self._install_task = None
            self.install_button.setText(f"Install vLLM {TESTED_VLLM}")
            self.progress.hide()
            await self.refresh()

    # -- the others
    def _use(self) -> None:
        chosen = self._selected()
        if chosen is not None:
            self.ctx.tasks.run(self._act(runtimes.use_runtime, chosen.version,
                                         lambda _r: f"Servers start with vLLM {chosen.version} from now on."),
                               "switching the vLLM runtime")

    def _remove(self) -> None:
        chosen = self._selected()
        if chosen is None:
            return
        answer = QMessageBox.question(self, "Remove this runtime?",
                                      f"Delete vLLM {chosen.version} and its folder {chosen.path}? Models and "
                                      "chats are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.ctx.tasks.run(self._act(runtimes.remove_runtime, chosen.version,
                                         lambda freed: f"Removed vLLM {chosen.version} ({freed / GIB:.1f} GiB freed)."),
                               "removing a vLLM runtime")

    async def _act(self, change, version: str, said) -> None:
        """Use or remove `version` in a thread; say what happened, or show why not."""
        try:
            result = await asyncio.to_thread(change, version)
        except ProblemError as exc:
            self._show_problem(exc.problem)
            return
        self._say(said(result))
        self.changed.emit()
        await self.refresh()

    def _check(self) -> None:
        chosen = self._selected()
        if chosen is not None:
            self._say(f"Checking vLLM {chosen.version}: import vllm in its own process…")
            self.ctx.tasks.run(self._check_async(chosen), "checking a vLLM runtime")

    async def _check_async(self, chosen: runtimes.ManagedRuntime) -> None:
        said, why = await asyncio.to_thread(runtimes.health_check, chosen.python)
        if said is None:
            self._show_problem(Problem(f"vLLM {chosen.version} does not start", why,
                                       "Install it again (Install), or check the driver (Machine page)."))
        else:
            self.problem.hide()
            self._say(f"vLLM {chosen.version} works: {said}.")

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _show_problem(self, problem: Problem) -> None:
        show_in_box(self.problem, problem, "the vLLM runtimes")

