"""Server: the launch form, Start/Stop with start-up phases, the log, plain failures with a
one-click fix, and the endpoint (URL, key, snippets) for the user's own tools."""

from __future__ import annotations

import asyncio
import secrets as token_bytes
import time

from PySide6.QtCore import QStringListModel, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QComboBox, QCompleter, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from llmdesk.core.base import secrets
from llmdesk.core.base.errors import Problem
from llmdesk.core.fit.memory_model import LaunchSettings, plan_fit
from llmdesk.core.hub.model_source import load_model_spec
from llmdesk.core.server.diagnose import Diagnosis
from llmdesk.core.server.sleep_words import sleep_text
from llmdesk.core.server.launch import PRESETS, LaunchConfig, config_from_fit, is_loopback, split_extra_args
from llmdesk.core.server.snippets import snippets
from llmdesk.core.server.startup_timeline import progress_text
from llmdesk.core.server.records import ServerRecord
from llmdesk.core.server.supervisor import ServerState, ServerStatus, find_leftover, stop_leftover
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.fit.panel import FitPanel
from llmdesk.ui.server.startup_choice import StartupChoice
from llmdesk.ui.server.endpoint_panel import EndpointPanel
from llmdesk.ui.server.log_pane import LogPane
from llmdesk.ui.server.lora_panel import LoraPanel
from llmdesk.ui.server.parsers_choice import ParserChoice
from llmdesk.ui.machine.plan_choice import PlanGpuChoice
from llmdesk.ui.problems import show_in_box
from llmdesk.ui.widgets import browse_button, page_header, problem_box, scroll_area

READING_PANE_WIDTH = 440  # narrower than this, Endpoint and Connect tools take the whole width
LOG_FLUSH_MS = 100  # vLLM can print hundreds of lines a second at start: append in batches


class ServerPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.config: LaunchConfig | None = None
        self._pending_lines: list[str] = []

        # -- the form
        self.model = QLineEdit()
        self.model.setPlaceholderText("a model folder or a Hugging Face repo id")
        self.recent = QStringListModel(ctx.state.recent_models, self)  # the models started before, offered
        completer = QCompleter(self.recent, self.model)
        completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.model.setCompleter(completer)
        self.model.setText(ctx.last_model)  # a desktop app comes back with the model it served last
        self.browse = browse_button(self.model)
        self.served_name = QLineEdit()
        self.served_name.setPlaceholderText("as the model")
        self.preset = QComboBox()
        self.preset.addItem("Full speed (vLLM's defaults)", "")
        self.preset.setItemData(0, "torch.compile and CUDA graphs on: the fastest generation, the longest start.",
                                Qt.ItemDataRole.ToolTipRole)
        for name, preset in PRESETS.items():
            self.preset.addItem(name.capitalize(), name)
            self.preset.setItemData(self.preset.count() - 1, preset.description, Qt.ItemDataRole.ToolTipRole)
        self.host = QLineEdit(ctx.settings.server_host)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(ctx.settings.server_port)
        self.api_key = QLineEdit()
        self.api_key.setPlaceholderText("none (required when listening beyond this computer)")
        self.generate_key = design.action(QPushButton("Generate"), "mdi6.key-variant")
        self.generate_key.clicked.connect(lambda: self.api_key.setText("sk-llmdesk-" + token_bytes.token_urlsafe(24)))
        self.report = None
        self.utilization = QDoubleSpinBox()
        self.utilization.setRange(0.05, 1.0)
        self.utilization.setSingleStep(0.01)
        self.utilization.setValue(ctx.settings.gpu_memory_utilization)
        self.max_len = QSpinBox()
        self.max_len.setRange(0, 10_485_760)
        self.max_len.setSingleStep(4096)
        self.max_len.setSpecialValueText("the model's maximum")
        self.tp = QSpinBox()
        self.tp.setRange(1, 8)
        self.eager = QCheckBox("Skip CUDA graphs (starts faster, runs slower)")
        self.trust = QCheckBox("Trust remote code (runs the repo's Python)")
        self.quantization = QComboBox()
        for label, value in (("as the checkpoint", ""), ("FP8 on the fly", "fp8"), ("bitsandbytes 4-bit", "bitsandbytes")):
            self.quantization.addItem(label, value)
        self.kv_dtype = QComboBox()
        self.kv_dtype.addItem("as the model", "auto")
        self.kv_dtype.addItem("FP8 (twice the tokens)", "fp8")
        self.max_seqs = QSpinBox()
        self.max_seqs.setRange(0, 4096)
        self.max_seqs.setSpecialValueText("vLLM's default")
        self.devices = QLineEdit()
        self.devices.setPlaceholderText("all GPUs, or e.g. 0,1")
        self.lora_panel = LoraPanel(ctx)  # adapters served at start; Load/Unload while running
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("more vLLM arguments, e.g. --max-num-batched-tokens 4096")
        self.environment = QLineEdit()
        self.environment.setPlaceholderText("variables for vLLM, e.g. VLLM_ENFORCE_STRICT_TOOL_CALLING=0")
        self.environment.setToolTip("NAME=VALUE pairs, separated by spaces, for the vLLM process only; quote a "
                                    "value with spaces. Variables llmdesk sets itself are refused.")
        for spin in (self.port, self.utilization, self.max_len, self.tp, self.max_seqs):
            spin.setMaximumWidth(180)

        key_row = QHBoxLayout()
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(self.generate_key)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("Model", model_row)
        form.addRow("Name in the API", self.served_name)
        form.addRow("Preset", self.preset)
        form.addRow("Listen on", self.host)
        form.addRow("Port", self.port)
        form.addRow("API key", key_row)
        form.addRow("GPU memory share", self.utilization)
        form.addRow("Context", self.max_len)
        form.addRow("GPUs (tensor parallel)", self.tp)
        form.addRow("Which GPUs", self.devices)
        form.addRow("Quantize", self.quantization)
        form.addRow("KV cache", self.kv_dtype)
        form.addRow("Max requests at once", self.max_seqs)
        form.addRow("LoRA adapters", self.lora_panel)
        form.addRow("", self.eager)
        form.addRow("", self.trust)
        self.startup = StartupChoice()  # CUDA-graph sizes, the forked engine, Pause (sleep mode)
        form.addRow("Start-up and pause", self.startup)
        self.parsers = ParserChoice(ctx.tasks)  # tool calls and reasoning: the model family's vLLM parsers
        form.addRow("Tools", self.parsers)
        form.addRow("Extra", self.extra)
        form.addRow("Environment", self.environment)

        # -- start/stop and state
        self.start_button = design.action(QPushButton("Start"), "mdi6.play", primary=True)
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = design.action(QPushButton("Stop"), "mdi6.stop")
        self.stop_button.clicked.connect(self.stop)
        # Sleep mode: frees the GPU without stopping; shown only for a server started with Allow Pause
        self.pause_button = design.action(QPushButton("Pause"), "mdi6.pause")
        self.pause_button.setToolTip("Free the GPU's memory without stopping: the model sleeps until Resume "
                                     "(or, if allowed, the next request)")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.pause_button.hide()
        self.state = QLabel("Stopped.")
        self.state.setWordWrap(True)
        self.state.setFont(design.tabular_font(self.state))  # seconds left tick each second: no jitter
        self.problem = problem_box()
        self.apply_fix = design.action(QPushButton("Apply the fix"), "mdi6.wrench")
        self.apply_fix.clicked.connect(self._apply_fix)
        self.apply_fix.hide()  # only beside a diagnosis whose fix changes the form
        self.diagnosis: Diagnosis | None = None
        # A server an earlier llmdesk left running (it was killed or crashed) still holds the GPU.
        self.leftover: ServerRecord | None = None
        self.leftover_note = QLabel()
        self.leftover_note.setWordWrap(True)
        design.banner(self.leftover_note, "warn")
        self.stop_leftover_button = QPushButton("Stop it")
        self.stop_leftover_button.clicked.connect(self._stop_leftover)
        self.adopt_button = QPushButton("Keep using it")
        self.adopt_button.clicked.connect(self._adopt)
        self.adopt_button.hide()
        leftover_row = QHBoxLayout()
        leftover_row.addWidget(self.leftover_note, 1)
        leftover_row.addWidget(self.stop_leftover_button)
        leftover_row.addWidget(self.adopt_button)
        self.leftover_note.hide()
        self.stop_leftover_button.hide()
        # No vLLM yet: offer to install the tested release into llmdesk's own environment.
        self.install_note = QLabel()
        self.install_note.setWordWrap(True)
        self.install_button = design.action(QPushButton("Install vLLM"), "mdi6.download")
        self.install_button.clicked.connect(self.install_runtime)
        self.install_progress = QProgressBar()
        self.install_progress.setRange(0, 1000)
        install_row = QHBoxLayout()
        install_row.addWidget(self.install_note, 1)
        install_row.addWidget(self.install_button)
        for widget in (self.install_note, self.install_button, self.install_progress):
            widget.hide()
        self._install_task = None
        controls = QHBoxLayout()
        controls.addWidget(self.start_button)
        controls.addWidget(self.stop_button)
        controls.addWidget(self.pause_button)
        controls.addWidget(self.state, 1)
        # What went wrong goes above the form, where the eye is after pressing Start, never below the fold.
        problem_row = QHBoxLayout()
        problem_row.addWidget(self.problem, 1)
        problem_row.addWidget(self.apply_fix, 0, Qt.AlignmentFlag.AlignTop)
        self.alerts = QWidget()
        alerts_layout = QVBoxLayout(self.alerts)
        alerts_layout.setContentsMargins(0, 0, 0, 4)
        alerts_layout.addLayout(leftover_row)
        alerts_layout.addLayout(problem_row)
        alerts_layout.addLayout(install_row)
        alerts_layout.addWidget(self.install_progress)
        # Without a GPU here the fit needs one to plan for: chosen here or on the Machine page.
        self.plan_note = QLabel("No NVIDIA GPU here. Plan for:")
        self.plan_choice = PlanGpuChoice("choose a GPU…")
        self.plan_choice.currentIndexChanged.connect(lambda: ctx.set_planned_gpu(self.plan_choice.currentData()))
        self.plan_row = QWidget()
        plan_layout = QHBoxLayout(self.plan_row)
        plan_layout.setContentsMargins(0, 0, 0, 0)
        plan_layout.addWidget(self.plan_note)
        plan_layout.addWidget(self.plan_choice, 1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(form)
        left_layout.addWidget(self.plan_row)
        self.fit = FitPanel()
        self.fit.show_message("Type a model to see whether it fits before starting.")
        self.use_fit = design.action(QPushButton("Use these settings"), "mdi6.check")
        self.use_fit.setToolTip("GPUs and context from the fit engine, for the GPUs shown")
        self.use_fit.clicked.connect(self._use_fit)
        self.use_fit.hide()
        left_layout.addWidget(self.fit)
        left_layout.addWidget(self.use_fit, 0, Qt.AlignmentFlag.AlignRight)
        left_layout.addStretch()
        self._spec_cache: dict = {}
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(500)
        self._fit_timer.timeout.connect(self._preview_fit)
        self.model.textChanged.connect(self._fit_timer.start)
        self._fit_timer.timeout.connect(lambda: self.parsers.match_model(self.model.text().strip(),
                                                                         list(split_extra_args(self.extra.text()))))
        self.extra.editingFinished.connect(self._fit_timer.start)  # a --chat-template there changes the match
        self.served_name.textChanged.connect(self._fit_timer.start)  # the adapters' base check uses both
        self.lora_panel.changed.connect(self._fit_timer.start)  # their slots leave the KV cache
        for widget in (self.utilization, self.max_len, self.tp):
            widget.valueChanged.connect(self._fit_timer.start)
        for combo in (self.quantization, self.kv_dtype):
            combo.currentIndexChanged.connect(self._fit_timer.start)
        self.generate_key.clicked.connect(self._remember_key)

        # -- log and endpoint
        self.log_pane = LogPane()
        self.log = self.log_pane.view
        self.copy_log = self.log_pane.copy

        self.endpoint = QLabel("The endpoint appears here once the server is ready.")
        self.endpoint.setWordWrap(True)
        self.endpoint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.snippet_tabs = QTabWidget()
        self.snippet_views: dict[str, QPlainTextEdit] = {}
        for name in ("curl", "Python", "JavaScript", "Tools"):
            view = QPlainTextEdit()
            view.setReadOnly(True)
            design.mono(view)
            self.snippet_views[name] = view
            self.snippet_tabs.addTab(view, name)
        copy_snippet = design.action(QPushButton("Copy"), "mdi6.content-copy")
        copy_snippet.clicked.connect(lambda: QGuiApplication.clipboard().setText(
            self.snippet_tabs.currentWidget().toPlainText()))
        endpoint_box = QWidget()
        endpoint_layout = QVBoxLayout(endpoint_box)
        endpoint_layout.setContentsMargins(0, 0, 0, 0)
        endpoint_layout.addWidget(self.endpoint)
        endpoint_layout.addWidget(self.snippet_tabs, 1)
        endpoint_layout.addWidget(copy_snippet, 0, Qt.AlignmentFlag.AlignRight)

        right = QTabWidget()
        right.addTab(self.log_pane, "Log")
        right.addTab(endpoint_box, "Endpoint")
        self.endpoint_panel = EndpointPanel(ctx)  # each tool's settings and its Test; follows the server
        # scrolls rather than widening the page: its row of pickers and buttons is wider than a small window's pane
        connect = scroll_area(self.endpoint_panel)
        connect.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # its rows wrap; never sideways
        right.addTab(connect, "Connect tools")
        # At the smallest window the form keeps its width and this pane gets what is left (158 px at 960x600): a
        # QTabWidget asks for its labels' whole width, and where the two did not fit the form covered this pane's
        # left side and the Log tab under it. It now settles for less and elides its labels.
        right.setMinimumWidth(150)
        right.setElideMode(Qt.TextElideMode.ElideRight)
        for index in range(right.count()):
            right.setTabToolTip(index, right.tabText(index))  # the whole name of an elided label
        self.right_tabs = right
        left_scroll = scroll_area(left, keep_width=True)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left_scroll)
        split.addWidget(right)
        split.setSizes([560, 470])
        split.setMinimumWidth(320)
        self.split, self.form_scroll = split, left_scroll
        self._sizes_before_reading: list[int] | None = None
        right.currentChanged.connect(self._room_for_tab)

        layout = QVBoxLayout(self)
        layout.addWidget(page_header("Server", "vLLM as a supervised process: start it, watch it start, stop it. "
                                               "It listens on this computer only unless you say otherwise."))
        layout.addWidget(self.alerts)
        # Start/Stop/Pause and the state line stay in view above the form, whatever its scroll: the phases
        # of a start, and a paused server's Resume, were below the fold of a 640-pixel window.
        layout.addLayout(controls)
        layout.addWidget(split, 1)
        self._show_alerts()

        self._flush = QTimer(self)
        self._flush.setInterval(LOG_FLUSH_MS)
        self._flush.timeout.connect(self._flush_log)
        self._flush.start()
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(lambda: self._show_status(self.ctx.server.status))
        self.ctx.server.subscribe(on_status=self._show_status, on_line=self._pending_lines.append)
        self.ctx.serve_requested.connect(self.take_model)
        self.ctx.fit_gpus_changed.connect(self._gpus_changed)
        self._gpus_changed()
        self._show_status(self.ctx.server.status)

    # -- a server left behind
    def start_checks(self) -> None:
        """Once the loop runs: look for a server an earlier llmdesk left behind; import vLLM ahead when the
        settings say so."""
        self._preload()
        self.ctx.settings_changed.connect(lambda _settings: self._preload())
        self.ctx.tasks.run(self._look_for_leftover(), "looking for a server left running")
        self.ctx.tasks.run(self._load_key(), "reading the stored API key")

    async def _load_key(self) -> None:
        key = await asyncio.wait_for(asyncio.to_thread(secrets.load_server_api_key), 10)
        if key and not self.api_key.text():
            self.api_key.setText(key)

    async def _look_for_leftover(self) -> None:
        self.leftover = await asyncio.to_thread(find_leftover)
        if self.leftover is None:
            return
        where = f" on port {self.leftover.port}" if self.leftover.port else ""
        self.leftover_note.setText(
            f"<b>A vLLM server is still running from an earlier llmdesk</b> ({self.leftover.model or 'a model'}"
            f"{where}, process {self.leftover.pid}). It keeps its GPU memory until it is stopped.")
        self.leftover_note.show()
        self.stop_leftover_button.show()
        self.adopt_button.setVisible(not self.ctx.server.running and not self.leftover.vllm_port)  # see adopt()
        self._show_alerts()
        self.ctx.problems.show_problem(Problem(
            "A vLLM server is still running from an earlier llmdesk",
            f"It serves {self.leftover.model or 'a model'}{where} and keeps its GPU memory.",
            "Stop it on the Server page."))

    def _stop_leftover(self) -> None:
        if self.leftover is not None:
            self.stop_leftover_button.setEnabled(False)
            self.ctx.tasks.run(self._stop_leftover_async(self.leftover), "stopping the server left running")

    def _adopt(self) -> None:
        if self.leftover is not None:
            leftover, self.leftover = self.leftover, None
            self.stop_leftover_button.hide()
            self.adopt_button.hide()
            self.leftover_note.setText("Taken over: it is this llmdesk's server now (its earlier log is not "
                                       "available). Stop ends it.")
            self.served_name.setText(self.served_name.text() or (leftover.model or ""))
            self.ctx.tasks.run(self.ctx.server.adopt(leftover), "taking over the server left running")

    async def _stop_leftover_async(self, leftover: ServerRecord) -> None:
        gone = await stop_leftover(leftover)
        self.leftover = None
        self.stop_leftover_button.hide()
        self.stop_leftover_button.setEnabled(True)
        self.adopt_button.hide()
        self.leftover_note.setText("The server left running was stopped; its GPU memory is free again." if gone
                                   else "Some of its processes could not be stopped: see the log file.")
        if gone:
            await self._look_for_leftover()  # several llmdesks may have been killed

    def _preload(self) -> None:
        self.ctx.tasks.run(self.ctx.preload_vllm(self.launch_config()), "importing vLLM for the next start")

    # -- the form
    def fill_last_model(self) -> bool:
        """An empty model field takes the model started last; whether the field has a model now."""
        if not self.model.text().strip() and self.ctx.last_model:
            self.model.setText(self.ctx.last_model)
        return bool(self.model.text().strip())

    def take_model(self, model) -> None:
        self.model.setText(str(model.path))
        self.served_name.setText(model.repo_id or model.name)

    def launch_config(self) -> LaunchConfig:
        config = LaunchConfig(
            model=self.model.text().strip(), served_model_name=self.served_name.text().strip() or None,
            host=self.host.text().strip(), port=self.port.value(), api_key=self.api_key.text().strip() or None,
            gpu_memory_utilization=round(self.utilization.value(), 2),
            max_model_len=self.max_len.value() or None, tensor_parallel_size=self.tp.value(),
            enforce_eager=self.eager.isChecked(), trust_remote_code=self.trust.isChecked(),
            quantization=self.quantization.currentData() or None, kv_cache_dtype=self.kv_dtype.currentData(),
            max_num_seqs=self.max_seqs.value() or None, cuda_devices=self._devices(),
            **self.lora_panel.launch_fields(), **self.parsers.launch_fields(), **self.startup.fields(),
            extra_args=split_extra_args(self.extra.text()), extra_env=split_extra_args(self.environment.text()))
        preset = PRESETS.get(self.preset.currentData() or "")
        return preset.apply(config) if preset else config

    def _lora_settings(self) -> dict:
        """The LoRA slots the launch would reserve, for the fit preview (their memory leaves the KV cache)."""
        config = self.launch_config()
        return {"max_loras": config.max_loras, "max_lora_rank": config.max_lora_rank} if config.lora_enabled else {}

    def _devices(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.devices.text().replace(" ", "").split(",") if part.isdigit())

    # -- the fit preview: is the model going to fit with these settings, before pressing Start
    def _preview_fit(self) -> None:
        source = self.model.text().strip()
        self.lora_panel.set_model(source, self.served_name.text().strip() or None, self._spec_cache.get(source))
        if source:
            self.ctx.tasks.run(self._preview(source), "checking whether the model fits")

    async def _preview(self, source: str) -> None:
        from llmdesk.core.base.errors import ProblemError

        if source not in self._spec_cache:
            try:
                self._spec_cache[source] = await asyncio.to_thread(load_model_spec, source)
            except ProblemError as exc:
                self.fit.show_problem(exc.problem)
                self.use_fit.hide()
                return
        if source != self.model.text().strip():
            return  # the user typed on meanwhile
        self.lora_panel.set_model(source, self.served_name.text().strip() or None, self._spec_cache[source])
        gpus = self._gpus()
        if not gpus:
            self.fit.show_message("No NVIDIA GPU here and none chosen to plan for: choose the GPU you plan to "
                                  "use (Plan for, above) to see whether the model fits.")
            self.use_fit.hide()
            return
        settings = LaunchSettings(
            gpu_memory_utilization=round(self.utilization.value(), 2), max_model_len=self.max_len.value() or None,
            tensor_parallel_size=self.tp.value(), kv_cache_dtype=self.kv_dtype.currentData(),
            quantization=self.quantization.currentData() or None,
            **self._lora_settings())
        try:
            self.report = plan_fit(self._spec_cache[source], gpus, settings)
        except ProblemError as exc:
            self.fit.show_problem(exc.problem)
            self.use_fit.hide()
            return
        self.fit.show_report(self.report)
        self.use_fit.setVisible(bool(self.report.suggested_args))

    def _gpus(self):
        return self.ctx.gpus_for_fit(self.tp.value())

    def _gpus_changed(self) -> None:
        """A new scan or another GPU to plan for: the preview follows at once, not at the next keystroke."""
        scan = self.ctx.machine.scan
        self.plan_row.setVisible(scan is not None and not scan.gpus)
        self.plan_choice.show_key(self.ctx.settings.planning_gpu)
        if self.model.text().strip():
            self._preview_fit()

    def _use_fit(self) -> None:
        if self.report is None:
            return
        config = config_from_fit(self.model.text().strip(), self.report)
        self.tp.setValue(config.tensor_parallel_size)
        if isinstance(config.max_model_len, int):
            self.max_len.setValue(config.max_model_len)

    def _remember_key(self) -> None:
        key = self.api_key.text().strip()
        if key:
            self.ctx.tasks.run(asyncio.wait_for(asyncio.to_thread(secrets.save_server_api_key, key), 10),
                               "keeping the API key")

    def _apply_fix(self) -> None:
        """The diagnosis's changes, written back into the form."""
        if self.diagnosis is None or not self.diagnosis.changes:
            return
        changes = self.diagnosis.changes
        if "max_model_len" in changes and isinstance(changes["max_model_len"], int):
            self.max_len.setValue(changes["max_model_len"])
        if "port" in changes:
            self.port.setValue(changes["port"])
        if "gpu_memory_utilization" in changes:
            self.utilization.setValue(changes["gpu_memory_utilization"])
        if "enforce_eager" in changes:
            self.eager.setChecked(bool(changes["enforce_eager"]))
        if "trust_remote_code" in changes:
            self.trust.setChecked(bool(changes["trust_remote_code"]))
        self.problem.setText(self.problem.text() + "<br><i>Fix applied to the form: press Start again.</i>")
        self.apply_fix.hide()

    # -- start and stop
    def start(self) -> None:
        config = self.launch_config()
        problems = config.validate()
        self.diagnosis = None
        self.apply_fix.hide()
        if not config.model:
            self._show_problem_text("Choose a model first", "Type a folder or repo id, use Browse…, or pick one "
                                    "on the Models page (On this computer, then Serve).")
            return
        problems += self.lora_panel.problems()
        if problems:
            self._show_problem_text(problems[0].title, problems[0].explanation, problems[0].fix)
            return
        self.config = config
        self.ctx.remember_model(config.model)
        self.recent.setStringList(self.ctx.state.recent_models)
        self._clear_log()
        # what does not stop a start but is worth reading (remote code, off loopback, an overridden flag…)
        if warnings := config.warnings():
            self.log_pane.append([f"llmdesk WARNING: {warning}" for warning in warnings])
        self._clear_problem()
        self.install_note.hide()
        self.install_button.hide()
        self.right_tabs.setCurrentIndex(0)
        self.ctx.tasks.run(self._start(config), "starting the server")

    async def _start(self, config: LaunchConfig) -> None:
        from llmdesk.core.base.errors import ProblemError

        try:
            await self.ctx.start_server(config)
        except ProblemError as exc:
            if exc.problem.title == "vLLM is not installed":
                self._offer_install(exc.problem)
                return
            raise

    # -- installing vLLM
    def _offer_install(self, problem) -> None:
        from llmdesk.core.server.runtime import INSTALL_SIZE, TESTED_VLLM

        self._show_problem_text(problem.title, problem.explanation)
        self.install_note.setText(f"llmdesk can install vLLM {TESTED_VLLM} into its own environment: "
                                  f"{INSTALL_SIZE}; it takes a few minutes.")
        self.install_button.setText(f"Install vLLM {TESTED_VLLM}")
        self.install_note.show()
        self.install_button.show()
        self._show_alerts()

    def install_runtime(self) -> None:
        if self._install_task is not None and not self._install_task.done():
            self._install_task.cancel()  # the button reads "Cancel" while installing
            return
        self._clear_log()
        self.right_tabs.setCurrentIndex(0)
        self.install_progress.setValue(0)
        self.install_progress.show()
        self._show_alerts()
        self.install_button.setText("Cancel")
        self._install_task = self.ctx.tasks.run(self._install(), "installing vLLM")

    async def _install(self) -> None:
        from llmdesk.core.server.runtimes import install_runtime

        def progress(p) -> None:
            if p.line:
                self._pending_lines.append(p.line)
            if p.fraction is not None:
                self.install_progress.setValue(round(1000 * p.fraction))
            self.install_note.setText(f"Installing vLLM: {p.step}…")

        try:
            installed = await install_runtime(on_progress=progress)
        except asyncio.CancelledError:
            self.install_note.setText("Install cancelled; what was downloaded is kept for the next try.")
            self.install_button.setText("Install vLLM")
            raise
        finally:
            self.install_progress.hide()
        self.install_note.setText(f"vLLM {installed.version} is installed ({installed.path}). Press Start.")
        self.install_button.hide()
        self._clear_problem()

    def stop(self) -> None:
        self.ctx.tasks.run(self.ctx.stop_server(), "stopping the server")

    def toggle_pause(self) -> None:
        sleep = self.ctx.server.status.sleep or {}
        resume = sleep.get("state") in ("paused", "pausing")
        self.pause_button.setEnabled(False)
        self.ctx.tasks.run(self._pause_or_resume(resume), "resuming the server" if resume else "pausing the server")

    async def _pause_or_resume(self, resume: bool) -> None:
        from llmdesk.core.base.errors import ProblemError

        try:
            await (self.ctx.server.resume() if resume else self.ctx.server.pause())
        except ProblemError as exc:
            self._show_problem_text(exc.problem.title, exc.problem.explanation, exc.problem.fix)
        finally:
            self._show_status(self.ctx.server.status)

    # -- showing what happens
    def _room_for_tab(self, index: int) -> None:
        """Endpoint and Connect tools are read, not typed beside the form: in a small window (a 158 px pane at
        960x600, a URL a word a line) they take the whole width while shown — the form steps aside (Start,
        Stop and the state line stay above) — and the Log brings it back."""
        if index != 0 and self._sizes_before_reading is None and self.split.sizes()[1] < READING_PANE_WIDTH:
            self._sizes_before_reading = self.split.sizes()
            self.form_scroll.hide()
        elif index == 0 and self._sizes_before_reading is not None:
            self.form_scroll.show()
            self.split.setSizes(self._sizes_before_reading)
            self._sizes_before_reading = None

    def _clear_log(self) -> None:
        # lines not yet shown belong to what ran before (a stop's last lines): not to the new start's log
        self._pending_lines.clear()
        self.log_pane.clear()

    def _flush_log(self) -> None:
        if self._pending_lines:
            lines, self._pending_lines[:] = list(self._pending_lines), []
            self.log_pane.append(lines)

    def _show_status(self, status: ServerStatus) -> None:
        running = status.state in (ServerState.STARTING, ServerState.READY, ServerState.STOPPING)
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(status.state in (ServerState.STARTING, ServerState.READY))
        self._clock.setInterval(1000)
        if status.state == ServerState.STARTING:
            self._clock.start()
            now = time.time()
            headline, phases = progress_text(status.estimate, status.timeline, status.phase,
                                             now - (status.phase_since or now), now - (status.started_at or now))
            self.state.setText(f"{headline}\n{phases}")
        else:
            self._clock.stop()
        self._show_pause(status)
        if status.state == ServerState.READY and status.sleep and status.sleep.get("state") != "awake":
            self.state.setText(sleep_text(status.sleep))
        elif status.state == ServerState.READY:
            took = f" (started in {status.timeline.total_s:.0f} s: {status.timeline.summary()})" if status.timeline else ""
            self.state.setText(f"Ready at {status.url}{took}")
            self._show_endpoint(status)
        elif status.state == ServerState.STOPPING:
            self.state.setText("Stopping…")
        elif status.state == ServerState.STOPPED:
            self.state.setText({True: "Stopped; its GPU memory is free again.",
                                False: "Stopped, but GPU memory is still in use: another process may hold it "
                                       "(nvidia-smi shows which)."}.get(status.gpu_memory_released, "Stopped."))
        elif status.state == ServerState.CRASHED:
            self.state.setText("The server stopped unexpectedly." if status.diagnosis is None
                               else "The server could not start or stopped: see why above.")
            self._show_diagnosis(status.diagnosis)

    def _show_pause(self, status: ServerStatus) -> None:
        sleep = status.sleep if status.state == ServerState.READY else None
        self.pause_button.setVisible(sleep is not None)
        if sleep is not None:
            state = sleep.get("state")
            resume = state in ("paused", "pausing")
            self.pause_button.setText("Resume" if resume else "Pause")
            design.action(self.pause_button, "mdi6.play" if resume else "mdi6.pause")
            self.pause_button.setEnabled(state in ("awake", "paused"))

    def _show_endpoint(self, status: ServerStatus) -> None:
        config = status.config or (self.config if status.pid is None or self.config else None)
        model = config.api_model_name if config else (self.served_name.text().strip() or "model")
        key = config.api_key if config else None
        exposed = "" if config is None or is_loopback(config.host) else \
            "<br><b>Reachable from other computers</b>: clients must send the API key."
        self.endpoint.setText(f"<b>Base URL</b> {status.url} · <b>model</b> {model} · <b>API key</b> "
                              f"{'set (see the snippets)' if key else 'none'}{exposed}")
        for name, text in snippets(status.url or "", model, key).items():
            self.snippet_views[name].setPlainText(text)

    def _show_diagnosis(self, diagnosis: Diagnosis | None) -> None:
        self.diagnosis = diagnosis
        if diagnosis is None:
            self._show_problem_text("The server stopped", "vLLM exited without a recognisable reason: the log "
                                    "has the details.")
            return
        p = diagnosis.problem
        self._show_problem_text(p.title, p.explanation, p.fix)
        self.apply_fix.setVisible(bool(diagnosis.changes))

    def _show_problem_text(self, title: str, explanation: str, fix: str | None = None) -> None:
        """Plain text in, rich text out: vLLM's words are escaped, `code` is shown as code."""
        show_in_box(self.problem, Problem(title, explanation, fix), "the Server page")
        self._show_alerts()

    def _clear_problem(self) -> None:
        self.problem.clear()
        self.problem.hide()
        self.apply_fix.hide()
        self._show_alerts()

    def _show_alerts(self) -> None:
        """The strip above the form takes room only while it has something to say."""
        parts = (self.problem, self.leftover_note, self.install_note, self.install_progress)
        self.alerts.setVisible(any(not part.isHidden() for part in parts))
