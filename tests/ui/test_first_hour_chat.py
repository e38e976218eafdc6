"""Chat and Dashboard with no server, as a new user first meets them (issue: the first hour, 14-15)."""

from __future__ import annotations

from tests.ui.walkthrough import horizontal_scroll_bars, markdown_in_plain_text


def send_without_a_server(window, qtbot):
    window.resize(1024, 640)
    window.show_page("chat")
    page = window.chat_page
    page.composer.setPlainText("hello")
    page.send()
    qtbot.waitUntil(page.notice.isVisible, timeout=15000)
    return page


def test_no_server_notice_keeps_the_page_on_screen_and_shows_no_backticks(make_window, qtbot):
    window = make_window()
    page = send_without_a_server(window, qtbot)
    qtbot.wait(50)
    assert horizontal_scroll_bars(page) == []
    assert markdown_in_plain_text(page) == []
    assert "llmdesk serve MODEL" in page.notice.text.text()


def test_the_unanswered_question_keeps_its_mark_after_dismiss_and_loses_it_when_asked_again(make_window, qtbot):
    window = make_window()
    page = send_without_a_server(window, qtbot)
    question = page.messages[-1]
    assert question.role == "user" and question.mark.isVisible()
    assert question.mark.text().startswith("Not answered: No server at")
    page.notice.actions["Dismiss"].click()
    assert not page.notice.isVisible() and question.mark.isVisible()
    page.regenerate()
    qtbot.waitUntil(lambda: not page.streaming, timeout=15000)
    assert question.mark.isVisible()  # still no server: marked again
    question.set_unanswered(None)
    assert not question.mark.isVisible()


def test_the_dashboard_has_a_title_and_no_backticks_without_a_server(make_window, qtbot):
    window = make_window()
    window.resize(1024, 640)
    window.show_page("dashboard")
    page = window.dashboard_page
    qtbot.waitUntil(lambda: "not running" in page.status.text() or "No server" in page.status.text(), timeout=15000)
    assert markdown_in_plain_text(page) == [] and "`" not in page.status.text()
    titles = [label.text() for label in page.findChildren(type(page.status)) if label.objectName() == "pageTitle"]
    assert titles == ["Dashboard"]


def test_empty_charts_start_at_zero(make_window, qtbot):
    window = make_window()
    window.show_page("dashboard")
    page = window.dashboard_page
    qtbot.waitUntil(lambda: page.charts is not None, timeout=15000)
    from llmdesk.ui.metrics.charts import Chart

    charts = page.charts.findChildren(Chart)
    assert charts
    for chart in charts:
        low, high = chart.plot.getPlotItem().viewRange()[1]
        assert low == 0 and high == chart.spec.y_floor, (chart.spec.title, low, high)


def test_a_planned_gpu_shows_no_memory_in_use(make_window, qtbot):
    from PySide6.QtWidgets import QProgressBar

    window = make_window()
    page = window.machine_page
    page.plan_choice.setCurrentIndex(page.plan_choice.findData("h100-80gb"))
    texts = " ".join(label.text() for label in page.findChildren(type(page.gpu_message)))
    assert "Planning for: NVIDIA H100 80GB HBM3" in texts
    assert "used" not in texts and "as CUDA sees it" in texts
    assert not [bar for bar in page.findChildren(QProgressBar) if bar.isVisibleTo(page)]


def test_settings_out_of_range_are_said_at_start(make_window):
    import json

    from llmdesk.core.base.settings import settings_path

    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(json.dumps({"schema_version": 1, "values": {"theme": "purple",
                                                                           "gpu_memory_utilization": 7}}))
    window = make_window()
    banner = window.ctx.banner
    assert banner.isVisible() and banner.title.text() == "Some of your settings could not be used"
    assert "theme 'purple'" in banner.explanation.text()
    assert window.ctx.settings.gpu_memory_utilization == 0.92
