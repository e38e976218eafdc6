"""The Server page as a new user first meets it (issue: the first hour, items 5-7 and 9)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from PySide6.QtCore import QPoint, Qt

from llmdesk.core.server.supervisor import ServerState
from tests.ui.conftest import scan_of

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"


def server(make_window, scan=None, size=(1120, 720)):
    window = make_window(scan) if scan is not None else make_window()
    window.resize(*size)
    window.show_page("server")
    return window, window.server_page


def top_in_window(widget) -> int:
    return widget.mapTo(widget.window(), QPoint(0, 0)).y()


def test_first_view_shows_no_empty_problem_bar_and_no_fix_button(make_window):
    window, page = server(make_window)
    assert not page.problem.isVisible() and not page.apply_fix.isVisible() and not page.alerts.isVisible()


def test_start_without_a_model_says_so_above_the_form_without_a_fix_button(make_window, qtbot):
    window, page = server(make_window)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.problem.isVisible() and "Choose a model first" in page.problem.text()
    assert not page.apply_fix.isVisible()
    assert top_in_window(page.problem) < top_in_window(page.model)  # where the eye is, not below the fold


def test_start_without_vllm_shows_the_problem_and_install_in_view(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vllm on PATH, and this venv has none
    window, page = server(make_window)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python="")
    page.model.setText("Qwen/Qwen2.5-7B-Instruct")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(page.install_button.isVisible, timeout=20000)
    assert "vLLM is not installed" in page.problem.text()
    bottom = window.height()
    for widget in (page.problem, page.install_button):
        assert 0 <= top_in_window(widget) and top_in_window(widget) + widget.height() <= bottom, widget
    assert not page.apply_fix.isVisible()
    assert window.ctx.server.status.state == ServerState.STOPPED


def test_the_fit_preview_follows_the_planned_gpu_at_once(make_window, qtbot, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json", folder / "config.json")
    window, page = server(make_window)
    assert page.plan_row.isVisible()  # no GPU here: the page says so and offers the choice
    page.model.setText(str(folder))
    qtbot.waitUntil(lambda: "none chosen to plan for" in page.fit.summary.text(), timeout=5000)
    assert page.report is None  # no silent H100
    page.plan_choice.setCurrentIndex(page.plan_choice.findData("rtx-4090"))
    qtbot.waitUntil(lambda: page.report is not None and page.report.gpu_name == "NVIDIA GeForce RTX 4090",
                    timeout=5000)
    assert window.ctx.settings.planning_gpu == "rtx-4090"
    # chosen elsewhere (the Machine page): the preview follows without touching a field
    window.machine_page.plan_choice.setCurrentIndex(window.machine_page.plan_choice.findData("l40s"))
    qtbot.waitUntil(lambda: page.report.gpu_name == "NVIDIA L40S", timeout=5000)
    assert page.plan_choice.currentData() == "l40s"


def test_with_a_gpu_the_plan_choice_is_not_offered(make_window):
    window, page = server(make_window, scan_of("h100"))
    assert not page.plan_row.isVisible()


def test_browse_puts_the_chosen_folder_in_the_model_field(make_window, qtbot, tmp_path):
    window, page = server(make_window)
    qtbot.mouseClick(page.browse, Qt.MouseButton.LeftButton)
    dialog = page.browse.dialog
    qtbot.waitUntil(dialog.isVisible, timeout=3000)
    dialog.fileSelected.emit(str(tmp_path))
    dialog.reject()
    assert page.model.text() == str(tmp_path)
