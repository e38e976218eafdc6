"""MarkdownView: streamed replies look like whole ones, code is highlighted once complete and copied
exactly, nothing in a reply loads or navigates anywhere, fit_height follows the content, and
streaming stays incremental (llmdesk/ui/chat/markdown_view.py, llmdesk/ui/coalesce.py)."""

from __future__ import annotations

import random
import re
import time

import pytest
from PySide6.QtCore import QByteArray, QEvent, QObject, QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextCursor
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from llmdesk.ui.chat.markdown_view import Code, Markdown, MarkdownView, fence_open, highlight_runs, split_segments
from llmdesk.ui.coalesce import DeltaCoalescer
from llmdesk.ui.theme import dark_palette

PYTHON = '''def greet(name: str) -> str:
    """Say hello."""

    return f"Hello, {name}!"  # <b>not bold</b>'''

REPLY = f"""## Serving a model

Start the server with a **shorter context** so the KV cache fits; `--max-model-len` caps it.
See [the docs](https://docs.vllm.ai/en/latest/) for more.

- install vLLM into its *own* environment
- run `vllm serve` as a subprocess
  - nested: read its log
- poll `/health`

1. pick a variant
2. start it

3. after a blank line

| GPU | memory |
|-----|-------:|
| H100 | 80 GiB |
| L40S | 48 GiB |

```python
{PYTHON}
```
Text straight after a fence, with <b>raw html</b> & <img src="http://example.invalid/x.png">.

~~~bash
vllm serve Qwen/Qwen2.5-7B-Instruct \\
    --max-model-len 16384

echo done
~~~

````markdown
```python
print("a fence inside a fence")
```
````

- a step with its command:

  ```sh
  make install
    indented more
  ```

> A quote
> on two lines.

---

Last paragraph.
"""


def plain(view: MarkdownView) -> str:
    """The visible text, blank lines aside (block spacing may differ, words may not)."""
    text = view.toPlainText().replace("\u2028", "\n").replace("\u2029", "\n")
    return re.sub(r"\n\s*\n+", "\n", text).strip()


@pytest.fixture
def make_view(qtbot):
    def make(fit_height: bool = False, width: int = 700) -> MarkdownView:
        view = MarkdownView(fit_height=fit_height)
        qtbot.addWidget(view)
        view.resize(width, 500)
        view.show()
        return view
    return make


def stream(view: MarkdownView, chunks) -> None:
    view.begin_stream()
    for chunk in chunks:
        view.append(chunk)


# --- the source --------------------------------------------------------------------------------

def test_segments_split_markdown_from_fenced_code():
    segments = split_segments(REPLY)
    codes = [s for s in segments if isinstance(s, Code)]
    assert [c.lang for c in codes] == ["python", "bash", "markdown", "sh"]
    assert codes[0].code == PYTHON
    assert codes[1].code == 'vllm serve Qwen/Qwen2.5-7B-Instruct \\\n    --max-model-len 16384\n\necho done'
    assert codes[2].code == '```python\nprint("a fence inside a fence")\n```'
    assert codes[3].code == "make install\n  indented more"
    assert all(c.closed for c in codes)
    assert isinstance(segments[0], Markdown) and segments[0].text.startswith("## Serving")
    assert "".join(s.text for s in segments if isinstance(s, Markdown)).count("Text straight after a fence") == 1


def test_fences_indented_unclosed_and_inline():
    assert fence_open("```` py") .length == 4
    assert fence_open("  ```js").indent == 2
    assert fence_open("``` `x` ```") is None  # inline code, not a fence
    assert fence_open("text ```") is None
    [item, code] = split_segments("- step:\n\n  ```sh\n  make\n    indented\n  ```\n")
    assert isinstance(item, Markdown) and code == Code("sh", "make\n  indented", True)
    assert split_segments("intro\n\n```python\nx = 1\n") == [Markdown("intro\n\n"), Code("python", "x = 1", False)]


def test_highlight_runs_cover_the_code_exactly():
    for lang in ("python", "bash", "no-such-language", ""):
        runs = highlight_runs(PYTHON, lang, "default")
        assert "".join(text for text, _ in runs) == PYTHON


def test_a_token_type_the_style_does_not_list_takes_its_parents_colour():
    """YAML's lexer emits Literal.Scalar.Plain, which no Pygments style lists: it raised KeyError."""
    code = "name: vllm\nport: 8000\n"
    runs = highlight_runs(code, "yaml", "default")
    assert "".join(text for text, _ in runs) == code
    assert any(spec.get("color") for _, spec in runs)  # the keys still coloured (Name.Tag)


# --- streaming ---------------------------------------------------------------------------------

def test_streaming_char_by_char_shows_what_a_whole_render_shows(make_view):
    whole = make_view()
    whole.set_markdown(REPLY)
    streamed = make_view()
    streamed.EXACT_RERENDER_LIMIT = 0  # keep the incremental render to compare it
    stream(streamed, REPLY)
    streamed.end_stream()
    assert plain(streamed) == plain(whole)
    assert streamed.code_blocks() == whole.code_blocks() == [s.code for s in split_segments(REPLY)
                                                             if isinstance(s, Code)]
    assert streamed.markdown() == REPLY
    assert "<b>raw html</b>" in plain(whole)


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_streaming_in_random_chunks_shows_what_a_whole_render_shows(make_view, seed):
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(REPLY):
        n = rng.randint(1, 12)
        chunks.append(REPLY[i:i + n])
        i += n
    whole = make_view()
    whole.set_markdown(REPLY)
    streamed = make_view()
    streamed.EXACT_RERENDER_LIMIT = 0
    stream(streamed, chunks)
    streamed.end_stream()
    assert plain(streamed) == plain(whole)
    # a short reply is rendered again whole at the end: the same text either way
    short = make_view()
    stream(short, chunks)
    short.end_stream()
    assert plain(short) == plain(whole) and short.toHtml() == whole.toHtml()


def test_mid_stream_the_unfinished_text_is_shown_as_it_comes(make_view):
    view = make_view()
    stream(view, ["# Title\n\nA para", "graph still being wri"])
    assert plain(view) == "Title\nA paragraph still being wri"
    assert view.is_streaming() and view.markdown() == "# Title\n\nA paragraph still being wri"
    view.append("tten **bold**\n\nNext")
    assert plain(view) == "Title\nA paragraph still being written bold\nNext"


def test_code_is_highlighted_only_once_its_fence_closes(make_view):
    view = make_view()
    keyword = "#008000"  # Pygments' default style colours `def` and `return` so
    head, close = "Intro.\n\n```python\n" + PYTHON + "\n", "```\n"
    stream(view, [head[:20], head[20:]])
    assert keyword not in view.toHtml().lower()
    assert view.code_blocks() == []
    code_at = view.toPlainText().index("def greet")
    cursor = QTextCursor(view.document())
    cursor.setPosition(code_at + 1)
    assert cursor.charFormat().fontFixedPitch()  # plain monospace while open
    view.append(close)
    assert keyword in view.toHtml().lower()
    assert view.code_blocks() == [PYTHON]
    assert "Copy" in view.toPlainText()


def test_an_unclosed_fence_is_highlighted_when_the_stream_ends(make_view):
    view = make_view()
    view.EXACT_RERENDER_LIMIT = 0
    stream(view, ["```python\n", "def f():\n    return 1\n"])
    assert view.code_blocks() == []
    view.end_stream()
    assert view.code_blocks() == ["def f():\n    return 1"]
    assert "#008000" in view.toHtml().lower()


LONG_CODE = "\n".join(f"def f{i}(x):\n    return x * {i}  # line {i}\n" for i in range(120))  # ~5 KB


def test_a_long_code_block_is_coloured_off_the_gui_thread_in_slices(make_view, qtbot):
    """Pygments on 20 KB of Python takes ~35 ms: too long for one turn of the event loop."""
    assert len(LONG_CODE) > MarkdownView.SYNC_HIGHLIGHT_LIMIT
    view = make_view()
    view.RUNS_PER_SLICE = 50
    stream(view, ["Here:\n```python\n", *LONG_CODE.splitlines(keepends=True), "\n```\n", "After."])
    assert view.code_blocks() == [LONG_CODE]
    assert "#008000" not in view.toHtml().lower()  # not yet: the worker is lexing it
    qtbot.waitUntil(lambda: not view._colouring and "#008000" in view.toHtml().lower(), timeout=5000)
    assert plain(view).endswith("After.")
    whole = make_view()
    whole.set_markdown(view.markdown())
    assert plain(whole) == plain(view) and whole.code_blocks() == [LONG_CODE]


def test_copy_while_a_block_is_still_streaming_copies_what_came(make_view, qtbot):
    view = make_view()
    stream(view, ["```python\n", "a = 1\n", "b = 2"])
    assert view.code_blocks() == []
    with qtbot.waitSignal(view.code_copied, timeout=2000) as copied:
        view.anchorClicked.emit(QUrl("copy:0"))
    assert copied.args == ["a = 1\nb = 2"]


def test_dark_palette_picks_a_dark_code_style_and_follows_a_theme_switch(make_view, qtbot):
    view = make_view()
    view.set_markdown("```python\ndef f():\n    return 1\n```\n")
    assert "#008000" in view.toHtml().lower()
    view.setPalette(dark_palette())
    qtbot.waitUntil(lambda: "#ff7b72" in view.toHtml().lower(), timeout=2000)  # github-dark keyword
    assert view.dark() and view.code_blocks() == ["def f():\n    return 1"]


def test_append_cost_does_not_grow_with_the_reply(make_view):
    """Each character is rendered once: appending to a long reply costs what it cost at the start."""
    view = make_view()
    tokens = re.findall(r"\n+|[ \t]*\w+|[ \t]*[^\w\s]{1,3}|[ \t]+", REPLY)
    text = "".join(tokens[k % len(tokens)] for k in range(5000))
    chunks = ["".join(tokens[k % len(tokens)] for k in range(i, i + 8)) for i in range(0, 5000, 8)]
    view.begin_stream()
    times = []
    for chunk in chunks:
        t = time.perf_counter()
        view.append(chunk)
        times.append(time.perf_counter() - t)
    assert view.markdown() == text
    assert view.rendered_chars <= len(text)  # nothing rendered twice while streaming
    first, last = sum(times[:100]), sum(times[-100:])
    assert last < 3 * first + 0.05, (first, last)  # lenient: exact figures are bench/chat_stream_stalls.py's
    view.end_stream()
    assert view.code_blocks() == [s.code for s in split_segments(text) if isinstance(s, Code)]


def test_append_without_begin_stream_continues_the_text(make_view):
    view = make_view()
    view.set_markdown("First paragraph.\n\n")
    view.append("Second paragraph.")
    view.end_stream()
    assert view.markdown() == "First paragraph.\n\nSecond paragraph."
    assert plain(view) == "First paragraph.\nSecond paragraph."


# --- links, copying, resources -------------------------------------------------------------------

def anchor_point(view: MarkdownView, href: str) -> QPoint:
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().anchorHref() == href:
                cursor = QTextCursor(view.document())
                cursor.setPosition(frag.position() + frag.length() // 2)
                return view.cursorRect(cursor).center()
            it += 1
        block = block.next()
    raise AssertionError(f"no anchor {href}")


def test_copy_link_copies_the_exact_code_and_says_so(make_view, qtbot):
    code = "if a  <  b:\n\tprint('<b>tabs</b>  and  spaces ')   \n\n# ünïcode → ok"
    view = make_view()
    view.set_markdown(f"Two blocks.\n\n```\nfirst\n```\n\n```python\n{code}\n```\n")
    qtbot.waitExposed(view)
    with qtbot.waitSignal(view.code_copied, timeout=2000) as copied:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=anchor_point(view, "copy:1"))
    assert copied.args == [code]
    assert QApplication.clipboard().text() == code
    assert view.toPlainText().count("Copy") == 2


def test_web_links_open_outside_and_the_view_stays(make_view, qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    view = make_view()
    view.set_markdown("See [the docs](https://docs.vllm.ai/en/latest/) and [a file](file:///etc/passwd).")
    before = view.toHtml()
    qtbot.waitExposed(view)
    shown = []
    view.link_target_shown.connect(shown.append)
    docs = anchor_point(view, "https://docs.vllm.ai/en/latest/")
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=docs)
    assert opened == [] and shown == ["https://docs.vllm.ai/en/latest/"]  # "the docs": where it goes, first
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=docs)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=anchor_point(view, "file:///etc/passwd"))
    assert opened == ["https://docs.vllm.ai/en/latest/"]
    assert view.toHtml() == before and view.source().isEmpty()


def test_raw_html_and_images_in_a_reply_load_nothing(qtbot, monkeypatch):
    from llmdesk.ui.chat.markdown_view import InertDocument

    asked: list[tuple[str, object]] = []
    answer = InertDocument.loadResource

    def recording(self, kind, name):
        got = answer(self, kind, name)
        asked.append((name.toString(), got))
        return got

    monkeypatch.setattr(InertDocument, "loadResource", recording)
    view = MarkdownView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    reply = ('Look: <img src="http://example.invalid/a.png"> and <b>bold?</b>\n\n'
             '<div style="color:red">block</div>\n\n![alt](http://example.invalid/b.png)\n')
    view.set_markdown(reply)
    view.grab()  # lay out and paint: when images would be asked for
    text = view.toPlainText()
    assert '<img src="http://example.invalid/a.png">' in text and "<b>bold?</b>" in text
    assert '<div style="color:red">block</div>' in text
    assert not [name for name, _got in asked if "a.png" in name]  # raw HTML is text
    assert any("b.png" in name for name, _got in asked)  # a markdown image is asked for…
    # …and answered with an empty picture, never None (Qt would then read the path itself)
    assert all(got is not None and (isinstance(got, QByteArray) or got.width() == 16) for _name, got in asked)


# --- fit_height --------------------------------------------------------------------------------

class ResizeCounter(QObject):
    def __init__(self):
        super().__init__()
        self.count = 0

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Type.Resize:
            self.count += 1
        return False


def test_fit_height_follows_the_content_and_the_width(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    layout = QVBoxLayout(host)
    view = MarkdownView(fit_height=True)
    layout.addWidget(view)
    layout.addStretch(1)
    host.resize(600, 2000)
    host.show()
    qtbot.waitExposed(host)
    view.set_markdown("One line.")
    qtbot.waitUntil(lambda: abs(view.height() - view.document().size().height()) <= 1, timeout=2000)
    short = view.height()
    view.set_markdown(REPLY)
    qtbot.waitUntil(lambda: view.height() > short * 5, timeout=2000)
    assert abs(view.height() - view.document().size().height()) <= 1
    assert view.verticalScrollBar().maximum() == 0
    assert view.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    tall = view.height()
    host.resize(300, 2000)  # narrower: lines wrap, the view grows
    qtbot.waitUntil(lambda: view.height() > tall, timeout=2000)
    assert abs(view.height() - view.document().size().height()) <= 1


def test_fit_height_is_recomputed_once_per_loop_turn_not_per_delta(qtbot):
    view = MarkdownView(fit_height=True)
    qtbot.addWidget(view)
    view.resize(500, 50)
    view.show()
    qtbot.waitExposed(view)
    counter = ResizeCounter()
    view.installEventFilter(counter)
    view.begin_stream()
    for word in ("word " * 400).split(" "):
        view.append(word + " ")
    assert counter.count == 0
    qtbot.waitUntil(lambda: counter.count >= 1, timeout=2000)
    QApplication.processEvents()
    assert counter.count <= 2


# --- coalescing --------------------------------------------------------------------------------

def test_coalescer_flushes_once_per_interval(qtbot):
    got = []
    coalescer = DeltaCoalescer(got.append, interval_ms=30)
    for word in ("a", "b", "", "c"):
        coalescer.push(word)
    assert got == [] and coalescer.pending() == "abc"
    qtbot.waitUntil(lambda: got == ["abc"], timeout=1000)
    coalescer.push("d")
    coalescer.flush_now()
    assert got == ["abc", "d"] and coalescer.flushes == 2
    coalescer.push("e")
    coalescer.discard()
    qtbot.wait(60)
    assert got == ["abc", "d"]
    coalescer.flush_now()  # nothing buffered: no call
    assert coalescer.flushes == 2


def test_a_link_that_says_where_it_goes_opens_at_once_and_one_that_hides_it_does_not(make_view, qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    view = make_view()
    view.set_markdown("Plain: <https://docs.vllm.ai/> and [https://bank.example/](https://evil.example/steal)")
    qtbot.waitExposed(view)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=anchor_point(view, "https://docs.vllm.ai/"))
    assert opened == ["https://docs.vllm.ai/"]
    shown = []
    view.link_target_shown.connect(shown.append)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=anchor_point(view, "https://evil.example/steal"))
    assert opened == ["https://docs.vllm.ai/"] and shown == ["https://evil.example/steal"]
