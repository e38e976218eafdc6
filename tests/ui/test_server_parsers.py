"""The Server page's tool-call and reasoning parsers: the model family's by default, read from the model's
config and chat template (tests/data/configs, tests/data/chat_templates), overridden by hand, and
carried to the launch; a server started from the form with a parser answers tool calls in the chat."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
from pathlib import Path

from PySide6.QtCore import Qt

from llmdesk.core.server.launch import build_vllm_command
from llmdesk.core.server.supervisor import ServerState
from tests.fakes.standin_server import DEMO_MODEL, free_port
from tests.fakes.vllm_standin.runtime import make_fake_runtime

DATA = Path(__file__).resolve().parents[1] / "data"


def model_folder(tmp_path: Path, stem: str) -> Path:
    folder = tmp_path / stem.split("__", 1)[1]
    folder.mkdir()
    shutil.copy(DATA / "configs" / f"{stem}.json", folder / "config.json")
    template = (DATA / "chat_templates" / f"{stem}.jinja").read_text(encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    return folder


def server_page(make_window):
    window = make_window()
    window.show_page("server")
    return window, window.server_page


def test_the_familys_parsers_are_the_default_and_reach_the_launch(make_window, qtbot, tmp_path):
    _window, page = server_page(make_window)
    parsers = page.parsers
    page.model.setText(str(model_folder(tmp_path, "Qwen__Qwen3-32B")))
    qtbot.waitUntil(lambda: parsers.tool.itemText(0) == "Auto: hermes", timeout=5000)
    assert parsers.reasoning.itemText(0) == "Auto: qwen3"
    assert parsers.note.text().startswith("Qwen3: its chat template takes tools.")
    config = page.launch_config()
    assert (config.tool_call_parser, config.enable_auto_tool_choice, config.reasoning_parser) == ("hermes", True, "qwen3")
    argv = build_vllm_command(config, "python")
    assert argv[argv.index("--enable-auto-tool-choice"):][:5] == [
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3"]
    parsers.set_choice(tool="none", reasoning="deepseek_r1")
    config = page.launch_config()
    assert (config.tool_call_parser, config.enable_auto_tool_choice, config.reasoning_parser) == (None, False,
                                                                                                    "deepseek_r1")
    assert parsers.tool.count() == 2 + 44 and parsers.reasoning.count() == 2 + 28  # vLLM 0.26's, nothing else


def test_a_template_without_tools_is_said_and_a_hand_choice_warned(make_window, qtbot, tmp_path):
    _window, page = server_page(make_window)
    parsers = page.parsers
    page.model.setText(str(model_folder(tmp_path, "deepseek-ai__DeepSeek-V3")))
    qtbot.waitUntil(lambda: parsers.match is not None, timeout=5000)
    assert parsers.tool.itemText(0) == "Auto: off" and page.launch_config().tool_call_parser is None
    assert "never uses the tool list" in parsers.note.text()
    parsers.set_choice(tool="deepseek_v3")
    assert page.launch_config().tool_call_parser == "deepseek_v3"
    assert "deepseek_v3 is set by hand, but the model's chat template never uses the tool list" in parsers.note.text()


def test_a_chat_template_in_extra_changes_the_match(make_window, qtbot, tmp_path):
    _window, page = server_page(make_window)
    parsers = page.parsers
    page.model.setText(DEMO_MODEL)  # a Llama config with no template: no family known
    qtbot.waitUntil(lambda: parsers.match is not None, timeout=5000)
    assert parsers.tool.itemText(0) == "Auto: off" and parsers.match.family is None
    page.extra.setText(f"--chat-template {DATA / 'chat_templates' / 'llmdesk-llama3-json-tools.jinja'}")
    page.extra.editingFinished.emit()
    qtbot.waitUntil(lambda: parsers.tool.itemText(0) == "Auto: llama3_json", timeout=5000)
    assert page.launch_config().tool_call_parser == "llama3_json"


def test_a_quoted_json_value_in_extra_stays_one_argument(make_window):
    """The compact-JSON fix the Chat gives for a reply of spaces, typed as a shell would take it."""
    _window, page = server_page(make_window)
    page.extra.setText("--structured-outputs-config '{\"backend\": \"xgrammar\", \"disable_any_whitespace\": true}'"
                       " --max-num-batched-tokens 4096")
    assert page.launch_config().extra_args == (
        "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
        "--max-num-batched-tokens", "4096")
    page.extra.setText("--served-model-name 'unbalanced")  # vLLM says what it cannot read
    assert page.launch_config().extra_args == ("--served-model-name", "'unbalanced")


def test_a_server_started_with_a_parser_answers_tool_calls_in_the_chat(make_window, qtbot, tmp_path):
    window, page = server_page(make_window)
    python = make_fake_runtime(tmp_path / "runtime", delay_scale=0.005)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(python))
    page.model.setText(DEMO_MODEL)
    page.served_name.setText("demo")
    page.port.setValue(free_port())
    qtbot.waitUntil(lambda: page.parsers.match is not None, timeout=5000)
    page.parsers.set_choice(tool="llama3_json")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    assert "--tool-call-parser llama3_json" in " ".join(build_vllm_command(window.ctx.server.status.config, "py"))
    window.show_page("chat")
    chat = window.chat_page
    qtbot.mouseClick(chat.tools_panel.example, Qt.MouseButton.LeftButton)
    chat.tools_panel.use_tools.setChecked(True)
    chat.composer.setPlainText("What is the weather in Lisbon? get_weather")
    qtbot.keyClick(chat.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(chat.messages) == 2 and not chat.streaming, timeout=15000)
    [card] = chat.messages[1].cards.values()
    assert card.call.name == "get_weather" and json.loads(card.call.arguments) == {"city": "Lisbon"}
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)


def test_a_tokenizer_without_the_parsers_token_is_said_on_the_form(make_window, qtbot, tmp_path):
    """llama3_json on a tokenizer without <|python_tag|>: vLLM 0.26 failed every chat request (H100,
    2026-12-07). Auto keeps tool calling off and says why; picked by hand, the form warns."""
    _window, page = server_page(make_window)
    parsers = page.parsers
    folder = model_folder(tmp_path, "meta-llama__Llama-3.1-8B-Instruct")
    (folder / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 0, "content": "<|eot_id|>"}]}))
    page.model.setText(str(folder))
    qtbot.waitUntil(lambda: parsers.match is not None, timeout=5000)
    assert parsers.tool.itemText(0) == "Auto: off" and parsers.match.tool_call_parser == "llama3_json"
    assert "<|python_tag|>" in parsers.note.text() and "HTTP 500" in parsers.note.text()
    assert page.launch_config().tool_call_parser is None
    parsers.set_choice(tool="llama3_json")
    assert page.launch_config().tool_call_parser == "llama3_json"
    assert "Pick another parser, or none." in parsers.note.text()
    assert "never uses the tool list" not in parsers.note.text()  # its template does use it
