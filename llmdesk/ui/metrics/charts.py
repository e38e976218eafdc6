"""Rolling charts of the recorded figures (pyqtgraph; imported only when the Dashboard is first shown).

Every curve is made once and fed with setData; the x axis is seconds before now. Antialiasing is
off, curves are clipped to the view and peak-downsampled, and y ranges move in 1-2-5 steps so the
axes are not laid out again at every redraw: a redraw of 24 curves with 15 minutes of history stays
a few milliseconds of the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from llmdesk.core.base.units import GIB
from llmdesk.ui import design
from llmdesk.ui.plotting import apply_palette, picture_plot
from llmdesk.ui.theme import CHART_COLORS as COLORS

pg.setConfigOptions(antialias=False, background=None, foreground="k")

RANGES_S = (60, 300, 900)
COLUMNS = 3
MIN_CHART_HEIGHT = 140
NOW_ROOM = 0.06  # of the range
_TICKS = {60: (15, 5), 300: (60, 30), 900: (300, 60)}  # major, minor spacing (s) per range


@dataclass(frozen=True)
class Line:
    key: str  # a MetricsWindow series key
    label: str
    scale: float = 1.0


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    unit: str
    lines: tuple[Line, ...] = ()  # empty: one line per GPU
    y_max: float | None = None  # a fixed top (percentages); None: follows the data
    y_floor: float = 1.0  # the smallest top when following the data


SPECS = (
    ChartSpec("throughput", "Throughput", "tok/s", (Line("generation_tokens_per_s", "generation"),
                                                    Line("prompt_tokens_per_s", "prompt")), y_floor=10.0),
    ChartSpec("requests", "Requests", "", (Line("requests_running", "running"),
                                           Line("requests_waiting", "waiting")), y_floor=4.0),
    ChartSpec("kv_cache", "KV cache", "% used", (Line("kv_cache_usage", "used", 100.0),), y_max=100.0),
    ChartSpec("latency", "Latency", "ms", (Line("ttft_p50_s", "TTFT p50", 1000.0),
                                           Line("ttft_p95_s", "p95", 1000.0),
                                           Line("itl_p50_s", "ITL p50", 1000.0)), y_floor=10.0),
    ChartSpec("gpu_util", "GPU utilisation", "%", y_max=100.0),
    ChartSpec("gpu_memory", "GPU memory", "GiB"),
)


def nice_ceiling(value: float, floor: float = 1.0) -> float:
    """The next 1, 2 or 5 × 10^k at or above value (at least floor)."""
    if not value > floor or math.isinf(value):
        return floor
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


class AgoAxis(pg.AxisItem):
    """Seconds before now: "−45 s", "−5 min", "now", ticks at round steps of the chosen range."""

    def __init__(self):
        super().__init__("bottom")
        self.range_s = 60

    def tickSpacing(self, minVal, maxVal, size):
        major, minor = _TICKS.get(self.range_s, (self.range_s / 4, self.range_s / 12))
        return [(major, 0), (minor, 0)]

    def tickStrings(self, values, scale, spacing):
        major = _TICKS.get(self.range_s, (self.range_s / 4, 0))[0]
        out = []
        for v in values:
            if spacing != major:
                out.append("")
            elif abs(v) < 1e-6:
                out.append("now")
            elif self.range_s <= 60:
                out.append(f"−{-v:.0f} s")
            else:
                out.append(f"−{-v / 60:.0f} min")
        return out


class Chart(QWidget):
    def __init__(self, spec: ChartSpec, palette: QPalette):
        super().__init__()
        self.spec = spec
        self.y_max = spec.y_max
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        design.role(self.title, "small")
        self.title.setMinimumWidth(1)
        self.title.setWordWrap(True)  # a narrow chart puts its legend on a second line
        self.axis = AgoAxis()
        self.plot = picture_plot(MIN_CHART_HEIGHT - 18, axisItems={"bottom": self.axis})
        item = self.plot.getPlotItem()
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.getAxis("left").setWidth(38)
        item.layout.setContentsMargins(0, 2, 4, 0)
        self.curves: list[pg.PlotDataItem] = []
        self.names: list[str] = []
        for line in spec.lines:
            self._add_curve(line.label)
        # Empty, the y axis starts at 0 up to the chart's floor, not pyqtgraph's 0.5-3.5 guess.
        self._y_top = nice_ceiling(0.0, spec.y_floor)
        self.plot.setYRange(0, self._y_top, padding=0)
        self.set_range(60)
        self.apply_palette(palette)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        self._show_title()

    def _add_curve(self, name: str) -> None:
        color = COLORS[len(self.curves) % len(COLORS)]
        curve = self.plot.plot(pen=pg.mkPen(color, width=1), connect="finite", skipFiniteCheck=False)
        self.curves.append(curve)
        self.names.append(name)

    def ensure_lines(self, names: list[str]) -> None:
        """Per-GPU charts: one curve for each GPU seen."""
        if names == self.names:
            return
        while len(self.curves) < len(names):
            self._add_curve(names[len(self.curves)])
        while len(self.curves) > len(names):
            self.plot.removeItem(self.curves.pop())
        self.names = list(names)
        self._show_title()

    def _show_title(self) -> None:
        unit = f" <span style='font-weight: 400;'>{self.spec.unit}</span>" if self.spec.unit else ""
        if self.spec.lines:
            legend = " ".join(f"<span style='color: {COLORS[i % len(COLORS)]};'>■</span>&nbsp;{name}"
                              for i, name in enumerate(self.names))
        else:  # one line per GPU: its number in its colour
            legend = " ".join(f"<b style='color: {COLORS[i % len(COLORS)]};'>{name}</b>"
                              for i, name in enumerate(self.names))
        self.title.setText(f"<b>{self.spec.title}</b>{unit}&nbsp;&nbsp;&nbsp;{legend}")

    def set_range(self, range_s: int) -> None:
        self.axis.range_s = range_s
        # A little room right of "now": with a grid, pyqtgraph drops a tick label that would overhang.
        self.plot.setXRange(-range_s, range_s * NOW_ROOM, padding=0)
        self.axis.picture = None  # the tick texts depend on the range
        self.axis.update()

    def set_data(self, x: np.ndarray, ys: list[np.ndarray]) -> None:
        top = self.y_max
        if top is None:
            peak = max((float(np.nanmax(y)) for y in ys if y.size and not np.all(np.isnan(y))), default=0.0)
            top = nice_ceiling(peak * 1.05, self.spec.y_floor)
        if top != self._y_top:
            self.plot.setYRange(0, top, padding=0)
            self._y_top = top
        for curve, y in zip(self.curves, ys):
            curve.setData(x, y, connect="finite")

    def clear(self) -> None:
        for curve in self.curves:
            curve.setData([], [])

    def points(self) -> list[int]:
        return [0 if c.xData is None else len(c.xData) for c in self.curves]

    def apply_palette(self, palette: QPalette) -> None:
        apply_palette(self.plot, palette)


class ChartsPanel(QWidget):
    """The six charts in a 3-column grid; ``add_next()`` builds them one at a time."""

    def __init__(self, palette: QPalette, range_s: int = 60):
        super().__init__()
        self.range_s = range_s
        self.charts: dict[str, Chart] = {}
        self._palette = palette
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(14)
        self.grid.setVerticalSpacing(8)
        self._generation = None
        # Empty cells first: each chart then takes the place of one without moving the others,
        # so adding it repaints that cell only.
        self._cells: list[QWidget] = []
        for n in range(len(SPECS)):
            cell = QWidget()
            cell.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
            cell.setMinimumHeight(MIN_CHART_HEIGHT)
            self.grid.addWidget(cell, n // COLUMNS, n % COLUMNS)
            self._cells.append(cell)
        for row in range((len(SPECS) + COLUMNS - 1) // COLUMNS):
            self.grid.setRowStretch(row, 1)
        for col in range(COLUMNS):
            self.grid.setColumnStretch(col, 1)

    @property
    def complete(self) -> bool:
        return len(self.charts) == len(SPECS)

    def add_next(self) -> bool:
        """Build one more chart (each costs several ms); False when all are there."""
        if self.complete:
            return False
        spec = SPECS[len(self.charts)]
        chart = Chart(spec, self._palette)
        chart.set_range(self.range_s)
        cell = self._cells[len(self.charts)]
        self.grid.replaceWidget(cell, chart)
        cell.deleteLater()
        self.charts[spec.key] = chart
        return True

    def set_range(self, range_s: int) -> None:
        self.range_s = range_s
        for chart in self.charts.values():
            chart.set_range(range_s)

    def apply_palette(self, palette: QPalette) -> None:
        self._palette = palette
        for chart in self.charts.values():
            chart.apply_palette(palette)

    def points(self) -> dict[str, list[int]]:
        return {key: chart.points() for key, chart in self.charts.items()}

    def draw(self, recorder, now: float) -> None:
        """Feed every chart at once (tests; the page draws step by step)."""
        for _ in self.draw_steps(recorder, now):
            pass

    def draw_steps(self, recorder, now: float) -> Iterator[None]:
        """Feed the charts the last ``range_s`` (plus a little) of what the recorder holds, one chart
        per step, so that each is painted before the next is fed and no turn of the loop paints six."""
        if recorder.generation != self._generation:  # another server: its history starts empty
            self._generation = recorder.generation
            for chart in self.charts.values():
                chart.clear()
        since = self.range_s + 5.0
        window = recorder.window
        for chart in list(self.charts.values()):
            if not chart.spec.lines:
                continue
            x = None
            ys = []
            for line in chart.spec.lines:
                times, values = window.series(line.key, since_s=since)
                if x is None:
                    x = np.asarray(times, dtype=float) - now
                y = np.asarray(values, dtype=float)
                ys.append(y * line.scale if line.scale != 1.0 else y)
            chart.set_data(x, ys)
            yield
        yield from self._draw_gpus(recorder.gpus, now, since)

    def _draw_gpus(self, gpus, now: float, since: float) -> Iterator[None]:
        util, memory = self.charts.get("gpu_util"), self.charts.get("gpu_memory")
        names = [str(i) for i in range(len(gpus.names))]
        start = gpus.since(now - since)
        x = np.asarray(gpus.times[start:], dtype=float) - now
        for chart, rows, scale in ((util, gpus.util, 1.0), (memory, gpus.memory_used, 1.0 / GIB)):
            if chart is None:
                continue
            chart.ensure_lines(names)
            if not names:
                chart.clear()
                continue
            table = np.asarray(rows[start:], dtype=float).reshape(-1, len(names))
            if scale != 1.0:
                table = table * scale
            if chart is memory and gpus.memory_total:
                chart.y_max = max(gpus.memory_total) / GIB
            chart.set_data(x, [table[:, i] for i in range(len(names))])
            yield
