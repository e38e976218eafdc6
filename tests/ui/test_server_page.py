"""Server page: start the stand-in vLLM from the form, see it ready with its endpoint, stop it;
a failure is explained and its one-click fix lands in the form."""

import dataclasses
import socket

from PySide6.QtCore import Qt

from llmdesk.core.supervisor import ServerState, group_members
from tests.fakes.vllm_standin.runtime import make_fake_runtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_page(make_window, tmp_path, mode="ok"):
    window = make_window()
    python = make_fake_runtime(tmp_path / f"runtime-{mode}", mode=mode, delay_scale=0.005)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(python))
    window.show_page("server")
    page = window.server_page
    page.model.setText("/models/demo")
    page.served_name.setText("demo")
    page.port.setValue(free_port())
    return window, page


def test_start_ready_endpoint_then_stop_leaves_nothing(make_window, qtbot, tmp_path):
    window, page = server_page(make_window, tmp_path)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    status = window.ctx.server.status
    assert page.state.text() == f"Ready at {status.url}"
    assert window.server_status.text() == f"Server: ready at {status.url}"
    assert f'base_url="{status.url}"' in page.snippet_views["Python"].toPlainText()
    qtbot.waitUntil(lambda: "Starting vLLM server" in page.log.toPlainText(), timeout=3000)
    pgid = status.pid
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    assert group_members(pgid) == []
    assert page.state.text() == "Stopped." and page.start_button.isEnabled()


def test_a_failure_is_explained_and_its_fix_applied(make_window, qtbot, tmp_path):
    window, page = server_page(make_window, tmp_path, mode="kv_too_small")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.CRASHED, timeout=30000)
    qtbot.waitUntil(page.problem.isVisible, timeout=3000)
    assert window.ctx.server.status.diagnosis.cause == "kv_cache_too_small"
    assert page.apply_fix.isVisible()
    qtbot.mouseClick(page.apply_fix, Qt.MouseButton.LeftButton)
    assert page.max_len.value() == 30224
    assert page.launch_config().max_model_len == 30224


def test_exposing_the_server_without_a_key_is_refused_before_starting(make_window, qtbot, tmp_path):
    window, page = server_page(make_window, tmp_path)
    page.host.setText("0.0.0.0")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.problem.isVisible() and "API key" in page.problem.text()
    assert window.ctx.server.status.state == ServerState.STOPPED
    qtbot.mouseClick(page.generate_key, Qt.MouseButton.LeftButton)
    assert page.api_key.text().startswith("sk-llmdesk-")
    assert page.launch_config().validate() == []
