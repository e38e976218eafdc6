"""Assistant replies as markdown: highlighted code blocks with Copy links, streamed without stalls.

Re-rendering a whole reply per token is O(n²) and stalls the window once the reply passes a few
KB (shared reference qt.md §4), so streaming uses "blocks": text up to the last blank line outside
a code fence (or up to a closing fence) is final and rendered once, appended after what is already
there; the unfinished tail is plain text, replaced when it completes. A code block streams into its
own frame as plain monospace (laid out line by line as it comes) and is coloured in place once its
closing fence arrives: at once if short, else lexed in a worker thread and coloured in slices.

Markdown goes through Qt's importer (GitHub dialect) with raw HTML off: a reply containing
``<img src=http://…>`` shows those characters and loads nothing. Fenced code is not left to Qt: it
is highlighted with Pygments straight into character formats, in a framed block under a "Copy"
link (``copy:N``) that copies the exact code.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

# pygments.lexers replaces itself in sys.modules while it is first imported: imported here, on the
# GUI thread, before the warm-up thread below can race a half-made copy of it (7 ms).
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.styles import get_style_by_name
from pygments.util import ClassNotFound
from PySide6.QtCore import QByteArray, QEvent, QObject, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (QColor, QCursor, QDesktopServices, QFont, QFontDatabase, QImage, QPalette, QTextBlockFormat,
                           QTextCharFormat, QTextCursor, QTextDocument, QTextDocumentFragment, QTextFrameFormat,
                           QTextFrame, QTextLength, QTextTable)
from PySide6.QtWidgets import QApplication, QFrame, QTextBrowser, QToolTip, QWidget

from llmdesk.ui import design
from llmdesk.ui.token_format import token_format, token_style

_MD = QTextDocument.MarkdownFeature
MARKDOWN_FEATURES = _MD(_MD.MarkdownDialectGitHub.value | _MD.MarkdownNoHTML.value)
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
EXTERNAL_SCHEMES = ("http", "https", "mailto")
CONFIRM_LINK_MS = 5000


# --- the source: fences, finished blocks, segments (pure) --------------------------------------

@dataclass(frozen=True)
class Fence:
    char: str    # ` or ~
    length: int  # a closing fence needs at least as many
    indent: int  # removed from the code's lines, as CommonMark does
    info: str    # "python", "bash title=x", ...


def fence_open(line: str) -> Fence | None:
    """The fence a line opens, if it opens one. Any indentation is accepted (fences in list items)."""
    stripped = line.lstrip(" ")
    if not stripped.startswith(("```", "~~~")):
        return None
    char = stripped[0]
    length = len(stripped) - len(stripped.lstrip(char))
    info = stripped[length:].strip()
    if char == "`" and "`" in info:  # ``` `x` ``` is inline code, not a fence
        return None
    return Fence(char, length, len(line) - len(stripped), info)


def fence_closes(line: str, fence: Fence) -> bool:
    s = line.strip()
    return len(s) >= fence.length and s == fence.char * len(s)


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Code:
    lang: str
    code: str
    closed: bool


def split_segments(text: str) -> list[Markdown | Code]:
    """Markdown between fenced code blocks, and the code blocks (an unclosed one runs to the end)."""
    out: list[Markdown | Code] = []
    md: list[str] = []
    code: list[str] = []
    fence: Fence | None = None
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if fence is None:
            opened = fence_open(bare)
            if opened is None:
                md.append(line)
                continue
            if "".join(md).strip():
                out.append(Markdown("".join(md)))
            md, code, fence = [], [], opened
        elif fence_closes(bare, fence):
            out.append(Code(_lang(fence), _dedent(code, fence.indent), True))
            fence = None
        else:
            code.append(line)
    if fence is not None:
        out.append(Code(_lang(fence), _dedent(code, fence.indent), False))
    elif "".join(md).strip():
        out.append(Markdown("".join(md)))
    return out


def _lang(fence: Fence) -> str:
    return fence.info.split()[0].strip("{}.").lower() if fence.info else ""


def _dedent(lines: list[str], indent: int) -> str:
    if indent:
        lines = [line[min(indent, len(line) - len(line.lstrip(" "))):] for line in lines]
    text = "".join(lines)
    return text[:-1] if text.endswith("\n") else text


# --- Pygments → QTextCharFormat -----------------------------------------------------------------

# Loading a lexer imports its module: 10-50 ms for python or css, a visible stall if it happens on
# the GUI thread in the middle of a streamed reply. The first view warms the usual ones in a thread.
WARM_LANGUAGES = ("python", "bash", "console", "json", "javascript", "typescript", "c", "cpp", "rust", "go",
                  "java", "yaml", "toml", "sql", "html", "css", "diff", "ini", "dockerfile")
_warm_started = False


def warm_up_highlighting() -> None:
    """Import Pygments, its styles and the usual lexers in a background thread (once)."""
    global _warm_started
    if _warm_started:
        return
    _warm_started = True

    def warm() -> None:
        try:
            for name in (LIGHT_STYLE, DARK_STYLE):
                _style(name)
            for lang in WARM_LANGUAGES:
                _lexer(lang)
        except Exception:  # noqa: BLE001 - only a head start; the GUI thread loads what is missing
            pass

    _worker().submit(warm)


_executor: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    """One thread for Pygments: warming up, and highlighting blocks too long to do on the GUI thread."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="highlight")
    return _executor


@lru_cache(maxsize=64)
def _lexer(lang: str):
    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False) if lang else TextLexer()
    except ClassNotFound:
        return TextLexer()


@lru_cache(maxsize=4)
def _style(name: str):
    return get_style_by_name(name)


# The final render of a streamed reply and a theme switch meet the same blocks again; Pygments
# takes ~1.5 ms per KB of Python. Shared with the worker thread, hence the lock.
_runs_cache: OrderedDict[tuple[str, str, str], tuple] = OrderedDict()
_runs_lock = threading.Lock()
RUNS_CACHE_ENTRIES = 256


def cached_runs(code: str, lang: str, style_name: str) -> tuple | None:
    with _runs_lock:
        runs = _runs_cache.get((code, lang, style_name))
        if runs is not None:
            _runs_cache.move_to_end((code, lang, style_name))
        return runs


def highlight_runs(code: str, lang: str, style_name: str) -> tuple[tuple[str, dict], ...]:
    """(text, pygments style dict) runs covering `code` exactly, neighbours of one style merged."""
    runs = cached_runs(code, lang, style_name)
    if runs is not None:
        return runs
    style = _style(style_name)
    out: list[tuple[str, dict]] = []
    for ttype, value in _lexer(lang).get_tokens(code):
        if not value:
            continue
        spec = token_style(style, ttype)
        if out and out[-1][1] == spec:
            out[-1] = (out[-1][0] + value, spec)
        else:
            out.append((value, spec))
    if sum(len(t) for t, _ in out) != len(code):  # a lexer that added or dropped newlines
        out = [(code, {})]
    runs = tuple(out)
    with _runs_lock:
        _runs_cache[(code, lang, style_name)] = runs
        while len(_runs_cache) > RUNS_CACHE_ENTRIES:
            _runs_cache.popitem(last=False)
    return runs


# --- the view ---------------------------------------------------------------------------------

@dataclass
class _OpenCode:
    """A fenced block being streamed: its lines go into its frame as plain monospace."""

    fence: Fence
    lang: str
    index: int          # its Copy link's number
    frame: QTextFrame
    done: list[str]     # complete lines, as received (indentation not yet removed)
    line: str = ""      # the line still being written

    def code(self) -> str:
        return _dedent([line + "\n" for line in self.done + ([self.line] if self.line else [])],
                       self.fence.indent)


class _Relay(QObject):
    """Carries a worker's result to the GUI thread. The worker holds only this child of the view,
    never the view: a parentless view dropped meanwhile must not be destroyed in the worker."""

    done = Signal(int, int, object)  # generation, position, runs


class InertDocument(QTextDocument):
    """A document that loads nothing: a reply's ![x](/a/path) or ![x](http://…) must not make the app
    read a file (a FIFO would freeze the GUI thread, /dev/zero fill the memory) or fetch anything.

    Every resource is answered here, never by Qt's loaders: a null answer would make QTextDocument
    read local files itself, and the image handler then try QImage.load(name) as a last resort."""

    _placeholder: QImage | None = None

    def loadResource(self, kind: int, name: QUrl):  # noqa: N802 - Qt's name
        if kind in (QTextDocument.ResourceType.ImageResource, QTextDocument.ResourceType.ImageResource.value):
            if InertDocument._placeholder is None:
                image = QImage(16, 16, QImage.Format.Format_ARGB32)
                image.fill(0)  # transparent: the image is simply not shown
                InertDocument._placeholder = image
            return InertDocument._placeholder
        return QByteArray()


class MarkdownView(QTextBrowser):
    """Markdown with highlighted, copyable code; ``append`` streams at a cost independent of length.

    fit_height=True: no scrollbars, the height follows the document (messages stacked in a scroll
    area), recomputed once per event-loop turn rather than per delta."""

    code_copied = Signal(str)
    link_target_shown = Signal(str)  # a link whose words differ from its target was clicked once
    link_opened = Signal(str)

    # Below this size end_stream() renders the reply again as a whole: lists split by blank lines
    # come out exactly as in a stored conversation. On a 2-core VM render + layout + paint cost
    # ~2.5 ms per KB (code highlighted already: cached), so 8 KB is one ~20 ms frame.
    EXACT_RERENDER_LIMIT = 8_000
    # Longer code is highlighted in the worker thread and coloured in slices of RUNS_PER_SLICE:
    # at once, 20 KB of Python cost ~35 ms of Pygments plus ~40 ms of layout in one go.
    SYNC_HIGHLIGHT_LIMIT = 3_000
    RUNS_PER_SLICE = 300

    def __init__(self, parent: QWidget | None = None, *, fit_height: bool = False):
        super().__init__(parent)
        self.setDocument(InertDocument(self))
        self.fit_height = fit_height
        warm_up_highlighting()
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setReadOnly(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.document().setUndoRedoEnabled(False)  # a streamed reply would keep every insert
        self.anchorClicked.connect(self._on_anchor)
        self._confirming: str | None = None
        # Hovering a link shows where it goes, as a browser's status bar does.
        self.highlighted.connect(lambda url: self.setToolTip(url.toString() if not url.isEmpty() else ""))
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_highlighted)
        self._scratch = InertDocument(self)
        self._scratch.setUndoRedoEnabled(False)
        self._cursor = QTextCursor(self.document())
        self._parts: list[str] = []
        self._source: str | None = ""
        self._codes: list[str] = []
        self._streaming = False
        self._has_content = False
        self._tail_start = 0
        self._pending = ""            # prose after the last finished block
        self._scan = 0                # start of the first incomplete line in _pending
        self._code: _OpenCode | None = None
        self._generation = 0          # bumped when the document is cleared: late highlights are dropped
        self._colouring: list[list] = []  # [position, runs, next run] still to colour
        self._in_flight = 0               # blocks in the worker for this generation
        self._colour_timer = QTimer(self)
        self._colour_timer.setSingleShot(True)
        self._colour_timer.setInterval(0)
        self._colour_timer.timeout.connect(self._colour_slice)
        self._palette_stale = self._rerender_due = False
        self._formats: dict | None = None
        # since the last set_markdown/begin_stream (tests, benches: a stream renders each character once)
        self.render_calls = 0
        self.rendered_chars = 0
        if fit_height:
            self.viewport().setAutoFillBackground(False)  # blends into the list that holds it
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.document().setDocumentMargin(2)
            self._fit_timer = QTimer(self)
            self._fit_timer.setSingleShot(True)
            self._fit_timer.setInterval(0)  # once per event-loop turn, after all of its inserts
            self._fit_timer.timeout.connect(self._fit)
            self.document().documentLayout().documentSizeChanged.connect(self._schedule_fit)
            self._fit()

    # -- API --

    def markdown(self) -> str:
        if self._source is None:
            self._source = "".join(self._parts)
            self._parts = [self._source] if self._source else []
        return self._source

    def set_markdown(self, text: str) -> None:
        self._reset()
        self._parts = [text] if text else []
        self._source = text
        with self._edit():
            self._render_finished(text)

    def begin_stream(self) -> None:
        self._reset()
        self._streaming = True

    def append(self, delta: str) -> None:
        if not delta:
            return
        if not self._streaming:  # continuing a finished text: start over from its source
            before = self.markdown()
            self.begin_stream()
            if before:
                self.append(before)
        self._parts.append(delta)
        self._source = None
        with self._edit():
            rest = delta
            while rest:
                rest = self._feed_code(rest) if self._code is not None else self._feed_prose(rest)

    def end_stream(self) -> None:
        if not self._streaming:
            return
        self._streaming = False
        text = self.markdown()
        if len(text) < self.EXACT_RERENDER_LIMIT or self._palette_stale:
            self.set_markdown(text)
            return
        with self._edit():
            if self._code is not None:  # the reply ended inside a code block: what came is the code
                self._close_code(closing_line=False)
            else:
                self._remove_tail()
                self._render_finished(self._pending)
        self._pending, self._scan = "", 0

    def is_streaming(self) -> bool:
        return self._streaming

    def is_colouring(self) -> bool:
        """Whether long code blocks are still being highlighted (in the worker, or in slices)."""
        return bool(self._in_flight or self._colouring)

    def code_blocks(self) -> list[str]:
        """The code of each finished block, in order (what each Copy link copies)."""
        return self._codes[:self._code.index] if self._code is not None else list(self._codes)

    @contextlib.contextmanager
    def _edit(self):
        """One edit block: the document is laid out once for all of it, not per insert."""
        self._cursor.beginEditBlock()
        try:
            yield
        finally:
            self._cursor.endEditBlock()

    # -- the stream --

    def _feed_prose(self, delta: str) -> str:
        """Take prose; returns what follows a code fence's opening line, if the delta opened one."""
        start = len(self._pending)
        self._pending += delta
        pending, cut = self._pending, 0
        while (nl := pending.find("\n", self._scan)) != -1:
            line = pending[self._scan:nl].rstrip("\r")
            fence = fence_open(line)
            if fence is not None:  # a fence ends the paragraph before it, as in CommonMark
                before = pending[:self._scan]
                self._pending, self._scan = "", 0
                self._remove_tail()
                self._render_finished(before)
                self._open_code(fence)
                return pending[nl + 1:]
            if not line.strip():
                cut = nl + 1
            self._scan = nl + 1
        if cut:
            finished, rest = pending[:cut], pending[cut:]
            self._pending, self._scan = rest, self._scan - cut
            self._remove_tail()
            self._render_finished(finished)
            self._insert_tail(rest)
        else:
            self._extend_tail(start)
        return ""

    def _feed_code(self, text: str) -> str:
        """Take code lines into the open block's frame; returns what follows its closing fence."""
        code = self._code
        pos = 0
        while (nl := text.find("\n", pos)) != -1:
            line = (code.line + text[pos:nl]).rstrip("\r")
            if fence_closes(line, code.fence):
                self._close_code(closing_line=True)
                return text[nl + 1:]
            self._show_code(text[pos:nl + 1])
            code.done.append(line)
            code.line = ""
            pos = nl + 1
        if pos < len(text):
            code.line += text[pos:]
            self._show_code(text[pos:])
        return ""

    def _open_code(self, fence: Fence) -> None:
        index = len(self._codes)
        self._codes.append("")
        frame = self._begin_code_block(_lang(fence), index)
        self._code = _OpenCode(fence, _lang(fence), index, frame, [])

    def _show_code(self, text: str) -> None:
        c = self._cursor
        c.setPosition(self._code.frame.lastPosition())
        c.insertText(text, self._fmt()["code"])

    def _close_code(self, *, closing_line: bool) -> None:
        """The fence closed (or the reply ended): the frame keeps exactly the code, then colours."""
        code, self._code = self._code, None
        if not closing_line and code.line:
            code.done.append(code.line.rstrip("\r"))
        code.line = ""
        text = code.code()
        c = self._cursor
        shown = len("\n".join(code.done))
        c.setPosition(code.frame.firstPosition() + shown)  # drop the closing fence's line
        c.setPosition(code.frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
        c.removeSelectedText()
        if code.fence.indent and text != "\n".join(code.done):  # a fence in a list item: dedent
            c.setPosition(code.frame.firstPosition())
            c.setPosition(code.frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
            c.insertText(text, self._fmt()["code"])
        self._codes[code.index] = text
        self.rendered_chars += len(text)
        self._highlight(code.frame.firstPosition(), text, code.lang)
        c.movePosition(QTextCursor.MoveOperation.End)
        self._tail_start = c.position()  # the code grew in front of it

    # -- the document --

    def _reset(self) -> None:
        self.document().clear()
        self._cursor = QTextCursor(self.document())
        self._parts, self._source, self._codes = [], "", []
        self._streaming = self._has_content = self._palette_stale = False
        self._tail_start, self._pending, self._scan, self._code = 0, "", 0, None
        self._generation += 1
        self._in_flight = 0
        self._colouring.clear()
        self._colour_timer.stop()
        self._formats = None
        self.render_calls = self.rendered_chars = 0

    def _remove_tail(self) -> None:
        c = self._cursor
        c.setPosition(self._tail_start)
        c.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        c.removeSelectedText()
        if not self._has_content:
            c.setBlockFormat(QTextBlockFormat())
            c.setBlockCharFormat(QTextCharFormat())

    def _insert_tail(self, text: str) -> None:
        c = self._cursor
        c.movePosition(QTextCursor.MoveOperation.End)
        self._tail_start = c.position()
        if not text:
            return
        if self._has_content:
            c.insertBlock(QTextBlockFormat(), QTextCharFormat())
        c.insertText(text, QTextCharFormat())

    def _extend_tail(self, start: int) -> None:
        """Show pending[start:], the unfinished prose, as plain text at the end."""
        c = self._cursor
        c.movePosition(QTextCursor.MoveOperation.End)
        if start == 0 and self._has_content:
            c.insertBlock(QTextBlockFormat(), QTextCharFormat())
        c.insertText(self._pending[start:], QTextCharFormat())

    def _render_finished(self, text: str) -> None:
        self.rendered_chars += len(text)
        for segment in split_segments(text):
            self.render_calls += 1
            if isinstance(segment, Code):
                self._insert_code(segment)
            else:
                self._insert_markdown(segment.text)
        self._cursor.movePosition(QTextCursor.MoveOperation.End)
        self._tail_start = self._cursor.position()

    def _insert_markdown(self, text: str) -> None:
        scratch = self._scratch
        scratch.setMarkdown(text, MARKDOWN_FEATURES)
        if scratch.isEmpty():
            return
        self._polish(scratch)
        if self._has_content:
            # Qt keeps the block format of the block a fragment lands in (a heading would lose its
            # spacing, a list its first item): start the fragment with an empty block, so the
            # first real block arrives as a block of its own, formats and list included.
            first = scratch.begin()
            c = QTextCursor(scratch)
            if first.length() > 1:  # a table already comes after an empty block
                c.insertBlock(first.blockFormat(), first.charFormat())
                c.setPosition(0)
            c.setBlockFormat(QTextBlockFormat())
        self._cursor.movePosition(QTextCursor.MoveOperation.End)
        self._cursor.insertFragment(QTextDocumentFragment(scratch))
        self._has_content = True

    def _polish(self, doc: QTextDocument) -> None:
        """Qt's markdown look, made easier to read: headings get air above and below, inline
        `code` the code blocks' background, tables a quiet border and some padding."""
        f = self._fmt()
        code_bg = QTextCharFormat()
        code_bg.setBackground(f["inline_bg"])
        cursor = QTextCursor(doc)
        block = doc.begin()
        while block.isValid():
            level = block.blockFormat().headingLevel()
            if level:
                cursor.setPosition(block.position())
                fmt = block.blockFormat()
                fmt.setTopMargin(0 if block.position() == 0 and not self._has_content else (14 if level <= 2 else 10))
                fmt.setBottomMargin(8)
                cursor.setBlockFormat(fmt)
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                if frag.isValid() and frag.charFormat().fontFixedPitch():
                    cursor.setPosition(frag.position())
                    cursor.setPosition(frag.position() + frag.length(), QTextCursor.MoveMode.KeepAnchor)
                    cursor.mergeCharFormat(code_bg)
                it += 1
            block = block.next()
        for frame in doc.rootFrame().childFrames():
            if isinstance(frame, QTextTable):
                fmt = frame.format()
                fmt.setBorderBrush(f["border"])
                fmt.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
                fmt.setCellSpacing(0)
                fmt.setCellPadding(5)
                fmt.setTopMargin(6)
                fmt.setBottomMargin(6)
                frame.setFormat(fmt)

    def _begin_code_block(self, lang: str, index: int) -> QTextFrame:
        """The "lang  Copy" line and an empty framed block for the code; the cursor ends inside it."""
        f = self._fmt()
        c = self._cursor
        c.movePosition(QTextCursor.MoveOperation.End)
        if self._has_content:
            c.insertBlock(f["header_block"], f["header_char"])
        else:
            c.setBlockFormat(f["header_block"])
            c.setBlockCharFormat(f["header_char"])
        if lang:
            c.insertText(lang + "   ", f["header_char"])
        link = QTextCharFormat(f["link"])
        link.setAnchorHref(f"copy:{index}")
        link.setToolTip("Copy this code")
        c.insertText("Copy", link)
        frame = c.insertFrame(f["frame"])
        c.setBlockFormat(f["code_block"])
        c.setBlockCharFormat(f["code"])
        # the block Qt always puts after a frame: keep it, but make it take no room
        after = QTextCursor(self.document())
        after.setPosition(frame.lastPosition() + 1)
        after.setBlockFormat(f["spacer"])
        after.setBlockCharFormat(f["spacer_char"])
        self._has_content = True
        return frame

    def _insert_code(self, segment: Code) -> None:
        index = len(self._codes)
        self._codes.append(segment.code)
        frame = self._begin_code_block(segment.lang, index)
        start = frame.firstPosition()
        if len(segment.code) <= self.SYNC_HIGHLIGHT_LIMIT:  # coloured as it goes in, no second pass
            for text, spec in highlight_runs(segment.code, segment.lang, self._fmt()["style"]):
                self._cursor.insertText(text, self._token_format(spec))
        else:
            self._cursor.insertText(segment.code, self._fmt()["code"])
            self._highlight(start, segment.code, segment.lang)

    # -- highlighting --

    def _highlight(self, position: int, code: str, lang: str) -> None:
        """Colour the code at `position`: at once if short or known, else from the worker thread."""
        style = self._fmt()["style"]
        runs = cached_runs(code, lang, style)
        if runs is None and len(code) <= self.SYNC_HIGHLIGHT_LIMIT:
            runs = highlight_runs(code, lang, style)
        if runs is not None and len(code) <= self.SYNC_HIGHLIGHT_LIMIT:
            self._colour(position, runs, 0, len(runs))
            return
        if runs is not None:  # known (a theme switch, the final render) but long: in slices all the same
            self._colouring.append([position, runs, 0])
            self._colour_timer.start()
            return
        generation, emit = self._generation, self._relay.done.emit

        def work() -> None:
            runs = highlight_runs(code, lang, style)
            try:
                emit(generation, position, runs)
            except RuntimeError:  # the view is gone
                pass

        self._in_flight += 1
        _worker().submit(work)

    def _on_highlighted(self, generation: int, position: int, runs: tuple) -> None:
        if generation != self._generation:
            return  # the document was cleared since
        self._in_flight -= 1
        self._colouring.append([position, runs, 0])
        self._colour_timer.start()

    def _colour_slice(self) -> None:
        if not self._colouring:
            return
        job = self._colouring[0]
        position, runs, first = job
        last = min(len(runs), first + self.RUNS_PER_SLICE)
        job[0] = self._colour(position, runs, first, last)
        job[2] = last
        if last >= len(runs):
            self._colouring.pop(0)
        if self._colouring:
            self._colour_timer.start()

    def _colour(self, position: int, runs: tuple, first: int, last: int) -> int:
        """Give runs[first:last], which start at `position`, their formats; returns where they end."""
        c = QTextCursor(self.document())
        c.beginEditBlock()
        for text, spec in runs[first:last]:
            end = position + len(text)
            if any(spec.values()):
                c.setPosition(position)
                c.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                c.setCharFormat(self._token_format(spec))
            position = end
        c.endEditBlock()
        return position

    # -- looks --

    def _token_format(self, spec: dict) -> QTextCharFormat:
        cache = self._fmt()["tokens"]
        key = tuple(sorted((k, v) for k, v in spec.items() if v))
        fmt = cache.get(key)
        if fmt is None:
            fmt = token_format(spec, self._fmt()["code"])
            cache[key] = fmt
        return fmt

    # -- looks --

    def paper(self) -> QColor:
        """The colour behind the text: Base, or with fit_height (transparent, in a list of
        messages) the Window colour the list shows."""
        role = QPalette.ColorRole.Window if self.fit_height else QPalette.ColorRole.Base
        return self.palette().color(role)

    def dark(self) -> bool:
        return self.paper().lightness() < 128

    def _fmt(self) -> dict:
        """Formats for the current palette, made once per render of a palette."""
        if self._formats is not None:
            return self._formats
        pal = self.palette()
        dark = self.dark()
        paper = self.paper()
        if dark and paper.lightness() < 20:  # lighter() of near-black stays near-black
            paper = QColor(design.DARK.surface)
        code_bg = paper.lighter(125) if dark else paper.darker(104)
        border = paper.lighter(165) if dark else paper.darker(115)
        inline_bg = paper.lighter(140) if dark else paper.darker(108)
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        size = self.font().pointSizeF()

        code = QTextCharFormat()
        code.setFontFamilies([fixed.family()])
        code.setFontFixedPitch(True)
        code.setFontStyleHint(QFont.StyleHint.Monospace)
        if size > 0:
            code.setFontPointSize(size * 0.95)

        frame = QTextFrameFormat()
        frame.setBackground(code_bg)
        frame.setBorder(1)
        frame.setBorderBrush(border)
        frame.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        frame.setPadding(8)
        frame.setTopMargin(2)
        frame.setBottomMargin(4)
        frame.setWidth(QTextLength(QTextLength.Type.PercentageLength, 100))

        code_block = QTextBlockFormat()
        code_block.setLineHeight(115, QTextBlockFormat.LineHeightTypes.ProportionalHeight.value)

        header_block = QTextBlockFormat()
        header_block.setAlignment(Qt.AlignmentFlag.AlignRight)
        header_block.setTopMargin(6)
        header_char = QTextCharFormat()
        header_char.setForeground(pal.color(QPalette.ColorRole.PlaceholderText))
        if size > 0:
            header_char.setFontPointSize(size * 0.85)
        link = QTextCharFormat(header_char)
        link.setAnchor(True)
        link.setForeground(pal.color(QPalette.ColorRole.Link))

        spacer = QTextBlockFormat()
        spacer.setLineHeight(0, QTextBlockFormat.LineHeightTypes.FixedHeight.value)
        spacer_char = QTextCharFormat()
        spacer_char.setFontPointSize(1)

        self._formats = {
            "style": DARK_STYLE if dark else LIGHT_STYLE, "code": code,
            "frame": frame, "code_block": code_block, "header_block": header_block,
            "header_char": header_char, "link": link, "spacer": spacer, "spacer_char": spacer_char,
            "inline_bg": inline_bg, "border": border, "tokens": {},
        }
        return self._formats

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.FontChange) and self._formats is not None:
            if self._streaming:
                self._palette_stale = True  # redrawn whole at end_stream
            elif not self._rerender_due:
                self._rerender_due = True  # a theme switch sends several events
                QTimer.singleShot(0, self, self._rerender)

    def _rerender(self) -> None:
        self._rerender_due = False
        if not self._streaming:
            self.set_markdown(self.markdown())

    # -- links and resources --

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            try:
                index = int(url.path())
                code = self._code.code() if self._code and self._code.index == index else self._codes[index]
            except (ValueError, IndexError):
                return
            QApplication.clipboard().setText(code)
            self.code_copied.emit(code)
        elif url.scheme() in EXTERNAL_SCHEMES:
            target = url.toString()
            hidden = any(text.strip() not in (target, url.toDisplayString()) for text in self.anchor_texts(target))
            if hidden and self._confirming != target:
                # The words say one thing, the link goes elsewhere: say where first; a second click opens.
                self._confirming = target
                self.link_target_shown.emit(target)
                QToolTip.showText(QCursor.pos(), f"This link goes to {target}\nClick it again to open it.", self)
                QTimer.singleShot(CONFIRM_LINK_MS, lambda: setattr(self, "_confirming", None))
                return
            self._confirming = None
            self.link_opened.emit(target)
            QDesktopServices.openUrl(url)

    def anchor_texts(self, href: str) -> list[str]:
        """The texts of every link in the view that points at href."""
        texts, block = [], self.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                if fragment.isValid() and fragment.charFormat().anchorHref() == href:
                    texts.append(fragment.text())
                it += 1
            block = block.next()
        return texts

    def loadResource(self, kind: int, name: QUrl):  # noqa: N802 - Qt's name
        # The documents answer every resource themselves (InertDocument); this is never reached for
        # them, and answers nothing for anything else.
        return QByteArray()

    # -- fit_height --

    def _schedule_fit(self, *_args) -> None:
        if not self._fit_timer.isActive():
            self._fit_timer.start()

    def _fit(self) -> None:
        margins = self.contentsMargins()
        height = math.ceil(self.document().size().height()) + margins.top() + margins.bottom()
        if height != self.minimumHeight() or height != self.maximumHeight():
            self.setFixedHeight(height)
            self.updateGeometry()

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = super().sizeHint()
        if self.fit_height:
            hint.setHeight(self.minimumHeight())
        return hint

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        hint = super().minimumSizeHint()
        if self.fit_height:
            hint.setHeight(self.minimumHeight())
        return hint

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fit_height and event.oldSize().width() != event.size().width():
            self._schedule_fit()

    def wheelEvent(self, event) -> None:
        if self.fit_height:
            event.ignore()  # the list around it scrolls
            return
        super().wheelEvent(event)

