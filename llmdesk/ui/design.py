"""llmdesk's design language: the one place that knows colours, type sizes, spacing and corners.

Widgets say what they ARE — a page title, a caption, an error banner, an "ok" badge, figures in
monospace — with the helpers below (``role``, ``tone``, ``banner``, ``badge``, ``mono``, ``card``), which
set a dynamic property. How each looks comes from ``rules``, given to each such widget, and
``theme.apply_theme`` styles every such widget again with the palette from the same tokens, so that a theme
switch changes every page at once and nothing keeps the colours of the theme it was made in. Colours needed
in drawing code (charts, rich text, the log's highlighting) come from ``colors()``, the current theme's tokens.

tests/unit/test_design_tokens.py fails on a colour literal or a font size anywhere else in llmdesk/ui.
docs/design.md has the tokens and the rules.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPainter, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QStyle, QStyledItemDelegate, QWidget

# spacing scale (pixels): gaps inside a group, between groups, page margins
SPACE_XS, SPACE_S, SPACE_M, SPACE_L, SPACE_XL = 4, 8, 12, 16, 24
RADIUS = 6  # corners of cards, banners, buttons of the sidebar
RADIUS_SMALL = 4  # badges
# type scale (points): one size per role
TYPE_TITLE, TYPE_SECTION, TYPE_SUBSECTION, TYPE_BODY, TYPE_CAPTION, TYPE_FIGURE = 20, 12, 11, 10, 9, 15
TYPE_BRAND, TYPE_SIDEBAR, TYPE_GLYPH, TYPE_EMPTY = 15, 11, 13, 12
# The sidebar's rows: room for "Server · resuming" beside its icon (it read "Server · starti…" at 12 + 8 px)
SIDEBAR_WIDTH, SIDEBAR_ITEM_PADDING_X, SIDEBAR_ITEM_MARGIN_X = 200, 8, 6

TONES = ("ok", "warn", "error", "info", "running", "muted")


@dataclass(frozen=True)
class Colors:
    window: str  # the page background
    surface: str  # fields, tables, the sidebar
    raised: str  # cards and panels on the page
    border: str
    text: str
    muted: str  # secondary text: 4.5:1 or more on window, surface and raised (WCAG AA)
    accent: str  # selection and the current page: a fill under on_accent text
    on_accent: str
    link: str
    ok: str  # status colours as text: each 4.5:1 or more on window and surface
    warn: str
    error: str
    info: str
    running: str
    # status colours as fills (badges, the memory bar): white text on them reads at 4.5:1 or more
    ok_fill: str
    warn_fill: str
    error_fill: str
    neutral_fill: str
    charts: tuple[str, ...]  # curves: mid-luminance, readable on both themes

    def tone(self, name: str) -> str:
        return {"ok": self.ok, "warn": self.warn, "error": self.error, "info": self.info, "running": self.running,
                "muted": self.muted}.get(name, self.text)

    def tint(self, name: str, alpha: float) -> str:
        """A status colour as a see-through background: banners, badges, highlighted rows."""
        c = QColor(self.tone(name))
        return f"rgba({c.red()}, {c.green()}, {c.blue()}, {alpha})"


_CHARTS = ("#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#a855f7", "#06b6d4", "#ec4899", "#84cc16")

LIGHT = Colors(window="#f4f5f7", surface="#ffffff", raised="#ffffff", border="#d5d9df", text="#1f2328",
               muted="#5b616b", accent="#2563eb", on_accent="#ffffff", link="#1d4ed8", ok="#15803d", warn="#b45309",
               error="#b91c1c", info="#1d4ed8", running="#6d28d9", ok_fill="#15803d", warn_fill="#b45309",
               error_fill="#b91c1c", neutral_fill="#4b5563", charts=_CHARTS)
DARK = Colors(window="#282b30", surface="#1e2024", raised="#2f3338", border="#444950", text="#e6e8eb",
              muted="#a0a5ac", accent="#2563eb", on_accent="#ffffff", link="#60a5fa", ok="#4ade80", warn="#fbbf24",
              error="#f87171", info="#60a5fa", running="#c4b5fd", ok_fill="#15803d", warn_fill="#b45309",
              error_fill="#b91c1c", neutral_fill="#4b5563", charts=_CHARTS)
# the parts of the memory bar, one colour each in both themes
SEGMENT_COLORS = {"weights": "#6366f1", "activation_peak": "#f59e0b", "non_torch": "#a855f7", "lora": "#ec4899",
                  "cuda_graphs": "#64748b", "kv_cache": "#10b981", "left": None}


def colors(widget: QWidget | None = None) -> Colors:
    """The tokens of the theme a widget (or the application) is painted in now."""
    palette = widget.palette() if widget is not None else QApplication.palette()
    return DARK if palette.color(QPalette.ColorRole.Window).lightness() < 128 else LIGHT


def palette_for(c: Colors, base: QPalette | None = None) -> QPalette:
    p = QPalette(base) if base is not None else QPalette()
    q = QColor
    for role, value in (
        (QPalette.ColorRole.Window, c.window), (QPalette.ColorRole.WindowText, c.text),
        (QPalette.ColorRole.Base, c.surface), (QPalette.ColorRole.AlternateBase, c.window),
        (QPalette.ColorRole.ToolTipBase, c.surface), (QPalette.ColorRole.ToolTipText, c.text),
        (QPalette.ColorRole.PlaceholderText, c.muted), (QPalette.ColorRole.Text, c.text),
        (QPalette.ColorRole.Button, c.raised if c is DARK else "#eceef1"), (QPalette.ColorRole.ButtonText, c.text),
        (QPalette.ColorRole.BrightText, c.error), (QPalette.ColorRole.Link, c.link),
        (QPalette.ColorRole.Highlight, c.accent), (QPalette.ColorRole.HighlightedText, c.on_accent),
        (QPalette.ColorRole.Mid, c.border), (QPalette.ColorRole.Dark, "#16181b" if c is DARK else "#a0a5ac"),
        (QPalette.ColorRole.Light, "#464a50" if c is DARK else "#ffffff"),
    ):
        p.setColor(role, q(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, q(c.muted))
    return p


@functools.lru_cache(maxsize=4)  # one table per theme: style_widget asks for it once per widget
def rules(c: Colors) -> dict[tuple[str, str], str]:
    """Every look, by the (property, value) a helper below sets: the style sheet rules for it."""
    out: dict[tuple[str, str], str] = {}
    for name, (size, weight, extra) in {
            "title": (TYPE_TITLE, 600, ""), "section": (TYPE_SECTION, 600, "margin-top: 10px;"),
            "subsection": (TYPE_SUBSECTION, 600, ""), "heading": (TYPE_SECTION + 2, 600, ""),
            "strong": (None, 600, ""), "caption": (TYPE_CAPTION, None, f"color: {c.muted};"),
            "small": (TYPE_CAPTION, None, ""),
            "muted": (None, None, f"color: {c.muted};"),
            "empty": (TYPE_EMPTY, None, f"color: {c.muted}; padding: 40px;"),
            "brand": (TYPE_BRAND, 700, "padding: 14px 18px 10px 18px;"), "glyph": (TYPE_GLYPH, 700, ""),
            "figure": (TYPE_FIGURE, 600, "")}.items():
        size_part = f"font-size: {size}pt; " if size else ""
        weight_part = f"font-weight: {weight}; " if weight else ""
        out[("role", name)] = f'QLabel[role="{name}"] {{ {size_part}{weight_part}{extra} }}'
    for t in TONES:
        out[("tone", t)] = f'QLabel[tone="{t}"] {{ color: {c.tone(t)}; }}'
    for t in ("error", "warn", "info", "ok"):
        # padding on a label only: a frame's layout has its margins, and padding would widen the page
        out[("banner", t)] = (f'*[banner="{t}"] {{ background: {c.tint(t, 0.12)}; border: 1px solid {c.tint(t, 0.55)}; '
                              f'border-radius: {RADIUS}px; color: {c.text}; }}\n'
                              f'QLabel[banner="{t}"] {{ padding: {SPACE_S - 2}px; }}')
    for t, fill in (("ok", c.ok_fill), ("warn", c.warn_fill), ("error", c.error_fill), ("neutral", c.neutral_fill)):
        out[("badge", t)] = (f'QLabel[badge="{t}"] {{ background: {fill}; color: #ffffff; '
                             f'border-radius: {RADIUS_SMALL}px; padding: 3px 8px; font-weight: 600; }}')
    for t in ("ok", "error", "warn"):
        out[("softBadge", t)] = (f'QLabel[softBadge="{t}"] {{ background: {c.tint(t, 0.15)}; color: {c.tone(t)}; '
                                 f'border-radius: {RADIUS_SMALL}px; padding: 1px 6px; }}')
    out[("mono", "true")] = '*[mono="true"] { font-family: monospace; }'
    out[("mono", "small")] = f'*[mono="small"] {{ font-family: monospace; font-size: {TYPE_CAPTION}pt; }}'
    out[("invalid", "true")] = f'*[invalid="true"] {{ border: 1px solid {c.error}; }}'
    hover, pressed = QColor(c.accent).darker(112).name(), QColor(c.accent).darker(125).name()
    # the page's main action: on the accent, where the eye goes first (not bold: a style sheet's font reaches
    # the button's size hint a turn of the loop late, and its layout kept cutting the text). A style sheet
    # replaces Fusion's drawing of the button, its focus frame included, so the focus ring is drawn here (in
    # the text colour: it must stand out from the accent fill in both themes)
    out[("primary", "true")] = (
        f'QPushButton[primary="true"] {{ background: {c.accent}; color: {c.on_accent}; '
        f'border: 1px solid {c.accent}; border-radius: {RADIUS_SMALL}px; padding: 4px 10px; min-height: 18px; }}\n'
        f'QPushButton[primary="true"]:hover {{ background: {hover}; }}\n'
        f'QPushButton[primary="true"]:pressed {{ background: {pressed}; }}\n'
        f'QPushButton[primary="true"]:focus {{ border: 2px solid {c.text}; padding: 3px 9px; }}\n'
        f'QPushButton[primary="true"]:disabled {{ background: {c.border}; border-color: {c.border}; '
        f'color: {c.muted}; }}')
    out[("role", "card")] = (f'QFrame[role="card"] {{ background: {c.raised}; border: 1px solid {c.border}; '
                             f'border-radius: {RADIUS + 2}px; }}')
    out[("surface", "true")] = f'*[surface="true"] {{ background: {c.surface}; }}'
    out[("sidebar", "true")] = (
        f'QListWidget[sidebar="true"] {{ border: none; font-size: {TYPE_SIDEBAR}pt; background: {c.surface}; }}\n'
        f'QListWidget[sidebar="true"]::item {{ padding: 9px {SIDEBAR_ITEM_PADDING_X}px; border-radius: {RADIUS}px; '
        f'margin: 1px {SIDEBAR_ITEM_MARGIN_X}px; '
        f'color: {c.text}; }}\n'
        f'QListWidget[sidebar="true"]::item:selected {{ background: {c.accent}; color: {c.on_accent}; }}\n'
        f'QListWidget[sidebar="true"]::item:hover:!selected {{ background: {c.window}; }}')
    return out


PROPERTIES = ("role", "tone", "banner", "badge", "softBadge", "mono", "invalid", "surface", "sidebar", "primary",
              "actionIcon")


def style_widget(widget: QWidget) -> None:
    """The widget's own style sheet: the rules of the properties it carries, in the theme shown now.

    Each widget gets only its own rules. One sheet for the whole application would be simpler, but Qt
    then styles every widget through its style-sheet engine: 0.4-0.6 s more to build the window here."""
    table = rules(colors())
    parts = []
    for name in PROPERTIES:
        value = widget.property(name)
        if value is not None and value is not False:
            rule = table.get((name, str(value).lower() if isinstance(value, bool) else str(value)))
            if rule:
                parts.append(rule)
    sheet = "\n".join(parts)
    if widget.styleSheet() != sheet:
        had_sheet = bool(widget.styleSheet())
        widget.setStyleSheet(sheet)
        if had_sheet and not sheet:
            # Qt keeps the colours the old sheet put into the widget's palette (a stepped-down primary button
            # stayed blue with white text): inherit the application's again
            widget.setPalette(QPalette())
    name = widget.property("actionIcon")
    if name and isinstance(widget, QAbstractButton):  # drawn in the colours of the theme it was made in
        # the application's palette: a widget's own follows a theme switch only later
        widget.setIcon(icon(name, on_accent=bool(widget.property("primary"))))


def restyle(app: QApplication) -> None:
    """After a theme switch: every widget that says what it is, styled again from the new tokens."""
    for widget in app.allWidgets():
        if any(widget.property(name) not in (None, False) for name in PROPERTIES):
            style_widget(widget)


def _set(widget: QWidget, name: str, value) -> QWidget:
    if widget.property(name) != value:
        widget.setProperty(name, value)
        style_widget(widget)
    return widget


def surface(widget: QWidget) -> QWidget:
    """A plain container painted in the surface colour (the sidebar's column)."""
    widget.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # else a plain QWidget ignores it
    return _set(widget, "surface", True)


def sidebar(widget: QWidget) -> QWidget:
    """The page list: rows with rounded corners, the current page on the accent."""
    return _set(widget, "sidebar", True)


def role(widget: QWidget, name: str | None) -> QWidget:
    """title, section, subsection, heading, strong, caption (small, muted), small, muted, empty, brand, glyph,
    figure."""
    if isinstance(widget, QLabel):
        # A style sheet's margin or padding gives a label a frame width, and a label with a frame indents
        # its text by half an "x": a section title stood 5 px right of the text under it.
        widget.setIndent(0)
    return _set(widget, "role", name)


def tone(widget: QWidget, name: str | None) -> QWidget:
    """Text in a status colour: ok, warn, error, info, running, muted (None: the text colour)."""
    return _set(widget, "tone", name)


def banner(widget: QWidget, name: str | None) -> QWidget:
    """A tinted box with a border: error, warn, info, ok."""
    return _set(widget, "banner", name)


def badge(widget: QWidget, name: str | None) -> QWidget:
    """White text on a status fill: ok, warn, error, neutral."""
    return _set(widget, "badge", name)


def soft_badge(widget: QWidget, name: str | None) -> QWidget:
    """Status-coloured text on a tint of it: ok, warn, error."""
    return _set(widget, "softBadge", name)


def mono(widget: QWidget, small: bool = False) -> QWidget:
    """Figures, code and logs in the monospace face."""
    return _set(widget, "mono", "small" if small else "true")


def invalid(widget: QWidget, bad: bool) -> QWidget:
    """A field whose text does not parse: a border in the error colour."""
    return _set(widget, "invalid", bool(bad))


def action(button: QAbstractButton, icon_name: str, primary: bool = False) -> QAbstractButton:
    """A button with an icon (``mdi6.…``) that follows the theme; primary: the page's main action, on the
    accent (one per page or panel)."""
    _set(button, "primary", bool(primary))
    _set(button, "actionIcon", icon_name)
    return button


def set_primary(button: QAbstractButton, primary: bool) -> None:
    """Make a button the main action, or step it down while another one is (an empty state's)."""
    if bool(button.property("primary")) != primary:
        _set(button, "primary", primary)  # restyled there, its icon too: white on the accent, else the text colour


def card(widget: QWidget) -> QWidget:
    """A raised panel with the page's border and corners (a QFrame)."""
    return _set(widget, "role", "card")


def tabular_font(widget: QWidget) -> QFont:
    """The widget's font with digits of one width, for live figures that must not jitter."""
    font = QFont(widget.font())
    font.setFeature(QFont.Tag("tnum"), 1)
    font.setFamilies([font.family(), QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()])
    return font


TONE_ROLE = 0x0100 + 77  # Qt.ItemDataRole.UserRole + 77: a table cell's design tone, for BadgeDelegate


class BadgeDelegate(QStyledItemDelegate):
    """A table column whose cells are badges: white text on the status fill of the tone the model gives
    for TONE_ROLE (ok, warn, error, neutral); plain text where it gives none."""

    def paint(self, painter: QPainter, option, index) -> None:
        tone = index.data(TONE_ROLE)
        if not tone:
            super().paint(painter, option, index)
            return
        c = colors(option.widget)
        fill = {"ok": c.ok_fill, "warn": c.warn_fill, "error": c.error_fill}.get(tone, c.neutral_fill)
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        text = str(index.data() or "")
        metrics = option.fontMetrics
        width = min(option.rect.width() - 2 * SPACE_XS, metrics.horizontalAdvance(text) + 2 * SPACE_S)
        box = QRectF(option.rect.x() + SPACE_XS, option.rect.y() + 2, max(0, width), option.rect.height() - 4)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(fill))
        painter.drawRoundedRect(box, RADIUS_SMALL, RADIUS_SMALL)
        painter.setPen(QColor(c.on_accent))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter),
                         metrics.elidedText(text, Qt.TextElideMode.ElideRight, int(box.width()) - 2 * SPACE_XS))
        painter.restore()

    def sizeHint(self, option, index):
        size = super().sizeHint(option, index)
        return QSize(size.width() + 2 * SPACE_S + 2 * SPACE_XS, size.height())


def html_figure(text: str) -> str:
    """A figure set large in rich text (``text`` is not escaped: give it numbers)."""
    return f"<span style='font-size: {TYPE_FIGURE}pt; font-weight: 600;'>{text}</span>"


def icon(name: str, widget: QWidget | None = None, tone: str | None = None, on_accent: bool = False):
    """An icon of Material Design Icons (``mdi6.…``) in the theme's text colour, or in a status tone; white
    where it sits on the accent (a selected sidebar row, a primary button). Made again after a theme switch
    (it is drawn in the colours given here)."""
    c = colors(widget)
    color = c.on_accent if on_accent else c.tone(tone) if tone else c.text
    return _icon_font().icon(name, color=color, color_active=color, color_selected=c.on_accent,
                             color_disabled=c.muted)


_ICON_FONT = []


def _icon_font():
    """qtawesome's icon font holding Material Design Icons 6 only: its own loads all ten of its fonts at the
    first icon (0.1 s and 25 MB more at start-up on the development machine)."""
    if not _ICON_FONT:
        import os

        os.environ.setdefault("QT_API", "pyside6")  # qtawesome's binding layer: our Qt, not another installed
        from qtawesome import _BUNDLED_FONTS
        from qtawesome.iconic_font import IconicFont

        _ICON_FONT.append(IconicFont(*[font for font in _BUNDLED_FONTS if font[0] == "mdi6"]))
    return _ICON_FONT[0]


def html_color(name: str, widget: QWidget | None = None) -> str:
    """A token's colour for rich text (``<span style='color: …'>``), in the theme shown now."""
    c = colors(widget)
    return getattr(c, name) if hasattr(c, name) and not callable(getattr(c, name)) else c.tone(name)
