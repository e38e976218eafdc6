"""Light and dark palettes; "system" follows the desktop's colour scheme as it changes."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

# Curves' colours: mid-luminance, so that they read on the light and on the dark palette alike.
CHART_COLORS = ("#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#a855f7", "#06b6d4", "#ec4899", "#84cc16")


def resolve_scheme(theme: str, system_scheme: Qt.ColorScheme) -> Qt.ColorScheme:
    if theme == "dark":
        return Qt.ColorScheme.Dark
    if theme == "light":
        return Qt.ColorScheme.Light
    return Qt.ColorScheme.Dark if system_scheme == Qt.ColorScheme.Dark else Qt.ColorScheme.Light


def is_dark(palette: QPalette) -> bool:
    """Whether a widget is painted on a dark background (for colours that must keep their contrast)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication, theme: str) -> Qt.ColorScheme:
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")  # the one style that honours a custom palette everywhere
    scheme = resolve_scheme(theme, app.styleHints().colorScheme())
    app.setPalette(dark_palette() if scheme == Qt.ColorScheme.Dark else light_palette(app))
    # A style sheet resolves palette(...) when it is set, so a live switch would keep the old colours
    # (a white sidebar in the dark theme): set every style sheet again against the new palette.
    for widget in app.allWidgets():
        sheet = widget.styleSheet()
        if sheet:
            widget.setStyleSheet("")
            widget.setStyleSheet(sheet)
    return scheme


def light_palette(app: QApplication) -> QPalette:
    p = app.style().standardPalette()
    # Fusion's placeholder grey is 4.0:1 on white: below WCAG AA (4.5:1) for the hints and subtitles.
    dim = QColor(99, 99, 99)
    p.setColor(QPalette.ColorRole.PlaceholderText, dim)
    return p


def follow_system_scheme(app: QApplication, current_theme) -> None:
    """Re-apply when the desktop switches light/dark; `current_theme()` reads the live setting."""
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_theme(app, current_theme()))


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 32, 36), QColor(40, 43, 48), QColor(230, 232, 235)
    dim = QColor(160, 165, 172)  # 4.5:1 or more on every dark background below (WCAG AA)
    accent = QColor(64, 140, 255)
    for role, color in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, base), (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.PlaceholderText, dim), (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window), (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor(255, 90, 90)), (QPalette.ColorRole.Link, accent),
        (QPalette.ColorRole.Highlight, accent), (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.Mid, QColor(60, 64, 70)), (QPalette.ColorRole.Dark, QColor(22, 24, 27)),
        (QPalette.ColorRole.Light, QColor(70, 74, 80)),
    ):
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, dim)
    return p
