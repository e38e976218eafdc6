"""Models: will a model fit, before anything is downloaded. Search and downloads come next."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from llmdesk.core.errors import ProblemError
from llmdesk.core.fit import LaunchSettings, ModelSpec, plan_fit
from llmdesk.core.gpu_catalogue import CATALOGUE
from llmdesk.core.gpus import GpuScan
from llmdesk.core.model_source import load_model_spec
from llmdesk.core.units import format_gib
from llmdesk.ui.context import AppContext
from llmdesk.ui.fit_panel import FitPanel
from llmdesk.ui.pages.planned import PlannedPage
from llmdesk.ui.widgets import page_header, section_title

THIS_MACHINE = ""
COMING = PlannedPage("models", "Models", "", (
    "Search text-generation models as you type; sort by downloads, likes or recency.",
    "Every variant of a model (BF16, FP8, AWQ, GPTQ, compressed-tensors, bitsandbytes, MXFP4/NVFP4), "
    "each with this verdict, best fit first.",
    "Downloads with progress, speed, ETA, cancel and resume; gated models with a token kept in the keyring.",
    "The models already on disk, with their size, and a button to serve one.",
))


class ModelsPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.spec: ModelSpec | None = None
        self._user_chose_gpu = False

        self.source = QLineEdit()
        self.source.setPlaceholderText("Qwen/Qwen2.5-7B-Instruct, a model folder, or a config.json")
        self.source.returnPressed.connect(self.check)
        self.check_button = QPushButton("Check fit")
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
        self.kv_dtype.addItem("Same as the model", "auto")
        self.kv_dtype.addItem("FP8 (half the memory)", "fp8")
        self.quantize = QComboBox()
        self.quantize.addItem("No (use the checkpoint as it is)", "")
        self.quantize.addItem("FP8 on the fly", "fp8")
        self.quantize.addItem("bitsandbytes 4-bit on the fly", "bitsandbytes")
        for spin in (self.gpu_count, self.context):
            spin.setMaximumWidth(200)
        for combo in (self.gpu, self.kv_dtype, self.quantize):
            combo.setMaximumWidth(420)
        self.panel = FitPanel()

        source_row = QHBoxLayout()
        source_row.addWidget(self.source, 1)
        source_row.addWidget(self.check_button)
        form = QFormLayout()
        form.addRow("Model", source_row)
        form.addRow("GPU", self.gpu)
        form.addRow("How many", self.gpu_count)
        form.addRow("Context", self.context)
        form.addRow("KV cache", self.kv_dtype)
        form.addRow("Quantize", self.quantize)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(page_header("Models", "Will it fit? An honest answer for vLLM before anything is "
                                               "downloaded: only the model's config and file list are read."))
        layout.addLayout(form)
        layout.addWidget(self.panel)
        layout.addWidget(section_title("Coming next on this page"))
        for feature in COMING.features:
            line = QLabel(f"•  {feature}")
            line.setWordWrap(True)
            layout.addWidget(line)
        layout.addStretch()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self._fill_gpus(None)
        ctx.machine.changed.connect(self._fill_gpus)
        self.gpu.activated.connect(self._gpu_chosen)
        for combo in (self.gpu, self.kv_dtype, self.quantize):
            combo.currentIndexChanged.connect(self.reevaluate)
        for spin in (self.gpu_count, self.context):
            spin.valueChanged.connect(self.reevaluate)

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

    def reevaluate(self) -> None:
        """Settings changed: the fit is pure arithmetic, so it is redone at once."""
        if self.spec is None:
            return
        settings = LaunchSettings(
            gpu_memory_utilization=self.ctx.settings.gpu_memory_utilization,
            max_model_len=self.context.value() or None, kv_cache_dtype=self.kv_dtype.currentData(),
            quantization=self.quantize.currentData() or None)
        try:
            self.panel.show_report(plan_fit(self.spec, self._gpus(), settings))
        except ProblemError as exc:
            self.panel.show_problem(exc.problem)

    def _gpus(self):
        key = self.gpu.currentData()
        count = self.gpu_count.value()
        scan = self.ctx.machine.scan
        if key == THIS_MACHINE and scan and scan.gpus:
            return list(scan.gpus[:count])
        entry = next(g for g in CATALOGUE if g.key == (key or "h100-80gb"))
        return [entry.as_gpu_info(i) for i in range(count)]

    def _gpu_chosen(self) -> None:
        self._user_chose_gpu = True

    def _fill_gpus(self, scan: GpuScan | None) -> None:
        """This machine's GPUs first when it has any, else the GPU the user plans for."""
        current = self.gpu.currentData()
        has_gpus = scan is not None and bool(scan.gpus)
        self.gpu.blockSignals(True)
        self.gpu.clear()
        if has_gpus:
            self.gpu.addItem(f"This machine: {len(scan.gpus)}× {scan.gpus[0].name}", THIS_MACHINE)
        for gpu in CATALOGUE:
            self.gpu.addItem(f"{gpu.name} ({format_gib(gpu.memory_total_bytes, 0)})", gpu.key)
        if self._user_chose_gpu:
            wanted = current
        else:
            wanted = THIS_MACHINE if has_gpus else (self.ctx.settings.planning_gpu or "h100-80gb")
            if has_gpus:
                self.gpu_count.setValue(len(scan.gpus))
        self.gpu.setCurrentIndex(max(0, self.gpu.findData(wanted)))
        self.gpu.blockSignals(False)
        self.reevaluate()
