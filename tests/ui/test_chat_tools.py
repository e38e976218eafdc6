"""The Chat page's tools and structured output against the stand-in vLLM: tool definitions checked as
typed, the model's tool calls as cards, results typed and sent back, the validation badge of a
structured reply, a server without tool calling, and a model list with LoRA adapters."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from tests.fakes.standin_server import running_standin

TOOL_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "llama3_json")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
          "required": ["city", "temp_c"]}


@pytest.fixture(scope="module")
def tools_server(tmp_path_factory):
    with running_standin(tmp_path_factory.mktemp("ui-tools"), "ok", *TOOL_FLAGS) as root:
        yield root


@pytest.fixture
def breaking_server(tmp_path):
    with running_standin(tmp_path / "breaks", "ok", *TOOL_FLAGS, env={"FAKE_VLLM_BREAK_STRUCTURED": "1"}) as root:
        yield root


def chat_page(make_window, url: str, open_settings: bool = True):
    window = make_window()
    window.show_page("chat")
    page = window.chat_page
    if open_settings and not page.settings_toggle.isChecked():  # the window may be narrow: as a person would
        page.settings_toggle.click()
    page.url.setText(url)
    page.params.fields["max_tokens"].setText("64")
    return window, page


def send(qtbot, page, text: str) -> None:
    page.composer.setPlainText(text)
    qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not page.streaming, timeout=15000)


def with_example_tools(qtbot, page) -> None:
    qtbot.mouseClick(page.tools_panel.example, Qt.MouseButton.LeftButton)
    page.tools_panel.use_tools.setChecked(True)
    page.tools_panel.check()
    assert page.tools_panel.tools_status.text() == "1 tool: get_weather"


def test_a_tool_call_is_a_card_whose_result_goes_back(make_window, qtbot, tools_server):
    _window, page = chat_page(make_window, tools_server)
    with_example_tools(qtbot, page)
    send(qtbot, page, "What is the weather in Paris? Use get_weather.")
    assert [m.role for m in page.messages] == ["user", "assistant"]
    reply = page.messages[1]
    [card] = reply.cards.values()
    assert card.title.text() == "Tool call: get_weather"
    assert json.loads(card.arguments.text()) == {"city": "Paris"} and "\n" in card.arguments.text()  # pretty
    assert card.entry.isVisibleTo(page) and not card.note.isVisibleTo(page)
    assert "called get_weather" in page.status.text()
    card.result.setPlainText('{"temp_c": 18}')
    qtbot.mouseClick(card.send, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming and len(page.messages) == 4, timeout=15000)
    assert [m.role for m in page.messages] == ["user", "assistant", "tool", "assistant"]
    assert page.messages[2].who.text() == "Tool result · get_weather"
    assert page.messages[3].content() == 'Result: {"temp_c": 18}'
    assert card.answered and not card.entry.isVisibleTo(page)
    saved = page.store.get(page.conversation_id)
    assert [m.role for m in saved.messages] == ["user", "assistant", "tool", "assistant"]
    assert saved.messages[1].tool_calls[0]["id"] == card.call.id == saved.messages[2].tool_call_id
    assert saved.params["tools"][0]["function"]["name"] == "get_weather"
    # reopened: the cards are there, answered, and the tools come back with the chat
    page.tools_panel.tools_edit.clear()
    page.show_conversation(saved)
    [again] = page.messages[1].cards.values()
    qtbot.waitUntil(lambda: page.messages[1].isVisibleTo(page))  # a widget added to a shown page shows a turn later
    assert again.answered and again.call.name == "get_weather" and not again.entry.isVisibleTo(page)
    assert page.tools_panel.use_tools.isChecked() and "get_weather" in page.tools_panel.tools_edit.toPlainText()


def test_a_forced_tool_choice_forces_the_first_call_only(make_window, qtbot, tools_server):
    """vLLM forces a call for "required" or a named function whatever came before: forced again with the
    result, the model could only call again (H100, 2026-12-07). The reply to the result may answer."""
    _window, page = chat_page(make_window, tools_server)
    with_example_tools(qtbot, page)
    page.tools_panel.tool_choice.setCurrentText("get_weather")
    send(qtbot, page, "Hello")
    [card] = page.messages[1].cards.values()
    card.result.setPlainText('{"temp_c": 18}')
    qtbot.mouseClick(card.send, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming and len(page.messages) == 4, timeout=15000)
    assert page.messages[3].content() == 'Result: {"temp_c": 18}' and not page.messages[3].cards
    assert page.tools_panel.tool_choice.currentText() == "get_weather"  # the person's choice stays for the next


def test_an_unanswered_call_waits_for_its_result_after_reopening(make_window, qtbot, tools_server):
    _window, page = chat_page(make_window, tools_server)
    with_example_tools(qtbot, page)
    send(qtbot, page, "Weather in Oslo? get_weather")
    cid = page.conversation_id
    page.new_chat()
    qtbot.waitUntil(lambda: not page.messages)
    page.open_conversation(cid)
    qtbot.waitUntil(lambda: len(page.messages) == 2)
    [card] = page.messages[1].cards.values()
    assert card.entry.isVisibleTo(page) and not card.answered


def test_arguments_off_the_schema_are_noted_on_the_card(make_window, qtbot, tools_server):
    """The stand-in ignores maxLength (a real model may write anything): the card says what does not fit."""
    _window, page = chat_page(make_window, tools_server)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 3}}, "required": ["city"]}}}]
    page.tools_panel.tools_edit.setPlainText(json.dumps(tools))
    page.tools_panel.use_tools.setChecked(True)
    send(qtbot, page, "get_weather for Paris")
    [card] = page.messages[1].cards.values()
    assert card.note.isVisibleTo(page) and card.entry.isVisibleTo(page)  # noted, and still answerable
    assert card.note.text() == ("Note: the arguments do not match the tool's parameters: "
                                "$.city: 'Paris' is too long")
    page.show_conversation(page.store.get(page.conversation_id))
    [card] = page.messages[1].cards.values()
    qtbot.waitUntil(lambda: card.note.isVisibleTo(page))  # a widget added to a shown page shows a turn later
    assert "'Paris' is too long" in card.note.text()


def test_tools_are_checked_as_typed_and_a_bad_list_is_not_sent(make_window, qtbot, tools_server):
    _window, page = chat_page(make_window, tools_server)
    panel = page.tools_panel
    panel.use_tools.setChecked(True)
    panel.tools_edit.setPlainText('[{"name": "get weather"}]')
    qtbot.waitUntil(lambda: "must be 1 to 64 letters" in panel.tools_status.text(), timeout=2000)
    assert panel.tools_status.property("tone") == "error"  # in the theme's error colour
    page.composer.setPlainText("Hello")
    page.send()
    qtbot.waitUntil(lambda: not page.streaming, timeout=5000)
    assert [m.role for m in page.messages] == ["user"]  # kept, not answered
    assert page.status.text().startswith("Not sent: The tools: tool 1: the name 'get weather'")
    panel.tools_edit.setPlainText('[{"name": "get_time"}, {"name": "get_date"}]')
    panel.check()
    assert panel.tools_status.text() == "2 tools: get_time, get_date"
    assert [panel.tool_choice.itemText(i) for i in range(panel.tool_choice.count())] == [
        "auto", "required", "none", "get_time", "get_date"]
    panel.use_tools.setChecked(False)
    assert panel.request()["tools"] is None and panel.tools_status.text().endswith("(not sent)")


@pytest.mark.parametrize("breaks", [False, True], ids=["fits", "breaks"])
def test_a_structured_reply_gets_its_badge(make_window, qtbot, tools_server, breaking_server, breaks):
    _window, page = chat_page(make_window, breaking_server if breaks else tools_server)
    panel = page.tools_panel
    panel.shape.setCurrentIndex(panel.shape.findText("JSON schema"))
    assert panel.schema_edit.isVisibleTo(page) and not panel.pattern.isVisibleTo(page)
    panel.schema_edit.setPlainText(json.dumps(SCHEMA))
    send(qtbot, page, "The weather in Rome")
    reply = page.messages[1]
    badge = reply.verdict
    assert badge.isVisibleTo(page) and badge.ok is (not breaks)
    if breaks:
        assert badge.text() == "✗ Does not match the JSON schema: $: 'city' is a required property"
    else:
        assert badge.text() == "✓ Matches the JSON schema" and json.loads(reply.content())["city"] == "Rome"
    saved = page.store.get(page.conversation_id)
    assert saved.messages[1].stats["validation"]["ok"] is (not breaks)
    assert saved.params["structured"]["kind"] == "json_schema"
    page.show_conversation(saved)  # the badge comes back with the chat
    qtbot.waitUntil(lambda: page.messages[1].verdict.isVisibleTo(page))
    assert page.messages[1].verdict.ok is (not breaks)


def test_a_structured_reply_cut_at_max_tokens_says_so_in_its_badge(make_window, qtbot, tools_server):
    _window, page = chat_page(make_window, tools_server)
    panel = page.tools_panel
    panel.shape.setCurrentIndex(panel.shape.findText("JSON schema"))
    panel.schema_edit.setPlainText(json.dumps(SCHEMA))
    page.params.fields["max_tokens"].setText("3")
    send(qtbot, page, "The weather in Rome")
    assert page.messages[1].verdict.text() == "✗ Cut off at max tokens: the reply stopped before it was complete; " \
        "allow more tokens"
    badge = page.messages[1].verdict
    badge.show_verdict({"ok": False, "title": "Cut off: the model wrote spaces", "detail": "x " * 150})
    page.settings_toggle.click()  # the thread widens: the badge must be measured again, not keep its old height
    qtbot.wait(200)
    assert badge.width() > page.messages[1].body.width() * 0.9  # the column's width, so it wraps as the reply does
    assert badge.height() >= badge.heightForWidth(badge.width()), "the badge's last lines are cut off"


def test_choice_and_regex_constraints(make_window, qtbot, tools_server):
    _window, page = chat_page(make_window, tools_server)
    panel = page.tools_panel
    panel.shape.setCurrentIndex(panel.shape.findText("Choice"))
    panel.schema_edit.setPlainText("yes\nno")
    send(qtbot, page, "ok?")
    assert page.messages[1].content() == "yes" and page.messages[1].verdict.text() == "✓ Matches one of the choices"
    panel.shape.setCurrentIndex(panel.shape.findText("Regular expression"))
    panel.pattern.setText("(unclosed")
    panel.check()
    assert "does not compile" in panel.shape_status.text()
    panel.pattern.setText(r"\d{3}")
    send(qtbot, page, "three digits")
    assert page.messages[3].content() == "111" and page.messages[3].verdict.ok


def test_a_server_without_tool_calling_says_so(make_window, qtbot, tmp_path):
    with running_standin(tmp_path / "plain", "ok") as root:
        _window, page = chat_page(make_window, root)
        with_example_tools(qtbot, page)
        send(qtbot, page, "Weather in Paris? get_weather")
        assert page.notice.showing == "The server was started without tool calling"
        assert "--enable-auto-tool-choice" in page.notice.text.text()
        assert [m.role for m in page.messages] == ["user"]


def test_the_model_list_has_the_lora_adapters(make_window, qtbot, tmp_path):
    with running_standin(tmp_path / "lora", "ok", "--enable-lora", "--lora-modules", "sql-lora=/adapters/sql",
                         "chat-lora=/adapters/chat") as root:
        _window, page = chat_page(make_window, root)
        page.refresh_models()
        qtbot.waitUntil(lambda: page.model.count() == 3, timeout=5000)
        assert [page.model.itemText(i) for i in range(3)] == ["demo", "sql-lora", "chat-lora"]
        page.model.setCurrentText("sql-lora")
        send(qtbot, page, "Hello adapter")
        assert page.messages[1].state == "complete" and page.store.get(page.conversation_id).model == "sql-lora"


def test_a_result_the_server_did_not_answer_can_be_tried_again(make_window, qtbot, tmp_path):
    from tests.fakes.standin_server import kill_group, start_standin

    proc, root = start_standin(tmp_path / "gone", "ok", *TOOL_FLAGS)
    try:
        _window, page = chat_page(make_window, root)
        with_example_tools(qtbot, page)
        send(qtbot, page, "Weather in Rome? get_weather")
        [card] = page.messages[1].cards.values()
    finally:
        kill_group(proc)
    card.result.setPlainText("sunny")
    qtbot.mouseClick(card.send, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming and bool(page.notice.showing), timeout=15000)
    assert [m.role for m in page.messages] == ["user", "assistant", "tool"]
    assert page.notice.showing.startswith("No server at") and "Try again" in page.notice.actions
    assert page.messages[2].mark.isVisibleTo(page) and "Not answered" in page.messages[2].mark.text()
    assert [m.role for m in page.store.get(page.conversation_id).messages] == ["user", "assistant", "tool"]


def test_at_the_smallest_window_the_thread_has_the_room(make_window, qtbot, tools_server):
    """At 960x600 the side columns kept 200 + 260 px and the thread had 247: a tool call's result box was
    70 px wide and the thread scrolled sideways. Once the person drags a divider, their widths stay."""
    from llmdesk.ui.main_window import MINIMUM_SIZE

    window, page = chat_page(make_window, tools_server, open_settings=False)
    window.resize(MINIMUM_SIZE)
    window.show()
    with_example_tools(qtbot, page)
    send(qtbot, page, "What is the weather in Paris? Use get_weather.")
    qtbot.wait(100)
    chats, thread, side = page.columns.sizes()
    # Settings steps aside: beside it the thread had 270 px, the reply's stats a column of words
    assert not page.side.isVisibleTo(page) and not page.settings_toggle.isChecked()
    assert thread >= 450 and thread > 2 * chats, page.columns.sizes()
    assert not page.scroll.horizontalScrollBar().isVisible()
    window.resize(1440, 900)
    qtbot.wait(50)
    assert page.side.isVisibleTo(page) and page.settings_toggle.isChecked()  # room for it again
    assert page.columns.sizes()[0] >= 180  # a large window gives the chat list its room back
    page.settings_toggle.click()  # the person hides it: it stays hidden whatever the width
    window.resize(1439, 899)
    qtbot.wait(50)
    assert not page.side.isVisibleTo(page) and page.columns.sizes()[2] == 0
    window.resize(MINIMUM_SIZE)
    qtbot.wait(50)
    page.settings_toggle.click()  # and shown at the smallest window, it stays beside a narrower thread
    qtbot.wait(50)
    chats, thread, side = page.columns.sizes()
    assert page.side.isVisibleTo(page) and side >= page.side.minimumWidth() and thread >= 250, page.columns.sizes()
    window.resize(1440, 900)
    qtbot.wait(50)
    page.columns.moveSplitter(150, 1)  # the person's own widths
    page.columns.splitterMoved.emit(150, 1)
    kept = page.columns.sizes()[0]
    window.resize(1280, 800)
    qtbot.wait(50)
    assert page.columns.sizes()[0] == kept
