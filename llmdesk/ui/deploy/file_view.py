"""An exported file, read-only, in a monospace font, highlighted line by line with Pygments (YAML,
ini, shell and markdown lex well a line at a time), in light or dark colours as the theme is."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QEvent
from PySide6.QtGui import QFontDatabase, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from llmdesk.ui.theme import is_dark
from llmdesk.ui.token_format import token_format, token_style

LEXERS = {"yaml": "yaml", "ini": "ini", "bash": "bash", "markdown": "markdown", "text": "text"}
LIGHT_STYLE, DARK_STYLE = "default", "github-dark"


@lru_cache(maxsize=8)
def _lexer(language: str):
    from pygments.lexers import get_lexer_by_name

    return get_lexer_by_name(LEXERS.get(language, "text"), stripnl=False, ensurenl=False)


@lru_cache(maxsize=2)
def _style(name: str):
    from pygments.styles import get_style_by_name

    return get_style_by_name(name)


class _LineHighlighter(QSyntaxHighlighter):
    def __init__(self, document, view: FileView):
        super().__init__(document)
        self.view = view
        self._formats: dict[tuple, QTextCharFormat] = {}

    def reset(self) -> None:
        self._formats.clear()
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        if not text or self.view.language == "text":
            return
        style = _style(DARK_STYLE if is_dark(self.view.palette()) else LIGHT_STYLE)
        position = 0
        for token, value in _lexer(self.view.language).get_tokens(text):
            spec = token_style(style, token)
            if spec.get("color") or spec.get("bold") or spec.get("italic"):
                self.setFormat(position, len(value), self._format(spec))
            position += len(value)

    def _format(self, spec: dict) -> QTextCharFormat:
        key = (spec.get("color"), spec.get("bold"), spec.get("italic"))
        fmt = self._formats.get(key)
        if fmt is None:
            fmt = self._formats[key] = token_format(spec)
        return fmt


class FileView(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.language = "text"
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self._highlighter = _LineHighlighter(self.document(), self)

    def show_file(self, text: str, language: str) -> None:
        self.language = language
        self.setPlainText(text)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._highlighter.reset()
