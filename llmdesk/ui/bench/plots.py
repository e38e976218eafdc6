"""The Benchmark page's three plots (pyqtgraph; imported in a worker thread the first time the page is
shown, as the Dashboard's charts are):

- output throughput against load (concurrency, or request rate), the knee marked;
- TTFT and TPOT, p50 and p99, against load, the service-level limits drawn as dotted lines;
- tokens per second per user against total output tokens per second (the trade-off curve), each
  point labelled with its load.

The shown run is drawn in full colour; runs picked for comparison add their throughput and
trade-off curves in other colours. Load axes are log2 (1, 2, 4 … 64).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from llmdesk.ui.plotting import apply_palette, picture_plot
from llmdesk.ui.theme import CHART_COLORS
from llmdesk.ui import design

PLOT_HEIGHT = 210


@dataclass(frozen=True)
class Series:
    """One run's levels as drawn: its name and its saved level dicts."""

    name: str
    levels: Sequence[Mapping]
    knee: float | None = None


# One made-up level drawn once when the plots are made: pyqtgraph pays its first-use costs (symbols,
# text items) then, while the page is idle, not when the first real level ends (a 60 ms stall).
WARM_UP = Series("", ({"concurrency": 1, "completed": 1, "output_throughput": 1.0, "ttft_ms": {"p50": 1.0, "p99": 1.0},
                       "tpot_ms": {"p50": 1.0, "p99": 1.0}},), knee=1)


def load_of(level: Mapping) -> float:
    return float(level.get("concurrency") or level.get("rate") or 0)


def per_user_tokens_per_s(level: Mapping) -> float | None:
    """What one user sees: 1000 / median TPOT (ms); None for a level without decode steps."""
    tpot = (level.get("tpot_ms") or {}).get("p50") or 0
    return 1000.0 / tpot if tpot > 0 else None


class _Plot(QWidget):
    def __init__(self, title: str, unit: str, x_label: str, *, log_x: bool):
        super().__init__()
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.title.setMinimumWidth(1)
        design.role(self.title, "small")
        # Two lines, always: a legend that wraps must not resize the plot, or all three plots are
        # laid out and painted again (17 paints and a 50 ms stall at the first level).
        self.title.setFixedHeight(2 * self.title.fontMetrics().lineSpacing() + 2)
        self.title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
        self._title, self._unit = title, unit
        self.plot = picture_plot(PLOT_HEIGHT - 20)
        item = self.plot.getPlotItem()
        self.log_x = log_x
        item.setLogMode(x=log_x, y=False)
        item.getAxis("left").setWidth(46)
        item.setLabel("bottom", x_label)
        item.layout.setContentsMargins(0, 2, 6, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        self.set_legend([])

    def set_legend(self, entries: list[tuple[str, str]]) -> None:
        unit = f" <span style='font-weight: 400;'>{self._unit}</span>" if self._unit else ""
        legend = " ".join(f"<span style='color: {color};'>■</span>&nbsp;{_escape(name)}" for name, color in entries)
        self.title.setText(f"<b>{self._title}</b>{unit}&nbsp;&nbsp;&nbsp;{legend}")

    def clear(self) -> None:
        self.plot.getPlotItem().clear()

    def show_loads(self, loads: Sequence[float]) -> None:
        """Ticks at the loads themselves (1, 2, 4 … 64): pyqtgraph's own log ticks label every minor step."""
        marks = [(math.log10(x), f"{x:g}") for x in sorted(set(loads)) if x > 0]
        self.plot.getPlotItem().getAxis("bottom").setTicks([marks, []] if marks else None)

    def fit_from_zero(self, top: float, right: float | None = None) -> None:
        """y from 0: an axis from 398 to 401 makes a flat line look like a cliff. ``right``: x from 0 too
        (with one level, x ran from 201.9 to 202.7 and its ticks were printed over each other)."""
        self.plot.getPlotItem().setYRange(0, top * 1.1 if top > 0 else 1, padding=0)
        if right is not None:
            self.plot.getPlotItem().setXRange(0, right * 1.08 if right > 0 else 1, padding=0)

    def set_empty(self, empty: bool) -> None:
        """No level yet: a word in the middle. The axes stay (hiding them made the first level's drawing
        lay the plots out again: a 60 ms stall)."""
        item = self.plot.getPlotItem()
        if empty:
            hint = pg.TextItem("appears as levels finish", color=self.text_color, anchor=(0.5, 0.5))
            hint.setPos(0.5, 0.5)  # view coordinates: the log axis's 1 to 10 is 0 to 1 here too
            item.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            item.addItem(hint)
        else:
            item.enableAutoRange()

    def apply_palette(self, palette: QPalette) -> None:
        self.text_color = apply_palette(self.plot, palette)


class BenchPlots(QWidget):
    def __init__(self, palette: QPalette, *, rate_mode: bool = False):
        super().__init__()
        x_label = "requests/s" if rate_mode else "concurrent requests"
        self.throughput = _Plot("Throughput", "output tok/s", x_label, log_x=True)
        self.latency = _Plot("Latency", "ms · p50 solid, p99 dashed", x_label, log_x=True)
        self.tradeoff = _Plot("Per user against total", "tok/s per user", "total output tok/s", log_x=False)
        self.plots = (self.throughput, self.latency, self.tradeoff)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        for column, plot in enumerate(self.plots):
            grid.addWidget(plot, 0, column)
            grid.setColumnStretch(column, 1)
        self.setMinimumHeight(PLOT_HEIGHT)
        self.apply_palette(palette)
        self.drawn: dict[str, int] = {}  # plot name → curves drawn (for tests)

    def apply_palette(self, palette: QPalette) -> None:
        self._palette = palette
        for plot in self.plots:
            plot.apply_palette(palette)

    def show_runs(self, shown: Series | None, compared: Sequence[Series] = (), slo_ms: Mapping[str, float] | None = None) -> None:
        """All three plots at once (tests, pictures)."""
        for _ in self.draw_steps(shown, compared, slo_ms):
            pass

    def draw_steps(self, shown: Series | None, compared: Sequence[Series] = (),
                   slo_ms: Mapping[str, float] | None = None) -> Iterator[None]:
        """One plot per step: feeding and painting all three at once holds the loop for 40-60 ms on a
        2-core machine; the page runs one step per turn of the loop."""
        runs = [(i, series, sorted((lv for lv in series.levels if lv.get("completed")), key=load_of))
                for i, series in enumerate(([shown] if shown is not None else []) + list(compared))]
        runs = [(i, series, levels) for i, series, levels in runs if levels]
        curves = {"throughput": 0, "latency": 0, "tradeoff": 0}
        legend = [(series.name, CHART_COLORS[i % len(CHART_COLORS)]) for i, series, _ in runs]
        if not runs:
            for plot in self.plots:
                plot.clear()
                plot.set_empty(True)
                plot.set_legend([])
            self.drawn = curves
            yield
            return

        self.throughput.clear()
        self.throughput.set_empty(False)  # each plot in its own step: one plot laid out and painted per step
        for i, series, levels in runs:
            color = CHART_COLORS[i % len(CHART_COLORS)]
            self.throughput.plot.plot([load_of(lv) for lv in levels], [lv["output_throughput"] for lv in levels],
                                      pen=pg.mkPen(color, width=2), symbol="o" if i == 0 else "t", symbolSize=6,
                                      symbolBrush=color, symbolPen=None)
            curves["throughput"] += 1
            if i == 0:
                self._knee(series.knee, color)
        all_loads = [load_of(lv) for _, _, levels in runs for lv in levels]
        self.throughput.show_loads(all_loads)
        self.throughput.fit_from_zero(max((lv["output_throughput"] for _, _, levels in runs for lv in levels), default=0))
        self.throughput.set_legend(legend)
        yield

        self.latency.clear()
        self.latency.set_empty(False)
        if runs and runs[0][0] == 0 and shown is not None:
            levels = runs[0][2]
            self._latency(levels, [load_of(lv) for lv in levels], slo_ms or {})
            self.latency.show_loads([load_of(lv) for lv in levels])
            curves["latency"] = 4
        else:
            self.latency.set_legend([])
        yield

        self.tradeoff.clear()
        self.tradeoff.set_empty(False)
        for i, series, levels in runs:
            color = CHART_COLORS[i % len(CHART_COLORS)]
            points = [(lv["output_throughput"], per_user_tokens_per_s(lv), load_of(lv)) for lv in levels]
            points = [p for p in points if p[1] is not None]
            if not points:
                continue
            self.tradeoff.plot.plot([p[0] for p in points], [p[1] for p in points], pen=pg.mkPen(color, width=2),
                                    symbol="o" if i == 0 else "t", symbolSize=6, symbolBrush=color, symbolPen=None)
            curves["tradeoff"] += 1
            if i == 0:
                for total, per_user, load in points:
                    label = pg.TextItem(f"{load:g}", color=self._palette.color(QPalette.ColorRole.Text), anchor=(0, 1))
                    label.setPos(total, per_user)
                    self.tradeoff.plot.addItem(label)
        per_user = [p for _, _, levels in runs for lv in levels if (p := per_user_tokens_per_s(lv)) is not None]
        totals = [lv["output_throughput"] for _, _, levels in runs for lv in levels
                  if per_user_tokens_per_s(lv) is not None]
        # the loads' labels stand above their points: room for a line of text at the top
        self.tradeoff.fit_from_zero(max(per_user, default=0) * 1.1, max(totals, default=0))
        self.tradeoff.set_legend(legend[:4])
        self.drawn = curves
        yield

    def _latency(self, levels: Sequence[Mapping], loads: list[float], slo_ms: Mapping[str, float]) -> None:
        entries = []
        for (metric, part, label), color, style in zip(
                (("ttft_ms", "p50", "TTFT p50"), ("ttft_ms", "p99", "TTFT p99"), ("tpot_ms", "p50", "TPOT p50"),
                 ("tpot_ms", "p99", "TPOT p99")),
                (CHART_COLORS[0], CHART_COLORS[0], CHART_COLORS[1], CHART_COLORS[1]),
                (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine)):
            values = [float((lv.get(metric) or {}).get(part) or 0) for lv in levels]
            self.latency.plot.plot(loads, values, pen=pg.mkPen(color, width=2, style=style))
            entries.append((label.split()[0], color))
        tops = [float((lv.get(m) or {}).get("p99") or 0) for lv in levels for m in ("ttft_ms", "tpot_ms")]
        self.latency.fit_from_zero(max(tops + [v for k, v in slo_ms.items() if k in ("ttft", "tpot")], default=0))
        for key, color in (("ttft", CHART_COLORS[0]), ("tpot", CHART_COLORS[1])):
            if key in slo_ms:
                line = pg.InfiniteLine(pos=slo_ms[key], angle=0, pen=pg.mkPen(color, width=1, style=Qt.PenStyle.DotLine))
                self.latency.plot.addItem(line)
        self.latency.set_legend([entries[0], entries[2]])  # TTFT and TPOT; the line style tells p50 from p99

    def _knee(self, knee: float | None, color: str) -> None:
        if not knee or knee <= 0:
            return
        line = pg.InfiniteLine(pos=math.log10(knee), angle=90,
                               pen=pg.mkPen(self._palette.color(QPalette.ColorRole.Text), width=1, style=Qt.PenStyle.DashLine),
                               label=f"knee {knee:g}", labelOpts={"position": 0.9, "color": color})
        self.throughput.plot.addItem(line)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
