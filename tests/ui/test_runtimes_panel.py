"""Settings → vLLM runtimes, clicked through: an install from a wheel folder (uv, no network) with its
progress, a broken reinstall that leaves the runtime in use working, Use and Remove."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from llmdesk.core.server import runtime, runtimes
from tests.unit.test_runtime_install import make_fake_vllm_wheel


@pytest.fixture
def panel(make_window, qtbot):
    window = make_window()
    window.show_page("settings")
    page = window.settings_page
    qtbot.waitUntil(lambda: page.runtimes.empty.isVisible() or page.runtimes.table.isVisible(), timeout=10000)
    return page.runtimes


def test_empty_then_installed_from_a_wheel_folder_then_a_broken_reinstall_changes_nothing(panel, qtbot, tmp_path):
    assert panel.empty.isVisibleTo(panel) and "7.8 GB on disk" in panel.plan.text()
    good, broken = tmp_path / "good", tmp_path / "broken"
    make_fake_vllm_wheel(good)
    panel.install_or_cancel(good)
    assert panel.install_button.text() == "Cancel" and not panel.progress.isHidden()
    qtbot.waitUntil(lambda: "is installed and in use" in panel.status.text(), timeout=120000)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=10000)
    assert panel.table.item(0, 1).text() == "✔ in use"
    assert panel.progress.isHidden() and panel.install_button.text() == "Install vLLM 0.26.0"

    make_fake_vllm_wheel(broken, init=b"raise ImportError('libcuda.so.1: cannot open shared object file')")
    panel.install_or_cancel(broken)
    qtbot.waitUntil(lambda: panel.problem.isVisibleTo(panel), timeout=120000)
    assert "was installed but does not start" in panel.problem.text() and "libcuda.so.1" in panel.problem.text()
    assert runtime.find_vllm_runtime("").runtime.vllm_version == "0.26.0"  # still the working one
    assert runtime.vllm_version_of(str(runtimes.current_runtime().python)) == "0.26.0"


def test_use_and_remove_act_on_the_selected_runtime(panel, qtbot, tmp_path, monkeypatch):
    import asyncio
    import concurrent.futures

    wheels = tmp_path / "w"
    make_fake_vllm_wheel(wheels, "0.26.0")
    make_fake_vllm_wheel(wheels, "0.27.1")
    for version, use in (("0.26.0", True), ("0.27.1", False)):  # in a thread: the window's loop runs here
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, runtimes.install_runtime(version, wheels=wheels, use=use, check_disk=False)
                        ).result()
    panel.start()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=10000)
    panel.table.selectRow(0)  # 0.26.0, in use: neither Use nor Remove
    assert not panel.use_button.isEnabled() and not panel.remove_button.isEnabled()
    panel.table.selectRow(1)
    assert panel.use_button.isEnabled()
    qtbot.mouseClick(panel.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "vLLM 0.27.1 from now on" in panel.status.text(), timeout=10000)
    assert runtimes.current_runtime().version == "0.27.1"
    monkeypatch.setattr("PySide6.QtWidgets.QMessageBox.question",
                        lambda *a, **k: __import__("PySide6.QtWidgets").QtWidgets.QMessageBox.StandardButton.Yes)
    qtbot.waitUntil(lambda: panel.table.item(1, 1).text() == "✔ in use", timeout=10000)  # the list is read again
    panel.table.selectRow(0)
    assert panel.remove_button.isEnabled()
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Removed vLLM 0.26.0" in panel.status.text(), timeout=10000)
    assert [r.version for r in runtimes.list_runtimes()] == ["0.27.1"]
