"""The one place every failure reaches: a banner at the top of the window, never a traceback.

Tracebacks go to the log file; the user sees a title, a plain explanation and what to do.
The banner is not modal on purpose: a modal dialog spins a nested Qt loop, which breaks qasync.
"""

from __future__ import annotations

import html
import logging
import re
import sys

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from llmdesk.core.base.app_log import log_file
from llmdesk.core.base.errors import Problem, problem_from_exception
from llmdesk.ui import design

log = logging.getLogger(__name__)


_last_shown: dict[str, str] = {}
_CODE = re.compile(r"`([^`]+)`")


def rich_text(text: str) -> str:
    """A problem's words for a rich-text label: HTML escaped (they may quote a log or a server),
    `code` shown as code instead of with its backticks."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text, quote=False)).replace("\n", "<br>")


def plain_text(text: str) -> str:
    """A problem's words for a plain label: Markdown's backticks dropped."""
    return _CODE.sub(r"\1", text)


def log_shown(where: str, title: str, explanation: str = "", *, every_time: bool = False) -> None:
    """Every problem a person is shown goes to the log with its cause, once per change in each
    place (a scrape that fails every second is one line until it says something else); every_time
    for a place where each problem is an event of its own (the banner)."""
    line = f"{title}: {explanation}".strip(": ")
    if not every_time and _last_shown.get(where) == line:
        return
    _last_shown[where] = line
    log.warning("shown on %s: %s", where, line)


def show_in_box(box: QLabel, problem: Problem, where: str) -> None:
    """A problem in a page's own problem box (widgets.problem_box): logged once for `where`, its words
    escaped for rich text, the fix under them."""
    log_shown(where, problem.title, problem.explanation)
    what_to_do = f"<br><b>What to do:</b> {rich_text(problem.fix)}" if problem.fix else ""
    box.setText(f"<b>{rich_text(problem.title)}</b><br>{rich_text(problem.explanation)}{what_to_do}")
    box.show()


class ProblemBanner(QFrame):
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("problemBanner")
        design.banner(self, "error")
        self.title = design.role(QLabel(), "strong")
        self.title.setWordWrap(True)
        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fix = QLabel()
        self.fix.setWordWrap(True)
        self.more = QLabel()
        self.open_log = design.action(QPushButton("Open log"), "mdi6.text-box-outline")
        self.open_log.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file().parent))))
        self.dismiss = design.action(QPushButton("Dismiss"), "mdi6.close")
        self.dismiss.clicked.connect(self.dismissed)

        text = QVBoxLayout()
        for label in (self.title, self.explanation, self.fix, self.more):
            label.setTextFormat(Qt.TextFormat.PlainText)  # a problem may quote a server's HTML
            text.addWidget(label)
        buttons = QVBoxLayout()
        buttons.addWidget(self.dismiss)
        buttons.addWidget(self.open_log)
        buttons.addStretch()
        row = QHBoxLayout(self)
        row.addLayout(text, 1)
        row.addLayout(buttons)
        self.hide()

    def show_problem(self, problem: Problem, waiting: int) -> None:
        self.title.setText(plain_text(problem.title))
        self.explanation.setText(plain_text(problem.explanation))
        self.fix.setText(f"What to do: {plain_text(problem.fix)}" if problem.fix else "")
        self.fix.setVisible(bool(problem.fix))
        self.more.setText(f"{waiting} more after this one" if waiting else "")
        self.more.setVisible(waiting > 0)
        self.show()


class ProblemPresenter(QObject):
    """Shows problems one at a time, newest first; dismissing reveals the next."""

    problem_shown = Signal(object)  # Problem

    def __init__(self, banner: ProblemBanner):
        super().__init__(banner)
        self.banner = banner
        self.pending: list[Problem] = []
        banner.dismissed.connect(self._dismiss)

    def show_problem(self, problem: Problem) -> None:
        log_shown("the problem banner", problem.title, problem.explanation, every_time=True)
        self.pending.append(problem)
        self._show_newest()
        self.problem_shown.emit(problem)

    def show_exception(self, exc: BaseException, doing: str) -> None:
        log.error("failed while %s", doing, exc_info=(type(exc), exc, exc.__traceback__))
        self.show_problem(problem_from_exception(exc, doing))

    def install_excepthook(self) -> None:
        """Exceptions escaping Qt slots and qasync tasks end here instead of on stderr."""
        previous = sys.excepthook

        def hook(exc_type, exc, tb):
            if issubclass(exc_type, KeyboardInterrupt):
                previous(exc_type, exc, tb)
                return
            self.show_exception(exc, "running llmdesk")

        sys.excepthook = hook

    def _dismiss(self) -> None:
        if self.pending:
            self.pending.pop()
        if self.pending:
            self._show_newest()
        else:
            self.banner.hide()

    def _show_newest(self) -> None:
        self.banner.show_problem(self.pending[-1], len(self.pending) - 1)
