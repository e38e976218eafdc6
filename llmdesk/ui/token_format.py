"""A Pygments token style as a Qt character format: the code blocks of chat replies and the Deploy
page's files colour their text the same way."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QTextCharFormat


def token_format(spec: dict, base: QTextCharFormat | None = None) -> QTextCharFormat:
    """`spec` is what a Pygments style's style_for_token gives (colour without '#', bold, italic, underline)."""
    fmt = QTextCharFormat(base) if base is not None else QTextCharFormat()
    if spec.get("color"):
        fmt.setForeground(QColor("#" + spec["color"]))
    if spec.get("bold"):
        fmt.setFontWeight(QFont.Weight.Bold)
    if spec.get("italic"):
        fmt.setFontItalic(True)
    if spec.get("underline"):
        fmt.setFontUnderline(True)
    return fmt
