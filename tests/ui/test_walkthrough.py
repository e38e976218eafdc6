"""The walkthrough a new user makes: the real main window with a fresh home, no GPU, no vLLM and no
network, at the smallest size, 1024x640 and 1440x900, in the light and the dark theme and after a
live switch each way; every page empty and in its main problem states, checked by the eye's rules
of tests/ui/walkthrough.py.

Set LLMDESK_WALKTHROUGH_DIR to keep a picture of every state there (docs/screenshots/walkthrough/
holds the last set a person paged through).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from llmdesk.ui.main_window import MINIMUM_SIZE
from tests.fakes.standin_server import free_port
from tests.ui.conftest import NO_DRIVER
from tests.ui.walkthrough import image_array, inspect

SHOTS = Path(os.environ["LLMDESK_WALKTHROUGH_DIR"]) if os.environ.get("LLMDESK_WALKTHROUGH_DIR") else None
SIZES = [(MINIMUM_SIZE.width(), MINIMUM_SIZE.height()), (1024, 640), (1440, 900)]
# (theme the window starts in, theme switched to while it runs, or None)
THEMES = [("light", None), ("dark", None), ("light", "dark"), ("dark", "light")]


def theme_name(start: str, switched: str | None) -> str:
    return f"{start}-to-{switched}" if switched else start


@pytest.fixture
def offline(monkeypatch):
    """No network: the Hub is a closed port, as on a machine without access."""
    from huggingface_hub import constants

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("PATH", "/nonexistent")  # no vllm command either


def open_window(make_window, qtbot, arun, size, start, switched):
    from llmdesk.core.base import settings as settings_store

    settings_store.save_settings(settings_store.Settings(theme=start))
    window = make_window(NO_DRIVER)
    window.resize(*size)
    if switched:
        arun(window.ctx.save_settings(dataclasses.replace(window.ctx.settings, theme=switched)))
    qtbot.wait(20)
    return window


def look(window, page, state: str, label: str) -> list[str]:
    shot = SHOTS / label / f"{state}.png" if SHOTS else None
    return [f"{state}: {finding}" for finding in inspect(window, page, shot)]


def visit_pages(window, qtbot, label: str) -> list[str]:
    found = []
    for key in window.page_keys:
        window.show_page(key)
        qtbot.wait(30)
        found += look(window, window.stack.currentWidget(), f"{window.page_keys.index(key) + 1:02d}-{key}", label)
    return found


def problem_states(window, qtbot, label: str) -> list[str]:
    found = []
    # The Hub cannot be reached: the search says so in place.
    window.show_page("models")
    models = window.models_page
    models.tabs.setCurrentWidget(models.tabs.widget(0))
    qtbot.keyClicks(models.search.query, "llama")
    qtbot.waitUntil(models.search.banner.isVisible, timeout=20000)
    found += look(window, models, "20-models-hub-unreachable", label)
    # A model path that is not there, checked on the Models page.
    models.tabs.setCurrentIndex(models.tabs.count() - 1)
    models.source.setText("/nonexistent/model")
    models.check()
    qtbot.waitUntil(lambda: "No model at" in models.panel.summary.text(), timeout=10000)
    found += look(window, models, "21-models-bad-path", label)
    # The Server page: a bad path, then Start without vLLM.
    window.show_page("server")
    server = window.server_page
    server.model.setText("/nonexistent/model")
    server._preview_fit()
    qtbot.waitUntil(lambda: "No model at" in server.fit.summary.text(), timeout=10000)
    found += look(window, server, "30-server-bad-path", label)
    server.model.setText("Qwen/Qwen2.5-7B-Instruct")
    server.start()
    qtbot.waitUntil(server.install_button.isVisible, timeout=20000)
    found += look(window, server, "31-server-vllm-missing", label)
    # A variable llmdesk sets itself, typed into the Environment field at the form's end.
    server.environment.setText("VLLM_ENFORCE_STRICT_TOOL_CALLING=0 VLLM_API_KEY=sk-mine")
    server.start()
    assert "VLLM_API_KEY cannot be set here" in server.problem.text()
    server.form_scroll.ensureWidgetVisible(server.fit)  # the form's end: the field above the fit card
    found += look(window, server, "37-server-bad-environment", label)
    server.environment.clear()
    server.form_scroll.verticalScrollBar().setValue(0)
    # No server: the Chat and the Dashboard say so.
    window.show_page("chat")
    chat = window.chat_page
    chat.composer.setPlainText("Hello?")
    chat.send()
    qtbot.waitUntil(chat.notice.isVisible, timeout=20000)
    found += look(window, chat, "50-chat-no-server", label)
    chat.notice.clear()
    found += look(window, chat, "51-chat-no-server-dismissed", label)
    window.show_page("dashboard")
    qtbot.waitUntil(lambda: "not running" in window.dashboard_page.status.text(), timeout=20000)
    found += look(window, window.dashboard_page, "40-dashboard-no-server", label)
    # The Benchmark page with no server to load.
    window.show_page("benchmark")
    bench = window.bench_page
    bench.start_button.click()
    qtbot.waitUntil(lambda: bench.empty.isVisible() and not bench.problem.isVisible(), timeout=5000)
    found += look(window, bench, "70-benchmark-no-server", label)
    # The Deploy page from the Server page's settings: a file, a bundle, and settings that cannot work.
    window.show_page("deploy")
    deploy = window.deploy_page

    def made(fmt: str) -> None:
        deploy.format.setCurrentIndex(deploy.format.findData(fmt))
        deploy.refresh()
        qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=20000)

    made("docker")
    found += look(window, deploy, "80-deploy-docker", label)
    made("k8s")
    deploy.autoscale.setCurrentIndex(deploy.autoscale.findData("keda"))
    made("k8s")
    found += look(window, deploy, "81-deploy-k8s", label)
    made("systemd")  # no vLLM runtime here
    found += look(window, deploy, "82-deploy-systemd-no-runtime", label)
    server.host.setText("0.0.0.0")
    made("docker")
    found += look(window, deploy, "83-deploy-no-api-key", label)
    server.host.setText("127.0.0.1")
    # The first-run guide's steps as a new user without a GPU, vLLM or network meets them.
    window.show_page("start")
    guide = window.start_page
    for number, (step, ready) in enumerate((("hardware", lambda: "GiB free" in guide.hardware.text()),
                                            ("runtime", lambda: bool(guide.runtime_note.text())),
                                            ("model", lambda: guide.plan_row.isVisible()),
                                            ("chat", lambda: bool(guide.chat_note.text()))), start=1):
        guide.go(step)
        qtbot.waitUntil(ready, timeout=20000)
        found += look(window, guide, f"6{number}-start-{step}", label)
    guide.go("welcome")
    return found


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("start, switched", THEMES, ids=[theme_name(*t) for t in THEMES])
def test_every_page_empty_and_in_its_problem_states(make_window, qtbot, arun, offline, size, start, switched):
    window = open_window(make_window, qtbot, arun, size, start, switched)
    label = f"{size[0]}x{size[1]}-{theme_name(start, switched)}"
    found = visit_pages(window, qtbot, label)
    found += problem_states(window, qtbot, label)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("start, switched", [("light", "dark"), ("dark", "light")])
def test_a_live_theme_switch_looks_like_a_restart(make_window, qtbot, arun, start, switched):
    """Switching the theme in Settings gives the window a restart in that theme gives."""
    pictures = []
    for first, then in ((start, switched), (switched, None)):
        window = open_window(make_window, qtbot, arun, (1024, 640), first, then)
        window.show_page("settings")
        qtbot.wait(30)
        pictures.append(image_array(window.grab().toImage()).astype(int))
        window.close()
    live, restarted = pictures
    differs = np.abs(live - restarted).max(axis=2) > 24
    assert differs.mean() < 0.002, f"{differs.mean():.2%} of the pixels differ after a live switch"


def start_the_standin(window, folder, delay_scale: float, *, pause_allowed: bool = False):
    """Start the stand-in vLLM from the Server page, as a person would; returns the page."""
    from tests.ui.test_server_page import standin_form

    server = standin_form(window, folder, delay_scale=delay_scale)
    server.startup.sleep.setChecked(pause_allowed)
    server.start()
    return server


@pytest.mark.parametrize("start, switched", [("light", None), ("dark", "light")], ids=["light", "dark-to-light"])
def test_the_server_page_starting_ready_and_paused(make_window, qtbot, arun, tmp_path, start, switched):
    """#23's busy states with the stand-in vLLM: a second start with its phases and seconds left, ready with
    where the seconds went, paused, at 1024x640 and after a live theme switch."""
    from llmdesk.core.server.supervisor import ServerState

    window = open_window(make_window, qtbot, arun, (1024, 640), start, switched)
    label = f"1024x640-{theme_name(start, switched)}"
    ctx = window.ctx
    found = []
    for round_, scale in enumerate((0.002, 0.05)):  # the first start teaches the estimate the second shows
        server = start_the_standin(window, tmp_path / f"rt{round_}", scale, pause_allowed=True)
        if round_ == 1:
            qtbot.waitUntil(lambda: "▸ loading weights" in server.state.text() or "▸ compiling" in server.state.text(),
                            timeout=20000)
            assert "s left)" in server.state.text()
            found += look(window, server, "32-server-starting", label)
        qtbot.waitUntil(lambda: ctx.server.status.state == ServerState.READY, timeout=30000)
        if round_ == 1:
            qtbot.waitUntil(lambda: server.state.text().startswith("Ready at"), timeout=3000)
            found += look(window, server, "33-server-ready", label)
            # read beside the form of a small window: they take the room (the Log gives it back)
            server.right_tabs.setCurrentIndex(2)
            qtbot.wait(50)
            found += look(window, server, "35-server-connect-tools", label)
            server.right_tabs.setCurrentIndex(1)
            qtbot.wait(50)
            found += look(window, server, "36-server-endpoint", label)
            server.right_tabs.setCurrentIndex(0)
            server.toggle_pause()
            qtbot.waitUntil(lambda: server.state.text().startswith("Paused"), timeout=10000)
            found += look(window, server, "34-server-paused", label)
        arun(ctx.close_server())  # as quitting does: no vLLM left imported for a next start (Faster Start)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("start, switched", [("light", None), ("dark", "light")], ids=["light", "dark-to-light"])
def test_busy_pages_at_the_smallest_window(make_window, qtbot, arun, tmp_path, start, switched):
    """The pages at work, where the last defects were found (960x600, the stand-in vLLM serving): the Server
    page ready, a reply in the Chat, a finished benchmark, the Dashboard reading the server."""
    from llmdesk.core.server.supervisor import ServerState

    window = open_window(make_window, qtbot, arun, (MINIMUM_SIZE.width(), MINIMUM_SIZE.height()), start, switched)
    label = f"{MINIMUM_SIZE.width()}x{MINIMUM_SIZE.height()}-{theme_name(start, switched)}"
    ctx = window.ctx
    server = start_the_standin(window, tmp_path / "rt", 0.002)
    qtbot.waitUntil(lambda: ctx.server.status.state == ServerState.READY, timeout=30000)
    qtbot.waitUntil(lambda: server.state.text().startswith("Ready at"), timeout=3000)
    found = look(window, server, "90-server-ready", label)
    try:
        window.show_page("chat")
        chat = window.chat_page
        chat.composer.setPlainText("What can you do?")
        chat.send()
        qtbot.waitUntil(lambda: len(chat.messages) == 2 and not chat.streaming, timeout=20000)
        found += look(window, chat, "91-chat-reply", label)
        # a JSON reply cut at max tokens: the badge says so, wrapped to the thread's width
        chat.tools_panel.shape.setCurrentIndex(chat.tools_panel.shape.findText("JSON schema"))
        chat.tools_panel.schema_edit.setPlainText('{"type": "object", "required": ["city", "temp_c"], "properties": '
                                                  '{"city": {"type": "string"}, "temp_c": {"type": "integer"}}}')
        chat.params.fields["max_tokens"].setText("3")
        chat.composer.setPlainText("The weather in Rome, as JSON")
        chat.send()
        qtbot.waitUntil(lambda: len(chat.messages) == 4 and not chat.streaming, timeout=20000)
        assert chat.messages[3].verdict.text().startswith("✗ Cut off at max tokens")
        found += look(window, chat, "94-chat-cut-off", label)
        window.show_page("benchmark")
        bench = window.bench_page
        qtbot.waitUntil(lambda: bench.plots is not None, timeout=15000)
        bench.loads.setText("1, 2, 4")
        bench.per_level.setValue(4)
        bench.input_len.setValue(32)
        bench.output_len.setValue(8)
        bench.start_button.click()
        qtbot.waitUntil(lambda: not bench.running, timeout=60000)
        bench.draw_now()
        found += look(window, bench, "92-benchmark-done", label)
        window.show_page("dashboard")
        dashboard = window.dashboard_page
        qtbot.waitUntil(lambda: dashboard.recorder.ticks >= 2 and dashboard.charts is not None, timeout=15000)
        found += look(window, dashboard, "93-dashboard-live", label)
    finally:
        arun(ctx.close_server())  # as quitting does: no vLLM left imported for a next start (Faster Start)
    assert not found, "\n".join(found)
