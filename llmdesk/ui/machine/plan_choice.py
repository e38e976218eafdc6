"""The GPU to plan for when this machine has none: one setting (planning_gpu), chosen on any page."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QWidget

from llmdesk.core.base.units import format_gib
from llmdesk.core.machine.gpu_catalogue import CATALOGUE


class PlanGpuChoice(QComboBox):
    """The catalogue, after a first entry that means "none chosen" (its data is "")."""

    def __init__(self, none_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.addItem(none_text, "")
        for gpu in CATALOGUE:
            self.addItem(f"{gpu.name} ({format_gib(gpu.memory_total_bytes, 0)})", gpu.key)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(16)  # long GPU names must not widen the page

    def show_key(self, key: str) -> None:
        """Select `key` without telling anyone (it came from the settings)."""
        self.blockSignals(True)
        self.setCurrentIndex(max(0, self.findData(key)))
        self.blockSignals(False)
