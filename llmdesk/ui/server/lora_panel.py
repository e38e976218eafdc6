"""The Server page's LoRA adapters: the list the next start serves (added from a folder or a Hub repo id,
removed), each with its rank and whether it was trained on the model in the form; while the server runs,
Load and Unload through vLLM's runtime routes.

Thin: everything is `core/server/lora.py` and `lora_runtime.py`. Reading an adapter and the model's
config.json runs in a thread, a Hub adapter goes through the app's download queue (it shows on the
Models page), and loads and unloads are tasks; what goes wrong lands in this panel's own problem box.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.server.launch import LaunchConfig, LoraAdapter
from llmdesk.core.server.lora import (DIFFERENT, LIKELY, SAME, AdapterCheck, AdapterInfo, LoraSlots, check_adapter,
                                      check_source, folder_config, lora_slots, model_identities, name_problem,
                                      read_adapter)
from llmdesk.core.server.supervisor import ServerState, ServerStatus
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.problems import show_in_box
from llmdesk.ui.widgets import choose_folder, problem_box

COLUMNS = ("Name", "Adapter", "Rank", "Base model", "State")
BASE_GLYPHS = {SAME: "✓ same", LIKELY: "≈ same name", DIFFERENT: "✗ other model"}


@dataclass
class AdapterRow:
    name: str
    source: str  # as typed: a folder or a repo id
    folder: Path | None = None
    info: AdapterInfo | None = None
    check: AdapterCheck | None = None
    state: str = "adding"  # adding | downloading | ready | failed
    problem: Problem | None = None  # why it cannot be added (read or download failure)
    served: bool = False  # listed by the running server
    task: asyncio.Task | None = field(default=None, repr=False)


class LoraPanel(QWidget):
    changed = Signal()  # the adapters or the slots they need changed (the fit preview follows)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.rows: list[AdapterRow] = []
        self._model: tuple[str, str | None] = ("", None)
        self._identities: tuple[str, ...] = ()
        self._geometry = None
        self._status: ServerStatus | None = None
        self.also_served: list[str] = []  # adapters the server lists that are not in this list
        self.said = ""  # what the server answered to the last Load or Unload

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # the form's width decides, not the cells
        header.setStretchLastSection(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setMinimumWidth(0)
        self.table.setMaximumHeight(140)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.hide()
        self.name = QLineEdit()
        self.name.setPlaceholderText("name")
        self.name.setMaximumWidth(110)
        self.source = QLineEdit()
        self.source.setPlaceholderText("folder or Hub repo id")
        self.source.setToolTip("The adapter's folder (adapter_config.json and its weights), or its Hugging Face "
                               "repo id, owner/name, downloaded first")
        self.source.returnPressed.connect(self.add_from_form)
        self.browse = design.action(QPushButton("Folder…"), "mdi6.folder-open-outline")
        self.browse.clicked.connect(self._browse)
        self.add_button = design.action(QPushButton("Add"), "mdi6.plus")
        self.add_button.clicked.connect(self.add_from_form)
        self.remove_button = design.action(QPushButton("Remove"), "mdi6.close")
        self.remove_button.clicked.connect(self.remove_selected)
        self.load_button = design.action(QPushButton("Load"), "mdi6.plus-circle-outline")
        self.load_button.setToolTip("Load the selected adapter into the running server")
        self.load_button.clicked.connect(self.load_selected)
        self.unload_button = design.action(QPushButton("Unload"), "mdi6.minus-circle-outline")
        self.unload_button.setToolTip("Take the selected adapter out of the running server")
        self.unload_button.clicked.connect(self.unload_selected)
        self.allow_other_base = QCheckBox("Allow other base models")
        self.allow_other_base.setToolTip("Serve adapters that name another base model than the one in the form "
                                         "(the same model under another name, for example)")
        self.allow_other_base.toggled.connect(lambda _on: self._recheck())
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.problem = problem_box()

        add_row = QHBoxLayout()
        add_row.addWidget(self.name)
        add_row.addWidget(self.source, 1)
        # Two short rows of buttons: the form's field column is narrow in a small window.
        list_buttons, server_buttons = QHBoxLayout(), QHBoxLayout()
        for row, widgets in ((list_buttons, (self.browse, self.add_button, self.remove_button)),
                             (server_buttons, (self.load_button, self.unload_button))):
            for widget in widgets:
                row.addWidget(widget)
            row.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(add_row)
        layout.addLayout(list_buttons)
        layout.addWidget(self.table)
        layout.addLayout(server_buttons)
        layout.addWidget(self.allow_other_base)
        layout.addWidget(self.note)
        layout.addWidget(self.problem)
        ctx.server.subscribe(on_status=self.show_server)
        self._show()

    # -- what the launch gets
    def launch_fields(self) -> dict:
        """LaunchConfig fields: the ready adapters (LoRA on with them), and the slots and rank they need."""
        ready = [r for r in self.rows if r.state == "ready" and r.info is not None]
        if not ready:
            return {}
        slots = self.slots()
        return {"enable_lora": True, "lora_adapters": tuple(LoraAdapter(r.name, str(r.folder)) for r in ready),
                "max_loras": slots.max_loras, "max_lora_rank": slots.max_lora_rank}

    def slots(self) -> LoraSlots:
        return lora_slots([r.info.config.largest_rank for r in self.rows if r.state == "ready" and r.info])

    def problems(self) -> list[Problem]:
        """What stops a start: an adapter still on its way, one that failed, one vLLM or the model refuses."""
        out: list[Problem] = []
        for r in self.rows:
            if r.state in ("adding", "downloading"):
                out.append(Problem(f"The adapter {r.name!r} is not ready yet",
                                   "It is still being downloaded or read.", "Wait a moment, then press Start."))
            elif r.problem is not None:
                out.append(r.problem)
            elif r.check is not None:
                out.extend(r.check.problems)
        return out

    # -- the model in the form
    def set_model(self, model: str, served_name: str | None, spec=None) -> None:
        """The model the adapters are served with changed (its names and, with ``spec``, its layers)."""
        if (model, served_name) == self._model and (spec is None or spec.geometry is self._geometry):
            return
        self._model = (model, served_name)
        self._geometry = spec.geometry if spec is not None else None
        self.ctx.tasks.run(self._read_model(model, served_name), "reading the model for the LoRA adapters")

    async def _read_model(self, model: str, served_name: str | None) -> None:
        config = await asyncio.to_thread(folder_config, model) if model else None
        if self._model != (model, served_name):
            return  # the form changed meanwhile
        self._identities = model_identities(model, served_name=served_name, config=config) if model else ()
        self._recheck()

    # -- adding and removing
    def _browse(self) -> None:
        self.dialog = choose_folder(self, "Choose a LoRA adapter folder", self._chosen, self.source.text().strip())

    def _chosen(self, path: str) -> None:
        self.source.setText(path)
        if not self.name.text().strip():
            self.name.setText(Path(path).name[:64])

    def add_from_form(self) -> None:
        if self.add(self.name.text().strip(), self.source.text().strip()):
            self.name.clear()
            self.source.clear()

    def add(self, name: str, source: str) -> AdapterRow | None:
        """Add an adapter (its reading, or its download first, runs as a task); None, with the reason shown,
        when the name or the source is not acceptable."""
        self.problem.hide()
        base_names = [n for n in (self._model[1], self._model[0]) if n]
        problem = name_problem(name, base_names=base_names, taken=[r.name for r in self.rows])
        if problem is None and not source:
            problem = Problem("No adapter given", "Give the adapter's folder or its Hub repo id.", None)
        if problem is None:
            try:
                check_source(source)
            except ProblemError as exc:
                problem = exc.problem
        if problem is not None:
            show_in_box(self.problem, problem, "the Server page's LoRA adapters")
            return None
        row = AdapterRow(name, source)
        self.rows.append(row)
        row.task = self.ctx.tasks.run(self._fetch(row), f"adding the LoRA adapter {name}")
        self._show()
        return row

    async def _fetch(self, row: AdapterRow) -> None:
        try:
            kind = check_source(row.source)
            if isinstance(kind, Path):
                row.folder = kind
            else:
                row.state = "downloading"
                self._show()
                row.folder = await self._download(kind)
            row.info = await asyncio.to_thread(read_adapter, row.folder)
            row.state = "ready"
        except ProblemError as exc:
            row.state, row.problem = "failed", exc.problem
        if row in self.rows:
            self._recheck()

    async def _download(self, repo_id: str) -> Path:
        """Through the app's download queue (so it shows, resumes and can be cancelled on the Models page)."""
        from llmdesk.core.hub.downloads import CANCELLED, DONE, FINISHED

        job = self.ctx.download(repo_id)
        done = asyncio.get_running_loop().create_future()

        def progress(_p) -> None:
            if job.state in FINISHED and not done.done():
                done.set_result(job.state)

        unsubscribe = job.add_listener(progress)
        try:
            if job.state in FINISHED:
                state = job.state
            else:
                state = await done
        finally:
            unsubscribe()
        if state == CANCELLED:
            raise ProblemError(Problem(f"The download of {repo_id} was stopped",
                                       "It can go on from the Models page's downloads.", "Add the adapter again."))
        if state != DONE:
            raise job.error or ProblemError(job.problem)
        return job.snapshot_path

    def remove_selected(self) -> None:
        row = self._selected()
        if row is None:
            return
        if row.task is not None and not row.task.done():
            row.task.cancel()
        self.rows.remove(row)
        self._recheck()

    # -- checks
    def _recheck(self) -> None:
        model = self._model[1] or self._model[0] or "the model"
        max_rank = self._running_config().max_lora_rank if self._running_config() else None
        for r in self.rows:
            if r.info is not None:
                r.check = check_adapter(r.name, r.info, identities=self._identities, geometry=self._geometry,
                                        model_label=model, allow_other_base=self.allow_other_base.isChecked(),
                                        max_lora_rank=max_rank if not r.served else None)
        self._show()
        self.changed.emit()

    # -- the running server
    def _running_config(self) -> LaunchConfig | None:
        s = self._status
        return s.config if s is not None and s.state == ServerState.READY and s.config is not None \
            and s.config.lora_enabled else None

    def runtime_problem(self) -> Problem | None:
        """Why Load/Unload cannot be used now, or None."""
        s = self._status
        if s is None or s.state != ServerState.READY:
            return Problem("The server is not running", "Load and Unload work on a running server; the list is "
                           "served at the next start.", None)
        if s.config is None:
            return Problem("The server's settings are not known", "It was taken over from an earlier llmdesk, so "
                           "whether it allows loading adapters is not known.", "Restart it from this page.")
        if not s.config.lora_enabled:
            return Problem("LoRA is off on the running server", "It was started without adapters, so vLLM has no "
                           "room for them.", "Stop it and start it again with the adapters in the list.")
        if not s.config.runtime_lora_updating:
            return Problem("Loading adapters is off on this server",
                           f"It listens on {s.config.host}, beyond this computer, without an API key: anyone who "
                           "reaches it could make it load files, so vLLM's load and unload routes are not opened.",
                           "Set an API key (or listen on 127.0.0.1) and start it again.")
        return None

    def show_server(self, status: ServerStatus) -> None:
        was = self._status.state if self._status is not None else None
        self._status = status
        if status.state == ServerState.READY and was != ServerState.READY:
            self.ctx.tasks.run(self.refresh_served(), "listing the server's LoRA adapters")
        elif status.state != ServerState.READY:
            for r in self.rows:
                r.served = False
            self.also_served = []
        self._recheck()

    async def refresh_served(self) -> None:
        from llmdesk.core.server.lora_runtime import LoraClient

        status = self._status
        if status is None or status.url is None or status.state != ServerState.READY:
            return
        from llmdesk.core.base.errors import ProblemError

        try:
            async with LoraClient(status.url, status.config.api_key if status.config else None) as client:
                names = {m.id for m in await client.adapters()}
        except ProblemError:
            if self._status is None or self._status.state != ServerState.READY or self._status.pid != status.pid:
                return  # the server stopped meanwhile: nothing to list, nothing to say
            raise
        for r in self.rows:
            r.served = r.name in names
        self.also_served = sorted(names - {r.name for r in self.rows})
        self._recheck()

    def load_selected(self) -> None:
        row = self._selected()
        if row is not None and row.state == "ready":
            self.ctx.tasks.run(self._change(row, load=True), f"loading the LoRA adapter {row.name}")

    def unload_selected(self) -> None:
        row = self._selected()
        if row is not None:
            self.ctx.tasks.run(self._change(row, load=False), f"unloading the LoRA adapter {row.name}")

    async def _change(self, row: AdapterRow, *, load: bool) -> None:
        from llmdesk.core.server.lora_runtime import LoraClient

        self.problem.hide()
        self.said = ""
        blocked = self.runtime_problem()
        if blocked is None and load and row.check is not None and row.check.problems:
            blocked = row.check.problems[0]
        if blocked is not None:
            show_in_box(self.problem, blocked, "the Server page's LoRA adapters")
            return
        status = self._status
        try:
            async with LoraClient(status.url, status.config.api_key) as client:
                if load:
                    said = await client.load(row.name, str(row.folder))
                else:
                    said = await client.unload(row.name)
        except ProblemError as exc:
            show_in_box(self.problem, exc.problem, "the Server page's LoRA adapters")
            return
        self.said = said
        await self.refresh_served()

    # -- showing
    def _selected(self) -> AdapterRow | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def _state_text(self, r: AdapterRow) -> tuple[str, str]:
        if r.state == "adding":
            return "reading…", ""
        if r.state == "downloading":
            return "downloading…", "Downloading from the Hub: progress on the Models page"
        if r.problem is not None:
            return "✗ " + r.problem.title, r.problem.explanation
        if r.check is not None and r.check.problems:
            p = r.check.problems[0]
            return "✗ " + p.title, p.explanation + (f"\n{p.fix}" if p.fix else "")
        if self._status is not None and self._status.state == ServerState.READY:
            return ("serving" if r.served else "not loaded"), ""
        return "ready", ""

    def _show(self) -> None:
        selected = self._selected()
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            rank = str(r.info.config.largest_rank) if r.info else ""
            base = BASE_GLYPHS.get(r.check.base.verdict, "? unknown") if r.check else ""
            state, why = self._state_text(r)
            cells = (r.name, str(r.folder or r.source), rank, base, state)
            tips = (r.name, r.info.summary() if r.info else r.source, "LoRA rank (r)",
                    r.check.base.text if r.check else "", why)
            for col, (text, tip) in enumerate(zip(cells, tips, strict=True)):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.table.setItem(i, col, item)
        self.table.setVisible(bool(self.rows))
        if selected in self.rows:
            self.table.selectRow(self.rows.index(selected))
        notes = [self.said] if self.said else []
        if self.rows:
            slots = self.slots()
            running = self._status is not None and self._status.state == ServerState.READY
            notes.append(f"{'The next start' if running else 'Start'} serves "
                         f"{len([r for r in self.rows if r.state == 'ready'])} adapter(s): "
                         f"--max-loras {slots.max_loras}, --max-lora-rank {slots.max_lora_rank} "
                         "(their buffers come out of the KV cache; see the fit below).")
        if self.also_served:
            notes.append(f"The server also serves: {', '.join(self.also_served)}.")
        blocked = self.runtime_problem()
        if self._status is not None and self._status.state == ServerState.READY and blocked is not None:
            notes.append(f"Load/Unload: {blocked.title}. {blocked.explanation}")
        self.note.setText("\n".join(notes))
        self.note.setVisible(bool(notes))
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self._selected()
        runtime = self.runtime_problem()
        self.remove_button.setEnabled(row is not None)
        self.load_button.setEnabled(row is not None and runtime is None and row.state == "ready" and not row.served)
        self.unload_button.setEnabled(row is not None and runtime is None and row.served)
        why = runtime.title + (f": {runtime.fix}" if runtime and runtime.fix else "") if runtime else ""
        self.load_button.setToolTip(why or "Load the selected adapter into the running server")
        self.unload_button.setToolTip(why or "Take the selected adapter out of the running server")
