"""One row per load level: the figures `llmdesk bench` prints, plus what the server's /metrics and the
GPUs said during the level. The knee's row and the rows beyond the limits are marked."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from llmdesk.core.bench.saturation import meets_limits
from llmdesk.ui.widgets import batch_fill

COLUMNS = (
    ("Load", "Concurrent requests, or requests per second in rate mode"),
    ("Done / failed", "Requests completed and failed in the level"),
    ("Output tok/s", "Output tokens per second over the level"),
    ("Total tok/s", "Prompt and output tokens per second"),
    ("TTFT p50 / p99", "Time to first token, ms"),
    ("TPOT p50 / p99", "Time per output token after the first, ms"),
    ("ITL p50", "Gap between streamed chunks, ms"),
    ("E2E p50", "Whole request, ms"),
    ("KV peak", "Highest share of the KV cache in use during the level (the server's /metrics)"),
    ("Waiting peak", "Most requests waiting in the server's queue during the level"),
    ("Watts", "Mean GPU power over the level (NVML)"),
    ("J / token", "GPU energy per output token"),
)


def _ms(value) -> str:
    return "—" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:,.1f}")


def level_cells(level: Mapping) -> list[str]:
    server = level.get("server") or {}
    kv, waiting = server.get("kv_cache_peak"), server.get("waiting_peak")
    ttft, tpot = level.get("ttft_ms") or {}, level.get("tpot_ms") or {}
    load = f"{level['concurrency']}" if level.get("rate") is None else f"{level['rate']:g}/s"
    joules, watts = level.get("energy_j_per_output_token"), level.get("mean_watts")
    return [load, f"{level.get('completed', 0)} / {level.get('failed', 0)}", f"{level.get('output_throughput', 0):,.0f}",
            f"{level.get('total_token_throughput', 0):,.0f}", f"{_ms(ttft.get('p50'))} / {_ms(ttft.get('p99'))}",
            f"{_ms(tpot.get('p50'))} / {_ms(tpot.get('p99'))}", _ms((level.get("itl_ms") or {}).get("p50")),
            _ms((level.get("e2e_ms") or {}).get("p50")), "—" if kv is None else f"{kv:.0%}",
            "—" if waiting is None else f"{waiting:g}", "—" if watts is None else f"{watts:,.0f}",
            "—" if joules is None else f"{joules:.3f}"]


class LevelsTable(QTableWidget):
    def __init__(self):
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels([name for name, _ in COLUMNS])
        for column, (_, tip) in enumerate(COLUMNS):
            self.horizontalHeaderItem(column).setToolTip(tip)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        # A fixed height (the header and eight rows): rows arriving never change the page's layout.
        self.setFixedHeight(self.horizontalHeader().sizeHint().height() + 8 * self.verticalHeader().defaultSectionSize() + 4)

    def show_levels(self, levels: list[Mapping], knee: float | None = None, slo_ms: Mapping | None = None) -> None:
        with batch_fill(self):
            self._fill(levels, knee, slo_ms)

    def _fill(self, levels: list[Mapping], knee: float | None, slo_ms: Mapping | None) -> None:
        self.setRowCount(len(levels))
        for row, level in enumerate(levels):
            load = level.get("concurrency") or level.get("rate")
            bold = knee is not None and load == knee
            beyond = bool(slo_ms) and not meets_limits(level, slo_ms)
            for column, text in enumerate(level_cells(level)):
                item = QTableWidgetItem(text)
                if bold:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                    item.setToolTip("The knee: beyond this level, more load mostly adds waiting")
                elif beyond:
                    item.setToolTip("Beyond the limits set (p99)")
                if column == 0 and beyond:
                    item.setText(text + " ✘")
                self.setItem(row, column, item)
