"""Which vLLM 0.26 tool-call and reasoning parsers a model gets (server/tool_parsers.py, hub/chat_template.py),
on real config.json files (tests/data/configs) and chat template excerpts (tests/data/chat_templates);
the launch flags, `llmdesk serve --tool-call-parser/--reasoning-parser`, and the Deploy exports."""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys
from pathlib import Path

import pytest

from llmdesk import cli
from llmdesk.core.base.errors import BadInput
from llmdesk.core.deploy.target import vllm_args
from llmdesk.core.hub.chat_template import chat_facts
from llmdesk.core.server import tool_parsers as tp
from llmdesk.core.server.launch import LaunchConfig, build_vllm_command
from llmdesk.core.server.tool_parsers import (REASONING_PARSERS, TEMPLATE_MISSING, TEMPLATE_NO_TOOLS, TEMPLATE_TOOLS,
                                              TEMPLATE_UNKNOWN, TOOL_CALL_PARSERS, choose, match_parsers,
                                              template_tools)

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIGS, TEMPLATES = DATA / "configs", DATA / "chat_templates"
TOOL_TEMPLATE = TEMPLATES / "llmdesk-llama3-json-tools.jinja"
VLLM_WHEEL = Path("/root/.cache/uv/archive-v0/M4W93y6YsnEoMuo5/vllm")


def model_folder(tmp_path: Path, stem: str, *, template: bool = True) -> Path:
    """A folder as a download leaves it: config.json, tokenizer_config.json with the template, a weight file."""
    folder = tmp_path / stem.split("__", 1)[1]
    folder.mkdir(parents=True)
    shutil.copy(CONFIGS / f"{stem}.json", folder / "config.json")
    if template:
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": (TEMPLATES / f"{stem}.jinja")
                                                                  .read_text(encoding="utf-8")}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    return folder


# --- the names are vLLM 0.26's ------------------------------------------------------------------

def registered(path: Path, table: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    body = text[text.index(table):]
    body = body[:body.index("\n}\n")]
    return re.findall(r'^    "([^"]+)": \(', body, re.M)


@pytest.mark.skipif(not VLLM_WHEEL.is_dir(), reason="the vLLM 0.26.0 wheel is not unpacked here")
def test_the_lists_are_the_wheels_registration_tables():
    assert (VLLM_WHEEL.parent / "vllm-0.26.0.dist-info").is_dir()
    assert list(TOOL_CALL_PARSERS) == registered(VLLM_WHEEL / "tool_parsers" / "__init__.py",
                                                 "_TOOL_PARSERS_TO_REGISTER")
    assert list(REASONING_PARSERS) == registered(VLLM_WHEEL / "reasoning" / "__init__.py",
                                                 "_REASONING_PARSERS_TO_REGISTER")


# Every family rule, reached through the inputs that select it.
FAMILY_INPUTS = [
    dict(model_type="gpt_oss"), dict(model_type="kimi_k2"), dict(name="moonshotai/kimi-k2-thinking"),
    dict(model_type="qwen3_moe", name="qwen/qwen3-coder-30b-a3b-instruct"), dict(model_type="deepseek_v32"),
    dict(model_type="deepseek_v3", name="deepseek-ai/deepseek-v3.1"), dict(model_type="deepseek_v3", name="deepseek-r1"),
    dict(model_type="deepseek_v3"), dict(model_type="deepseek_v2"), dict(model_type="mistral"),
    dict(model_type="mistral", name="mistralai/magistral-small-2509"), dict(model_type="qwen2", name="qwen/qwq-32b"),
    dict(model_type="qwen3"), dict(model_type="qwen3", name="qwen3-4b-instruct-2507"), dict(model_type="qwen2"),
    dict(name="nousresearch/hermes-3", chat_template="<tool_call>"), dict(model_type="llama4"),
    dict(model_type="llama4", chat_template="[func_name1(params)]"), dict(model_type="llama", name="llama-3.2-3b"),
    dict(model_type="llama", chat_template="<|start_header_id|> [func_name1("), dict(model_type="gemma4"),
    dict(name="google/functiongemma-270m-it"), dict(model_type="gemma3"), dict(model_type="glm4_moe"),
    dict(model_type="glm4_moe", name="zai-org/glm-4.7"), dict(model_type="minimax_m2"),
    dict(model_type="granitemoehybrid"), dict(model_type="granite"), dict(model_type="hunyuan_v1_moe"),
    dict(model_type="phi3", name="microsoft/phi-4-mini-instruct"), dict(model_type="internlm2"),
    dict(model_type="jamba"), dict(model_type="olmo3", name="olmo-3-32b-think"), dict(model_type="seed_oss"),
    dict(model_type="ernie4_5_moe", name="ernie-4.5-21b-a3b-thinking"), dict(model_type="apertus"),
    dict(name="salesforce/llama-xlam-2-8b-fc-r"),
]


@pytest.mark.parametrize("facts", FAMILY_INPUTS, ids=lambda f: "/".join(str(v) for v in f.values())[:40])
def test_every_name_returned_is_registered_by_vllm(facts):
    match = match_parsers(**facts)
    assert match.family is not None
    assert match.tool_call_parser is None or match.tool_call_parser in TOOL_CALL_PARSERS
    assert match.reasoning_parser is None or match.reasoning_parser in REASONING_PARSERS


def test_every_family_rule_is_reached():
    """FAMILY_INPUTS covers every `_Family(` of the module: a new family without a case here fails."""
    source = Path(tp.__file__).read_text(encoding="utf-8")
    families = set(re.findall(r'_Family\("([^"]+)"', source))
    families |= {"GLM-4.7", "GLM-4.5/4.6"}  # the two of one conditional expression
    reached = {match_parsers(**facts).family for facts in FAMILY_INPUTS}
    assert families <= reached, families - reached


# --- real configs and templates -----------------------------------------------------------------

CASES = {  # fixture stem: (family, tool parser of the family, auto's, reasoning parser, what the template says)
    "meta-llama__Llama-3.1-8B-Instruct": ("Llama 3.1+", "llama3_json", "llama3_json", None, TEMPLATE_TOOLS),
    "meta-llama__Llama-3.3-70B-Instruct": ("Llama 3.1+", "llama3_json", "llama3_json", None, TEMPLATE_TOOLS),
    "RedHatAI__Llama-4-Scout-17B-16E-Instruct-FP8-dynamic": ("Llama 4", "llama4_json", "llama4_json", None,
                                                             TEMPLATE_TOOLS),
    "Qwen__Qwen2.5-7B-Instruct": ("Qwen2.5", "hermes", "hermes", None, TEMPLATE_TOOLS),
    "Qwen__Qwen3-32B": ("Qwen3", "hermes", "hermes", "qwen3", TEMPLATE_TOOLS),
    "Qwen__Qwen3-30B-A3B": ("Qwen3", "hermes", "hermes", "qwen3", TEMPLATE_TOOLS),
    "mistralai__Mistral-7B-Instruct-v0.3": ("Mistral", "mistral", "mistral", None, TEMPLATE_TOOLS),
    "openai__gpt-oss-20b": ("gpt-oss (harmony)", "openai", "openai", "openai_gptoss", TEMPLATE_TOOLS),
    "deepseek-ai__DeepSeek-V3": ("DeepSeek-V3", "deepseek_v3", None, None, TEMPLATE_NO_TOOLS),
    "google__gemma-3-27b-it": ("Gemma", None, None, None, TEMPLATE_NO_TOOLS),
    "google__gemma-2-9b-it": ("Gemma", None, None, None, TEMPLATE_NO_TOOLS),
}


@pytest.mark.parametrize("stem", CASES)
def test_parsers_of_real_models(tmp_path, stem):
    family, tool, auto, reasoning, template = CASES[stem]
    facts = chat_facts(str(model_folder(tmp_path, stem)))
    assert facts.template_source.endswith("tokenizer_config.json")
    match = match_parsers(**facts.match_args())
    assert (match.family, match.tool_call_parser, match.auto_tool_call_parser, match.reasoning_parser,
            match.template) == (family, tool, auto, reasoning, template)


def test_a_template_without_tools_is_said_plainly(tmp_path):
    match = match_parsers(**chat_facts(str(model_folder(tmp_path, "deepseek-ai__DeepSeek-V3"))).match_args())
    assert not match.tools_supported
    assert any("never uses the tool list" in note and "--chat-template" in note for note in match.notes)
    assert "tool calls: off" in match.summary()


def test_a_tool_template_given_with_chat_template_turns_tools_on(tmp_path):
    folder = model_folder(tmp_path, "deepseek-ai__DeepSeek-V3")
    (folder / "tokenizer_config.json").unlink()  # and a model with no template at all
    assert match_parsers(**chat_facts(str(folder)).match_args()).template == TEMPLATE_MISSING
    facts = chat_facts(str(folder), chat_template_file=str(TEMPLATES / "deepseek-ai__DeepSeek-V3.jinja"))
    assert facts.template_source.endswith("DeepSeek-V3.jinja")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    own = match_parsers(**chat_facts(str(tiny)).match_args())
    assert own.family is None and own.tool_call_parser is None  # "tiny": nothing says it is a Llama 3
    given = match_parsers(**chat_facts(str(tiny), chat_template_file=str(TOOL_TEMPLATE)).match_args())
    assert (given.family, given.auto_tool_call_parser, given.template) == ("Llama 3.1+", "llama3_json",
                                                                             TEMPLATE_TOOLS)


def test_chat_template_jinja_wins_and_named_templates_are_read(tmp_path):
    folder = model_folder(tmp_path, "openai__gpt-oss-20b", template=False)
    (folder / "chat_template.jinja").write_text((TEMPLATES / "openai__gpt-oss-20b.jinja").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    facts = chat_facts(str(folder))
    assert facts.template_source.endswith("chat_template.jinja") and template_tools(facts.chat_template) == TEMPLATE_TOOLS
    other = tmp_path / "hermes-2-pro"
    other.mkdir()
    (other / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "default", "template": "{{ messages }}"}, {"name": "tool_use", "template": "{% if tools %}{% endif %}"}]}))
    facts = chat_facts(str(other))
    assert facts.chat_template == "{{ messages }}" and facts.tool_use_template


def test_a_repo_not_downloaded_is_matched_by_name():
    facts = chat_facts("Qwen/Qwen3-8B")
    assert facts.chat_template is None and facts.name == "Qwen/Qwen3-8B"
    match = match_parsers(**facts.match_args())
    assert (match.tool_call_parser, match.auto_tool_call_parser, match.reasoning_parser, match.template) == (
        "hermes", "hermes", "qwen3", TEMPLATE_UNKNOWN)
    assert any("not read" in note for note in match.notes)


def test_a_cached_repo_is_read_from_the_hf_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hf-home" / "hub" / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(CONFIGS / "Qwen__Qwen2.5-7B-Instruct.json", snapshot / "config.json")
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    facts = chat_facts("Qwen/Qwen2.5-7B-Instruct")
    assert facts.model_type == "qwen2" and facts.chat_template is None  # no tokenizer files yet: unknown
    (snapshot / "tokenizer_config.json").write_text(json.dumps({"chat_template": (
        TEMPLATES / "Qwen__Qwen2.5-7B-Instruct.jinja").read_text()}))
    facts = chat_facts(str(snapshot))  # a snapshot folder names its repo
    assert facts.name == "Qwen/Qwen2.5-7B-Instruct" and template_tools(facts.chat_template) == TEMPLATE_TOOLS


@pytest.mark.parametrize("template, expected", [
    (None, TEMPLATE_UNKNOWN), ("", TEMPLATE_MISSING), ("  \n", TEMPLATE_MISSING),
    ("{% if tools %}x{% endif %}", TEMPLATE_TOOLS), ("{{- tools | tojson }}", TEMPLATE_TOOLS),
    ("{%- for t in tools -%}{%- endfor %}", TEMPLATE_TOOLS),
    ("{{ 'tools' }} tools {# tools #}", TEMPLATE_NO_TOOLS),  # a string, plain text and a comment
    ("{% for tool in message['tool_calls'] %}{% endfor %}{% if builtin_tools %}{% endif %}", TEMPLATE_NO_TOOLS),
    ("{{ message.tools }}", TEMPLATE_NO_TOOLS),
])
def test_template_tools(template, expected):
    assert template_tools(template) == expected


def test_names_by_model_name():
    assert match_parsers(model_type="qwen3_moe", name="Qwen/Qwen3-30B-A3B-Instruct-2507").reasoning_parser is None
    assert match_parsers(model_type="qwen2", name="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").reasoning_parser \
        == "deepseek_r1"
    v31 = match_parsers(model_type="deepseek_v3", name="deepseek-ai/DeepSeek-V3.1")
    assert (v31.tool_call_parser, v31.reasoning_parser) == ("deepseek_v31", "deepseek_v3")
    unknown = match_parsers(model_type="falcon", name="tiiuae/falcon-7b")
    assert unknown.family is None and unknown.tool_call_parser is None and unknown.notes


def test_choose():
    assert choose("tool", "auto", "hermes") == "hermes"
    assert choose("tool", "AUTO", None) is None
    assert choose("tool", "none", "hermes") is None
    assert choose("reasoning", "qwen3", None) == "qwen3"
    with pytest.raises(BadInput) as caught:
        choose("tool", "hermez", "hermes")
    assert "hermes" in caught.value.problem.explanation and "would refuse to start" in caught.value.problem.explanation
    with pytest.raises(BadInput):
        choose("reasoning", "openai", None)  # a tool parser's name, not a reasoning parser's


# --- argv and the exports -----------------------------------------------------------------------

def test_parsers_reach_argv_and_are_checked():
    config = LaunchConfig("m", tool_call_parser="llama3_json", enable_auto_tool_choice=True, reasoning_parser="qwen3")
    argv = build_vllm_command(config, "py")
    at = argv.index("--enable-auto-tool-choice")
    assert argv[at:at + 5] == ["--enable-auto-tool-choice", "--tool-call-parser", "llama3_json",
                               "--reasoning-parser", "qwen3"]
    assert config.validate() == []
    assert "--reasoning-parser" not in build_vllm_command(LaunchConfig("m"), "py")
    assert "--enable-auto-tool-choice" not in build_vllm_command(LaunchConfig("m"), "py")
    titles = [p.title for p in LaunchConfig("m", tool_call_parser="llama3", reasoning_parser="r1").validate()]
    assert titles == ["Unknown tool-call parser", "Unknown reasoning parser"]
    assert [p.title for p in LaunchConfig("m", enable_auto_tool_choice=True).validate()] == [
        "Auto tool choice needs a tool-call parser"]


def test_parser_names_in_the_extra_arguments_are_checked_unless_a_plugin_comes():
    assert [p.title for p in LaunchConfig("m", extra_args=("--tool-call-parser", "mine")).validate()] == [
        "Unknown tool-call parser"]
    assert [p.title for p in LaunchConfig("m", extra_args=("--reasoning-parser=nope",)).validate()] == [
        "Unknown reasoning parser"]
    assert LaunchConfig("m", extra_args=("--tool-parser-plugin", "p.py", "--tool-call-parser", "mine")).validate() == []
    assert LaunchConfig("m", extra_args=("--enable-auto-tool-choice", "--tool-call-parser", "hermes")).validate() == []
    notes = LaunchConfig("m", extra_args=("--tool-call-parser", "hermes")).warnings()
    assert any("--tool-call-parser in the extra arguments overrides" in n for n in notes)


def test_the_deploy_exports_carry_the_flags():
    config = LaunchConfig("Qwen/Qwen3-8B", tool_call_parser="hermes", enable_auto_tool_choice=True,
                          reasoning_parser="qwen3")
    args = vllm_args(config)
    assert args == build_vllm_command(config, "python")[4:]
    assert ["--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3"] == \
        args[args.index("--enable-auto-tool-choice"):args.index("--enable-auto-tool-choice") + 5]


# --- llmdesk serve ------------------------------------------------------------------------------

def printed(capsys, *argv: str) -> tuple[int, str, str]:
    source, *rest = argv
    code = cli.main(["serve", source, "--print-command", "--runtime", sys.executable, *rest])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_serve_auto_picks_the_familys_parsers(tmp_path, capsys):
    folder = model_folder(tmp_path, "Qwen__Qwen3-32B")
    code, out, err = printed(capsys, str(folder))
    assert code == 0, err
    assert "--enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3" in out
    assert "note: Qwen3 — tool calls: hermes, reasoning: qwen3" in err


def test_serve_names_none_and_bad_names(tmp_path, capsys):
    folder = model_folder(tmp_path, "Qwen__Qwen3-32B")
    code, out, _ = printed(capsys, str(folder), "--tool-call-parser", "none", "--reasoning-parser", "deepseek_r1")
    assert code == 0 and "--tool-call-parser" not in out and "--enable-auto-tool-choice" not in out
    assert "--reasoning-parser deepseek_r1" in out
    code, out, err = printed(capsys, str(folder), "--tool-call-parser", "hermez")
    assert code == 2 and "Unknown tool-call parser" in err and "hermes" in err and not out
    code, out, err = printed(capsys, str(folder), "--reasoning-parser", "qwen4")
    assert code == 2 and "Unknown reasoning parser" in err


def test_serve_says_when_the_template_has_no_tools(tmp_path, capsys):
    folder = model_folder(tmp_path, "deepseek-ai__DeepSeek-V3")
    code, out, err = printed(capsys, str(folder))
    assert code == 0 and "--tool-call-parser" not in out
    assert "tool calls: off" in err and "never uses the tool list" in err
    code, out, err = printed(capsys, str(folder), "--tool-call-parser", "deepseek_v3")
    assert code == 0 and "--tool-call-parser deepseek_v3" in out
    assert "warning: deepseek_v3 is set by hand, but the model's chat template never uses the tool list" in err


def test_serve_passes_env_to_vllm_and_refuses_what_llmdesk_sets(tmp_path, capsys):
    folder = model_folder(tmp_path, "Qwen__Qwen3-32B")
    code, out, err = printed(capsys, str(folder), "--env", "VLLM_ENFORCE_STRICT_TOOL_CALLING=0", "--env", "X=a b")
    assert code == 0, err
    assert out.startswith("env ") and " VLLM_ENFORCE_STRICT_TOOL_CALLING=0 " in out and " X='a b' " in out
    code, out, err = printed(capsys, str(folder), "--env", "VLLM_SERVER_DEV_MODE=1")
    assert code == 2 and not out and "VLLM_SERVER_DEV_MODE cannot be set here" in err and "Pause" in err
    code, out, err = printed(capsys, str(folder), "--env", "VLLM_LOGGING_LEVEL=ERROR")
    assert code == 0 and "warning: VLLM_LOGGING_LEVEL=ERROR: above INFO it hides" in err


def test_serve_reads_the_chat_template_given_after_the_dashes(tmp_path, capsys):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    (tiny / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    code, out, err = printed(capsys, str(tiny))
    assert code == 0 and "--tool-call-parser" not in out and "note:" not in err
    # set by hand on a model without a template: the same warning the Server form shows
    code, out, err = printed(capsys, str(tiny), "--tool-call-parser", "llama3_json")
    assert code == 0 and "--tool-call-parser llama3_json" in out
    assert "warning: llama3_json is set by hand, but the model has no chat template" in err
    code, out, err = printed(capsys, str(tiny), "--", "--chat-template", str(TOOL_TEMPLATE))
    assert code == 0, err
    assert f"--enable-auto-tool-choice --tool-call-parser llama3_json --disable-access-log-for-endpoints " \
           f"/health,/metrics --chat-template {TOOL_TEMPLATE}" in out
    # a parser among the vLLM arguments decides: auto adds no second one
    code, out, err = printed(capsys, str(tiny), "--", "--chat-template", str(TOOL_TEMPLATE),
                             "--enable-auto-tool-choice", "--tool-call-parser", "pythonic")
    assert code == 0 and out.count("--tool-call-parser") == 1 and "--tool-call-parser pythonic" in out


def test_export_takes_the_same_options(tmp_path, capsys):
    folder = model_folder(tmp_path, "mistralai__Mistral-7B-Instruct-v0.3")
    code = cli.main(["export", "docker", str(folder), "--tool-call-parser", "auto", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    text = "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "--enable-auto-tool-choice" in text and "--tool-call-parser mistral" in text.replace("\\\n", "")


def test_the_tool_template_renders_a_call_and_its_result():
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        TOOL_TEMPLATE.read_text())
    text = template.render(bos_token="<|begin_of_text|>", add_generation_prompt=True,
                           tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
                           messages=[{"role": "user", "content": "Weather in Paris?"},
                                     {"role": "assistant", "content": None, "tool_calls": [
                                         {"id": "c1", "type": "function",
                                          "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                                     {"role": "tool", "tool_call_id": "c1", "content": "18 C"}])
    assert '"name": "get_weather"' in text and '{"name": "get_weather", "parameters": {"city": "Paris"}}' in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n18 C<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") and jinja2


# --- the tokens a parser needs ------------------------------------------------------------------

def tokenizer_folder(tmp_path: Path, name: str, tokenizer_tokens: list[str], added: list[str] = ()) -> Path:
    """A Llama 3.1 folder (config, the tool template) whose tokenizer.json has ``tokenizer_tokens`` and whose
    tokenizer_config.json lists ``added`` as added tokens."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                                    "_name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}))
    (folder / "chat_template.jinja").write_text(TOOL_TEMPLATE.read_text())
    (folder / "tokenizer.json").write_text(json.dumps({
        "added_tokens": [{"id": i, "content": t, "special": True} for i, t in enumerate(tokenizer_tokens)],
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        str(1000 + i): {"content": t, "special": True} for i, t in enumerate(added)}}))
    return folder


def test_a_tokenizer_without_the_parsers_token_keeps_tool_calling_off(tmp_path):
    """vLLM 0.26 makes the tool parser for every chat request: llama3_json on a tokenizer without
    <|python_tag|> answered every request (tools or not) with HTTP 500 on an H100 (2026-12-07)."""
    lacking = tokenizer_folder(tmp_path, "llama-finetune", ["<|begin_of_text|>", "<|eot_id|>"])
    facts = chat_facts(str(lacking), look_for=tp.ALL_PARSER_TOKENS)
    assert facts.tokens_present == frozenset()
    match = match_parsers(**facts.match_args())
    assert match.tool_call_parser == "llama3_json" and match.auto_tool_call_parser is None
    assert match.missing_tokens("llama3_json") == ("<|python_tag|>",)
    assert any("<|python_tag|>" in n and "HTTP 500" in n and "stays off" in n for n in match.notes), match.notes
    assert "tool calls: off" in match.summary()
    # the token in tokenizer.json, or only among tokenizer_config.json's added tokens: on
    for folder in (tokenizer_folder(tmp_path, "in-json", ["<|python_tag|>"]),
                   tokenizer_folder(tmp_path, "in-config", [], added=["<|python_tag|>"])):
        match = match_parsers(**chat_facts(str(folder), look_for=tp.ALL_PARSER_TOKENS).match_args())
        assert match.auto_tool_call_parser == "llama3_json" and not match.missing_tokens("llama3_json")
    # not looked for, or no tokenizer.json to look in (sentencepiece, Mistral's tekken): nothing is said
    assert chat_facts(str(lacking)).tokens_present is None
    (lacking / "tokenizer.json").unlink()
    facts = chat_facts(str(lacking), look_for=tp.ALL_PARSER_TOKENS)
    assert facts.tokens_present is None and match_parsers(**facts.match_args()).auto_tool_call_parser == "llama3_json"


def test_non_ascii_parser_tokens_are_found_as_json_writes_them(tmp_path):
    folder = tmp_path / "deepseek"
    folder.mkdir()
    calls = ["<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"]
    (folder / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"content": calls[0]}]}))  # \uff5c…
    with (folder / "tokenizer.json").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"content": calls[1]}, ensure_ascii=False))  # and written as it is
    assert chat_facts(str(folder), look_for=calls).tokens_present == frozenset(calls)


def test_serve_warns_when_a_named_parser_lacks_its_token(tmp_path, capsys):
    import argparse

    from llmdesk.commands.serve import parser_fields

    folder = tokenizer_folder(tmp_path, "llama-finetune", ["<|eot_id|>"])
    auto = parser_fields(argparse.Namespace(source=str(folder), tool_call_parser="auto", reasoning_parser="none",
                                            extra_args=[]))
    assert auto["tool_call_parser"] is None and not auto["enable_auto_tool_choice"]
    assert "HTTP 500" in capsys.readouterr().err
    named = parser_fields(argparse.Namespace(source=str(folder), tool_call_parser="llama3_json",
                                             reasoning_parser="none", extra_args=[]))
    assert named["tool_call_parser"] == "llama3_json"  # the person's choice stands, with a warning
    err = capsys.readouterr().err
    assert err.startswith("warning: vLLM's llama3_json parser needs <|python_tag|>") and "another parser" in err


def test_the_chat_client_names_a_parser_that_does_not_fit():
    from llmdesk.core.chat.client import ChatClient

    body = json.dumps({"error": {"message": "Llama3JsonToolParser could not locate the bot token '<|python_tag|>' "
                                            "in the tokenizer.", "type": "InternalServerError", "code": 500}})
    problem = ChatClient("http://127.0.0.1:9/v1")._http_problem(500, body, model="tiny").problem
    assert problem.title == "The server's tool-call parser does not fit this model"
    assert "<|python_tag|>" in problem.explanation and "--tool-call-parser none" in problem.fix
