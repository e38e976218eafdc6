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


def added_model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-models" / "tiny"
    folder.mkdir(parents=True)
    shutil.copy(LLAMA8B, folder / "config.json")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def library_with_added_folder(make_window, qtbot, tmp_path):
    folder = added_model_folder(tmp_path)
    window = make_window(NO_DRIVER)
    window.show_page("models")
    page = window.models_page
    page.tabs.setCurrentWidget(page.library)
    page.library.folder_added.emit(str(folder.parent))
    qtbot.waitUntil(lambda: page.library.models.rowCount() == 1, timeout=10000)
    page.library.table.selectRow(0)
    return page, folder


def test_an_added_folder_can_leave_the_list_with_its_files_kept(make_window, qtbot, tmp_path):
    page, folder = library_with_added_folder(make_window, qtbot, tmp_path)
    assert page.library.remove.isVisible()
    qtbot.mouseClick(page.library.remove, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.library.models.rowCount() == 0, timeout=10000)
    assert (folder / "model.safetensors").exists()  # only the list changed
    assert page.ctx.settings.model_folders == []


def test_delete_names_the_path_and_size_first_and_moves_no_button(make_window, qtbot, tmp_path):
    page, folder = library_with_added_folder(make_window, qtbot, tmp_path)
    lib = page.library
    before = {b.text(): b.geometry() for b in (lib.add_folder, lib.refresh_button, lib.serve, lib.remove)}
    delete_at = lib.delete.geometry()
    qtbot.mouseClick(lib.delete, Qt.MouseButton.LeftButton)
    assert f"from disk: {folder}" in lib.status.text() and "GiB?" in lib.status.text()
    assert "Remove from list keeps the files" in lib.status.text()
    qtbot.wait(50)  # a layout pass
    assert {b.text(): b.geometry() for b in (lib.add_folder, lib.refresh_button, lib.serve, lib.remove)} == before
    assert lib.delete.geometry() == delete_at
    assert folder.exists()  # nothing deleted on the first click
    qtbot.mouseClick(lib.delete, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not folder.exists(), timeout=10000)


def test_the_machine_page_shows_the_gpu_chosen_on_another_page(make_window, qtbot):
    window = make_window(NO_DRIVER)
    machine = window.machine_page
    assert machine.plan_choice.itemText(0) == "no GPU chosen yet"  # not "the GPUs in this machine": there are none
    window.server_page.plan_choice.setCurrentIndex(window.server_page.plan_choice.findData("l4"))
    qtbot.waitUntil(lambda: machine.plan_choice.currentData() == "l4", timeout=5000)
    texts = " ".join(label.text() for label in machine.findChildren(type(machine.gpu_message)))
    assert "Planning for: NVIDIA L4" in texts
