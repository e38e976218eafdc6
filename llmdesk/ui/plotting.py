"""What the Dashboard's charts and the Benchmark page's plots share: a pyqtgraph plot that is only a
picture (the wheel and drags scroll the page, never pan or zoom it) and its colours from the palette.
Imports pyqtgraph (about half a second): only the modules loaded on a page's first show import this."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QSizePolicy


def picture_plot(min_height: int, **kwargs) -> pg.PlotWidget:
    plot = pg.PlotWidget(**kwargs)
    plot.setMinimumHeight(min_height)
    plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
    plot.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    plot.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    return plot


def apply_palette(plot: pg.PlotWidget, palette: QPalette) -> QColor:
    """Background, axes and grid in the palette's colours; returns the text colour used."""
    text = palette.color(QPalette.ColorRole.Text)
    dim = QColor(text)
    dim.setAlpha(150)
    plot.setBackground(palette.color(QPalette.ColorRole.Base))
    item = plot.getPlotItem()
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(dim)
        axis.setTextPen(dim)
    item.showGrid(x=False, y=True, alpha=0.18)
    return QColor(text)
