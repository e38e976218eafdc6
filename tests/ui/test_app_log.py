"""The log tells what went wrong: every problem shown with its cause, every bug with its traceback,
and no line for routine requests (the /health poll was 289 of 300 lines while serving)."""

from __future__ import annotations

import logging

import httpx
import pytest

from llmdesk.core.base.app_log import log_file, setup_logging
from llmdesk.core.base.errors import Problem
from llmdesk.ui import problems as problems_module
from llmdesk.ui.problems import ProblemBanner, ProblemPresenter, log_shown


@pytest.fixture
def log_text():
    setup_logging()
    problems_module._last_shown.clear()

    def read() -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        return log_file().read_text(encoding="utf-8") if log_file().exists() else ""
    return read


def test_a_problem_shown_in_the_banner_is_logged_with_its_cause(qtbot, log_text):
    banner = ProblemBanner()
    qtbot.addWidget(banner)
    presenter = ProblemPresenter(banner)
    presenter.show_problem(Problem("Could not reach the Hugging Face Hub", "Name or service not known", "Retry"))
    text = log_text()
    assert "WARNING" in text and "shown on the problem banner: Could not reach the Hugging Face Hub: " \
                                 "Name or service not known" in text


def test_an_unexpected_error_is_logged_with_its_traceback(qtbot, log_text):
    banner = ProblemBanner()
    qtbot.addWidget(banner)
    presenter = ProblemPresenter(banner)
    try:
        {}["missing"]
    except KeyError as exc:
        presenter.show_exception(exc, "reading the settings")
    text = log_text()
    assert "failed while reading the settings" in text and "Traceback" in text and "KeyError" in text


def test_a_problem_repeated_in_one_place_is_one_line_until_it_changes(log_text):
    for _ in range(5):
        log_shown("the Dashboard", "No server at http://127.0.0.1:8000", "Connection refused")
    log_shown("the Dashboard", "Not a vLLM server", "404")
    text = log_text()
    assert text.count("No server at http://127.0.0.1:8000") == 1 and text.count("Not a vLLM server") == 1


def test_routine_requests_are_not_logged(log_text):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    with httpx.Client(transport=transport) as client:
        for _ in range(20):
            client.get("http://127.0.0.1:8000/health")
    assert "/health" not in log_text()
