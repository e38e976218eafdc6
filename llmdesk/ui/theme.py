"""Light and dark: the palette from design.py's tokens, and every widget's design rules again on a switch;
"system" follows the desktop's colour scheme as it changes."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from llmdesk.ui import design

# Curves' colours: mid-luminance, so that they read on the light and on the dark palette alike.
CHART_COLORS = design.LIGHT.charts


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
    tokens = design.DARK if scheme == Qt.ColorScheme.Dark else design.LIGHT
    app.setPalette(design.palette_for(tokens, app.style().standardPalette()))
    # A widget's own style sheet resolves palette(...) and the palette's text colour when it is set, so a live
    # switch would keep the old colours: set every such sheet again against the new palette (the design roles'
    # too — a title's sheet sets only its size, and skipping it left it 1.13:1 in the walkthrough), then every
    # design role from the new tokens.
    for widget in app.allWidgets():
        sheet = widget.styleSheet()
        if sheet:
            widget.setStyleSheet("")
            widget.setStyleSheet(sheet)
    design.restyle(app)
    return scheme


def dark_palette() -> QPalette:
    return design.palette_for(design.DARK)


def follow_system_scheme(app: QApplication, current_theme) -> None:
    """Re-apply when the desktop switches light/dark; `current_theme()` reads the live setting."""
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_theme(app, current_theme()))
