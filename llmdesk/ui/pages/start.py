"""Get started: the first-run guide, from a bare machine to a first answer.

Welcome and privacy → the hardware (GPUs, driver and the CUDA it supports, which vLLM build that
means, free disk) → vLLM in a managed runtime (its plan shown first) → a first model chosen from
suggestions that fit this GPU, downloaded with progress → started, with a first message sent → a
one-minute benchmark on the Benchmark page. Every step can be skipped; the step reached is saved at
once, so closing llmdesk midway loses nothing and the guide opens where it stopped. Settings opens
it again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                               QSizePolicy, QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from llmdesk.core.base import paths
from llmdesk.core.base.errors import Problem, ProblemError
from llmdesk.core.base.units import GIB
from llmdesk.core.hub.downloads import DONE, FAILED, format_bytes
from llmdesk.core.hub.first_models import Suggestion, suggest_first_models
from llmdesk.core.hub.model_source import load_model_spec
from llmdesk.core.server import runtimes
from llmdesk.core.server.launch import LaunchConfig
from llmdesk.core.server.runtime import TESTED_VLLM, cuda_driver_problem, find_vllm_runtime
from llmdesk.core.server.supervisor import ServerState
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.machine.plan_choice import PlanGpuChoice
from llmdesk.ui.problems import rich_text, show_in_box
from llmdesk.ui.server.runtimes_panel import RuntimesPanel
from llmdesk.ui.widgets import problem_box, scrolling_page, section_title

STEPS = ("welcome", "hardware", "runtime", "model", "chat", "benchmark")
TITLES = {"welcome": "Welcome", "hardware": "Your hardware", "runtime": "vLLM", "model": "A first model",
          "chat": "A first answer", "benchmark": "Benchmark"}
FIRST_MESSAGE = "Say hello in one short sentence."

PRIVACY = (
    "<p>llmdesk runs language models on <b>your</b> NVIDIA GPUs with vLLM. In a few steps it checks your "
    "hardware, installs vLLM in a folder of its own, downloads a model that fits, starts it and asks it a "
    "first question.</p>"
    "<p><b>Privacy.</b> llmdesk sends no usage statistics, and vLLM is started with its own statistics off. "
    "Nothing leaves this computer except what you ask for: searches and downloads from Hugging Face, and "
    "the packages of vLLM while it is installed. Your chats stay in llmdesk's folder.</p>"
    "<p>Every step can be skipped, and closing llmdesk keeps your place.</p>")


class StartPage(QWidget):
    finished = Signal()
    quick_benchmark_requested = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        layout = scrolling_page(self, "Get started", "From this computer to a first answer, in six steps.")
        self.trail = QLabel()
        self.trail.setTextFormat(Qt.TextFormat.RichText)
        self.trail.setWordWrap(True)
        layout.addWidget(self.trail)
        self.stack = QStackedWidget()
        self.steps: dict[str, QWidget] = {}
        for key, build in (("welcome", self._welcome), ("hardware", self._hardware), ("runtime", self._runtime),
                           ("model", self._model), ("chat", self._chat), ("benchmark", self._benchmark)):
            widget = QWidget()
            box = QVBoxLayout(widget)
            box.setContentsMargins(0, 0, 0, 0)
            box.addWidget(section_title(TITLES[key]))
            build(box)
            box.addStretch()
            self.steps[key] = widget
            self.stack.addWidget(widget)
        layout.addWidget(self.stack, 1)
        nav = QHBoxLayout()
        self.leave_button = QPushButton("Skip the guide")
        self.leave_button.clicked.connect(self.finish)
        self.back_button = design.action(QPushButton("Back"), "mdi6.arrow-left")
        self.back_button.clicked.connect(lambda: self.go(STEPS[max(0, STEPS.index(self.step) - 1)]))
        self.skip_button = QPushButton("Skip this step")
        self.skip_button.clicked.connect(self.next)
        self.next_button = design.action(QPushButton("Next"), "mdi6.arrow-right", primary=True)
        self.next_button.setDefault(True)
        self.next_button.clicked.connect(self.next)
        nav.addWidget(self.leave_button)
        nav.addStretch()
        for button in (self.back_button, self.skip_button, self.next_button):
            nav.addWidget(button)
        layout.addLayout(nav)
        self.step = ""
        self._chosen: Suggestion | None = None
        self._unlisten = None
        self.go(ctx.state.first_run_step if ctx.state.first_run_step in STEPS else "welcome", save=False, enter=False)

    def start(self) -> None:
        """Once the event loop runs: the step it opened on reads its content."""
        self.enter()

    # -- moving between steps
    def go(self, key: str, *, save: bool = True, enter: bool = True) -> None:
        self.step = key
        self.stack.setCurrentWidget(self.steps[key])
        index = STEPS.index(key)
        self.trail.setText(" · ".join(f"<b>{i + 1} {TITLES[k]}</b>" if k == key else f"{i + 1} {TITLES[k]}"
                                      for i, k in enumerate(STEPS)))
        self.back_button.setEnabled(index > 0)
        self.skip_button.setVisible(0 < index < len(STEPS) - 1)
        self.next_button.setText("Finish" if index == len(STEPS) - 1 else ("Start" if index == 0 else "Next"))
        design.action(self.next_button, "mdi6.check" if index == len(STEPS) - 1 else "mdi6.arrow-right", primary=True)
        if save:
            self.ctx.state.first_run_step = key
            self.ctx.tasks.run(self.ctx.save_state(), "saving where the guide stopped")
        if enter:
            self.enter()

    def next(self) -> None:
        index = STEPS.index(self.step)
        if index == len(STEPS) - 1:
            self.finish()
        else:
            self.go(STEPS[index + 1])

    def finish(self) -> None:
        self.ctx.state.first_run_done = True
        self.ctx.state.first_run_step = ""
        self.ctx.tasks.run(self.ctx.save_state(), "saving that the guide is done")
        self.finished.emit()

    def restart(self) -> None:
        self.ctx.state.first_run_done = False
        self.go("welcome")

    def enter(self) -> None:
        """The step's live content, read when it is shown (the loop must be running)."""
        work = {"hardware": self._read_hardware, "runtime": self._read_runtime, "model": self._read_models,
                "chat": self._read_chat}.get(self.step)
        if work is not None:
            self.ctx.tasks.run(work(), f"showing the guide's step {TITLES[self.step]}")

    # -- 1 welcome
    def _welcome(self, box: QVBoxLayout) -> None:
        text = QLabel(PRIVACY)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        box.addWidget(text)

    # -- 2 hardware
    def _hardware(self, box: QVBoxLayout) -> None:
        self.hardware = QLabel("Looking at the GPUs…")
        self.hardware.setWordWrap(True)
        self.hardware.setTextFormat(Qt.TextFormat.RichText)
        self.hardware.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.hardware)

    async def _read_hardware(self) -> None:
        scan = self.ctx.machine.scan or await self.ctx.machine.refresh()
        models = Path(self.ctx.settings.models_dir).expanduser() if self.ctx.settings.models_dir \
            else paths.hf_cache_dir()
        disks = await asyncio.to_thread(lambda: [(label, folder, paths.free_bytes(folder) or 0) for label, folder in
                                                 (("models", models), ("vLLM", runtimes.runtimes_dir()))])
        lines = []
        if scan.gpus:
            for gpu in scan.gpus:
                lines.append(f"<b>{rich_text(gpu.name)}</b>, {gpu.memory_total_bytes / GIB:.0f} GiB")
            lines.append(f"Driver {scan.driver_version or '?'}, which supports CUDA {scan.cuda_driver_version or '?'}.")
            too_old = cuda_driver_problem(TESTED_VLLM, scan.cuda_driver_version)
            lines.append(f"⚠ {rich_text(too_old.explanation)} {rich_text(too_old.fix)}" if too_old else
                         f"✔ vLLM {TESTED_VLLM}'s standard build (CUDA 13) runs with this driver.")
        else:
            why = scan.problem.explanation if scan.problem else "No NVIDIA GPU was found."
            lines.append(f"<b>No NVIDIA GPU here.</b> {rich_text(why)}")
            lines.append("You can still install vLLM, download models and check which fit a GPU you plan to use "
                         "(Machine page, Plan for); serving needs an NVIDIA GPU.")
        for label, folder, free in disks:
            need = " (vLLM needs about 8 GiB)" if label == "vLLM" else ""
            lines.append(f"{free / GIB:.0f} GiB free for {label} in {rich_text(str(folder))}{need}.")
        self.hardware.setText("<br>".join(lines))

    # -- 3 runtime
    def _runtime(self, box: QVBoxLayout) -> None:
        self.runtime_note = QLabel()
        self.runtime_note.setWordWrap(True)
        box.addWidget(self.runtime_note)
        self.runtimes = RuntimesPanel(self.ctx)
        box.addWidget(self.runtimes)

    async def _read_runtime(self) -> None:
        await self.runtimes.refresh()
        search = await asyncio.to_thread(find_vllm_runtime, self.ctx.settings.runtime_python)
        if search.runtime is not None:
            self.runtime_note.setText(f"vLLM {search.runtime.vllm_version} is ready ({search.runtime.python}): "
                                      "nothing to install. Next.")
        else:
            self.runtime_note.setText(f"vLLM is not installed yet. Install puts vLLM {TESTED_VLLM} in a folder of "
                                      "llmdesk's own; it can run while you go on.")

    # -- 4 model
    def _model(self, box: QVBoxLayout) -> None:
        self.model_note = QLabel("Judging a few models for this GPU…")
        self.model_note.setWordWrap(True)
        box.addWidget(self.model_note)
        self.plan_row = QWidget()
        plan = QHBoxLayout(self.plan_row)
        plan.setContentsMargins(0, 0, 0, 0)
        plan.addWidget(QLabel("Plan for:"))
        self.plan_choice = PlanGpuChoice("Choose a GPU…")
        self.plan_choice.currentIndexChanged.connect(lambda: self.ctx.set_planned_gpu(self.plan_choice.currentData()))
        plan.addWidget(self.plan_choice, 1)
        self.plan_row.hide()
        box.addWidget(self.plan_row)
        self.ctx.fit_gpus_changed.connect(lambda: self.step == "model" and self.enter())
        self.suggestions = QTableWidget(0, 2)
        self.suggestions.setHorizontalHeaderLabels(["Model", "For this GPU"])
        self.suggestions.verticalHeader().hide()
        self.suggestions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.suggestions.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.suggestions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.suggestions.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.suggestions.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.suggestions.setMinimumHeight(150)
        self.suggestions.itemSelectionChanged.connect(self._suggestion_chosen)
        box.addWidget(self.suggestions)
        row = QHBoxLayout()
        self.download_button = design.action(QPushButton("Download"), "mdi6.download")
        self.download_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.download_button.setEnabled(False)
        self.download_button.clicked.connect(self._download)
        self.download_progress = QProgressBar()
        self.download_progress.setRange(0, 1000)
        self.download_progress.hide()
        row.addWidget(self.download_button)
        row.addWidget(self.download_progress, 1)
        box.addLayout(row)
        self.download_status = QLabel()
        self.download_status.setWordWrap(True)
        box.addWidget(self.download_status)
        self.model_problem = problem_box()
        box.addWidget(self.model_problem)
        self._suggested: list[Suggestion] = []

    async def _read_models(self) -> None:
        gpus = self.ctx.gpus_for_fit()
        no_gpu_here = not (self.ctx.machine.scan and self.ctx.machine.scan.gpus)
        self.plan_row.setVisible(no_gpu_here)
        self.plan_choice.show_key(self.ctx.settings.planning_gpu)
        if not gpus:
            self.model_note.setText("No NVIDIA GPU here: choose the GPU you plan to use, and the models are judged "
                                    "for it (downloads need no GPU).")
            self.suggestions.setRowCount(0)
            self.suggestions.hide()
            self.download_button.hide()
            return
        self.suggestions.show()
        self.download_button.show()
        self.model_note.setText(f"Judging a few models for {gpus[0].name}…")
        self._suggested = await asyncio.to_thread(suggest_first_models, gpus, load_model_spec)
        self.suggestions.setRowCount(len(self._suggested))
        for row, suggestion in enumerate(self._suggested):
            mark = "★ " if row == 0 and suggestion.fits else ""
            self.suggestions.setItem(row, 0, QTableWidgetItem(mark + suggestion.repo_id))
            self.suggestions.setItem(row, 1, QTableWidgetItem(suggestion.summary))
        if self._suggested and all(s.report is None for s in self._suggested):
            self.model_note.setText("No model could be judged: the suggestions are read from Hugging Face.")
            self._show(self.model_problem, self._suggested[0].problem or Problem(
                "No model could be judged", "Hugging Face did not answer.", None))
            return
        self.model_problem.hide()
        best = self._suggested[0] if self._suggested and self._suggested[0].fits else None
        self.model_note.setText(
            f"★ {best.repo_id} is the largest that fits {gpus[0].name} with room for a long chat. Choose another "
            "if you like; the Models page finds any other." if best else
            "None of these fits this GPU well; the Models page finds others (quantized variants need less memory).")
        if best is not None:
            self.suggestions.selectRow(0)
        done = self.ctx.state.first_run_model
        if done:
            self.download_status.setText(f"{done} is downloaded.")

    def _suggestion_chosen(self) -> None:
        rows = self.suggestions.selectionModel().selectedRows()
        self._chosen = self._suggested[rows[0].row()] if rows else None
        self.download_button.setEnabled(self._chosen is not None)
        if self._chosen is not None:
            self.download_button.setText(f"Download {self._chosen.repo_id}")

    def _download(self) -> None:
        if self._chosen is None:
            return
        self.model_problem.hide()
        job = self.ctx.download(self._chosen.repo_id)
        if self._unlisten is not None:
            self._unlisten()
        self._unlisten = job.add_listener(self._download_progress)
        self.download_progress.show()
        self.download_button.setEnabled(False)

    def _download_progress(self, progress) -> None:
        if progress.bytes_total:
            self.download_progress.setValue(round(1000 * progress.bytes_done / progress.bytes_total))
            self.download_status.setText(f"{progress.repo_id}: {format_bytes(progress.bytes_done)} of "
                                         f"{format_bytes(progress.bytes_total)}")
        if progress.state == DONE:
            self.download_progress.hide()
            self.download_button.setEnabled(True)
            self.ctx.state.first_run_model = progress.repo_id
            self.ctx.tasks.run(self.ctx.save_state(), "saving the guide's model")
            self.download_status.setText(f"{progress.repo_id} is downloaded. Next: start it.")
        elif progress.state == FAILED and progress.problem is not None:
            self.download_progress.hide()
            self.download_button.setEnabled(True)
            self._show(self.model_problem, progress.problem)

    # -- 5 chat
    def _chat(self, box: QVBoxLayout) -> None:
        self.chat_note = QLabel()
        self.chat_note.setWordWrap(True)
        box.addWidget(self.chat_note)
        self.chat_button = design.action(QPushButton("Start it and say hello"), "mdi6.play")
        self.chat_button.clicked.connect(lambda: self.ctx.tasks.run(self._first_answer(), "a first answer"))
        box.addWidget(self.chat_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.answer)
        self.chat_problem = problem_box()
        box.addWidget(self.chat_problem)

    async def _read_chat(self) -> None:
        model = self.ctx.state.first_run_model
        self.chat_button.setEnabled(bool(model))
        self.chat_note.setText(f"llmdesk starts vLLM with {model} on 127.0.0.1 (this computer only) and sends it "
                               f"“{FIRST_MESSAGE}”. The first start compiles for your GPU and takes a minute or two."
                               if model else "Download a model in the step before (or skip this one).")

    async def _first_answer(self) -> None:
        from llmdesk.core.chat.client import ChatClient

        self.chat_problem.hide()
        self.chat_button.setEnabled(False)
        model = self.ctx.state.first_run_model
        try:
            found = [m for m in await asyncio.to_thread(self.ctx.scan_library) if m.repo_id == model and m.complete]
            if not found:
                raise ProblemError(Problem(f"{model} is not on this computer", "The download did not finish.",
                                           "Go back one step and download it."))
            chosen = self._chosen if self._chosen and self._chosen.repo_id == model else None
            length = chosen.report.max_model_len if chosen and chosen.report else None
            config = LaunchConfig(model=str(found[0].path), served_model_name=model, max_model_len=length,
                                  port=self.ctx.settings.server_port, host="127.0.0.1",
                                  gpu_memory_utilization=self.ctx.settings.gpu_memory_utilization)
            self.answer.setText("Starting vLLM… (the Server page shows its progress)")
            status = await self.ctx.start_server(config)
            if status.state != ServerState.READY:
                raise ProblemError(status.diagnosis.problem if status.diagnosis else Problem(
                    "vLLM did not start", "See the Server page.", None))
            text = ""
            async with ChatClient(status.url) as client:
                async for delta in client.stream(model, [{"role": "user", "content": FIRST_MESSAGE}]):
                    text += delta.content
                    self.answer.setText(text)
            self.answer.setText(f"{model}: {text}\n\nIt works. The Chat page talks to it, and your own tools can "
                                f"use {status.url} (the Server page shows how).")
        except ProblemError as exc:
            self.answer.setText("")
            self._show(self.chat_problem, exc.problem)
        finally:
            self.chat_button.setEnabled(True)

    # -- 6 benchmark
    def _benchmark(self, box: QVBoxLayout) -> None:
        text = QLabel("How many people can your server answer at once, and how fast? A one-minute benchmark sends "
                      "chat-sized requests at 1, 4 and 16 at a time (15 seconds each) and shows the tokens per second, "
                      "the time to the first token, and where the server saturates. It needs the server of the step "
                      "before. Finish opens the Machine page.")
        text.setWordWrap(True)
        box.addWidget(text)
        self.bench_button = design.action(QPushButton("Run a one-minute benchmark"), "mdi6.speedometer")
        self.bench_button.setToolTip("Opens the Benchmark page and starts it there")
        self.bench_button.clicked.connect(self.quick_benchmark_requested)
        box.addWidget(self.bench_button, 0, Qt.AlignmentFlag.AlignLeft)

    def _show(self, box: QLabel, problem: Problem) -> None:
        show_in_box(box, problem, "the first-run guide")

