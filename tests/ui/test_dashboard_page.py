"""Dashboard page against the stand-in vLLM: tiles and charts under load, pause, CSV export, a URL
that fails and then works, /v1 URLs, the app's own server (stopped, then started), and no stall over
50 ms while the charts of 8 GPUs are redrawn."""

from __future__ import annotations

import csv
import dataclasses
import gc
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt

from llmdesk.core.machine.gpus import GpuSampler
from llmdesk.core.metrics.window import CSV_COLUMNS
from llmdesk.core.server.supervisor import ServerState
from llmdesk.ui.stall_monitor import StallMonitor
from tests.fakes.fake_nvml import MIB, FakeDevice, FakeNvml
from tests.fakes.standin_server import free_port, kill_group, running_standin
from tests.fakes.vllm_standin.runtime import make_fake_runtime, serve_argv
from tests.ui.conftest import scan_of

FAST = 0.25  # seconds between scrapes


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Replies of 60 tokens at 400 tokens/s."""
    with running_standin(tmp_path_factory.mktemp("dash"), "ok", env={"FAKE_VLLM_REPLY_TOKENS": "60"}) as root:
        yield root


def chat(root: str, n: int, concurrency: int = 3) -> threading.Thread:
    """n chat requests, `concurrency` at a time, from a thread (as other programs load the server)."""
    def run() -> None:
        with httpx.Client(timeout=30) as client:
            def some(k: int) -> None:
                for _ in range(k):
                    client.post(root + "/v1/chat/completions",
                                json={"model": "demo", "messages": [{"role": "user", "content": "Hello there"}],
                                      "max_tokens": 60})
            workers = [threading.Thread(target=some, args=(n // concurrency,)) for _ in range(concurrency)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def dashboard(make_window, url: str = "", scan=None, interval: float = FAST, show: bool = True):
    window = make_window(scan) if scan is not None else make_window()
    page = window.dashboard_page
    page.url.setText(url)
    page.interval.setCurrentIndex(page.interval.findData(interval))
    if show:
        window.show_page("dashboard")
    return window, page


def fake_gpus(n: int = 8) -> GpuSampler:
    return GpuSampler(FakeNvml([FakeDevice(uuid=f"GPU-{i}", memory_used=(20_000 + 1000 * i) * MIB,
                                           utilization_gpu=10 * i) for i in range(n)]))


def test_tiles_and_charts_follow_the_server_under_load(make_window, qtbot, server):
    window, page = dashboard(make_window, server)
    qtbot.waitUntil(lambda: page.recorder.ticks >= 2, timeout=5000)
    assert "Reading " + server in page.status.text() and "demo" in page.status.text()
    chat(server, 6).join(20)
    qtbot.waitUntil(lambda: (page.recorder.window.latest.requests_finished or 0) >= 6, timeout=5000)
    snap = page.recorder.window.latest
    assert snap.generation_tokens_per_s_avg > 0
    tiles = page.tiles
    assert float(tiles["generation"].value.text().replace(",", "")) > 0
    assert tiles["generation"].detail.text().startswith("now ")
    assert tiles["requests"].value.text() == "0 / 0"
    assert tiles["requests"].detail.text().startswith(f"{snap.requests_finished} finished in ")
    assert tiles["ttft"].value.text().endswith("ms") and tiles["e2e"].value.text() != "—"
    assert tiles["kv_cache"].detail.text().startswith("of ")
    assert tiles["gpu_util"].value.text() == "—" and tiles["gpu_util"].detail.text() == "No NVIDIA driver found"
    qtbot.waitUntil(lambda: page.charts is not None, timeout=10000)
    page.redraw_now()
    points = page.charts.points()
    kept = len(page.recorder.window)
    assert set(points) == {"throughput", "requests", "kv_cache", "latency", "gpu_util", "gpu_memory"}
    assert kept >= 3 and points["throughput"] == [kept] * 2 and points["latency"] == [kept] * 3
    assert points["gpu_util"] == [] and points["gpu_memory"] == []  # no GPU on this machine
    generation = page.charts.charts["throughput"].curves[0].yData
    assert max(y for y in generation if y == y) > 0


def test_gpu_tiles_and_charts_for_eight_gpus(make_window, qtbot, server):
    window, page = dashboard(make_window, server, show=False)
    page.recorder.sampler = fake_gpus(8)
    window.show_page("dashboard")
    qtbot.waitUntil(lambda: page.recorder.ticks >= 3 and page.charts is not None, timeout=10000)
    assert page.tiles["gpu_util"].value.text() == "35 %"  # (0 + 10 + … + 70) / 8
    assert page.tiles["gpu_util"].detail.text() == "average of 8 GPUs"
    assert page.tiles["gpu_memory"].value.text() == "184 / 637"  # GiB used / total over 8
    page.redraw_now()
    assert [n >= 3 for n in page.charts.points()["gpu_util"]] == [True] * 8
    assert "0" in page.charts.charts["gpu_util"].title.text() and "7" in page.charts.charts["gpu_util"].title.text()
    assert page.gpu_note.text() == ""  # the server is on this computer


def test_pause_keeps_the_data_and_takes_no_new_points(make_window, qtbot, server):
    _window, page = dashboard(make_window, server)
    qtbot.waitUntil(lambda: len(page.recorder.window) >= 3, timeout=5000)
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    assert page.pause_button.text() == "Resume" and "Paused" in page.status.text()
    kept = len(page.recorder.window)
    qtbot.wait(int(FAST * 1000 * 4))
    assert len(page.recorder.window) == kept and not page.recorder.running
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    assert page.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: len(page.recorder.window) > kept, timeout=5000)


def test_hidden_page_goes_on_recording_only_when_asked(make_window, qtbot, server):
    window, page = dashboard(make_window, server)
    qtbot.waitUntil(lambda: len(page.recorder.window) >= 2, timeout=5000)
    window.show_page("machine")
    assert page.keep_recording.isChecked() and page.recorder.running
    kept = len(page.recorder.window)
    qtbot.waitUntil(lambda: len(page.recorder.window) > kept + 1, timeout=5000)
    window.show_page("dashboard")
    page.keep_recording.setChecked(False)
    window.show_page("machine")
    assert not page.recorder.running
    kept = len(page.recorder.window)
    qtbot.wait(int(FAST * 1000 * 4))
    assert len(page.recorder.window) == kept
    window.show_page("dashboard")
    qtbot.waitUntil(lambda: len(page.recorder.window) > kept, timeout=5000)


def test_csv_export_writes_a_row_per_scrape_with_the_stable_columns(make_window, qtbot, server, tmp_path):
    _window, page = dashboard(make_window, server)
    chat(server, 3)
    qtbot.waitUntil(lambda: len(page.recorder.window) >= 4, timeout=5000)
    target = tmp_path / "session.csv"
    page.export_csv(str(target))
    qtbot.waitUntil(page.note.isVisible, timeout=5000)
    with target.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert len(rows) >= 4 and page.note.text() == f"Saved {len(rows)} rows to session.csv"
    assert rows[-1]["time"].endswith("+00:00") and rows[-1]["generation_tokens_total"] != ""


def test_a_url_with_no_server_says_so_and_recovers_when_the_server_appears(make_window, qtbot, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    window, page = dashboard(make_window, url)
    # Wait for what is asserted, not for a time: on a loaded machine the status follows the problem later.
    qtbot.waitUntil(lambda: page.recorder.problem is not None and f"No server at {url}" in page.status.text(),
                    timeout=20000)
    text = page.status.text()
    assert f"No server at {url}" in text and "Trying again every 0.25 s" in text
    assert "Traceback" not in text and not page.open_server_button.isVisible()
    assert not window.ctx.banner.isVisible()
    python = make_fake_runtime(tmp_path / "late", delay_scale=0.001)
    proc = subprocess.Popen(serve_argv(python, "/models/demo", "--served-model-name", "late", "--host", "127.0.0.1",
                                       "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        qtbot.waitUntil(lambda: "Reading " + url in page.status.text() and "late" in page.status.text()
                        and page.recorder.problem is None, timeout=30000)
    finally:
        kill_group(proc)


def test_fixing_a_wrong_url_recovers_and_another_server_starts_a_new_history(make_window, qtbot, server):
    window, page = dashboard(make_window, "http://127.0.0.1:9/not-here")
    qtbot.waitUntil(lambda: page.recorder.problem is not None, timeout=5000)
    assert "No server at http://127.0.0.1:9/not-here" in page.status.text()
    page.url.setText("not a url at all://")
    page.url.editingFinished.emit()
    qtbot.waitUntil(lambda: "Not a" in page.status.text(), timeout=5000)
    page.url.setText(server)
    page.url.editingFinished.emit()
    qtbot.waitUntil(lambda: "Reading " + server in page.status.text(), timeout=5000)
    assert page.recorder.window_url == server


def test_a_v1_url_works(make_window, qtbot, server):
    _window, page = dashboard(make_window, server + "/v1/")
    qtbot.waitUntil(lambda: len(page.recorder.window) >= 2, timeout=5000)
    assert page.recorder.window_url == server and page.recorder.problem is None


def test_a_server_that_is_not_vllm_is_named_plainly(make_window, qtbot, server):
    _window, page = dashboard(make_window, server + "/elsewhere")
    qtbot.waitUntil(lambda: page.recorder.problem is not None, timeout=5000)
    assert "Not a vLLM server" in page.status.text() and "HTTP 404" in page.status.text()


def test_a_remote_url_says_the_gpus_are_this_computers(make_window, qtbot):
    _window, page = dashboard(make_window, show=False)
    page.pause_button.setChecked(True)  # nothing is read: only the words are checked
    page.url.setText("http://192.0.2.10:8000/v1")
    page.url.editingFinished.emit()
    assert page.gpu_note.text() == "GPU figures are this computer's, not the server's"
    assert page.tiles["gpu_util"].title.text() == "This computer: GPU utilisation"
    page.url.setText("localhost:8000")
    page.url.editingFinished.emit()
    assert page.gpu_note.text() == "" and page.tiles["gpu_util"].title.text() == "GPU utilisation"


def test_the_apps_server_not_running_offers_the_server_page_then_is_followed(make_window, qtbot, tmp_path):
    window, page = dashboard(make_window, "")
    window.ctx.state.recent_models = ["/models/demo"]  # started in an earlier run of the app
    qtbot.waitUntil(page.open_server_button.isVisible, timeout=5000)
    assert "This app's server is not running" in page.empty_state.title.text() and not page.status.isVisible()
    assert "Trying again" not in page.status.text() and page.open_server_button.text() == "Start a model"
    qtbot.mouseClick(page.open_server_button, Qt.MouseButton.LeftButton)
    assert window.current_page == "server" and window.server_page.model.text() == "/models/demo"
    # Started from the Server page, it is the one the dashboard reads.
    python = make_fake_runtime(tmp_path / "runtime", delay_scale=0.005)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(python))
    server_page = window.server_page
    server_page.model.setText("/models/demo")
    server_page.served_name.setText("mine")
    server_page.port.setValue(free_port())
    qtbot.mouseClick(server_page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    window.show_page("dashboard")
    qtbot.waitUntil(lambda: "Reading " in page.status.text() and "mine" in page.status.text(), timeout=10000)
    assert not page.open_server_button.isVisible()
    qtbot.mouseClick(server_page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    qtbot.waitUntil(page.open_server_button.isVisible, timeout=5000)


def test_interval_comes_from_the_settings_and_can_be_changed(make_window, qtbot):
    window, page = dashboard(make_window, show=False, interval=1.0)
    assert window.ctx.settings.metrics_interval_s == 1.0
    assert [page.interval.itemData(i) for i in range(page.interval.count())] == [0.25, 0.5, 1.0, 2.0, 5.0]
    page.interval.setCurrentIndex(page.interval.findData(5.0))
    assert page.recorder.interval_s == 5.0


def test_range_buttons_set_the_charts_span(make_window, qtbot, server):
    _window, page = dashboard(make_window, server)
    qtbot.waitUntil(lambda: page.charts is not None, timeout=10000)
    qtbot.mouseClick(page.range_buttons[900], Qt.MouseButton.LeftButton)
    chart = page.charts.charts["throughput"]
    assert page.range_s == 900 and chart.axis.range_s == 900
    left, right = chart.plot.getPlotItem().viewRange()[0]
    assert left == pytest.approx(-900) and 0 < right < 60
    assert chart.axis.tickStrings([-600.0, -300.0, 0.0], 1, 300) == ["−10 min", "−5 min", "now"]
    qtbot.mouseClick(page.range_buttons[60], Qt.MouseButton.LeftButton)
    assert chart.axis.tickStrings([-45.0, 0.0], 1, 15) == ["−45 s", "now"]


def test_closing_the_window_stops_the_recorder(make_window, qtbot, server):
    window, page = dashboard(make_window, server)
    qtbot.waitUntil(lambda: page.recorder.ticks >= 1, timeout=5000)
    window.close()
    qtbot.waitUntil(lambda: not page.recorder.running, timeout=3000)


def test_charts_of_eight_gpus_redrawn_often_keep_up_without_freezing(make_window, qtbot, server):
    """The charts of 8 GPUs update 4 times a second with a 15-minute history under load. The 50 ms
    stall goal is a timing figure: bench/dashboard_stalls.py measures it (docs/benchmarks.md); a
    unit test on a loaded CI machine checks only that the loop never freezes."""
    from bench.dashboard_stalls import fill_history

    window, page = dashboard(make_window, server, scan=scan_of("h100", 8), show=False)
    page.recorder.sampler = fake_gpus(8)
    page.redraw_min_s = FAST
    fill_history(page.recorder, 900, 1.0, 8, root_url=server)
    window.show_page("dashboard")
    page.set_range(900)
    qtbot.waitUntil(lambda: page.charts is not None and page.recorder.ticks >= 2, timeout=10000)
    qtbot.wait(500)
    # The 15 minutes were made in one go: some 50,000 young objects that the GUI-thread collector
    # would walk in a 40-60 ms young-generation pass. Recorded live they age a few at a time.
    gc.collect()
    load = chat(server, 30)
    with StallMonitor(5) as monitor:
        qtbot.wait(4000)
    load.join(20)
    assert page.charts.points()["gpu_util"] and min(page.charts.points()["gpu_util"]) > 800
    assert monitor.max_ms < 1000, monitor.summary()  # a freeze, not a goal (see the docstring)


def test_the_gui_starts_without_importing_pyqtgraph():
    code = ("import sys, llmdesk.ui.main_window, llmdesk.ui.pages.metrics; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyqtgraph', 'numpy')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
