"""Machine: the GPUs this computer has (or the one the user plans for) and the doctor's checks."""

from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFrame, QGridLayout, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

from llmdesk.core.base.units import format_gib
from llmdesk.core.doctor.checks import DoctorReport
from llmdesk.core.machine.gpu_catalogue import CATALOGUE
from llmdesk.core.machine.gpus import GpuInfo, GpuScan
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.machine.plan_choice import PlanGpuChoice
from llmdesk.ui.widgets import EmptyState, fill_with_scrolling, page_header, section_title, status_glyph


def clear_layout(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().deleteLater()


class GpuCard(QFrame):
    def __init__(self, gpu: GpuInfo, planned: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(self)
        title = QLabel(f"{'Planning for' if planned else f'GPU {gpu.index}'}: {gpu.name}")
        design.role(title, "subsection")
        grid.addWidget(title, 0, 0, 1, 2)
        grid.addWidget(QLabel("Memory"), 1, 0)
        if planned:  # not in this machine: nothing is "used"; what matters is what CUDA will see
            cuda = gpu.memory_total_bytes - (gpu.memory_reserved_bytes or 0)
            grid.addWidget(QLabel(f"{format_gib(gpu.memory_total_bytes)} ({format_gib(cuda)} as CUDA sees it)"), 1, 1)
        else:
            used = QProgressBar()
            used.setRange(0, 1000)
            used.setValue(round(1000 * gpu.memory_used_bytes / max(gpu.memory_total_bytes, 1)))
            used.setFormat(f"{format_gib(gpu.memory_used_bytes)} used of {format_gib(gpu.memory_total_bytes)}")
            grid.addWidget(used, 1, 1)
        rows = [("Compute capability", ".".join(map(str, gpu.compute_capability)))]
        if not planned:
            rows += [
                ("Free now", format_gib(gpu.memory_free_bytes)),
                ("Driver", f"{gpu.driver_version or '?'} (CUDA {gpu.cuda_driver_version or '?'})"),
                ("Load", _load_text(gpu)),
            ]
        for row, (name, value) in enumerate(rows, start=2):
            grid.addWidget(QLabel(name), row, 0)
            label = QLabel(value)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(label, row, 1)
        grid.setColumnStretch(1, 1)


def _load_text(gpu: GpuInfo) -> str:
    parts = []
    if gpu.utilization_percent is not None:
        parts.append(f"{gpu.utilization_percent}% busy")
    if gpu.temperature_c is not None:
        parts.append(f"{gpu.temperature_c} °C")
    if gpu.power_draw_w is not None:
        limit = f" of {gpu.power_limit_w:.0f} W" if gpu.power_limit_w else ""
        parts.append(f"{gpu.power_draw_w:.0f} W{limit}")
    return ", ".join(parts) or "not reported"


class CheckRow(QWidget):
    def __init__(self, status: str, name: str, summary: str, fix: str | None):
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 2, 0, 2)
        row.addWidget(status_glyph(status), 0, Qt.AlignmentFlag.AlignTop)
        text = QVBoxLayout()
        head = QLabel(f"<b>{name}</b> — {summary}")
        head.setWordWrap(True)
        head.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text.addWidget(head)
        if fix:
            how = QLabel(f"→ {fix}")
            how.setWordWrap(True)
            how.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            text.addWidget(how)
        row.addLayout(text, 1)


class MachinePage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.report: DoctorReport | None = None

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(page_header(
            "This machine", "The NVIDIA GPUs llmdesk can use, and what is ready for serving models."))

        layout.addWidget(section_title("GPUs"))
        self.gpu_message = QLabel("Looking for NVIDIA GPUs…")
        self.gpu_message.setWordWrap(True)
        layout.addWidget(self.gpu_message)
        # no GPU here: what this page shows once there is one, and how to plan for one meanwhile
        self.no_gpu = EmptyState("mdi6.expansion-card-variant")
        self.no_gpu.action.clicked.connect(self._choose_planned)
        self.no_gpu.hide()
        layout.addWidget(self.no_gpu)
        self.gpu_cards = QVBoxLayout()
        layout.addLayout(self.gpu_cards)

        plan_row = QHBoxLayout()
        plan_row.addWidget(QLabel("Plan for:"))
        self.plan_choice = PlanGpuChoice("The GPUs in this machine")
        self.plan_choice.show_key(ctx.settings.planning_gpu)
        self.plan_choice.currentIndexChanged.connect(self._plan_changed)
        ctx.fit_gpus_changed.connect(self._planned_elsewhere)
        plan_row.addWidget(self.plan_choice, 1)
        layout.addLayout(plan_row)

        checks_head = QHBoxLayout()
        checks_head.addWidget(section_title("Checks"))
        checks_head.addStretch()
        self.recheck = design.action(QPushButton("Check again"), "mdi6.refresh")
        self.recheck.clicked.connect(self.refresh)
        checks_head.addWidget(self.recheck)
        layout.addLayout(checks_head)
        self.checks = QVBoxLayout()
        self.checks.addWidget(QLabel("Checking…"))
        layout.addLayout(self.checks)
        layout.addStretch()

        fill_with_scrolling(self, content)

        ctx.machine.changed.connect(self.show_scan)

    def refresh(self) -> None:
        self.recheck.setEnabled(False)
        self.ctx.tasks.run(self._refresh(), "checking this machine")

    async def _refresh(self) -> None:
        try:
            await self.ctx.machine.refresh()
            self.show_report(await self.ctx.run_doctor())
        finally:
            self.recheck.setEnabled(True)

    def show_scan(self, scan: GpuScan) -> None:
        clear_layout(self.gpu_cards)
        self.no_gpu.setVisible(not scan.gpus)
        self.gpu_message.setVisible(bool(scan.gpus))
        if scan.gpus:
            total = sum(g.memory_total_bytes for g in scan.gpus)
            self.gpu_message.setText(
                f"{len(scan.gpus)} NVIDIA GPU{'s' if len(scan.gpus) > 1 else ''}, "
                f"{format_gib(total)} of GPU memory in all."
                + (f"<br><b>{scan.problem.title}</b>: {scan.problem.explanation}" if scan.problem else ""))
            for gpu in scan.gpus:
                self.gpu_cards.addWidget(GpuCard(gpu))
        else:
            self.plan_choice.setItemText(0, "no GPU chosen yet")  # there are none in this machine to plan for
            problem = scan.problem
            planned = bool(self.plan_choice.currentData())
            self.no_gpu.say(problem.title if problem else "No NVIDIA GPU found",
                            (f"{problem.explanation} " if problem else "")
                            + "This page shows each GPU's memory, load and driver once one is found. Meanwhile you "
                            "can find models and see what fits the GPU you plan to use.",
                            "" if planned else "Choose a GPU to plan for")
        self._show_planned()

    def show_report(self, report: DoctorReport) -> None:
        self.report = report
        clear_layout(self.checks)
        for check in report.checks:
            self.checks.addWidget(CheckRow(check.status, check.name, check.summary, check.fix))

    def _show_planned(self) -> None:
        key = self.plan_choice.currentData()
        if key:
            gpu = next(g for g in CATALOGUE if g.key == key)
            self.gpu_cards.addWidget(GpuCard(gpu.as_gpu_info(), planned=True))

    def _choose_planned(self) -> None:
        self.plan_choice.setFocus()
        self.plan_choice.showPopup()

    def _plan_changed(self) -> None:
        if self.ctx.machine.scan is not None:
            self.show_scan(self.ctx.machine.scan)
        self.ctx.set_planned_gpu(self.plan_choice.currentData())

    def _planned_elsewhere(self) -> None:
        """Chosen on another page (or a new scan): show it here too."""
        if self.plan_choice.currentData() != self.ctx.settings.planning_gpu:
            self.plan_choice.show_key(self.ctx.settings.planning_gpu)
            if self.ctx.machine.scan is not None:
                self.show_scan(self.ctx.machine.scan)
