"""Scrolling a form with the wheel never changes the field under the pointer (issue: the first hour, 8)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication


def wheel(widget, steps: int = -1) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_server_form_and_leaves_the_share_alone(make_window, qtbot):
    window = make_window()
    window.resize(1024, 480)  # short: the form scrolls
    window.show_page("server")
    page = window.server_page
    qtbot.waitUntil(lambda: page.isVisible(), timeout=3000)
    scroll = page.utilization.parentWidget()
    while scroll is not None and not hasattr(scroll, "verticalScrollBar"):
        scroll = scroll.parentWidget()
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0
    before_share, before_quant, before_pos = page.utilization.value(), page.quantization.currentIndex(), bar.value()
    wheel(page.utilization)
    wheel(page.quantization)
    assert page.utilization.value() == before_share and page.quantization.currentIndex() == before_quant
    assert bar.value() > before_pos  # the page scrolled instead
    page.utilization.setFocus()
    qtbot.waitUntil(page.utilization.hasFocus, timeout=2000)
    wheel(page.utilization, steps=1)
    assert page.utilization.value() != before_share  # with focus, the wheel is for the field
