"""Server page: start the stand-in vLLM from the form, see it ready with its endpoint, stop it;
a failure is explained and its one-click fix lands in the form."""

import dataclasses
import os
import signal
import subprocess
import sys

import pytest

from PySide6.QtCore import Qt

from llmdesk.core.server.processes import group_members
from llmdesk.core.server.supervisor import ServerState, find_leftover
from tests.fakes.server_records import no_records
from tests.fakes.vllm_standin.runtime import make_fake_runtime
from tests.fakes.standin_server import DEMO_MODEL, free_port


def server_page(make_window, tmp_path, mode="ok"):
    window = make_window()
    return window, standin_form(window, tmp_path / f"runtime-{mode}", mode=mode, delay_scale=0.005)


def standin_form(window, folder, *, mode: str = "ok", delay_scale: float = 0.005):
    """The Server page filled in to start the stand-in vLLM made in `folder`, as a person would."""
    python = make_fake_runtime(folder, mode=mode, delay_scale=delay_scale)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(python))
    window.show_page("server")
    page = window.server_page
    page.model.setText("/models/demo")
    page.served_name.setText("demo")
    page.port.setValue(free_port())
    return page


def refused_at_start(window, page, qtbot) -> str:
    """Start pressed on a form the checks refuse: the problem bar's text, nothing started."""
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.problem.isVisible()
    assert window.ctx.server.status.state == ServerState.STOPPED
    return page.problem.text()


def test_start_ready_endpoint_then_stop_leaves_nothing(make_window, qtbot, tmp_path):
    window, page = server_page(make_window, tmp_path)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    status = window.ctx.server.status
    assert page.state.text().startswith(f"Ready at {status.url} (started in ")
    assert "starting the engine" in page.state.text() and "loading weights" in page.state.text()
    assert window.server_status.text() == f"Server: ready at {status.url}"
    assert f'base_url="{status.url}"' in page.snippet_views["Python"].toPlainText()
    qtbot.waitUntil(lambda: "Starting vLLM server" in page.log.toPlainText(), timeout=3000)
    pgid = status.pid
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    assert group_members(pgid) == []
    assert page.state.text() == "Stopped." and page.start_button.isEnabled()
    # #25: the model started is the one the next window comes back with, and the field offers it
    qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=5000)
    assert window.ctx.state.recent_models == ["/models/demo"]
    window.close()
    again = make_window().server_page
    assert again.model.text() == "/models/demo" and again.recent.stringList() == ["/models/demo"]


def test_pause_and_resume_on_the_server_page(make_window, qtbot, tmp_path):
    """#23: Allow Pause → Start; Pause frees the GPU (the stand-in sleeps), the state line says so, Resume."""
    window, page = server_page(make_window, tmp_path)
    assert not page.startup.level.isEnabled()  # the pause settings wait for Allow Pause
    page.startup.sleep.setChecked(True)
    page.startup.idle.setValue(15)
    page.startup.wake.setChecked(False)
    config = page.launch_config()
    assert config.sleep_mode and config.idle_pause_s == 900 and not config.wake_on_request
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    assert page.pause_button.isVisible() and page.pause_button.text() == "Pause"
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: (window.ctx.server.status.sleep or {}).get("state") == "paused", timeout=10000)
    qtbot.waitUntil(lambda: page.pause_button.text() == "Resume" and page.pause_button.isEnabled(), timeout=3000)
    assert page.state.text().startswith("Paused in ") and "refused (503) until you press Resume" in page.state.text()
    assert window.server_status.text().startswith("Server: paused at ")
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.sleep.get("state") == "awake", timeout=10000)
    qtbot.waitUntil(lambda: page.state.text().startswith("Ready at "), timeout=3000)
    assert page.pause_button.text() == "Pause"
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    assert not page.pause_button.isVisible()


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
    assert "API key" in refused_at_start(window, page, qtbot)
    qtbot.mouseClick(page.generate_key, Qt.MouseButton.LeftButton)
    assert page.api_key.text().startswith("sk-llmdesk-")
    assert page.launch_config().validate() == []


@pytest.fixture
def killed_llmdesk_server(tmp_path):
    """`llmdesk serve` SIGKILLed while serving a vLLM that ignores SIGTERM (hung): the SIGTERM it gets
    when llmdesk dies does not stop it, so it and the pid file stay behind. Yields the port."""
    python = make_fake_runtime(tmp_path / "rt", mode="ignore_sigint", delay_scale=0.005)
    port = free_port()
    gui = subprocess.Popen([sys.executable, "-m", "llmdesk", "serve", DEMO_MODEL, "--served-model-name", "demo",
                            "--port", str(port), "--runtime", str(python)], stdout=subprocess.PIPE, text=True,
                           env=dict(os.environ))
    try:
        assert gui.stdout.readline().startswith("http://127.0.0.1")  # ready
        gui.kill()  # no chance to stop its server
        gui.wait(10)
        assert not no_records() and find_leftover() is not None
        yield port
    finally:
        if gui.poll() is None:
            gui.kill()
        leftover = find_leftover()
        if leftover is not None:
            os.killpg(leftover.pgid, signal.SIGKILL)


def test_a_server_left_by_a_killed_llmdesk_is_found_and_stopped(make_window, qtbot, killed_llmdesk_server):
    """The next window finds the leftover, says so, and stops its whole group on request."""
    window = make_window()
    page = window.server_page
    qtbot.waitUntil(lambda: not page.stop_leftover_button.isHidden(), timeout=10000)
    assert window.ctx.banner.title.text() == "A vLLM server is still running from an earlier llmdesk"
    assert "still running from an earlier llmdesk" in page.leftover_note.text()
    pgid = page.leftover.pgid
    qtbot.mouseClick(page.stop_leftover_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "was stopped" in page.leftover_note.text(), timeout=30000)
    assert group_members(pgid) == [] and no_records()

def test_the_fit_preview_judges_the_model_before_starting(make_window, qtbot, tmp_path):
    from pathlib import Path
    window = make_window()
    page = window.server_page
    page.plan_choice.setCurrentIndex(page.plan_choice.findData("h100-80gb"))  # no GPU here: plan for one H100
    config = Path(__file__).resolve().parents[1] / "data" / "configs" / "meta-llama__Llama-3.3-70B-Instruct.json"
    page.model.setText(str(config))
    qtbot.waitUntil(lambda: page.report is not None or window.ctx.banner.isVisible(), timeout=10000)
    assert page.report is not None, (window.ctx.banner.title.text(), window.ctx.banner.explanation.text(), page.fit.summary.text())
    assert page.report.verdict == "needs_tensor_parallel"  # one planned H100
    qtbot.mouseClick(page.use_fit, Qt.MouseButton.LeftButton)
    assert page.tp.value() == 2
    before = page.report
    page._preview_fit()  # what the debounce timer does
    qtbot.waitUntil(lambda: page.report is not before, timeout=10000)
    assert page.report.tensor_parallel_size == 2 and page.report.gpu_count == 2
    assert page.report.verdict in ("fits", "fits_shorter_context")


def test_a_generated_key_is_kept_for_the_next_start(make_window, qtbot, monkeypatch):
    from llmdesk.core.base import secrets
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: None)
    page = make_window().server_page
    qtbot.mouseClick(page.generate_key, Qt.MouseButton.LeftButton)
    key = page.api_key.text()
    qtbot.waitUntil(lambda: secrets.load_server_api_key() == key, timeout=5000)
    again = make_window().server_page
    qtbot.waitUntil(lambda: again.api_key.text() == key, timeout=5000)


def test_a_server_left_running_can_be_taken_over_and_stopped_later(make_window, qtbot, killed_llmdesk_server):
    window = make_window()
    page = window.server_page
    qtbot.waitUntil(lambda: not page.adopt_button.isHidden(), timeout=10000)
    pgid = page.leftover.pgid
    qtbot.mouseClick(page.adopt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=5000)
    assert window.ctx.server.status.url == f"http://127.0.0.1:{killed_llmdesk_server}/v1"
    assert find_leftover() is None  # ours now
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    assert group_members(pgid) == []

def test_without_vllm_the_page_offers_to_install_it(make_window, qtbot, tmp_path, monkeypatch):
    """No runtime anywhere: Start explains it and offers the managed install, whose progress is shown."""
    import llmdesk.core.server.runtimes as runtimes
    from llmdesk.core.server.runtime_install import InstallProgress

    window = make_window()
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(tmp_path / "nothing-here"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no vllm on PATH
    page = window.server_page
    page.model.setText("/models/demo")
    page.port.setValue(free_port())
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.install_button.isHidden(), timeout=20000)
    assert "vLLM is not installed" in page.problem.text()

    async def fake_install(*, on_progress=None, **_):
        for step, line, fraction in (("creating the environment", None, 0.05),
                                     ("installing vLLM", "Collecting vllm==0.26.0", 0.3),
                                     ("done", None, 1.0)):
            on_progress(InstallProgress(step, line, fraction))
        return runtimes.ManagedRuntime("0.26.0", tmp_path / "rt", True)

    monkeypatch.setattr(runtimes, "install_runtime", fake_install)
    qtbot.mouseClick(page.install_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.install_note.text().startswith("vLLM 0.26.0 is installed"), timeout=5000)
    qtbot.waitUntil(lambda: "Collecting vllm==0.26.0" in page.log.toPlainText(), timeout=2000)
    assert page.install_button.isHidden()


def test_keep_vllm_imported_setting_preloads_the_next_start(make_window, qtbot, tmp_path, monkeypatch, arun):
    """#23: Settings' Faster Start: a vLLM imported when the app opens takes the Start; after Stop the next one
    is imported; quitting leaves none."""
    monkeypatch.setenv("FAKE_VLLM_IMPORT_S", "0.5")
    window, page = server_page(make_window, tmp_path)
    settings = window.settings_page
    settings.runtime_python.edit.setText(window.ctx.settings.runtime_python)  # the stand-in's, as the page's
    settings.preload.setChecked(True)
    qtbot.mouseClick(settings.save, Qt.MouseButton.LeftButton)  # saved: the page imports one at once
    server = window.ctx.server
    qtbot.waitUntil(lambda: server._preload is not None and server._preload.ready.done(), timeout=20000)
    waiting = server._preload.proc.pid
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: server.status.state == ServerState.READY, timeout=30000)
    assert server.status.pid == waiting and "vLLM preloaded" in page.state.text()
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: server.status.state == ServerState.STOPPED, timeout=30000)
    qtbot.waitUntil(lambda: server._preload is not None and server._preload.alive, timeout=20000)
    following = server._preload.proc
    assert following.pid != waiting
    arun(window.ctx.close_server())  # what quitting does
    assert following.returncode is not None and group_members(following.pid) == []


def test_the_presets_say_what_they_trade(make_window, tmp_path):
    _, page = server_page(make_window, tmp_path)
    texts = [page.preset.itemText(i) for i in range(page.preset.count())]
    tips = [page.preset.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(page.preset.count())]
    assert texts[:2] == ["Full speed (vLLM's defaults)", "Fast start"]
    assert "longest start" in tips[0] and "generates more slowly" in tips[1] and "51 s" in tips[1]
    assert page.launch_config().enforce_eager is False  # full speed: what vLLM does unasked
    page.preset.setCurrentIndex(1)
    assert page.launch_config().enforce_eager is True


def test_at_the_smallest_window_the_log_pane_is_beside_the_form_not_under_it(make_window, qtbot, tmp_path):
    from PySide6.QtWidgets import QSplitter

    from llmdesk.ui.main_window import MINIMUM_SIZE

    window, page = server_page(make_window, tmp_path)
    window.resize(MINIMUM_SIZE)
    qtbot.wait(50)
    split = page.findChild(QSplitter)
    form, tabs = split.widget(0), split.widget(1)
    assert not form.geometry().intersects(tabs.geometry())  # the form covered the Log tab at 960x600
    bar = page.right_tabs.tabBar()
    assert all(bar.rect().contains(bar.tabRect(i)) for i in range(bar.count()))  # every tab in view, elided
    assert [page.right_tabs.tabToolTip(i) for i in range(3)] == ["Log", "Endpoint", "Connect tools"]
    assert page.copy_log.toolTip() == "Copy the whole log" and not page.copy_log.text()
    find = page.log_pane.find  # its hint whole beside the log's two buttons ("find in the lo" at 960x600)
    assert find.width() >= find.fontMetrics().horizontalAdvance(find.placeholderText()) + 16
    assert page.log_pane.whole.geometry().right() < page.log_pane.width()


def test_the_log_reads_compact_and_wrapped_and_copies_and_shows_whole_lines(make_window, qtbot, tmp_path):
    """At 1024x640 every visible log line read "(APIServer pid=15094) INFO 1…": vLLM's repeated prefix."""
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QPlainTextEdit

    window, page = server_page(make_window, tmp_path)
    whole = "(APIServer pid=845) INFO 11-27 22:32:58 [api_server.py:677] Starting vLLM server on http://0.0.0.0:8000"
    failed = "(EngineCore_DP0 pid=12) ERROR 11-27 22:34:27 [core.py:1330] CUDA out of memory"
    page._pending_lines.extend([whole, failed])
    qtbot.waitUntil(lambda: "CUDA out of memory" in page.log.toPlainText(), timeout=2000)
    assert page.log.toPlainText().splitlines() == ["22:32:58 Starting vLLM server on http://0.0.0.0:8000",
                                                   "22:34:27 ERROR [EngineCore_DP0] CUDA out of memory"]
    assert page.log.lineWrapMode() == QPlainTextEdit.LineWrapMode.WidgetWidth
    qtbot.mouseClick(page.copy_log, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == f"{whole}\n{failed}"  # a bug report gets vLLM's own lines
    page.log_pane.whole.setChecked(True)
    assert page.log.toPlainText().splitlines() == [whole, failed]
    assert page.log.lineWrapMode() == QPlainTextEdit.LineWrapMode.NoWrap
    page._pending_lines.append("(APIServer pid=845) INFO 11-27 22:33:00 [launcher.py:1] Application startup complete.")
    qtbot.waitUntil(lambda: "Application startup" in page.log.toPlainText(), timeout=2000)
    assert page.log.toPlainText().splitlines()[-1].startswith("(APIServer pid=845) INFO")
    page.log_pane.whole.setChecked(False)
    assert page.log.toPlainText().splitlines()[-1] == "22:33:00 Application startup complete."
    page.log_pane.find.setText("CUDA")
    page.log_pane.find_next()
    assert page.log.textCursor().selectedText() == "CUDA"


def test_a_new_start_shows_none_of_the_last_servers_lines(make_window, qtbot, tmp_path):
    """The last lines of a stop waited for the log's next flush, and a Start right after cleared the pane
    before they came: the ready server's log ended with the old one's shutdown (the walkthrough's shot)."""
    window, page = server_page(make_window, tmp_path)
    page._pending_lines.append("(APIServer pid=1) INFO 11-27 22:33:00 [launcher.py:1] Shutting down the old one")
    page.start()
    qtbot.waitUntil(lambda: "Starting vLLM server" in page.log.toPlainText(), timeout=30000)
    assert "the old one" not in page.log.toPlainText() and "the old one" not in page.log_pane.text()
    window.ctx.tasks.run(window.ctx.stop_server(), "stopping")
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)


def test_the_log_follows_its_end_unless_scrolled_up_to_read(make_window, qtbot, tmp_path):
    """With wrapped lines appendPlainText lost the end: once ready, the log showed its first lines (value 3 of 203)."""
    from PySide6.QtWidgets import QAbstractSlider

    window, page = server_page(make_window, tmp_path)
    window.resize(1024, 640)
    window.show()
    page.start()
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    bar = page.log.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 50 and bar.value() == bar.maximum(), timeout=3000)
    bar.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub)  # the person scrolls up to read
    qtbot.wait(20)
    reading = bar.value()
    assert reading < bar.maximum() and not page.log_pane.following
    page._pending_lines.extend(f"(APIServer pid=1) INFO 11-27 22:33:{i:02d} [x.py:1] line {i}" for i in range(30))
    qtbot.waitUntil(lambda: "line 29" in page.log.toPlainText(), timeout=2000)
    assert bar.value() == reading  # left where they read
    bar.triggerAction(QAbstractSlider.SliderAction.SliderToMaximum)
    qtbot.wait(20)
    page._pending_lines.append("(APIServer pid=1) INFO 11-27 22:34:00 [x.py:1] the newest")
    qtbot.waitUntil(lambda: "the newest" in page.log.toPlainText(), timeout=2000)
    assert page.log_pane.following and bar.value() == bar.maximum()
    window.ctx.tasks.run(window.ctx.stop_server(), "stopping")
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)


def test_at_the_smallest_window_endpoint_and_connect_tools_take_the_room_to_be_read(make_window, qtbot, tmp_path):
    """In the 158 px pane of a 960x600 window the base URL stood a word a line and Claude Code's settings
    were cut at 'export ANTHROPIC_B'. Read, not typed beside the form: they take the width; the Log gives it back."""
    from PySide6.QtWidgets import QSplitter

    from llmdesk.ui.main_window import MINIMUM_SIZE

    window, page = server_page(make_window, tmp_path)
    window.resize(MINIMUM_SIZE)
    window.show()
    qtbot.wait(50)
    split = page.findChild(QSplitter)
    before = split.sizes()
    assert before[1] < 300
    for tab in (1, 2, 1):
        page.right_tabs.setCurrentIndex(tab)
        qtbot.wait(20)
        assert not page.form_scroll.isVisible() and page.right_tabs.width() >= 600, split.sizes()
        assert page.start_button.isVisible() and page.state.isVisible()  # the controls stay above
    page.right_tabs.setCurrentIndex(0)
    qtbot.wait(20)
    assert page.form_scroll.isVisible() and split.sizes() == before
    window.resize(1440, 900)  # a large window: the pane is wide enough beside the form, nothing steps aside
    qtbot.wait(20)
    split.setSizes([800, 500])
    page.right_tabs.setCurrentIndex(2)
    assert page.form_scroll.isVisible() and split.sizes()[1] >= 440


@pytest.mark.default_settings
def test_faster_start_and_the_forked_engine_are_the_defaults(make_window):
    """#23: with both, an 8B model's warm start was ready in 18.2 s instead of 58.6 s on an H100
    (docs/benchmarks.md); a person who never opened Settings gets them."""
    from llmdesk.core.base.settings import Settings

    assert Settings().preload_vllm
    window = make_window()
    assert window.ctx.settings.preload_vllm and window.settings_page.preload.isChecked()
    assert window.server_page.startup.fork.isChecked() and window.server_page.launch_config().fork_engine


def test_the_environment_field_reaches_vllm_and_what_llmdesk_sets_is_refused(make_window, qtbot, tmp_path):
    window, page = server_page(make_window, tmp_path)
    page.environment.setText("VLLM_SERVER_DEV_MODE=1")
    assert "VLLM_SERVER_DEV_MODE cannot be set here" in refused_at_start(window, page, qtbot)
    page.environment.setText("VLLM_ENFORCE_STRICT_TOOL_CALLING=0 NOTE='two words'")
    page.trust.setChecked(True)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert not page.problem.isVisible()
    # what does not stop a start is said first in the log, where vLLM's own warnings come
    assert page.log.toPlainText().startswith("llmdesk WARNING: Trust remote code is on")
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    with open(f"/proc/{window.ctx.server.status.pid}/environ", "rb") as environ:
        env = dict(item.split(b"=", 1) for item in environ.read().split(b"\0") if b"=" in item)
    assert env[b"VLLM_ENFORCE_STRICT_TOOL_CALLING"] == b"0" and env[b"NOTE"] == b"two words"
    assert env[b"VLLM_NO_USAGE_STATS"] == b"1" and b"VLLM_SERVER_DEV_MODE" not in env
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
