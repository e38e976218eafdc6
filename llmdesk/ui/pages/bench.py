"""Benchmark: how many users the server can take, how fast, and what a million tokens cost.

The server (this app's, or any URL), a workload preset with its limits, Start/Stop with live progress
per level; then the knee, a table of the levels, three plots, the cost panel against API prices, and
the saved runs (each run is saved when it ends, finished or not) with comparison and export.

The run happens on a thread of its own (ui/bench/runner.py), so the window stays smooth at 64
concurrent streams and its painting never skews the timings. Progress comes back at request rate and
is shown at most ten times a second.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.bench.cost import (ApiPrice, CostInputs, PriceTable, load_cost_inputs, load_price_table,
                                     save_cost_inputs, save_user_prices)
from llmdesk.core.bench.presets import DEFAULT_CONCURRENCIES, PRESETS
from llmdesk.core.bench.runs import delete_run, list_runs, save_run, to_csv
from llmdesk.core.bench.sweep import BenchConfig, BenchRun, server_max_num_seqs
from llmdesk.core.bench.workload import Workload
from llmdesk.core.server.endpoint import normalise_base_url
from llmdesk.core.server.supervisor import ServerState
from llmdesk.ui import design
from llmdesk.ui.bench.cost_panel import CostPanel
from llmdesk.ui.bench.levels_table import LevelsTable
from llmdesk.ui.bench.runner import BenchRunner
from llmdesk.ui.bench.runs_panel import RunsPanel
from llmdesk.ui.context import AppContext
from llmdesk.ui.gc_guard import freeze_long_lived
from llmdesk.ui.problems import show_in_box
from llmdesk.ui.steps import STEP_MS, Stepper
from llmdesk.ui.widgets import EmptyState, choose_save_file, problem_box, scrolling_page, section_title

PLOTS_MODULE = "llmdesk.ui.bench.plots"
PROGRESS_MS = 100
MAX_LOADS = 64


def parse_loads(text: str, rates: bool) -> tuple:
    """"1, 2, 4" → (1, 2, 4); BadInput naming what is wrong."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    what = "request rates" if rates else "concurrencies"
    if not parts:
        raise BadInput(Problem(f"No {what}", f"Give one or more {what}, separated by commas.", "For example 1, 4, 16."))
    if len(parts) > MAX_LOADS:
        raise BadInput(Problem(f"Too many {what}", f"A run has at most {MAX_LOADS} levels.", None))
    values = []
    for part in parts:
        try:
            value = float(part) if rates else int(part)
        except ValueError:
            raise BadInput(Problem(f"Not a number: {part[:20]!r}", f"The {what} are numbers separated by commas.",
                                   "For example 1, 4, 16.")) from None
        if not value > 0:
            raise BadInput(Problem(f"{part} is not above 0", f"The {what} must be above 0.", None))
        values.append(value)
    return tuple(sorted(set(values)))


def _spin(low: int, high: int, value: int, special: str | None = None, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setGroupSeparatorShown(True)
    if special:
        box.setSpecialValueText(special)
    if suffix:
        box.setSuffix(suffix)
    return box


class BenchmarkPage(QWidget):
    start_model_requested = Signal()  # the empty state's Start a model

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.plots = None  # BenchPlots, once pyqtgraph is loaded
        self._plots_task = None
        self.runner: BenchRunner | None = None
        self.run_task: asyncio.Task | None = None
        self.shown: BenchRun | None = None
        self.compared: list[BenchRun] = []
        self.live_levels: list[dict] = []
        self._progress: dict | None = None
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(PROGRESS_MS)
        self._progress_timer.timeout.connect(self._show_progress)
        self.drawing = Stepper(self)  # one plot per turn of the loop

        column = scrolling_page(self, "Benchmark", "How many users this server can take, how fast, and what a "
                                                   "million tokens cost: load it step by step and see where it saturates.")
        column.addLayout(self._server_row())
        column.addLayout(self._workload_grid())
        column.addLayout(self._action_row())
        self.problem = problem_box()
        column.addWidget(self.problem)
        # no server to load: what a run shows, and Start a model (also what Start without a server points to)
        self.empty = EmptyState("mdi6.speedometer", steps_aside=(self.start_button,))
        self.empty.action.clicked.connect(self.start_model_requested)
        self.empty.hide()
        column.addWidget(self.empty)

        column.addWidget(section_title("Results"))
        self.summary = QLabel("No run yet. Start one above, or pick a saved run below: the levels, the knee and "
                              "the plots appear here as each level finishes.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.summary)
        self.plots_area = QVBoxLayout()
        self.plots_placeholder = QLabel("Loading plots…")
        self.plots_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.plots_placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.plots_placeholder.setMinimumHeight(210)
        self.plots_area.addWidget(self.plots_placeholder)
        column.addLayout(self.plots_area)
        self.levels = LevelsTable()
        column.addWidget(self.levels)

        column.addWidget(section_title("Cost"))
        # Filled from the settings folder when the page is first shown (two small files, read off the loop).
        self.cost = CostPanel(CostInputs(), PriceTable((), "", ""))
        self.cost.inputs_changed.connect(self._save_inputs)
        self.cost.add_price_requested.connect(self._add_price)
        column.addWidget(self.cost)

        column.addWidget(section_title("Saved runs"))
        self.runs = RunsPanel()
        self.runs.show_requested.connect(self.show_run)
        self.runs.compare_changed.connect(self._compare)
        self.runs.export_requested.connect(self.export_run)
        self.runs.delete_requested.connect(self.delete_run)
        column.addWidget(self.runs)
        self.note = QLabel()
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.note.hide()
        column.addWidget(self.note)
        column.addStretch()
        self._preset_chosen()
        self._set_busy(False)
        self._runs_loaded = False
        ctx.server.subscribe(on_status=lambda _status: self._show_empty_state())
        self.url.textChanged.connect(self._show_empty_state)
        self._show_empty_state()

    def _show_empty_state(self) -> None:
        state = self.ctx.server.status.state
        if self.url.text().strip() or state == ServerState.READY or self.running:
            self.empty.hide()
        elif state == ServerState.STARTING:
            self.empty.say("The model is starting", "A benchmark can start as soon as the Server page says ready.",
                           "Open the Server page")
        else:
            self.empty.say("No model is running", "A benchmark loads a running server level by level and shows "
                           "where it saturates, what each user gets and what a million tokens cost. Start a model, or "
                           "type the address of another server above; saved runs stay below.", "Start a model")
    # -- layout --

    def _server_row(self) -> QHBoxLayout:
        self.url = QLineEdit()
        self.url.setPlaceholderText("empty: this app's server")
        self.url.setToolTip("Any OpenAI-compatible vLLM server: its root (http://host:8000) or its /v1 base")
        self.api_key = QLineEdit()
        self.api_key.setPlaceholderText("if needed")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setMaximumWidth(130)
        self.model = QLineEdit()
        self.model.setPlaceholderText("the first served")
        self.model.setMaximumWidth(200)
        row = QHBoxLayout()
        for label, widget, stretch in (("Server", self.url, 1), ("API key", self.api_key, 0), ("Model", self.model, 0)):
            row.addWidget(QLabel(label))
            row.addWidget(widget, stretch)
        return row

    def _workload_grid(self) -> QGridLayout:
        self.preset = QComboBox()
        for p in PRESETS:
            self.preset.addItem(p.label, p.key)
        self.preset.setToolTip("\n".join(f"{p.label}: {p.about}" for p in PRESETS))
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        self.input_len = _spin(1, 1_000_000, 512, suffix=" in")
        self.input_len.setToolTip("Prompt tokens per request (the tokenizer's BOS included, as vLLM counts them)")
        self.output_len = _spin(1, 1_000_000, 256, suffix=" out")
        self.output_len.setToolTip("Tokens each reply is made to run to (ignore_eos)")
        self.endpoint = QComboBox()
        self.endpoint.addItem("completions", "completions")
        self.endpoint.addItem("chat", "chat")
        self.endpoint.setToolTip("completions: exact prompt lengths (vLLM's default); chat: the chat template adds a few tokens")
        self.mode = QComboBox()
        self.mode.addItem("Concurrency", "concurrency")
        self.mode.addItem("Rates (Poisson)", "rate")
        self.mode.setToolTip("Concurrency: each level keeps this many requests in flight. Rates: requests arrive "
                             "at random (Poisson) at this many a second.")
        self.mode.currentIndexChanged.connect(self._mode_chosen)
        self.loads = QLineEdit(", ".join(map(str, DEFAULT_CONCURRENCIES)))
        self.loads.setToolTip("Concurrent requests per level (capped at the server's max-num-seqs), or requests "
                              "per second in rate mode, separated by commas")
        self.per_level = _spin(0, 1_000_000, 0, special="auto")
        self.per_level.setToolTip("Requests per level; auto: 4 × the concurrency, at least 16")
        self.seconds = _spin(0, 86_400, 0, special="—", suffix=" s")
        self.seconds.setToolTip("Run each level for this long instead of a number of requests")
        self.slo_ttft = _spin(0, 10_000_000, 0, special="none", suffix=" ms")
        self.slo_tpot = _spin(0, 10_000_000, 0, special="none", suffix=" ms")
        self.slo_e2e = _spin(0, 100_000_000, 0, special="none", suffix=" ms")
        for box, what in ((self.slo_ttft, "time to first token"), (self.slo_tpot, "time per output token"),
                          (self.slo_e2e, "whole-request latency")):
            box.setToolTip(f"A level meets the limits when its p99 {what} is at most this (none: no limit)")
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        # (row, column, label, widget, columns the widget spans)
        cells = ((0, 0, "Workload", self.preset, 1), (0, 1, "Tokens", self.input_len, 1), (0, 2, "", self.output_len, 1),
                 (0, 3, "Endpoint", self.endpoint, 1),
                 (1, 0, "Load", self.mode, 1), (1, 1, "Levels", self.loads, 5),
                 (2, 0, "Per level", self.per_level, 1), (2, 1, "or", self.seconds, 1),
                 (3, 0, "TTFT p99 ≤", self.slo_ttft, 1), (3, 1, "TPOT p99 ≤", self.slo_tpot, 1),
                 (3, 2, "E2E p99 ≤", self.slo_e2e, 1))
        for r, c, label, widget, span in cells:
            if label:
                grid.addWidget(QLabel(label), r, 2 * c, Qt.AlignmentFlag.AlignRight)
            widget.setMinimumWidth(60)
            if widget is self.preset:  # its longest name may be cut in a small window
                widget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                widget.setMinimumContentsLength(11)
            elif isinstance(widget, QComboBox):  # the others' choice whole: "Concurrenc" at 960x600
                fm = widget.fontMetrics()
                widest = max(fm.horizontalAdvance(widget.itemText(i)) for i in range(widget.count()))
                widget.setMinimumWidth(min(widest, fm.horizontalAdvance("Concurrency")) + 36)  # + arrow, frame
            grid.addWidget(widget, r, 2 * c + 1, 1, span)
        for c in range(4):
            grid.setColumnStretch(2 * c + 1, 1)
        return grid

    def _action_row(self) -> QHBoxLayout:
        self.start_button = design.action(QPushButton("Start"), "mdi6.play", primary=True)
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_run)
        self.stop_button = design.action(QPushButton("Stop"), "mdi6.stop")
        self.stop_button.setToolTip("Abort the level under way; the finished levels are kept and saved")
        self.stop_button.clicked.connect(self.stop_run)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setMaximumWidth(220)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setMinimumWidth(1)
        self.status.setFont(design.tabular_font(self.status))  # the level's counts tick: no jitter
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.progress)
        row.addWidget(self.status, 1)
        return row

    # -- life --

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._ensure_plots()
        if not self._runs_loaded:
            self._runs_loaded = True
            self.ctx.tasks.run(self._first_show(), "reading the saved benchmark runs and prices")

    async def _first_show(self) -> None:
        await asyncio.to_thread(importlib.import_module, "httpx")  # 0.1 s, not on the loop at the first Start
        inputs, table = await asyncio.gather(asyncio.to_thread(load_cost_inputs), asyncio.to_thread(load_price_table))
        self.cost.set_inputs(inputs)
        self.cost.set_table(table)
        for problem in table.problems:
            self._show_problem(problem)
        await self.reload_runs()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.plots is not None:
            self.plots.apply_palette(self.palette())
            self._draw()

    def stop(self) -> None:
        """The window closes: a run under way stops (its finished levels are saved)."""
        if self.runner is not None:
            self.runner.stop()

    @property
    def running(self) -> bool:
        """A run is under way (until its result is saved, shown and listed)."""
        return self.run_task is not None and not self.run_task.done()

    # -- settings --

    def _preset_chosen(self) -> None:
        preset = PRESETS[max(0, self.preset.currentIndex())]
        self.input_len.setValue(preset.workload.input_len)
        self.output_len.setValue(preset.workload.output_len)
        self.slo_ttft.setValue(int(preset.slo_ms.get("ttft", 0)))
        self.slo_tpot.setValue(int(preset.slo_ms.get("tpot", 0)))
        self.slo_e2e.setValue(int(preset.slo_ms.get("e2el", 0)))

    def _mode_chosen(self) -> None:
        rates = self.mode.currentData() == "rate"
        self.loads.setText("1, 2, 4, 8" if rates else ", ".join(map(str, DEFAULT_CONCURRENCIES)))

    def config(self) -> BenchConfig:
        """The form as a run's settings; BadInput (or a ProblemError for a missing server) when it cannot run."""
        rates = self.mode.currentData() == "rate"
        loads = parse_loads(self.loads.text(), rates)
        workload = Workload(input_len=self.input_len.value(), output_len=self.output_len.value(),
                            endpoint=self.endpoint.currentData(), prompts=self.per_level.value() or None,
                            duration_s=self.seconds.value() or None)
        slo = {key: float(box.value()) for key, box in (("ttft", self.slo_ttft), ("tpot", self.slo_tpot),
                                                         ("e2el", self.slo_e2e)) if box.value()}
        typed_key = self.api_key.text().strip() or None
        max_num_seqs, gpus = None, None
        text = self.url.text().strip()
        if text:
            url, key = normalise_base_url(text), typed_key  # its max-num-seqs is looked up off the loop
        else:
            status = self.ctx.server.status
            if status.state != ServerState.READY or not status.url:
                raise _NoServer(Problem(
                    "This app's server is not running" if status.state != ServerState.STARTING
                    else "This app's server is still starting",
                    "A benchmark loads a running server.",
                    "Start it on the Server page (or wait until it is ready), or type the URL of another server."))
            url = status.url
            key = typed_key or (status.config.api_key if status.config else None)
            if status.config is not None:
                max_num_seqs = status.config.max_num_seqs
                gpus = tuple(status.config.cuda_devices) or None
        config = BenchConfig(url, model=self.model.text().strip() or None, api_key=key, workload=workload,
                             concurrencies=() if rates else loads, rates=loads if rates else (), slo_ms=slo,
                             gpus=gpus, max_num_seqs=max_num_seqs)
        config.check()
        return config

    # -- a run --

    def start_run(self) -> None:
        if self.running:
            return
        self._clear_problem()
        try:
            config = self.config()
        except ProblemError as exc:
            if isinstance(exc, _NoServer):  # the empty state says so already, with the way out: no second message
                self._show_empty_state()
                self.empty.action.setFocus()
            else:
                self._show_problem(exc.problem)
            return
        self.live_levels = []
        self.shown = None
        # the last run's summary (or "No run yet") stayed above the new run's plots until it ended
        self.summary.setText("Running: each level appears below as it finishes; the knee, the limits and the "
                             "cost are read when the run ends.")
        self.runner = BenchRunner(config, self._event)
        self._set_busy(True)
        self.status.setText("Reading the server's tokenizer…")
        self.run_task = self.ctx.tasks.run(self._run(self.runner, config), "running the benchmark")

    def start_quick(self) -> None:
        """The first-run guide's one-minute benchmark: the Chat preset at 1, 4 and 16 at a time, 15 s each,
        against this app's server."""
        if self.running:
            return
        self.url.clear()
        self.model.clear()
        self.mode.setCurrentIndex(self.mode.findData("concurrency"))
        self.preset.setCurrentIndex(self.preset.findData("chat"))
        self.loads.setText("1, 4, 16")
        self.per_level.setValue(0)
        self.seconds.setValue(15)
        self.start_run()

    def stop_run(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping: aborting the requests in flight…")

    async def _run(self, runner: BenchRunner, config: BenchConfig) -> None:
        try:
            try:
                if config.max_num_seqs is None:  # a typed URL may still be this app's server: read its log
                    config.max_num_seqs = await asyncio.to_thread(server_max_num_seqs, config.base_url)
                run = await runner.run()
            except ProblemError as exc:
                self._show_problem(exc.problem)
                self.status.setText("Not run.")
                return
            self.shown = run
            if run.levels:
                await asyncio.to_thread(save_run, run)
            words = {"finished": "Finished", "stopped": "Stopped: the finished levels are kept",
                     "failed": "Failed: the finished levels are kept"}
            self.status.setText(f"{words.get(run.status, run.status)} ({len(run.levels)} level"
                                f"{'s' if len(run.levels) != 1 else ''}{', saved' if run.levels else ''}).")
            if run.problem:
                self._show_problem(Problem(run.problem["title"], run.problem["explanation"], run.problem.get("fix")))
        finally:
            self.runner = None
            self._set_busy(False)
        self._show_shown()
        await self.reload_runs(select=run.id if run.levels else None)

    def _event(self, kind: str, data: dict) -> None:
        if kind == "level":
            self._progress = {"level": data, "finished": 0, "total": None}
            self.progress.setRange(0, data["count"])
            self.progress.setValue(data["index"])
            self.progress.setFormat(f"level %v of {data['count']}")
            self._show_progress()
        elif kind == "progress" and self._progress is not None:
            self._progress.update(finished=data["finished"], total=data["total"])
        elif kind == "done":
            self.live_levels.append(data)
            self.progress.setValue(len(self.live_levels))
            self._draw()

    def _show_progress(self) -> None:
        info = self._progress
        if info is None or self.runner is None or not self.stop_button.isEnabled():
            return
        level = info["level"]
        load = f"{level['concurrency']} at a time" if level["rate"] is None else f"{level['rate']:g} requests/s"
        total = f" of {info['total']}" if info.get("total") else ""
        self.status.setText(f"Level {level['index'] + 1} of {level['count']}: {load} · {info['finished']}{total} "
                            "requests done")

    def _set_busy(self, busy: bool) -> None:
        self.start_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.progress.setVisible(busy)
        for widget in (self.url, self.api_key, self.model, self.preset, self.input_len, self.output_len, self.endpoint,
                       self.mode, self.loads, self.per_level, self.seconds, self.slo_ttft, self.slo_tpot, self.slo_e2e):
            widget.setEnabled(not busy)
        if busy:
            self._progress_timer.start()
        else:
            self._progress_timer.stop()
            self._progress = None

    # -- showing --

    def show_run(self, run: BenchRun) -> None:
        if self.running:
            return  # the live run stays on screen
        self.shown = run
        self.live_levels = []
        self._show_shown()

    def _show_shown(self) -> None:
        run = self.shown
        if run is None:
            return
        sat = run.saturation or {}
        lines = [f"<b>{_esc(run.name)}</b> · {_esc(run.model)} · {run.started_at.replace('T', ' ')[:16]} · {run.status}"]
        if sat.get("knee") is not None:
            unit = "at a time" if run.mode == "concurrency" else "requests/s"
            lines.append(f"<b>Knee: {sat['knee']:g} {unit}.</b> {_esc(sat.get('reason', ''))}")
        elif sat.get("reason"):
            lines.append(_esc(sat["reason"]))
        if run.slo_ms:
            limits = ", ".join(f"{ {'ttft': 'TTFT', 'tpot': 'TPOT', 'e2el': 'E2E'}[k]} ≤ {v:g} ms" for k, v in run.slo_ms.items())
            best = sat.get("best_within_limits")
            lines.append(f"Highest load within the limits ({limits}, p99): "
                         + ("<b>none</b>" if best is None else f"<b>{best:g}</b>"))
        if run.gpus:
            lines.append("Measured on " + _esc(", ".join(run.gpus)))
        lines += [_esc(note) for note in run.notes]
        self.summary.setText("<br>".join(lines))
        self.cost.set_run(run.levels, run.model, sat.get("knee"))
        self._draw()

    def _draw(self) -> None:
        if self.runner is not None or (self.shown is None and self.live_levels):
            levels, knee, slo, name = self.live_levels, None, self._live_slo(), "this run"
        elif self.shown is not None:
            levels, knee, slo, name = self.shown.levels, (self.shown.saturation or {}).get("knee"), self.shown.slo_ms, self.shown.name
        else:
            levels, knee, slo, name = [], None, {}, ""
        self.levels.show_levels(levels, knee, slo)
        if self.plots is None:
            return
        module = importlib.import_module(PLOTS_MODULE)
        shown = module.Series(name, levels, knee) if levels else None
        others = [module.Series(r.name, r.levels) for r in self.compared if self.shown is None or r.id != self.shown.id]
        self.drawing.run(self.plots.draw_steps(shown, others, slo))

    def draw_now(self) -> None:
        """Every plot in one go (tests, pictures)."""
        self.drawing.finish()

    def _live_slo(self) -> dict:
        return self.runner.config.slo_ms if self.runner is not None else {}

    def _compare(self, runs: list[BenchRun]) -> None:
        self.compared = runs
        self._draw()

    def _ensure_plots(self) -> None:
        if self.plots is None and self._plots_task is None:
            self._plots_task = self.ctx.tasks.run(self._load_plots(), "loading the plots")

    async def _load_plots(self) -> None:
        try:
            module = await asyncio.to_thread(importlib.import_module, PLOTS_MODULE)
        except BaseException:
            self._plots_task = None
            raise
        freeze_long_lived()
        plots = module.BenchPlots(self.palette())
        plots.hide()  # its warm-up drawing is not for the eye
        self.plots_area.addWidget(plots)
        for _ in plots.draw_steps(module.WARM_UP, slo_ms={"ttft": 1.0, "tpot": 1.0}):
            await asyncio.sleep(STEP_MS / 1000)
        self.plots_area.removeWidget(self.plots_placeholder)
        self.plots_placeholder.deleteLater()
        plots.show()
        self.plots = plots
        self._draw()  # empty until a level is there to draw

    # -- saved runs --

    async def reload_runs(self, select: str | None = None) -> None:
        listing = await asyncio.to_thread(list_runs)
        self.runs.set_runs(listing.runs, select)
        if listing.unreadable:
            self._note(f"{len(listing.unreadable)} saved run file(s) could not be read and are left out.")

    def export_run(self, run: BenchRun, fmt: str, path: str | None = None) -> None:
        if path is None:
            stem = f"llmdesk-bench-{run.id}.{fmt}"
            self._export_dialog = choose_save_file(self, "Export the run", stem,
                                                   "CSV (*.csv)" if fmt == "csv" else "JSON (*.json)",
                                                   lambda chosen: self.export_run(run, fmt, chosen))
            return
        self.ctx.tasks.run(self._export(run, fmt, Path(path)), "exporting the benchmark run")

    async def _export(self, run: BenchRun, fmt: str, path: Path) -> None:
        body = to_csv(run) if fmt == "csv" else json.dumps(run.as_export(), indent=2) + "\n"
        try:
            await asyncio.to_thread(path.write_text, body, encoding="utf-8")
        except OSError as exc:
            self._show_problem(Problem("Could not export the run", f"{path}: {exc.strerror or exc}.",
                                       "Choose a folder you can write to, with free space."))
            return
        self._note(f"Exported to {path.name}")

    def delete_run(self, run: BenchRun) -> None:
        async def go() -> None:
            await asyncio.to_thread(delete_run, run.id)
            if self.shown is not None and self.shown.id == run.id:
                self.shown = None
            await self.reload_runs()
            self._note(f"Deleted {run.name}")

        self.ctx.tasks.run(go(), "deleting the benchmark run")

    # -- cost --

    def _save_inputs(self, inputs: CostInputs) -> None:
        if not inputs.invalid_fields():
            self.ctx.tasks.run(asyncio.to_thread(save_cost_inputs, inputs), "saving the cost inputs")

    def _add_price(self, price: ApiPrice) -> None:
        async def go() -> None:
            rows = [row for row in self.cost.table.user_rows if row.key != price.key] + [price]
            try:
                await asyncio.to_thread(save_user_prices, rows)
            except (OSError, ProblemError) as exc:
                problem = exc.problem if isinstance(exc, ProblemError) else Problem(
                    "Could not save the price", str(exc), "Check the settings folder and the free space.")
                self._show_problem(problem)
                return
            self.cost.set_table(await asyncio.to_thread(load_price_table))
            self._note(f"Added {price.provider}'s price for {price.model}")

        self.ctx.tasks.run(go(), "saving an API price")

    # -- messages --

    def _show_problem(self, problem: Problem) -> None:
        show_in_box(self.problem, problem, "the Benchmark page")

    def _clear_problem(self) -> None:
        self.problem.hide()

    def _note(self, text: str) -> None:
        self.note.setText(text)
        self.note.show()


class _NoServer(ProblemError):
    """No URL typed and the app's server is not ready."""


def _esc(text: str) -> str:
    import html

    return html.escape(str(text), quote=False)

