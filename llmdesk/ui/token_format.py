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


def token_style(style, token) -> dict:
    """What `style` (a Pygments style class) gives `token`, or its nearest parent the style knows: lexers
    emit types no style lists (YAML's Literal.Scalar.Plain), and style_for_token raises KeyError for them."""
    while True:
        try:
            return style.style_for_token(token)
        except KeyError:
            if token.parent is None:
                return {}
            token = token.parent
