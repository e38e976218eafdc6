"""core/server/tool_endpoints.py: each tool's settings, exactly, and every value quoted for the format
it lands in: a served name with quotes, $(), backticks, newlines or escape sequences must come back
out of bash, TOML and YAML as itself, and never run or show anything else."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
import yaml

from llmdesk.core.base.errors import BadInput
from llmdesk.core.server.tool_endpoints import (CLAUDE_CODE_MIN_CONTEXT, TOOLS, Endpoint, ServedModel,
                                                all_tool_settings, mask_key, models_from_listing, sh,
                                                tool_settings, toml_str, yaml_str)

ROOT = "http://127.0.0.1:8000"
KEY = "sk-llmdesk-0123456789abcdef"
DEMO = ServedModel("demo", 40960)
LORA = ServedModel("sql-lora", 40960, parent="demo")


def endpoint(*models: ServedModel, key: str | None = KEY) -> Endpoint:
    return Endpoint(ROOT, models or (DEMO, LORA), key)


# --- exact settings ---------------------------------------------------------------------------

def test_claude_code_gets_the_anthropic_root_a_bearer_token_and_the_model_for_every_alias():
    s = tool_settings(endpoint(), "claude-code")
    assert s.anthropic_url == ROOT and s.openai_url == ROOT + "/v1" and s.model == "demo"
    assert s.text == (
        "export ANTHROPIC_BASE_URL=http://127.0.0.1:8000\n"
        'export ANTHROPIC_AUTH_TOKEN="$LLMDESK_API_KEY"\n'
        "export ANTHROPIC_MODEL=demo\n"
        "export ANTHROPIC_DEFAULT_OPUS_MODEL=demo\n"
        "export ANTHROPIC_DEFAULT_SONNET_MODEL=demo\n"
        "export ANTHROPIC_DEFAULT_HAIKU_MODEL=demo\n"
        "export ANTHROPIC_SMALL_FAST_MODEL=demo\n"
        "unset ANTHROPIC_API_KEY")
    notes = " ".join(s.notes)
    assert "x-api-key" in notes and "Authorization: Bearer" in notes
    assert "--enable-auto-tool-choice" in notes
    assert s.sources[0] == "https://code.claude.com/docs/en/llm-gateway"


def test_codex_gets_a_provider_table_with_env_key_and_the_responses_wire_api():
    s = tool_settings(endpoint(), "codex")
    assert [x.label for x in s.snippets] == ["~/.codex/config.toml"]
    assert s.snippets[0].text == (
        'model = "demo"\n'
        'model_provider = "llmdesk"\n'
        "\n"
        "[model_providers.llmdesk]\n"
        'name = "llmdesk (vLLM)"\n'
        'base_url = "http://127.0.0.1:8000/v1"\n'
        'env_key = "LLMDESK_API_KEY"\n'
        'wire_api = "responses"')
    config = tomllib.loads(s.snippets[0].text)
    assert config["model_providers"]["llmdesk"]["base_url"] == ROOT + "/v1"
    chat = tool_settings(endpoint(), "codex", wire_api="chat")
    assert tomllib.loads(chat.snippets[0].text)["model_providers"]["llmdesk"]["wire_api"] == "chat"
    assert any("February 2026" in n for n in chat.notes)


def test_continue_gets_a_config_yaml_model_with_its_secret_reference_and_context_length():
    s = tool_settings(endpoint(), "continue")
    assert s.snippets[0].text == (
        "name: llmdesk\n"
        "version: 0.0.1\n"
        "schema: v1\n"
        "models:\n"
        '  - name: "demo (llmdesk)"\n'
        "    provider: openai\n"
        '    model: "demo"\n'
        '    apiBase: "http://127.0.0.1:8000/v1"\n'
        '    apiKey: "${{ secrets.LLMDESK_API_KEY }}"\n'
        "    defaultCompletionOptions:\n"
        "      contextLength: 40960")
    assert yaml.safe_load(s.snippets[0].text)["models"][0]["apiBase"] == ROOT + "/v1"
    assert any("~/.continue/.env" in n for n in s.notes)
    assert not any("$LLMDESK_API_KEY: set it" in n for n in s.notes)  # Continue does not read the shell's


def test_aider_gets_openai_api_base_and_the_openai_prefixed_model():
    assert tool_settings(endpoint(), "aider").text == (
        "export OPENAI_API_BASE=http://127.0.0.1:8000/v1\n"
        'export OPENAI_API_KEY="$LLMDESK_API_KEY"\n'
        "aider --model openai/demo")


def test_open_webui_gets_its_variables_for_pip_and_for_docker():
    s = tool_settings(endpoint(), "open-webui")
    assert [x.label for x in s.snippets] == ["shell (pip install open-webui)", "shell (Docker)"]
    assert s.snippets[0].text == ("export OPENAI_API_BASE_URL=http://127.0.0.1:8000/v1\n"
                                  'export OPENAI_API_KEY="$LLMDESK_API_KEY"\n'
                                  "open-webui serve")
    assert s.snippets[1].text == ("docker run -d --network=host \\\n"
                                  "  -e OPENAI_API_BASE_URL=http://127.0.0.1:8000/v1 \\\n"
                                  '  -e OPENAI_API_KEY="$LLMDESK_API_KEY" \\\n'
                                  "  -v open-webui:/app/backend/data --name open-webui ghcr.io/open-webui/open-webui:main")
    assert s.text.startswith("# shell (pip install open-webui)\nexport")
    assert any("first start" in n for n in s.notes)


# --- the key ----------------------------------------------------------------------------------

def test_the_key_never_appears_unless_asked_for():
    for s in all_tool_settings(endpoint()):
        assert KEY not in str(s.as_dict()), s.tool
        assert not s.key_shown
    assert KEY not in str(endpoint().as_dict()) and endpoint().as_dict()["api_key"] == mask_key(KEY) == "sk-…cdef"
    shown = {s.tool: s for s in all_tool_settings(endpoint(), show_key=True)}
    assert f"export ANTHROPIC_AUTH_TOKEN={KEY}" in shown["claude-code"].text
    assert shown["codex"].snippets[1].text == f"export LLMDESK_API_KEY={KEY}"
    assert 'env_key = "LLMDESK_API_KEY"' in shown["codex"].text and KEY not in shown["codex"].snippets[0].text
    assert f'    apiKey: "{KEY}"' in shown["continue"].text
    assert f"export OPENAI_API_KEY={KEY}" in shown["aider"].text
    assert all(s.key_shown for s in shown.values())
    assert not any("set it to the server's key" in n for s in shown.values() for n in s.notes)


def test_a_hostile_key_is_quoted_too():
    key = "k'; touch /tmp/x; echo '$(id)"
    s = tool_settings(endpoint(key=key), "aider", show_key=True)
    assert run_bash(s.text.replace("aider --model", "args"), "OPENAI_API_KEY")["OPENAI_API_KEY"] == key
    assert yaml.safe_load(tool_settings(endpoint(key=key), "continue", show_key=True).text)["models"][0]["apiKey"] == key


def test_without_a_key_the_tools_that_need_one_get_the_placeholder_and_the_others_nothing():
    s = {t.tool: t for t in all_tool_settings(endpoint(key=None))}
    assert "export ANTHROPIC_AUTH_TOKEN=llmdesk\n" in s["claude-code"].text
    assert "env_key" not in s["codex"].text
    assert "apiKey" not in s["continue"].text
    assert "export OPENAI_API_KEY=llmdesk\n" in s["aider"].text
    assert "OPENAI_API_KEY=llmdesk" in s["open-webui"].snippets[1].text
    assert endpoint(key=None).as_dict()["api_key"] is None


# --- models and context -----------------------------------------------------------------------

def test_claude_code_warns_about_a_small_context_and_says_vllms_max_model_len():
    small = tool_settings(endpoint(ServedModel("tiny", 2048)), "claude-code")
    warning = next(n for n in small.notes if "Context too small" in n)
    assert "max_model_len 2,048" in warning and f"--max-model-len {CLAUDE_CODE_MIN_CONTEXT:,}" in warning
    big = tool_settings(endpoint(ServedModel("big", 131072)), "claude-code")
    assert not any("too small" in n for n in big.notes)
    assert any("max_model_len 131,072" in n for n in big.notes)
    # Only Claude Code gets the warning; the others are told the length.
    aider = tool_settings(endpoint(ServedModel("tiny", 2048)), "aider")
    assert not any("too small" in n for n in aider.notes) and any("max_model_len 2,048" in n for n in aider.notes)
    unknown = tool_settings(endpoint(ServedModel("x")), "claude-code")
    assert not any("max_model_len" in n for n in unknown.notes)


def test_the_default_model_is_the_first_base_model_and_an_adapter_can_be_picked():
    assert tool_settings(endpoint(LORA, DEMO), "aider").model == "demo"
    lora = tool_settings(endpoint(), "aider", model="sql-lora")
    assert lora.text.endswith("aider --model openai/sql-lora")
    assert any("LoRA adapter on demo" in n for n in lora.notes)
    missing = tool_settings(endpoint(), "codex", model="other")
    assert missing.notes[0] == "The server does not list other: it serves demo, sql-lora."
    with pytest.raises(BadInput):
        tool_settings(Endpoint(ROOT, ()), "codex")
    with pytest.raises(BadInput):
        tool_settings(endpoint(), "cursor")
    with pytest.raises(BadInput):
        tool_settings(endpoint(), "codex", wire_api="grpc")


def test_models_from_vllms_listing_with_lora_parents_and_junk_skipped():
    listing = {"object": "list", "data": [
        {"id": "demo", "object": "model", "owned_by": "vllm", "root": "/m/demo", "parent": None, "max_model_len": 4096},
        {"id": "sql-lora", "object": "model", "root": "/a/sql", "parent": "demo", "max_model_len": 4096},
        {"id": "", "parent": None}, {"object": "model"}, "junk", {"id": "odd", "max_model_len": "big"}]}
    assert models_from_listing(listing) == (ServedModel("demo", 4096), ServedModel("sql-lora", 4096, "demo"),
                                            ServedModel("odd"))
    assert models_from_listing({"error": "x"}) == () == models_from_listing([1, 2])


# --- hostile names ----------------------------------------------------------------------------

HOSTILE = [
    "it's a model",
    "x'; touch MARK; echo '",
    'say "hi" \\ $(touch MARK) `touch MARK` ${HOME}',
    "line one\nline two",
    "a\r\nexport EVIL=1",
    "red \x1b[31mALERT\x1b[0m \x1b]0;title\x07",
    "${{ secrets.GITHUB_TOKEN }}",
    "模型 ü 🙂 \u2028x\x85y\ufeff",
    "# comment: [list] {map} & *alias !tag",
    "back\\slash\\n",
    "-rf --model",
]


def run_bash(script: str, *names: str, cwd=None) -> dict[str, str]:
    """Run `script` in a clean bash with an `args` function that records its arguments; return the
    variables `names` and the recorded arguments under "ARGS"."""
    prelude = "args() { printf '%s\\0' \"$@\" > \"$ARGS_FILE\"; }\n"
    dump = "".join(f"printf '%s\\0' \"${n}\"\n" for n in names)
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args_file = os.path.join(tmp, "args")
        out = subprocess.run(["bash", "--norc", "--noprofile", "-c", prelude + script + "\n" + dump],
                             capture_output=True, cwd=cwd or tmp, env={"PATH": "/usr/bin:/bin", "ARGS_FILE": args_file,
                                                                      "HOME": tmp})
        assert out.returncode == 0, out.stderr
        assert not os.path.exists(os.path.join(cwd or tmp, "MARK")), "the snippet ran a command"
        values = out.stdout.decode().split("\0")[:-1]
        result = dict(zip(names, values, strict=True))
        if os.path.exists(args_file):
            result["ARGS"] = open(args_file, encoding="utf-8", newline="").read().split("\0")[:-1]
    return result


def raw_controls(text: str) -> list[str]:
    """Control characters other than the newlines between lines."""
    return re.findall("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]", text)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_comes_back_out_of_the_shell_lines_as_itself(name, tmp_path):
    ep = endpoint(ServedModel(name, 40960))
    claude = tool_settings(ep, "claude-code").text
    got = run_bash(claude, "ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL",
                   "EVIL", cwd=tmp_path)
    assert got["ANTHROPIC_MODEL"] == got["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == got["ANTHROPIC_SMALL_FAST_MODEL"] == name
    assert got["EVIL"] == ""
    aider = tool_settings(ep, "aider").text.replace("aider --model", "args --model")
    assert run_bash(aider, cwd=tmp_path)["ARGS"] == ["--model", "openai/" + name]
    for tool in ("open-webui",):
        for snippet in tool_settings(ep, tool).snippets:
            run_bash(snippet.text.replace("open-webui serve", "true").replace("docker run", "args run"), cwd=tmp_path)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_comes_back_out_of_codexs_toml_and_continues_yaml_as_itself(name):
    ep = endpoint(ServedModel(name, 40960))
    codex = tomllib.loads(tool_settings(ep, "codex").snippets[0].text)
    assert codex["model"] == name and codex["model_provider"] == "llmdesk"
    assert set(codex) == {"model", "model_provider", "model_providers"}
    cont = yaml.safe_load(tool_settings(ep, "continue").snippets[0].text)
    assert cont["models"][0]["model"] == name and cont["models"][0]["name"] == name + " (llmdesk)"
    assert set(cont["models"][0]) == {"name", "provider", "model", "apiBase", "apiKey", "defaultCompletionOptions"}
    # Continue fills ${{ … }} in the file's text before it reads the YAML: no "${{" may come from the name.
    assert tool_settings(ep, "continue").text.count("${{") == 1


@pytest.mark.parametrize("name", HOSTILE)
def test_no_snippet_or_note_carries_a_raw_control_character_or_an_extra_line(name):
    plain = {s.tool: s for s in all_tool_settings(endpoint(ServedModel("plain", 40960)))}
    for s in all_tool_settings(endpoint(ServedModel(name, 40960))):
        assert not raw_controls(s.text), (s.tool, raw_controls(s.text))
        assert not any(raw_controls(n) or "\n" in n for n in s.notes), s.tool
        assert s.text.count("\n") == plain[s.tool].text.count("\n"), s.tool


def test_a_name_no_file_can_carry_is_refused():
    with pytest.raises(BadInput):
        tool_settings(endpoint(ServedModel("bad\ud800name")), "codex")
    with pytest.raises(BadInput):
        tool_settings(endpoint(ServedModel("nul\x00name")), "aider")


@pytest.mark.parametrize("value", ["", "plain", "it's", "a\nb", "\x1b[2J", "q'\\x27'", "\u2028", "ü\x85\x9f"])
def test_quoting_functions_round_trip(value):
    assert run_bash(f"V={sh(value)}", "V")["V"] == value
    assert tomllib.loads(f"v = {toml_str(value)}")["v"] == value
    assert yaml.safe_load(f"v: {yaml_str(value)}")["v"] == value


def test_every_tool_lists_its_sources():
    for s in all_tool_settings(endpoint()):
        assert s.sources and all(u.startswith("https://") for u in s.sources), s.tool
    assert list(TOOLS) == ["claude-code", "codex", "continue", "aider", "open-webui"]
