"""Benchmark page against the stand-in vLLM: its empty state, a sweep shown as it runs and saved when it
ends, Stop keeping the finished levels, bad settings and a server that dies, saved runs compared,
exported and deleted, the cost panel against API prices, and a live theme switch."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal

import pytest
from PySide6.QtCore import Qt

from llmdesk.core.bench.cost import user_prices_path
from llmdesk.core.bench.runs import list_runs
from llmdesk.ui.bench.cost_panel import AddPriceDialog
from llmdesk.ui.pages.bench import parse_loads
from tests.fakes.standin_server import kill_group, start_standin


@pytest.fixture
def standin(tmp_path):
    proc, root = start_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": "400", "FAKE_VLLM_TTFT_S": "0.02"})
    try:
        yield proc, root
    finally:
        kill_group(proc)


def bench_page(make_window, qtbot, url: str = "", loads: str = "1, 2", per_level: int = 4):
    window = make_window()
    page = window.bench_page
    window.show_page("benchmark")
    page.url.setText(url)
    page.loads.setText(loads)
    page.per_level.setValue(per_level)
    page.input_len.setValue(32)
    page.output_len.setValue(8)
    qtbot.waitUntil(lambda: page.plots is not None, timeout=15000)
    return window, page


def test_without_a_server_start_says_so_and_offers_the_server_page(make_window, qtbot):
    window, page = bench_page(make_window, qtbot)
    assert page.empty.isVisible() and page.empty.title.text() == "No model is running"
    assert page.empty.action.text() == "Start a model"
    page.url.setText("http://127.0.0.1:9/v1")  # another server: nothing to start
    assert not page.empty.isVisible()
    page.url.setText("")
    assert "No run yet" in page.summary.text() and page.levels.rowCount() == 0
    assert page.runs.table.rowCount() == 0 and not page.runs.delete.isEnabled()
    assert "Run a benchmark" in page.cost.summary.text()
    page.start_button.click()  # the empty state says it already: no second message, its action gets the focus
    assert not page.problem.isVisible() and page.empty.isVisible()
    assert page.empty.action.hasFocus() or not window.isActiveWindow()
    window.ctx.state.recent_models = ["/models/earlier"]
    page.empty.action.click()
    assert window.current_page == "server" and window.server_page.model.text() == "/models/earlier"


@pytest.mark.parametrize("loads, words", [("1, x", "Not a number"), ("", "No concurrencies"), ("0", "not above 0")])
def test_bad_levels_are_refused_with_the_reason(make_window, qtbot, standin, loads, words):
    _, page = bench_page(make_window, qtbot, standin[1], loads=loads)
    page.start_button.click()
    assert page.problem.isVisible() and words in page.problem.text() and not page.running


def test_a_sweep_is_drawn_as_it_runs_and_saved_when_it_ends(make_window, qtbot, standin):
    _, page = bench_page(make_window, qtbot, standin[1], loads="1, 2, 4")
    page.slo_ttft.setValue(5000)
    page.slo_tpot.setValue(0)
    page.start_button.click()
    assert page.running and not page.start_button.isEnabled() and page.stop_button.isEnabled()
    assert not page.url.isEnabled()  # the settings are the run's while it runs
    qtbot.waitUntil(lambda: not page.running, timeout=60000)
    assert page.status.text().startswith("Finished (3 levels, saved)")
    assert page.levels.rowCount() == 3
    assert [page.levels.item(r, 0).text() for r in range(3)] == ["1", "2", "4"]
    assert page.levels.item(0, 1).text() == "4 / 0"
    assert "Highest load within the limits (TTFT ≤ 5000 ms, p99): <b>4</b>" in page.summary.text()
    page.draw_now()
    assert page.plots.drawn == {"throughput": 1, "latency": 4, "tradeoff": 1}
    qtbot.waitUntil(lambda: page.runs.table.rowCount() == 1, timeout=5000)
    saved = list_runs().runs
    assert len(saved) == 1 and saved[0].status == "finished" and len(saved[0].levels) == 3
    # The cost panel prices the fastest level (no knee in three growing levels) at the example GPU rent.
    assert page.cost.level_choice.count() == 3
    assert "per million output tokens" in page.cost.summary.text()
    assert page.cost.result is not None and page.cost.result.per_million_output > 0
    assert page.cost.prices.rowCount() > 10


def test_stop_aborts_the_level_under_way_and_keeps_the_finished_ones(make_window, qtbot, tmp_path):
    proc, root = start_standin(tmp_path, env={"FAKE_VLLM_TOKEN_RATE": "40"})
    try:
        _, page = bench_page(make_window, qtbot, root, loads="1, 2", per_level=2)
        page.output_len.setValue(30)
        page.start_button.click()
        qtbot.waitUntil(lambda: len(page.live_levels) == 1, timeout=30000)
        assert page.levels.rowCount() == 1  # drawn as soon as the level ended
        page.stop_button.click()
        assert page.status.text().startswith("Stopping")
        qtbot.waitUntil(lambda: not page.running, timeout=10000)
    finally:
        kill_group(proc)
    assert page.status.text().startswith("Stopped: the finished levels are kept (1 level, saved)")
    assert list_runs().runs[0].status == "stopped"


def test_a_server_that_dies_mid_run_is_explained_and_the_levels_kept(make_window, qtbot, standin):
    proc, root = standin
    _, page = bench_page(make_window, qtbot, root, loads="1, 2, 4")
    page.start_button.click()
    qtbot.waitUntil(lambda: len(page.live_levels) == 1, timeout=30000)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not page.running, timeout=30000)
    assert page.problem.isVisible()
    assert "stopped answering" in page.problem.text() or "No server" in page.problem.text()
    if list_runs().runs:  # the kill came after level 1: that level is kept
        assert list_runs().runs[0].levels


def test_lengths_beyond_the_context_are_refused_before_any_load(make_window, qtbot, standin):
    _, page = bench_page(make_window, qtbot, standin[1], loads="1")
    page.input_len.setValue(3000)
    page.start_button.click()
    qtbot.waitUntil(lambda: not page.running, timeout=20000)
    assert "longer than the model" in page.problem.text()
    assert page.status.text() == "Not run." and list_runs().runs == []


def test_saved_runs_are_shown_compared_exported_and_deleted(make_window, qtbot, standin, tmp_path):
    _, page = bench_page(make_window, qtbot, standin[1], loads="1, 2")
    for _ in range(2):
        page.start_button.click()
        qtbot.waitUntil(lambda: not page.running, timeout=60000)
    qtbot.waitUntil(lambda: page.runs.table.rowCount() == 2, timeout=5000)
    older = page.runs.runs[1]
    page.runs.table.selectRow(1)
    assert page.shown.id == older.id and page.runs.delete.isEnabled()
    page.runs.table.item(0, 0).setCheckState(Qt.CheckState.Checked)
    page.draw_now()
    assert page.plots.drawn["throughput"] == 2  # the one shown and the one ticked
    out = tmp_path / "run.csv"
    page.export_run(older, "csv", str(out))
    qtbot.waitUntil(lambda: page.note.text() == "Exported to run.csv", timeout=5000)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["concurrency"] for r in rows] == ["1", "2"]
    out_json = tmp_path / "run.json"
    page.export_run(older, "json", str(out_json))
    qtbot.waitUntil(lambda: page.note.text() == "Exported to run.json", timeout=5000)
    assert "saturation_concurrency" in json.loads(out_json.read_text())
    page.runs.delete.click()
    qtbot.waitUntil(lambda: page.runs.table.rowCount() == 1, timeout=5000)
    assert older.id not in {r.id for r in list_runs().runs}


def test_the_cost_panel_prices_a_level_and_keeps_the_users_own_price(make_window, qtbot, standin):
    _, page = bench_page(make_window, qtbot, standin[1], loads="1, 2")
    page.start_button.click()
    qtbot.waitUntil(lambda: not page.running, timeout=60000)
    cost = page.cost
    rented = cost.result.per_million_output
    cost.gpu_per_hour.setValue(cost.gpu_per_hour.value() * 2)
    assert cost.result.per_million_output == pytest.approx(2 * rented)
    cost.ownership.setCurrentIndex(1)  # owned
    assert not cost.gpu_per_hour.isVisibleTo(cost) and cost.purchase_price.isVisibleTo(cost)
    cost.purchase_price.setValue(26_280)
    cost.lifetime.setValue(3)
    assert cost.result.hourly_gpu == pytest.approx(1.0)  # 26,280 over 3 × 8,760 hours
    assert "per million output tokens" in cost.summary.text() and "power not measured" in cost.summary.text()
    qtbot.waitUntil(lambda: (user_prices_path().parent / "bench-cost.json").exists(), timeout=5000)
    cost.add_price.click()
    dialog = cost.dialog
    assert isinstance(dialog, AddPriceDialog)
    dialog.provider.setText("My cloud")
    dialog.model.setText("demo")
    dialog.input_price.setValue(0.1)
    dialog.output_price.setValue(0.2)
    dialog._accept()
    qtbot.waitUntil(lambda: any(r.provider == "My cloud" for r in cost.table.rows), timeout=5000)
    assert json.loads(user_prices_path().read_text())["rows"][0]["provider"] == "My cloud"
    shown = [cost.prices.item(r, 0).text() for r in range(cost.prices.rowCount())]
    assert "My cloud (yours)" in shown


def test_a_live_theme_switch_repaints_the_plots(make_window, qtbot, standin, qapp):
    from llmdesk.ui.theme import apply_theme

    _, page = bench_page(make_window, qtbot, standin[1], loads="1, 2")
    page.start_button.click()
    qtbot.waitUntil(lambda: not page.running, timeout=60000)
    light = page.plots.throughput.plot.backgroundBrush().color().lightness()
    apply_theme(qapp, "dark")
    try:
        qtbot.waitUntil(lambda: page.plots.throughput.plot.backgroundBrush().color().lightness() < 100, timeout=3000)
        page.draw_now()
        assert light > 150 and page.plots.drawn["throughput"] == 1
    finally:
        apply_theme(qapp, "light")


def test_parse_loads():
    assert parse_loads("4, 1; 2, 2", rates=False) == (1, 2, 4)
    assert parse_loads("0.5, 2", rates=True) == (0.5, 2.0)
    with pytest.raises(Exception, match="Too many concurrencies"):
        parse_loads(",".join(str(i) for i in range(1, 70)), rates=False)


def test_the_guides_one_minute_benchmark_opens_here_with_its_settings(make_window, qtbot):
    window = make_window()
    window.start_page.bench_button.click()
    page = window.bench_page
    assert window.current_page == "benchmark"
    assert page.loads.text() == "1, 4, 16" and page.seconds.value() == 15 and page.preset.currentData() == "chat"
    assert page.slo_ttft.value() == 200 and page.slo_tpot.value() == 50
    assert page.empty.isVisible() and page.empty.title.text() == "No model is running"  # none started here


def test_a_run_works_under_the_apps_qt_event_loop_policy(make_window, qtbot, standin):
    """The app runs under qasync.run, whose policy makes every new loop a Qt one; the run's own thread
    must still get a plain asyncio loop (it once failed with "Event loop stopped before Future completed")."""
    import asyncio

    import qasync

    _, page = bench_page(make_window, qtbot, standin[1], loads="1")
    before = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(qasync.DefaultQEventLoopPolicy())
    try:
        page.start_button.click()
        qtbot.waitUntil(lambda: not page.running, timeout=30000)
    finally:
        asyncio.set_event_loop_policy(before)
    assert page.status.text().startswith("Finished (1 level, saved)"), page.status.text()


def test_a_run_at_the_smallest_window_reads_whole(make_window, qtbot, standin):
    """At 960x600, a run in progress: the summary still said "No run yet", the Load choice read "Concurrenc",
    and with one level the per-user chart's x axis ran from 201.9 to 202.7, its ticks printed over each other."""
    from PySide6.QtWidgets import QScrollArea

    from llmdesk.ui.main_window import MINIMUM_SIZE

    window, page = bench_page(make_window, qtbot, standin[1], loads="1, 2, 4", per_level=4)
    window.resize(MINIMUM_SIZE)
    window.show()
    qtbot.wait(50)
    for combo in (page.mode, page.endpoint):
        longest = max(combo.fontMetrics().horizontalAdvance(combo.itemText(i)) for i in range(combo.count()))
        assert combo.width() >= min(longest, combo.fontMetrics().horizontalAdvance("Concurrency")) + 30
    outer = page.findChild(QScrollArea)
    assert outer is None or not outer.horizontalScrollBar().isVisible()  # the form fits the page
    page.start_button.click()
    assert page.summary.text().startswith("Running:")
    qtbot.waitUntil(lambda: len(page.live_levels) >= 1, timeout=30000)
    page.draw_now()
    x_low, x_high = page.plots.tradeoff.plot.getPlotItem().viewRange()[0]
    assert x_low == 0 and x_high > page.live_levels[0]["output_throughput"]
    qtbot.waitUntil(lambda: not page.running, timeout=60000)
    assert not page.summary.text().startswith("Running:")
