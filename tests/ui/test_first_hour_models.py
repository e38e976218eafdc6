"""The Models page as a new user first meets it (issue: the first hour, items 7 and 9-12)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt

from tests.ui.conftest import NO_DRIVER

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
LLAMA8B = CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json"


def check(qtbot, page, source: str) -> None:
    page.source.setText(source)
    qtbot.mouseClick(page.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.check_button.isEnabled() and page.ctx.tasks.pending == 0, timeout=10000)


def test_without_a_gpu_nothing_is_judged_until_one_is_chosen_and_the_choice_is_shared(make_window, qtbot):
    window = make_window(NO_DRIVER)
    page = window.models_page
    assert page.gpu.currentText() == "No GPU here: choose one to plan for…"
    check(qtbot, page, str(LLAMA8B))
    assert page.panel.report is None and "No GPU to judge the fit for" in page.panel.summary.text()
    page.gpu.setCurrentIndex(page.gpu.findData("rtx-4090"))
    page.gpu.activated.emit(page.gpu.currentIndex())  # what a click on the list does
    qtbot.waitUntil(lambda: window.ctx.settings.planning_gpu == "rtx-4090", timeout=5000)
    assert page.panel.report.gpu_name == "NVIDIA GeForce RTX 4090"
    assert window.server_page.plan_choice.currentData() == "rtx-4090"  # every page plans for it now


def test_check_a_model_suggests_the_folder_never_the_config_json(make_window, qtbot, tmp_path):
    page = make_window(NO_DRIVER).models_page
    page.gpu.setCurrentIndex(page.gpu.findData("h100-80gb"))
    check(qtbot, page, str(LLAMA8B))
    assert page.panel.launch.text() == "vllm serve MODEL"
    folder = tmp_path / "llama"
    folder.mkdir()
    shutil.copy(LLAMA8B, folder / "config.json")
    (folder / "model-00001-of-00004.safetensors").touch()
    check(qtbot, page, str(folder / "config.json"))
    assert page.panel.launch.text() == f"vllm serve {folder}"


def test_check_a_model_has_a_browse_button(make_window, qtbot, tmp_path):
    page = make_window(NO_DRIVER).models_page
    page.tabs.setCurrentIndex(3)
    qtbot.mouseClick(page.browse, Qt.MouseButton.LeftButton)
    page.browse.dialog.fileSelected.emit(str(tmp_path))
    page.browse.dialog.reject()
    assert page.source.text() == str(tmp_path)
