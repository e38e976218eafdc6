"""Chat page against the stand-in vLLM: streaming, stop, regenerate, edit, every error the issue
names, and the saved conversations (list, reopen, rename, delete, export, import)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from llmdesk.core.chat.conversations import ConversationStore
from tests.fakes.standin_server import finished_requests, free_port, running_standin

KEY = "sekret"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Replies of 400 tokens at 400 tokens/s unless max_tokens says less; an API key; context 256."""
    with running_standin(tmp_path_factory.mktemp("chat-ok"), "ok", "--api-key", KEY, max_model_len=256,
                         env={"FAKE_VLLM_REPLY_TOKENS": "400"}) as root:
        yield root


@pytest.fixture
def crashing(tmp_path):
    with running_standin(tmp_path / "crash", "crash_mid_stream", env={"FAKE_VLLM_CRASH_AFTER_TOKENS": "5"}) as root:
        yield root


def chat_page(make_window, url: str = "", key: str = KEY, max_tokens: str = "12"):
    window = make_window()
    window.show_page("chat")
    page = window.chat_page
    page.url.setText(url)
    page.api_key.setText(key)
    page.params.fields["max_tokens"].setText(max_tokens)
    return window, page


def store_of(page) -> ConversationStore:
    assert page.store is not None
    return page.store


def send(qtbot, page, text: str, timeout: int = 15000) -> None:
    page.composer.setPlainText(text)
    qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not page.streaming, timeout=timeout)


def test_a_message_streams_a_reply_with_its_stats_and_both_are_saved(make_window, qtbot, server):
    window, page = chat_page(make_window, server)
    send(qtbot, page, "Hello there")
    assert [m.role for m in page.messages] == ["user", "assistant"]
    reply = page.messages[1]
    assert reply.state == "complete" and reply.content().strip()
    assert reply.stats["completion_tokens"] == 12 and reply.stats["ttft_s"] > 0
    assert "12 reply tokens" in reply.stats_label.text()
    assert page.composer.toPlainText() == ""
    assert page.model.currentText() == "demo"
    conversation = store_of(page).get(page.conversation_id)
    assert [(m.role, m.state) for m in conversation.messages] == [("user", "complete"), ("assistant", "complete")]
    assert conversation.messages[0].content == "Hello there"
    assert conversation.messages[1].content == reply.content()
    assert conversation.messages[1].stats["completion_tokens"] == 12
    assert conversation.model == "demo" and conversation.title == "Hello there"
    qtbot.waitUntil(lambda: page.conversations.list.count() == 1)
    assert page.conversations.list.item(0).text() == "Hello there"


def test_shift_enter_is_a_new_line_not_a_send(make_window, qtbot, server):
    _window, page = chat_page(make_window, server)
    page.composer.setPlainText("line one")
    qtbot.keyClick(page.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert not page.messages and "\n" in page.composer.toPlainText()


def test_stop_aborts_on_the_server_and_keeps_the_part_received(make_window, qtbot, server):
    _window, page = chat_page(make_window, server, max_tokens="")
    page.params.fields["max_tokens"].setText("200")
    before = finished_requests(server, "abort", KEY)
    page.composer.setPlainText("Tell me a long story")
    page.send()
    qtbot.waitUntil(lambda: len(page.messages) == 2 and len(page.messages[1].content()) > 10, timeout=10000)
    assert page.send_button.text() == "Stop"
    qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming, timeout=5000)
    qtbot.waitUntil(lambda: finished_requests(server, "abort", KEY) == before + 1, timeout=5000)
    reply = page.messages[1]
    assert reply.state == "stopped" and "Stopped" in reply.note.text()
    assert page.send_button.text() == "Send"
    saved = store_of(page).get(page.conversation_id).messages[1]
    assert saved.state == "stopped" and saved.content == reply.content() and len(saved.content) > 10


def test_regenerate_replaces_the_last_reply(make_window, qtbot, server):
    _window, page = chat_page(make_window, server)
    send(qtbot, page, "Hi")
    first_id = page.messages[1].message_id
    assert page.messages[1].regenerate_button.isVisibleTo(page) and not page.messages[0].regenerate_button.isVisibleTo(page)
    qtbot.mouseClick(page.messages[1].regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming and len(page.messages) == 2
                    and page.messages[1].message_id not in (None, first_id), timeout=15000)
    saved = store_of(page).get(page.conversation_id).messages
    assert [m.role for m in saved] == ["user", "assistant"] and saved[1].id != first_id


def test_edit_and_resend_replaces_the_message_and_what_followed(make_window, qtbot, server):
    _window, page = chat_page(make_window, server)
    send(qtbot, page, "First question")
    send(qtbot, page, "Second question")
    assert len(page.messages) == 4
    qtbot.mouseClick(page.messages[0].edit_button, Qt.MouseButton.LeftButton)
    assert page.composer.toPlainText() == "First question" and page.edit_bar.isVisibleTo(page)
    send(qtbot, page, "A better first question")
    assert [m.role for m in page.messages] == ["user", "assistant"]
    assert page.messages[0].content() == "A better first question"
    saved = store_of(page).get(page.conversation_id).messages
    assert [m.content for m in saved][0] == "A better first question" and len(saved) == 2
    assert not page.edit_bar.isVisibleTo(page)


def test_no_server_offers_to_start_one_and_keeps_the_message(make_window, qtbot):
    window, page = chat_page(make_window, "", max_tokens="")
    page.model.setCurrentText("demo")
    # Empty URL = this app's server; none runs and nothing listens on 8000 in the tests.
    page.url.setText(f"http://127.0.0.1:{free_port()}")
    send(qtbot, page, "Anyone there?")
    assert page.notice.showing.startswith("No server at")
    assert [m.role for m in page.messages] == ["user"]
    assert store_of(page).get(page.conversation_id).messages[0].content == "Anyone there?"
    page.url.setText("")
    page._show_problem(page._last_problem)
    assert "Start the server" in page.notice.actions and "Try again" in page.notice.actions
    started = []
    window.server_page.start = lambda: started.append(True)
    qtbot.mouseClick(page.notice.actions["Start the server"], Qt.MouseButton.LeftButton)
    assert started == [True] and window.current_page == "server"


def test_wrong_key_points_at_the_key_field(make_window, qtbot, server):
    _window, page = chat_page(make_window, server, key="wrong")
    page.model.setCurrentText("demo")
    send(qtbot, page, "Hi")
    assert page.notice.showing == "Wrong or missing API key"
    assert "Enter the API key" in page.notice.actions
    page.api_key.setText(KEY)
    qtbot.mouseClick(page.notice.actions["Try again"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming and len(page.messages) == 2, timeout=15000)
    assert page.messages[1].state == "complete"


def test_context_exceeded_offers_to_leave_out_the_oldest_exchange(make_window, qtbot, server):
    _window, page = chat_page(make_window, server, max_tokens="100")
    long_text = " ".join(["word"] * 80)
    send(qtbot, page, long_text)  # 80 words + the template + 100 fit in 256
    assert [(m.role, m.state) for m in page.messages] == [("user", "complete"), ("assistant", "complete")]
    send(qtbot, page, "and now a short one")  # history + 100 no longer fits
    assert page.notice.showing == "The request does not fit the model's context"
    assert "256" in page.notice.text.text()
    qtbot.mouseClick(page.notice.actions["Leave out the oldest exchange and retry"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.streaming and page.messages[-1].role == "assistant"
                    and page.messages[-1].state == "complete" and len(page.messages) == 4, timeout=15000)
    assert [m.excluded for m in page.messages] == [True, True, False, False]
    assert "left out" in page.messages[0].note.text()
    # Kept on disk and still left out after reopening.
    conversation_id = page.conversation_id
    page.new_chat()
    qtbot.waitUntil(lambda: not page.messages)
    page.open_conversation(conversation_id)
    qtbot.waitUntil(lambda: len(page.messages) == 4)
    assert [m.excluded for m in page.messages] == [True, True, False, False]


def test_connection_lost_mid_reply_keeps_the_partial_answer(make_window, qtbot, crashing):
    _window, page = chat_page(make_window, crashing, key="", max_tokens="")
    send(qtbot, page, "Hi")
    reply = page.messages[1]
    assert reply.state == "interrupted" and reply.content()
    assert "Cut off" in reply.note.text()
    assert page.notice.showing == "The reply was cut off" and "Try again" in page.notice.actions
    saved = store_of(page).get(page.conversation_id).messages[1]
    assert saved.state == "interrupted" and saved.content == reply.content()


def test_conversations_reopen_rename_delete(make_window, qtbot, server):
    _window, page = chat_page(make_window, server)
    send(qtbot, page, "First chat")
    first = page.conversation_id
    page.new_chat()
    qtbot.waitUntil(lambda: not page.messages and page.conversation_id is None)
    send(qtbot, page, "Second chat")
    qtbot.waitUntil(lambda: page.conversations.list.count() == 2)
    assert page.conversations.list.item(0).text() == "Second chat"  # newest first
    page.open_conversation(first)
    qtbot.waitUntil(lambda: page.conversation_id == first and len(page.messages) == 2)
    assert page.messages[0].content() == "First chat"
    # search
    page.conversations.search.setText("second")
    qtbot.waitUntil(lambda: page.conversations.list.count() == 1, timeout=3000)
    page.conversations.search.setText("")
    qtbot.waitUntil(lambda: page.conversations.list.count() == 2, timeout=3000)
    # rename in place
    item = page.conversations.list.item(1)
    item.setText("Renamed")
    qtbot.waitUntil(lambda: store_of(page).get(first).title == "Renamed", timeout=3000)
    # delete: two clicks
    page.conversations.list.setCurrentRow(0)
    qtbot.mouseClick(page.conversations.delete_button, Qt.MouseButton.LeftButton)
    assert page.conversations.list.count() == 2
    qtbot.mouseClick(page.conversations.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.conversations.list.count() == 1, timeout=3000)
    assert [s.id for s in store_of(page).list()] == [first]


def test_export_and_import(make_window, qtbot, server, tmp_path):
    _window, page = chat_page(make_window, server)
    send(qtbot, page, "Export me")
    conversation_id = page.conversation_id
    page.conversations.export(conversation_id, "md", str(tmp_path / "chat.md"))
    page.conversations.export(conversation_id, "json", str(tmp_path / "chat.json"))
    qtbot.waitUntil(lambda: (tmp_path / "chat.json").exists() and (tmp_path / "chat.md").exists(), timeout=3000)
    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert "Export me" in markdown and page.messages[1].content().strip()[:20] in markdown
    page.conversations.import_file(str(tmp_path / "chat.json"))
    qtbot.waitUntil(lambda: page.conversations.list.count() == 2 and page.conversation_id != conversation_id,
                    timeout=5000)
    qtbot.waitUntil(lambda: len(page.messages) == 2)
    assert page.messages[0].content() == "Export me"
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    page.conversations.import_file(str(tmp_path / "bad.json"))
    qtbot.waitUntil(lambda: page.ctx.banner.isVisible(), timeout=3000)
    assert page.ctx.banner.title.text() == "Not a JSON file"


def test_parameters_are_sent_and_kept_with_the_conversation(make_window, qtbot, server):
    _window, page = chat_page(make_window, server, max_tokens="7")
    page.params.preset.setCurrentText("Precise")
    page.params.preset.activated.emit(page.params.preset.currentIndex())
    page.params.fields["max_tokens"].setText("7")
    page.params.system_prompt.setPlainText("Be terse.")
    send(qtbot, page, "Hi")
    assert page.messages[1].stats["completion_tokens"] == 7
    saved = store_of(page).get(page.conversation_id)
    assert saved.system_prompt == "Be terse."
    assert saved.params["temperature"] == 0.2 and saved.params["max_tokens"] == 7


def test_a_bad_parameter_is_named_and_nothing_is_sent(make_window, qtbot, server):
    _window, page = chat_page(make_window, server, max_tokens="lots")
    page.composer.setPlainText("Hi")
    page.send()
    qtbot.waitUntil(lambda: not page.streaming)
    assert not page.messages and page.composer.toPlainText() == "Hi"
    assert "Max tokens" in page.params.error.text()


def test_model_default_parameters(make_window, qtbot, server):
    _window, page = chat_page(make_window, server, max_tokens="9")
    page.model.setCurrentText("demo")
    page.params.fields["temperature"].setText("0.4")
    page._save_model_default()
    qtbot.waitUntil(lambda: store_of(page).model_params("demo") is not None and page.ctx.tasks.pending == 0,
                    timeout=3000)
    assert store_of(page).model_params("demo") == {"temperature": 0.4, "max_tokens": 9}
    assert page.params.preset.currentText() == "This model's default"


def test_closing_while_a_reply_streams_asks_first(make_window, qtbot, server):
    window, page = chat_page(make_window, server, max_tokens="200")
    page.composer.setPlainText("long one")
    page.send()
    qtbot.waitUntil(lambda: len(page.messages) == 2 and bool(page.messages[1].content()), timeout=10000)
    asked = []
    window.confirm_close_while_streaming = lambda: asked.append(True) or False
    window.close()
    assert asked == [True] and window.isVisible() and page.streaming
    window.confirm_close_while_streaming = lambda: True
    window.close()
    assert not window.isVisible()
    qtbot.waitUntil(lambda: not page.streaming, timeout=5000)  # closing stopped the reply; its part is saved
    saved = store_of(page).get(page.conversation_id).messages
    assert saved[-1].role == "assistant" and saved[-1].state == "stopped" and saved[-1].content


def test_copy_puts_the_reply_on_the_clipboard(make_window, qtbot, server):
    _window, page = chat_page(make_window, server)
    send(qtbot, page, "Hi")
    qtbot.mouseClick(page.messages[1].copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == page.messages[1].content()


def test_a_new_chat_without_a_server_leads_to_starting_one(make_window, qtbot, server):
    window, page = chat_page(make_window)
    assert page.empty.isVisible() and page.empty.title.text() == "No model is running"
    assert page.empty.action.isVisible() and page.empty.action.text() == "Start a model"
    qtbot.mouseClick(page.empty.action, Qt.MouseButton.LeftButton)  # nothing started yet: find one first
    assert window.current_page == "models"
    window.ctx.state.recent_models = ["/models/started-before"]
    window.show_page("chat")
    qtbot.mouseClick(page.empty.action, Qt.MouseButton.LeftButton)
    assert window.current_page == "server" and window.server_page.model.text() == "/models/started-before"
    window.show_page("chat")
    page.url.setText(server)  # another server typed: nothing to start, how to ask — at once, not on leaving
    assert page.empty.title.text() == "Ask the model something" and not page.empty.action.isVisible()
    page.url.editingFinished.emit()
    send(qtbot, page, "Hello there")
    assert not page.empty.isVisible()
