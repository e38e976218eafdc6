"""The Server page's "Connect tools" tab (ui/server/endpoint_panel.py): no server (says so and what to
do), a server that cannot be read (its problem in plain words), a server read (each tool's settings,
Copy, the key hidden unless asked, Test), and the app's own server followed from start to stop."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from llmdesk.core.base import secrets
from llmdesk.core.server.supervisor import ServerState
from llmdesk.core.server.tool_endpoints import Endpoint, ServedModel, tool_settings
from llmdesk.ui.server.endpoint_panel import NO_SERVER
from llmdesk.ui.problems import plain_text
from tests.fakes.standin_server import free_port, running_standin
from tests.fakes.vllm_standin.runtime import make_fake_runtime

KEY = "sk-llmdesk-panel-test-key"


@pytest.fixture
def no_keyring(monkeypatch):
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: None)  # the key file, in this test's LLMDESK_HOME


def panel_of(make_window):
    window = make_window()
    window.show_page("server")
    page = window.server_page
    page.right_tabs.setCurrentWidget(page.endpoint_panel)
    return window, page.endpoint_panel


def wait_read(qtbot, panel):
    qtbot.waitUntil(lambda: panel._read_task is not None and panel._read_task.done(), timeout=10000)


def test_without_a_server_it_says_so_and_what_to_do(make_window, no_keyring):
    window, panel = panel_of(make_window)
    assert panel.state.text() == plain_text(NO_SERVER)
    assert "llmdesk serve MODEL" in panel.state.text()
    assert not panel.test_button.isEnabled() and not panel.copy_button.isEnabled()
    assert not panel.refresh_button.isEnabled() and not panel.tool.isEnabled()
    assert panel.settings_view.toPlainText() == "" and panel.model.count() == 0


def test_a_server_that_is_not_there_is_said_in_plain_words(make_window, qtbot, no_keyring):
    window, panel = panel_of(make_window)
    url = f"http://127.0.0.1:{free_port()}/v1"
    panel.show_server(url, None)
    wait_read(qtbot, panel)
    text = panel.state.text()
    assert text.startswith("The server is not running\nNothing answers at http://127.0.0.1:")
    assert "What to do: Start it on the Server page or with llmdesk serve MODEL" in text
    assert not panel.test_button.isEnabled() and panel.refresh_button.isEnabled()
    assert panel.settings_view.toPlainText() == ""


def test_a_server_that_wants_a_key_is_said(make_window, qtbot, tmp_path, no_keyring):
    window, panel = panel_of(make_window)
    with running_standin(tmp_path, "ok", "--api-key", KEY) as root:
        panel.show_server(root + "/v1", None)
        wait_read(qtbot, panel)
        assert panel.state.text().startswith("The server wants an API key\n")
        assert not panel.test_button.isEnabled()
        # The key llmdesk stored (the Server page's Generate) is tried next.
        secrets.save_server_api_key(KEY)
        panel.refresh()
        wait_read(qtbot, panel)
        assert panel.endpoint is not None and panel.endpoint.api_key == KEY


def test_a_server_read_gives_each_tools_settings_copy_and_test(make_window, qtbot, tmp_path, no_keyring):
    window, panel = panel_of(make_window)
    with running_standin(tmp_path, "ok", "--api-key", KEY) as root:
        panel.show_server(root + "/v1", KEY)
        wait_read(qtbot, panel)
        endpoint = Endpoint(root, (ServedModel("demo", 2048),), KEY)
        assert panel.endpoint == endpoint
        assert panel.state.text() == (f"vLLM at {root} · OpenAI base URL {root}/v1 · Anthropic base URL {root} "
                                      "· API key set")
        assert [panel.model.itemText(i) for i in range(panel.model.count())] == ["demo"]
        assert panel.tool.currentData() == "claude-code"
        assert panel.settings_view.toPlainText() == tool_settings(endpoint, "claude-code").text
        assert KEY not in panel.settings_view.toPlainText() + panel.state.text() + panel.notes.text()
        assert "Context too small for Claude Code" in panel.notes.text()  # the stand-in serves 2,048 tokens

        panel.tool.setCurrentIndex(panel.tool.findData("codex"))
        assert panel.settings_view.toPlainText() == tool_settings(endpoint, "codex").text
        panel.show_key.setChecked(True)
        assert f"export LLMDESK_API_KEY={KEY}" in panel.settings_view.toPlainText()
        qtbot.mouseClick(panel.copy_button, Qt.MouseButton.LeftButton)
        assert QGuiApplication.clipboard().text() == panel.settings_view.toPlainText()

        for tool in ("claude-code", "codex", "continue"):
            panel.tool.setCurrentIndex(panel.tool.findData(tool))
            qtbot.mouseClick(panel.test_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: panel._test_task.done(), timeout=10000)
            assert panel.test_result.text().startswith(f"✔ {panel.tool.currentText()}: ok · "), panel.test_result.text()
            assert panel.test_button.isEnabled()

    # The server went away: the Test says so instead of hanging or raising.
    qtbot.mouseClick(panel.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel._test_task.done(), timeout=10000)
    assert panel.test_result.text().startswith("✘ Continue: The server is not running: Nothing answers at")
    assert window.ctx.tasks.pending == 0


def test_a_hostile_served_name_reaches_no_label_raw(make_window, qtbot, tmp_path, no_keyring):
    window, panel = panel_of(make_window)
    name = "evil\n`id` <b>bold</b>"
    with running_standin(tmp_path, "ok", served=name) as root:
        panel.show_server(root, None)
        wait_read(qtbot, panel)
        assert panel.model.itemText(0) == "evil\\x0a`id` <b>bold</b>" and panel.model.currentData() == name
        assert panel.notes.textFormat() == Qt.TextFormat.PlainText
        text = panel.settings_view.toPlainText()
        assert "export ANTHROPIC_MODEL=$'evil\\x0a`id` <b>bold</b>'" in text


def test_it_follows_the_apps_server_from_ready_to_stopped(make_window, qtbot, tmp_path, no_keyring):
    window, panel = panel_of(make_window)
    page = window.server_page
    python = make_fake_runtime(tmp_path / "runtime", delay_scale=0.005)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(python))
    page.model.setText("/models/demo")
    page.served_name.setText("demo")
    page.port.setValue(free_port())
    page.api_key.setText(KEY)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    qtbot.waitUntil(lambda: panel.endpoint is not None, timeout=10000)
    assert panel.endpoint.api_key == KEY and panel.endpoint.root_url + "/v1" == window.ctx.server.status.url
    assert panel.test_button.isEnabled()
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    assert panel.state.text() == plain_text(NO_SERVER) and panel.endpoint is None
    assert not panel.test_button.isEnabled()
