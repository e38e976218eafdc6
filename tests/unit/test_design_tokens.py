"""#25: every page uses the theme's tokens. A colour literal or a font size anywhere in llmdesk/ui outside
design.py (the tokens and the application's style sheet) fails here; so does a widget style sheet that
sets a colour or a size of its own (it would keep the theme it was made in after a switch)."""

from __future__ import annotations

import re
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "llmdesk" / "ui"
ALLOWED = {"design.py"}
FORBIDDEN = (
    (re.compile(r"""["'][^"'\n]*#[0-9a-fA-F]{3,8}\b"""), "a colour literal (#rgb)"),
    (re.compile(r"\brgba?\s*\("), "a colour literal (rgb())"),
    (re.compile(r"QColor\(\s*\d"), "a colour built from numbers"),
    (re.compile(r"font-size"), "a font size in a style sheet"),
    (re.compile(r"\bsetPointSize(F)?\("), "a font size set in code"),
    (re.compile(r"\b\d+(\.\d+)?pt\b"), "a size in points"),
    (re.compile(r"Qt\.GlobalColor\.(red|green|blue|yellow|black|white|gray|darkGray)"), "a named Qt colour"),
)


def offences() -> list[str]:
    found = []
    for path in sorted(UI.rglob("*.py")):
        if path.name in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("  #", 1)[0] if not line.lstrip().startswith("#") else ""
            for pattern, what in FORBIDDEN:
                if pattern.search(code):
                    found.append(f"{path.relative_to(UI.parent.parent)}:{number}: {what}: {line.strip()}")
    return found


def test_no_colour_or_font_size_outside_the_design_module():
    assert offences() == []


def test_the_check_catches_what_it_is_for(tmp_path, monkeypatch):
    import tests.unit.test_design_tokens as me

    bad = tmp_path / "ui"
    bad.mkdir()
    (bad / "page.py").write_text('label.setStyleSheet("color: #dc2626; font-size: 12pt;")\nc = QColor(10, 20, 30)\n')
    monkeypatch.setattr(me, "UI", bad)
    found = offences()
    assert len(found) == 4 and "colour literal" in found[0] and "font size" in found[1]


def test_both_themes_define_every_token_with_readable_text():
    from PySide6.QtGui import QColor

    from llmdesk.ui.design import DARK, LIGHT, TONES

    def luminance(hex_colour: str) -> float:
        c = QColor(hex_colour)

        def channel(v: int) -> float:
            v = v / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(c.red()) + 0.7152 * channel(c.green()) + 0.0722 * channel(c.blue())

    def contrast(a: str, b: str) -> float:
        la, lb = sorted((luminance(a), luminance(b)), reverse=True)
        return (la + 0.05) / (lb + 0.05)

    for tokens in (LIGHT, DARK):
        for background in (tokens.window, tokens.surface, tokens.raised):
            assert contrast(tokens.text, background) >= 7
            for tone in TONES:
                assert contrast(tokens.tone(tone), background) >= 4.5, (tone, background)
        for fill in (tokens.ok_fill, tokens.warn_fill, tokens.error_fill, tokens.neutral_fill, tokens.accent):
            assert contrast("#ffffff", fill) >= 4.5, fill
