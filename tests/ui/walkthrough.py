"""What a person would notice on a page, checked on the real window (tests/ui/test_walkthrough.py).

Each check looks at what is painted or laid out, not at what the code meant: a horizontal scroll
bar, a widget cut off by the window or squeezed below its own minimum, an empty problem bar, text
whose colour is too close to its background (WCAG AA, 4.5:1, measured on the rendered window),
Markdown marks shown as plain text, buttons that do nothing, a shown tab out of view, and splitter panes drawn over each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QRect, SIGNAL
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QAbstractButton, QAbstractScrollArea, QAbstractSpinBox, QApplication, QCheckBox,
                               QComboBox,
                               QLabel, QLineEdit, QPushButton, QRadioButton, QScrollArea, QSplitter, QTabBar,
                               QWidget)

from llmdesk.ui.wheel_guard import scroll_area_of

MIN_CONTRAST = 4.5
MARKDOWN = re.compile(r"`|\*\*|(?<!\w)__\w")


@dataclass(frozen=True)
class Finding:
    check: str
    widget: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.widget}: {self.detail}"


def describe(widget: QWidget) -> str:
    text = ""
    for attr in ("text", "placeholderText", "currentText"):
        if hasattr(widget, attr):
            try:
                text = getattr(widget, attr)() or text
            except TypeError:
                continue
            if text:
                break
    name = widget.objectName() or type(widget).__name__
    return f"{name} {text[:50]!r}" if text else name


def shown(widget: QWidget, root: QWidget) -> bool:
    return widget.isVisibleTo(root) and widget.isVisible() and widget.width() > 0 and widget.height() > 0


def in_scroll_area(widget: QWidget, root: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None and parent is not root:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def rect_in(widget: QWidget, root: QWidget) -> QRect:
    return QRect(widget.mapTo(root, QPoint(0, 0)), widget.size())


def visible_rect(widget: QWidget, root: QWidget) -> QRect:
    """The part of the widget not hidden by the viewports and frames it sits in."""
    rect = rect_in(widget, root)
    parent = widget.parentWidget()
    while parent is not None and parent is not root:
        rect = rect.intersected(rect_in(parent, root))
        parent = parent.parentWidget()
    return rect.intersected(root.rect())


# --- the checks ---------------------------------------------------------------------------------

def horizontal_scroll_bars(page: QWidget) -> list[Finding]:
    return [Finding("horizontal scroll bar", describe(area.widget() or area), "the page scrolls sideways")
            for area in page.findChildren(QScrollArea)
            if shown(area, page) and area.horizontalScrollBar().isVisible()]


def clipped(window: QWidget, page: QWidget) -> list[Finding]:
    found = []
    for widget in page.findChildren(QWidget):
        if not shown(widget, window) or not isinstance(widget, (QAbstractButton, QLabel, QLineEdit, QComboBox,
                                                                 QAbstractSpinBox)):
            continue
        if isinstance(widget.parentWidget(), QTabBar) or type(widget).__name__ == "QTabBar":
            continue
        scrolled = in_scroll_area(widget, window)
        rect = rect_in(widget, window)
        if not scrolled and not window.rect().contains(rect):
            found.append(Finding("clipped by the window", describe(widget), f"{rect.getRect()} outside "
                                 f"{window.rect().getRect()}"))
        area = scroll_area_of(widget)
        if isinstance(area, QScrollArea) and not area.horizontalScrollBar().isVisible():
            viewport = rect_in(area.viewport(), window)
            if rect.right() > viewport.right() + 1:  # scrolling down never shows what is cut at the side
                found.append(Finding("cut at the side", describe(widget), f"ends at x={rect.right()}, its pane "
                                     f"at x={viewport.right()}"))
        hint = widget.minimumSizeHint()
        wraps = isinstance(widget, QLabel) and widget.wordWrap()
        if isinstance(widget, (QCheckBox, QRadioButton, QPushButton)) or (isinstance(widget, QLabel) and not wraps
                                                                             and widget.text()):
            if widget.width() + 1 < hint.width():
                found.append(Finding("squeezed", describe(widget), f"{widget.width()} px wide, needs {hint.width()}"))
        if isinstance(widget, QLineEdit) and widget.placeholderText() and not widget.text():
            needed = widget.fontMetrics().horizontalAdvance(widget.placeholderText()[:12]) + 12
            if widget.width() < needed:
                found.append(Finding("squeezed", describe(widget), f"{widget.width()} px: its hint is cut"))
    return found


def empty_problem_bars(page: QWidget) -> list[Finding]:
    found = []
    for widget in page.findChildren(QWidget):
        if widget.objectName() in ("problemBox", "problemBanner", "chatNotice") and shown(widget, page):
            texts = [label.text().strip() for label in widget.findChildren(QLabel) if label.isVisible()]
            own = widget.text().strip() if isinstance(widget, QLabel) else ""
            if not own and not any(texts):
                found.append(Finding("empty problem bar", describe(widget), "shown with nothing in it"))
    return found


def markdown_in_plain_text(page: QWidget) -> list[Finding]:
    found = []
    for label in page.findChildren(QLabel):
        if shown(label, page) and label.textFormat().name in ("PlainText", "AutoText"):
            text = label.text()
            if label.textFormat().name == "AutoText" and re.search(r"<[a-z][^>]*>", text):
                continue  # rich text: <code> is how code shows there
            if MARKDOWN.search(text):
                found.append(Finding("markdown marks", describe(label), text[:80]))
    return found


def unconnected_buttons(page: QWidget) -> list[Finding]:
    found = []
    for button in page.findChildren(QAbstractButton):
        if not shown(button, page) or isinstance(button.parentWidget(), QTabBar):
            continue
        if button.objectName().startswith("qt_") or type(button).__name__ in ("QToolButton", "CloseButton"):
            continue
        if isinstance(button, (QCheckBox, QRadioButton)) or button.isCheckable():
            continue  # their state is read where it is used
        if isinstance(button, QPushButton) and button.menu() is not None:
            continue
        if button.receivers(SIGNAL("clicked()")) + button.receivers(SIGNAL("clicked(bool)")) + \
                button.receivers(SIGNAL("pressed()")) == 0:
            found.append(Finding("button does nothing", describe(button), "no slot is connected to it"))
    return found


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def contrast(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def image_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return data[:, : width * 3].reshape(height, width, 3).copy()


def text_contrast(pixels: np.ndarray) -> float | None:
    """The contrast between a text area's background (its most common colour) and its text (the
    pixel that differs most from it; anti-aliasing reaches the full text colour inside the strokes)."""
    flat = pixels.reshape(-1, 3)
    if len(flat) < 20:
        return None
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    lum = relative_luminance(flat)
    bg_lum = float(relative_luminance(background[None, :])[0])
    far = np.abs(lum - bg_lum)
    if far.max() < 0.01:
        return None  # nothing drawn (an empty label)
    return contrast(bg_lum, float(lum[far.argmax()]))


def low_contrast(window: QWidget, page: QWidget, picture: np.ndarray) -> list[Finding]:
    found = []
    for widget in page.findChildren(QWidget):
        if not shown(widget, window) or not widget.isEnabled():
            continue  # WCAG leaves inactive controls out
        if isinstance(widget, QLabel):
            if not widget.text().strip() or widget.pixmap() is not None and not widget.pixmap().isNull():
                continue
        elif isinstance(widget, (QPushButton, QCheckBox, QRadioButton)):
            if not widget.text().strip():
                continue
        elif isinstance(widget, QLineEdit):
            if not (widget.text() or widget.placeholderText()):
                continue
        else:
            continue
        rect = visible_rect(widget, window)
        if rect.width() < 6 or rect.height() < 6:
            continue
        if isinstance(widget, (QCheckBox, QRadioButton)):  # the text, not the box
            rect.setLeft(rect.left() + 22)
        elif isinstance(widget, (QPushButton, QLineEdit)):  # the face, not the frame around it
            rect.adjust(3, 3, -3, -3)
        pixels = picture[rect.top(): rect.bottom() + 1, rect.left(): rect.right() + 1]
        ratio = text_contrast(pixels)
        if ratio is not None and ratio < MIN_CONTRAST:
            found.append(Finding("low contrast", describe(widget), f"{ratio:.2f}:1 (needs {MIN_CONTRAST}:1)"))
    return found


def tabs_out_of_view(page: QWidget) -> list[Finding]:
    """A tab bar too narrow for its labels scrolls them: the tab being shown can then sit out of view, its
    name nowhere on screen (the Server page's Log tab at 960x600 did)."""
    found = []
    for bar in page.findChildren(QTabBar):
        if not bar.isVisible() or bar.currentIndex() < 0:
            continue
        seen = bar.visibleRegion().boundingRect()  # a bar wider than its pane is clipped by it, not scrolled
        if not seen.contains(bar.tabRect(bar.currentIndex()).center()):
            found.append(Finding("current tab out of view", describe(bar),
                                 f"{bar.tabText(bar.currentIndex())!r} is out of view"))
    return found


def overlapping_panes(page: QWidget) -> list[Finding]:
    """Splitter panes drawn over each other: a pane held wider than its share covers the next one (the Server
    page's form covered the log pane's left side at 960x600, the Log tab with it)."""
    found = []
    for split in page.findChildren(QSplitter):
        panes = [split.widget(i) for i in range(split.count()) if split.widget(i).isVisible()]
        for a, b in zip(panes, panes[1:]):
            if a.geometry().intersects(b.geometry()):
                found.append(Finding("panes overlap", describe(b), f"covered by {describe(a)}: "
                                     f"{a.geometry().intersected(b.geometry()).width()} px"))
    return found


def inspect(window: QWidget, page: QWidget, shot: Path | None = None) -> list[Finding]:
    """Every check on `page` as it is shown in `window`; saves the window's picture to `shot`."""
    for _ in range(3):  # let pending layout passes run, as they would before a person looks
        QApplication.sendPostedEvents()
        QApplication.processEvents()
    image = window.grab().toImage()
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(shot))
    picture = image_array(image)
    return (horizontal_scroll_bars(page) + clipped(window, page) + empty_problem_bars(page)
            + markdown_in_plain_text(page) + unconnected_buttons(page) + tabs_out_of_view(page) + overlapping_panes(page)
            + low_contrast(window, page, picture))
