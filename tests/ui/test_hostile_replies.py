"""A model's reply (or an imported chat) must never make the app read a file or fetch anything
(issue: hardening, item 1). Each attack runs in a child process with a time limit: a reply that
makes the view open a FIFO would freeze the GUI thread for good."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import sys
    from PySide6.QtWidgets import QApplication
    from PySide6.QtGui import QImage, QColor
    app = QApplication([])
    from llmdesk.ui.chat.markdown_view import MarkdownView
    view = MarkdownView(fit_height=True)
    view.resize(600, 400)
    view.show()
    mode, text = sys.argv[1], sys.argv[2]
    if mode == "stream":
        view.begin_stream(); view.append(text); view.end_stream()
    else:
        view.set_markdown(text)
    for _ in range(20):
        app.processEvents()
    view.grab()  # paint: images are loaded when laid out and drawn
    print("height", view.document().size().height())
""")


def render(text: str, mode: str = "set", timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-c", CHILD, mode, text], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.parametrize("mode", ["set", "stream"])
def test_an_image_path_in_a_reply_is_not_read(tmp_path, mode):
    from PySide6.QtGui import QColor, QImage

    picture = tmp_path / "secret.png"
    image = QImage(400, 900, QImage.Format.Format_RGB32)
    image.fill(QColor("red"))
    assert image.save(str(picture))
    for target in (str(picture), picture.as_uri(), f"<{picture}>"):
        result = render(f"Look:\n\n![x]({target})\n\nend", mode)
        assert result.returncode == 0, result.stderr
        height = float(result.stdout.split()[-1])
        assert height < 300, f"{target}: the 900-pixel picture was read and shown ({height})"


def test_a_fifo_in_a_reply_does_not_freeze_the_view(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    try:
        result = render(f"![x]({fifo})", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the view opened a FIFO named in a reply and froze")
    assert result.returncode == 0, result.stderr


def test_dev_zero_in_a_reply_is_not_read():
    try:
        result = render("![x](/dev/zero)", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the view read /dev/zero")
    assert result.returncode == 0, result.stderr
