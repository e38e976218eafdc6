"""The first-run guide as a new user meets it: it opens by itself, says what stays private, shows the
hardware, resumes where it was closed, can be skipped and opened again from Settings, and goes all
the way to a first answer (the Hub stand-in for the model, the vLLM stand-in for the server)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
from PySide6.QtCore import Qt

from llmdesk.core.base import settings as settings_store
from llmdesk.core.hub import first_models
from tests.fakes.hub_server import HubStandIn
from tests.fakes.standin_server import free_port
from tests.fakes.vllm_standin.runtime import make_fake_runtime
from tests.ui.conftest import scan_of
from tests.unit.test_downloads import CONFIG
from tests.unit.test_model_source import point_hub_client_at


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def saved_state() -> dict:
    return json.loads(settings_store.state_path().read_text())["values"]


def test_a_fresh_start_opens_the_guide_and_closing_midway_resumes_there(make_window, qtbot, arun):
    window = make_window()
    guide = window.start_page
    assert window.current_page == "start" and guide.step == "welcome"
    assert "sends no usage statistics" in guide.steps["welcome"].findChildren(type(guide.trail))[1].text()
    click(qtbot, guide.next_button)
    assert guide.step == "hardware"
    qtbot.waitUntil(lambda: "No NVIDIA GPU here" in guide.hardware.text(), timeout=10000)
    assert "GiB free for models" in guide.hardware.text() and "GiB free for vLLM" in guide.hardware.text()
    qtbot.waitUntil(lambda: settings_store.state_path().exists() and saved_state()["first_run_step"] == "hardware",
                    timeout=5000)
    window.close()
    arun(window.ctx.save_state())

    again = make_window()
    assert again.current_page == "start" and again.start_page.step == "hardware"
    qtbot.waitUntil(lambda: "GiB free" in again.start_page.hardware.text(), timeout=10000)


def test_the_hardware_step_says_which_vllm_build_the_driver_runs(make_window, qtbot):
    window = make_window(scan=scan_of("H100"))
    guide = window.start_page
    guide.go("hardware")
    qtbot.waitUntil(lambda: "H100" in guide.hardware.text(), timeout=10000)
    assert "standard build (CUDA 13) runs with this driver" in guide.hardware.text()


def test_skipping_the_guide_hides_it_and_settings_opens_it_again(make_window, qtbot, arun):
    window = make_window()
    start_row = window.page_keys.index("start")
    click(qtbot, window.start_page.leave_button)
    assert window.current_page == "machine" and window.sidebar.isRowHidden(start_row)
    qtbot.waitUntil(lambda: settings_store.state_path().exists() and saved_state()["first_run_done"] is True,
                    timeout=5000)
    window.close()
    arun(window.ctx.save_state())
    again = make_window()
    assert again.current_page != "start" and again.sidebar.isRowHidden(start_row)
    again.show_page("settings")
    click(qtbot, again.settings_page.guide_button)
    assert again.current_page == "start" and again.start_page.step == "welcome"
    assert not again.sidebar.isRowHidden(start_row)


@pytest.fixture
def hub(monkeypatch):
    """Three of the suggested models on the Hub stand-in; the others are missing (judged as problems)."""
    config = json.loads(CONFIG)
    with HubStandIn() as stand_in:
        point_hub_client_at(monkeypatch, stand_in.url)
        for repo_id, params in (("Qwen/Qwen2.5-0.5B-Instruct", 494_032_768), ("Qwen/Qwen2.5-7B-Instruct", 7_615_616_512),
                                ("Qwen/Qwen2.5-32B-Instruct-AWQ", 45_000_000_000)):  # unquantized here: too big
            stand_in.add_model(repo_id, files={"config.json": json.dumps(config).encode(),
                                               "tokenizer.json": b'{"model": {}}',
                                               "model.safetensors": random.Random(1).randbytes(64 * 1024)},
                               lfs=("model.safetensors",), safetensors={"BF16": params},
                               extra={"tags": ["text-generation"]})
        yield stand_in


def test_from_suggestions_to_a_download_to_a_first_answer(make_window, qtbot, hub, tmp_path, monkeypatch, arun):
    window = make_window(scan=scan_of("H100"))
    ctx = window.ctx
    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.002)
    ctx.settings = dataclasses.replace(ctx.settings, runtime_python=str(python), server_port=free_port())
    guide = window.start_page
    guide.go("model")
    qtbot.waitUntil(lambda: guide.suggestions.rowCount() == len(first_models.CANDIDATES), timeout=30000)
    first = guide.suggestions.item(0, 0).text()
    assert first == "★ Qwen/Qwen2.5-7B-Instruct"  # the largest that fits one H100 (the 32B is listed as not fitting)
    missing = [guide.suggestions.item(r, 1).text() for r in range(guide.suggestions.rowCount())
               if "3B-Instruct" in guide.suggestions.item(r, 0).text() and "32B" not in guide.suggestions.item(r, 0).text()]
    assert missing == ["No model called Qwen/Qwen2.5-3B-Instruct"]
    guide.suggestions.selectRow(0)
    click(qtbot, guide.download_button)
    qtbot.waitUntil(lambda: "is downloaded" in guide.download_status.text(), timeout=30000)
    assert ctx.state.first_run_model == "Qwen/Qwen2.5-7B-Instruct"

    click(qtbot, guide.next_button)
    assert guide.step == "chat"
    qtbot.waitUntil(guide.chat_button.isEnabled, timeout=5000)
    click(qtbot, guide.chat_button)
    try:
        qtbot.waitUntil(lambda: "It works." in guide.answer.text(), timeout=60000)
    finally:
        arun(ctx.stop_server(), timeout=30000)
    assert guide.chat_problem.isHidden()
    click(qtbot, guide.next_button)
    assert guide.step == "benchmark" and guide.next_button.text() == "Finish"
    click(qtbot, guide.next_button)
    assert ctx.state.first_run_done and window.current_page == "machine"


def test_without_a_gpu_the_model_step_offers_to_plan_for_one_and_then_judges(make_window, qtbot, hub):
    window = make_window()
    guide = window.start_page
    guide.go("model")
    qtbot.waitUntil(lambda: guide.plan_row.isVisibleTo(guide), timeout=10000)
    assert "No NVIDIA GPU here" in guide.model_note.text() and guide.suggestions.isHidden()
    guide.plan_choice.setCurrentIndex(guide.plan_choice.findData("h100-sxm") if guide.plan_choice.findData("h100-sxm") > 0
                                      else 1)
    qtbot.waitUntil(lambda: guide.suggestions.rowCount() > 0, timeout=30000)
    assert not guide.suggestions.isHidden() and guide.suggestions.item(0, 0).text().startswith("★")


def test_with_hugging_face_out_of_reach_the_model_step_says_so(make_window, qtbot, hub):
    hub.offline = True
    window = make_window(scan=scan_of("H100"))
    guide = window.start_page
    guide.go("model")
    qtbot.waitUntil(lambda: guide.model_problem.isVisibleTo(guide), timeout=60000)
    assert "Could not reach the Hugging Face Hub" in guide.model_problem.text()
    assert "No model could be judged" in guide.model_note.text()
