"""The Models page's fit check: a model folder or config, a GPU, and the verdict panel."""

import json
from pathlib import Path

from PySide6.QtCore import Qt

from llmdesk.core.fit.memory_model import VERDICT_FITS, VERDICT_NEEDS_TP, VERDICT_NO
from llmdesk.ui.fit.panel import memory_segments
from llmdesk.ui.stall_monitor import StallMonitor
from tests.ui.conftest import NO_DRIVER, scan_of

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"


def check(qtbot, page, source: str) -> None:
    page.source.setText(source)
    qtbot.mouseClick(page.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.check_button.isEnabled() and page.ctx.tasks.pending == 0, timeout=10000)


def choose_gpu(page, key: str) -> None:
    page.gpu.setCurrentIndex(page.gpu.findData(key))


def test_a_model_that_fits_shows_its_memory_and_launch_line(make_window, qtbot, tmp_path):
    folder = tmp_path / "Llama-3.1-8B-Instruct"
    folder.mkdir()
    (folder / "config.json").write_bytes((CONFIGS / "meta-llama__Llama-3.1-8B-Instruct.json").read_bytes())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 16_060_522_496}}))
    (folder / "model-00001-of-00004.safetensors").touch()  # the weights beside it: vLLM can serve the folder
    page = make_window(NO_DRIVER).models_page
    choose_gpu(page, "h100-80gb")
    with StallMonitor(5) as monitor:
        check(qtbot, page, str(folder))
    assert monitor.max_ms < 50, monitor.summary()
    panel = page.panel
    assert panel.report.verdict == VERDICT_FITS and panel.badge.text() == "Fits"
    assert panel.launch.text() == f"vllm serve {folder}"
    segments = dict(memory_segments(panel.report))
    rope = panel.report.allowances["rope_tables"].bytes  # loaded with the weights, shown with them
    assert segments["weights"] == 16_060_522_496 + rope and segments["kv_cache"] == panel.report.kv_cache_bytes
    assert sum(segments.values()) == panel.report.cuda_total_bytes


def test_changing_the_gpu_redoes_the_verdict_at_once(make_window, qtbot):
    page = make_window(NO_DRIVER).models_page
    choose_gpu(page, "h100-80gb")
    check(qtbot, page, str(CONFIGS / "meta-llama__Llama-3.3-70B-Instruct.json"))
    assert page.panel.report.verdict == VERDICT_NEEDS_TP
    page.gpu_count.setValue(2)
    assert page.panel.report.tensor_parallel_size == 2 and "--tensor-parallel-size 2" in page.panel.launch.text()
    choose_gpu(page, "t4")
    assert page.panel.report.verdict == VERDICT_NO and page.panel.badge.text() == "Does not fit"
    assert page.panel.launch.isHidden()


def test_bad_sources_are_explained_in_the_panel_not_as_crashes(make_window, qtbot, tmp_path):
    window = make_window(NO_DRIVER)
    page = window.models_page
    check(qtbot, page, str(tmp_path / "missing"))
    assert "No model at" in page.panel.summary.text() and page.panel.badge.text() == "Cannot tell"
    broken = tmp_path / "config.json"
    broken.write_text("{ not json")
    check(qtbot, page, str(broken))
    assert "config.json cannot be read" in page.panel.summary.text()
    assert window.ctx.banner.isHidden()  # expected problems stay on the page


def test_a_machine_with_gpus_is_chosen_first(make_window):
    page = make_window(scan_of("l40s", 2)).models_page
    assert page.gpu.currentText() == "This machine: 2× NVIDIA L40S" and page.gpu_count.value() == 2
