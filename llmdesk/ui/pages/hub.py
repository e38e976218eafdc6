"""Models: will a model fit, before anything is downloaded. Search and downloads come next."""

from __future__ import annotations

import asyncio
import dataclasses

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QSplitter, QTabWidget, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.base.units import format_gib
from llmdesk.core.fit.memory_model import LaunchSettings, ModelSpec, plan_fit
from llmdesk.core.hub.model_source import load_model_spec
from llmdesk.core.machine.gpu_catalogue import CATALOGUE
from llmdesk.core.machine.gpus import GpuScan
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.fit.panel import FitPanel
from llmdesk.ui.hub.downloads_view import DownloadsView
from llmdesk.ui.hub.library_view import LibraryView
from llmdesk.ui.hub.model_view import ModelView
from llmdesk.ui.hub.search_view import SearchView
from llmdesk.ui.widgets import browse_button, page_header

THIS_MACHINE = ""
NONE_CHOSEN = "-"  # no GPU here and none chosen to plan for: verdicts wait for a choice


class ModelsPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.spec: ModelSpec | None = None
        self._user_chose_gpu = False

        self.source = QLineEdit()
        self.source.setPlaceholderText("Qwen/Qwen2.5-7B-Instruct, a model folder, or a config.json")
        self.source.returnPressed.connect(self.check)
        self.check_button = design.action(QPushButton("Check fit"), "mdi6.scale-balance")
        self.check_button.setDefault(True)
        self.check_button.clicked.connect(self.check)
        self.gpu = QComboBox()
        self.gpu_count = QSpinBox()
        self.gpu_count.setRange(1, 8)
        self.context = QSpinBox()
        self.context.setRange(0, 10_485_760)
        self.context.setSingleStep(4096)
        self.context.setSpecialValueText("the model's maximum")
        self.kv_dtype = QComboBox()
        self.kv_dtype.addItem("as the model", "auto")
        self.kv_dtype.addItem("FP8", "fp8")
        self.quantize = QComboBox()
        self.quantize.addItem("no", "")
        self.quantize.addItem("FP8 on the fly", "fp8")
        self.quantize.addItem("bitsandbytes 4-bit", "bitsandbytes")
        for combo, chars in ((self.gpu, 16), (self.kv_dtype, 8), (self.quantize, 8)):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(chars)  # the row must shrink with the window
        self.gpu_count.setMaximumWidth(60)
        self.context.setMaximumWidth(170)
        self.gpu.setMaximumWidth(420)
        self.panel = FitPanel()

        # What every verdict on this page is judged against: two rows, so the page stays narrow.
        target = QVBoxLayout()
        for cells in ((("For", self.gpu), ("GPUs", self.gpu_count), ("Quantize", self.quantize)),
                      (("Context", self.context), ("KV cache", self.kv_dtype))):
            row = QHBoxLayout()
            for label, widget in cells:
                row.addWidget(QLabel(label))
                row.addWidget(widget, 3 if widget is self.gpu else 0)  # the GPU's long name takes the room
            row.addStretch(1)
            target.addLayout(row)

        self.search = SearchView(ctx.tasks)
        self.model_view = ModelView(ctx.tasks, self.fit_target)
        self.search.model_chosen.connect(self.model_view.show_model)
        self.model_view.download_requested.connect(self._download)
        self.downloads = DownloadsView(ctx.downloads)
        self.library = LibraryView(ctx.tasks, scan=ctx.scan_library, added_folders=lambda: ctx.settings.model_folders)
        self.library.serve_requested.connect(ctx.serve_requested)
        self.downloads.serve_requested.connect(ctx.serve_requested)
        self.library.find_requested.connect(self._find)
        self.library.folder_added.connect(self._add_folder)
        self.library.folder_removed.connect(self._remove_folder)
        find = QSplitter(Qt.Orientation.Horizontal)
        find.addWidget(self.search)
        find.addWidget(self.model_view)
        find.setSizes([430, 570])
        find.setMinimumWidth(320)  # below the two panes' sum: they squeeze rather than widen the window

        self.browse = browse_button(self.source)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source, 1)
        source_row.addWidget(self.browse)
        source_row.addWidget(self.check_button)
        check = QWidget()
        check_layout = QVBoxLayout(check)
        form = QFormLayout()
        form.addRow("Model", source_row)
        check_layout.addLayout(form)
        check_layout.addWidget(self.panel)
        check_layout.addStretch()

        self.tabs = QTabWidget()
        self.tabs.addTab(find, "Find")
        self.tabs.addTab(self.downloads, "Downloads")
        self.tabs.addTab(self.library, "On this computer")
        self.tabs.addTab(check, "Check a model")
        self.tabs.currentChanged.connect(self._tab_changed)

        layout = QVBoxLayout(self)
        layout.addWidget(page_header("Models", "Find a model and the variant that fits. Every verdict is for "
                                               "vLLM on the GPUs below, before anything is downloaded."))
        layout.addLayout(target)
        layout.addWidget(self.tabs, 1)

        self._fill_gpus(None)
        ctx.machine.changed.connect(self._fill_gpus)
        ctx.fit_gpus_changed.connect(lambda: self._user_chose_gpu or self._fill_gpus(ctx.machine.scan))
        self.gpu.activated.connect(self._gpu_chosen)
        for combo in (self.gpu, self.kv_dtype, self.quantize):
            combo.currentIndexChanged.connect(self.reevaluate)
        for spin in (self.gpu_count, self.context):
            spin.valueChanged.connect(self.reevaluate)

    def _download(self, repo_id: str) -> None:
        self.ctx.download(repo_id)
        self.tabs.setCurrentWidget(self.downloads)

    def _add_folder(self, folder: str) -> None:
        if folder not in self.ctx.settings.model_folders:
            new = dataclasses.replace(self.ctx.settings, model_folders=[*self.ctx.settings.model_folders, folder])
            self.ctx.tasks.run(self._save_and_rescan(new), "adding a models folder")

    def _remove_folder(self, folder: str) -> None:
        kept = [f for f in self.ctx.settings.model_folders if f != folder]
        self.ctx.tasks.run(self._save_and_rescan(dataclasses.replace(self.ctx.settings, model_folders=kept)),
                           "removing a folder from the list")

    async def _save_and_rescan(self, new) -> None:
        await self.ctx.save_settings(new)
        self.library.refresh()

    def _find(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.search.query.setFocus()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.library:
            self.library.refresh()

    def check(self) -> None:
        source = self.source.text().strip()
        if not source:
            self.panel.show_message("Type a Hugging Face repo id, or the path of a model folder or config.json.")
            return
        self.check_button.setEnabled(False)
        self.panel.show_message(f"Reading {source}…")
        self.ctx.tasks.run(self._load(source), "checking whether the model fits")

    async def _load(self, source: str) -> None:
        try:
            self.spec = await asyncio.to_thread(load_model_spec, source)
        except ProblemError as exc:  # expected: typo, gated model, no network — shown in place
            self.spec = None
            self.panel.show_problem(exc.problem)
            return
        finally:
            self.check_button.setEnabled(True)
        self.reevaluate()

    def fit_target(self) -> tuple[list, LaunchSettings]:
        settings = LaunchSettings(
            gpu_memory_utilization=self.ctx.settings.gpu_memory_utilization,
            max_model_len=self.context.value() or None, kv_cache_dtype=self.kv_dtype.currentData(),
            quantization=self.quantize.currentData() or None)
        return self._gpus(), settings

    def reevaluate(self) -> None:
        """The GPUs or settings changed: the fit is pure arithmetic, so it is redone at once."""
        if hasattr(self, "model_view"):
            self.model_view.refit()
        if self.spec is None:
            return
        gpus, settings = self.fit_target()
        try:
            self.panel.show_report(plan_fit(self.spec, gpus, settings))
        except ProblemError as exc:
            self.panel.show_problem(exc.problem)

    def _gpus(self):
        key = self.gpu.currentData()
        count = self.gpu_count.value()
        scan = self.ctx.machine.scan
        if key == THIS_MACHINE and scan and scan.gpus:
            return list(scan.gpus[:count])
        entry = next((g for g in CATALOGUE if g.key == key), None)
        return [entry.as_gpu_info(i) for i in range(count)] if entry else []  # none chosen: no silent guess

    def _gpu_chosen(self) -> None:
        key = self.gpu.currentData()
        scan = self.ctx.machine.scan
        if scan is not None and not scan.gpus and key not in (THIS_MACHINE, NONE_CHOSEN):
            self.ctx.set_planned_gpu(key)  # no GPU here: what this page plans for, every page plans for
        else:
            self._user_chose_gpu = True

    def _fill_gpus(self, scan: GpuScan | None) -> None:
        """This machine's GPUs first when it has any, else the GPU the user plans for."""
        current = self.gpu.currentData()
        has_gpus = scan is not None and bool(scan.gpus)
        self.gpu.blockSignals(True)
        self.gpu.clear()
        if has_gpus:
            self.gpu.addItem(f"This machine: {len(scan.gpus)}× {scan.gpus[0].name}", THIS_MACHINE)
        elif not self.ctx.settings.planning_gpu:
            self.gpu.addItem("No GPU here: choose one to plan for…", NONE_CHOSEN)
        for gpu in CATALOGUE:
            self.gpu.addItem(f"{gpu.name} ({format_gib(gpu.memory_total_bytes, 0)})", gpu.key)
        if self._user_chose_gpu:
            wanted = current
        else:
            wanted = THIS_MACHINE if has_gpus else (self.ctx.settings.planning_gpu or NONE_CHOSEN)
            if has_gpus:
                self.gpu_count.setValue(len(scan.gpus))
        self.gpu.setCurrentIndex(max(0, self.gpu.findData(wanted)))
        self.gpu.blockSignals(False)
        self.reevaluate()
