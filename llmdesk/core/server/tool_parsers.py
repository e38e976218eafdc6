"""Which tool-call parser and reasoning parser vLLM 0.26 needs for a model, and whether the model's
chat template can take tools at all (pure: no I/O).

vLLM turns a model's raw output into OpenAI ``tool_calls`` with ``--enable-auto-tool-choice
--tool-call-parser NAME``, and splits chain-of-thought into the ``reasoning`` field with
``--reasoning-parser NAME``. The parser must match the format the model was trained to write, and
the chat template must put the tool definitions into the prompt: a template that never mentions
``tools`` sends the model nothing to call, whatever the parser.

The names below are the ones vLLM 0.26.0 registers (anything else makes it refuse to start); they
were read from the 0.26.0 wheel's own registration tables::

    vllm/tool_parsers/__init__.py   _TOOL_PARSERS_TO_REGISTER   (ToolParserManager.register_lazy_module)
    vllm/reasoning/__init__.py      _REASONING_PARSERS_TO_REGISTER (ReasoningParserManager.register_lazy_module)

``match_parsers`` picks a family's parsers from the architecture / model_type, the name and the
chat template; the family table follows vLLM's docs (features/tool_calling.md and
features/reasoning_outputs.md) and docs/tools.md lists it with its sources.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass

from llmdesk.core.base.errors import BadInput, Problem

VLLM_VERSION = "0.26.0"
TOOL_PARSERS_SOURCE = "vllm/tool_parsers/__init__.py (_TOOL_PARSERS_TO_REGISTER) in the vLLM 0.26.0 wheel"
REASONING_PARSERS_SOURCE = "vllm/reasoning/__init__.py (_REASONING_PARSERS_TO_REGISTER) in the vLLM 0.26.0 wheel"

# In the order of the source tables.
TOOL_CALL_PARSERS: tuple[str, ...] = (
    "deepseek_v3", "deepseek_v31", "deepseek_v32", "deepseek_v4", "cohere_command3", "cohere_command4",
    "ernie45", "glm45", "glm47", "granite-20b-fc", "granite", "granite4", "hermes", "poolside_v1",
    "hunyuan_a13b", "hy_v3", "internlm", "jamba", "lfm2", "kimi_k2", "llama3_json", "llama4_json",
    "llama4_pythonic", "longcat", "mimo", "minimax_m2", "minimax_m3", "minicpm5", "mistral", "olmo3",
    "openai", "phi4_mini_json", "pythonic", "qwen3_coder", "qwen3_xml", "seed_oss", "step3", "step3p5",
    "inkling", "xlam", "gigachat3", "functiongemma", "gemma4", "apertus",
)
REASONING_PARSERS: tuple[str, ...] = (
    "deepseek_r1", "deepseek_v3", "deepseek_v4", "poolside_v1", "cohere_command3", "cohere_command4",
    "ernie45", "gemma4", "glm45", "glm47", "openai_gptoss", "granite", "holo2", "hunyuan_a13b", "hy_v3",
    "kimi_k2", "mimo", "minimax_m2", "minimax_m2_append_think", "minimax_m3", "mistral", "nemotron_v3",
    "olmo3", "qwen3", "seed_oss", "step3", "step3p5", "inkling",
)

# The tokens a parser looks up in the tokenizer when vLLM 0.26 makes it (each parser's __init__, which raises
# "… could not locate …" without them). With --enable-auto-tool-choice vLLM makes the parser for every chat
# request, tools or not, so a missing token fails them all with HTTP 500 (seen on an H100 with llama3_json and a
# tokenizer without <|python_tag|>, 2026-12-07).
_DEEPSEEK_CALLS = ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>")
PARSER_TOKENS: dict[str, tuple[str, ...]] = {
    "llama3_json": ("<|python_tag|>",),
    "mistral": ("[TOOL_CALLS]",),
    "deepseek_v3": _DEEPSEEK_CALLS,
    "deepseek_v31": _DEEPSEEK_CALLS,
    "jamba": ("<tool_calls>", "</tool_calls>"),
    "lfm2": ("<|tool_call_start|>", "<|tool_call_end|>"),
}
ALL_PARSER_TOKENS: tuple[str, ...] = tuple(dict.fromkeys(t for ts in PARSER_TOKENS.values() for t in ts))

AUTO, NONE = "auto", "none"  # the two words `llmdesk serve` and the Server page take besides a name

# What the chat template says about tools.
TEMPLATE_TOOLS = "renders tools"  # the template puts the `tools` list into the prompt
TEMPLATE_NO_TOOLS = "no tools"  # it has a template, which never uses `tools`
TEMPLATE_MISSING = "no template"  # the model has no chat template at all (a base model)
TEMPLATE_UNKNOWN = "not read"  # the template could not be read (a repo not downloaded yet)

# A Jinja tag ({% … %} or {{ … }}) and, inside one, a quoted string.
_JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_TOOLS_VARIABLE = re.compile(r"(?<![\w.])tools\b")


def template_tools(chat_template: str | None) -> str:
    """TEMPLATE_TOOLS when the template uses the ``tools`` variable (outside string literals), else
    TEMPLATE_NO_TOOLS; TEMPLATE_MISSING for an empty one, TEMPLATE_UNKNOWN for None (not read)."""
    if chat_template is None:
        return TEMPLATE_UNKNOWN
    if not chat_template.strip():
        return TEMPLATE_MISSING
    for tag in _JINJA_TAG.findall(chat_template):
        if _TOOLS_VARIABLE.search(_QUOTED.sub("''", tag)):
            return TEMPLATE_TOOLS
    return TEMPLATE_NO_TOOLS


@dataclass(frozen=True)
class ParserMatch:
    """What ``match_parsers`` found. ``tool_call_parser`` / ``reasoning_parser``: the family's
    parsers (names vLLM 0.26 registers), None where vLLM has none for it. ``auto_tool_call_parser``
    is what "auto" turns on: the family's parser unless the template is known to leave tools out."""

    family: str | None
    tool_call_parser: str | None
    reasoning_parser: str | None
    template: str
    notes: tuple[str, ...] = ()
    tokens_present: frozenset[str] | None = None  # of ALL_PARSER_TOKENS, in the tokenizer; None: not read

    @property
    def auto_tool_call_parser(self) -> str | None:
        if self.tool_call_parser is None or self.missing_tokens(self.tool_call_parser):
            return None
        return self.tool_call_parser if self.template in (TEMPLATE_TOOLS, TEMPLATE_UNKNOWN) else None

    def missing_tokens(self, parser: str) -> tuple[str, ...]:
        """The tokens ``parser`` needs that the model's tokenizer lacks (none when it was not read)."""
        if self.tokens_present is None:
            return ()
        return tuple(t for t in PARSER_TOKENS.get(parser, ()) if t not in self.tokens_present)

    def missing_tokens_note(self, parser: str) -> str | None:
        missing = self.missing_tokens(parser)
        if not missing:
            return None
        return (f"vLLM's {parser} parser needs {' and '.join(missing)} in the tokenizer, and this model's has "
                f"{'none of them' if len(missing) > 1 else 'none'}: with it on, vLLM fails every chat request "
                "(HTTP 500), tools or not.")

    def hand_picked_warnings(self, parser: str) -> tuple[str, ...]:
        """What speaks against a tool-call parser the person set by hand (the Server form and
        `llmdesk serve` say the same): a template without the tool list, or tokens the parser needs."""
        warnings = []
        if self.template == TEMPLATE_NO_TOOLS:
            warnings.append(f"{parser} is set by hand, but the model's chat template never uses the tool list: the "
                            "model will not see the tools (give a tool-capable --chat-template).")
        elif self.template == TEMPLATE_MISSING:
            warnings.append(f"{parser} is set by hand, but the model has no chat template (a base model): give a "
                            "tool-capable --chat-template.")
        if self.missing_tokens(parser):
            warnings.append(f"{self.missing_tokens_note(parser)} Pick another parser, or none.")
        return tuple(warnings)

    @property
    def tools_supported(self) -> bool:
        return self.auto_tool_call_parser is not None

    def summary(self) -> str:
        """One line for the form and `llmdesk serve`: the family, the parsers, and why tools are off."""
        what = self.family or "an unknown model family"
        tool = self.auto_tool_call_parser
        parts = [f"tool calls: {tool}" if tool else "tool calls: off",
                 f"reasoning: {self.reasoning_parser}" if self.reasoning_parser else "reasoning: none"]
        return f"{what} — " + ", ".join(parts)


@dataclass(frozen=True)
class _Family:
    name: str
    tool: str | None
    reasoning: str | None = None
    note: str | None = None


def match_parsers(*, architecture: str = "", model_type: str = "", name: str = "",
                  chat_template: str | None = None, tokens_present: frozenset[str] | None = None) -> ParserMatch:
    """The parsers for a model, from config.json's ``architectures[0]`` and ``model_type``, its name
    (repo id or folder), its chat template (None: not read; "": it has none) and which of
    ALL_PARSER_TOKENS its tokenizer has (None: not read)."""
    template = template_tools(chat_template)
    family = _family(architecture, model_type.lower(), name.lower(), chat_template or "")
    notes: list[str] = []
    if family is None:
        notes.append("No vLLM 0.26 tool-call parser is known for this model family: tool calling stays off "
                     "unless you pick a parser whose format the model writes.")
        return ParserMatch(None, None, None, template, tuple(notes), tokens_present)
    if family.note:
        notes.append(family.note)
    found = ParserMatch(family.name, family.tool, family.reasoning, template, (), tokens_present)
    if family.tool is not None and found.missing_tokens(family.tool):
        notes.append(f"{found.missing_tokens_note(family.tool)} Tool calling stays off; a fine-tune may need "
                     "another parser (pick the one whose format it writes) or none.")
    elif family.tool is not None:
        if template == TEMPLATE_NO_TOOLS:
            notes.append(f"The model's chat template never uses the tool list, so the model would not see the "
                         f"tools: tool calling stays off. Give a tool-capable template with --chat-template "
                         f"(vLLM's examples/ folder has one per family) and pick --tool-call-parser {family.tool}.")
        elif template == TEMPLATE_MISSING:
            notes.append("The model has no chat template (a base model): it cannot chat or call tools "
                         "without --chat-template.")
        elif template == TEMPLATE_UNKNOWN:
            notes.append("The chat template was not read (the model is not on this computer yet): "
                         f"{family.tool} is chosen by the model's family.")
    return dataclasses.replace(found, notes=tuple(notes))


def _family(architecture: str, model_type: str, name: str, template: str) -> _Family | None:
    """The family, the template's own markers first (they are the format the model was trained on),
    then config.json's model_type, then the name."""
    arch = architecture
    # gpt-oss: the harmony format (channels), vLLM's "openai" parser.
    if model_type == "gpt_oss" or arch == "GptOssForCausalLM" or "<|channel|>" in template:
        return _Family("gpt-oss (harmony)", "openai", "openai_gptoss")
    # Kimi K2 reuses DeepSeek-V3's architecture with its own tool format.
    if model_type == "kimi_k2" or "kimi-k2" in name:
        return _Family("Kimi K2", "kimi_k2", "kimi_k2" if "thinking" in name else None)
    # Qwen3-Coder writes XML calls: <tool_call><function=name><parameter=…>.
    if "<function=" in template or ("coder" in name and model_type.startswith("qwen3")):
        return _Family("Qwen3-Coder (XML calls)", "qwen3_xml")
    # DeepSeek's own markers (also in the R1 distills of Qwen and Llama).
    if "tool▁calls▁begin" in template or model_type in ("deepseek_v3", "deepseek_v32") or "deepseek-r1" in name \
            or arch in ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM"):
        if model_type == "deepseek_v32" or "v3.2" in name:
            return _Family("DeepSeek-V3.2", "deepseek_v32", "deepseek_v3")
        if "v3.1" in name:
            return _Family("DeepSeek-V3.1", "deepseek_v31", "deepseek_v3",
                           "DeepSeek-V3.1 thinks only when asked (chat_template_kwargs {\"thinking\": true}).")
        if "r1" in name:
            return _Family("DeepSeek-R1", "deepseek_v3", "deepseek_r1")
        return _Family("DeepSeek-V3", "deepseek_v3")
    if model_type == "deepseek_v2" or arch == "DeepseekV2ForCausalLM":
        return _Family("DeepSeek-V2", None, None, "vLLM 0.26 has no tool-call parser for DeepSeek-V2.")
    # Mistral's [TOOL_CALLS] format.
    if "[TOOL_CALLS]" in template or "[AVAILABLE_TOOLS]" in template \
            or model_type in ("mistral", "mistral3", "ministral", "pixtral") or "mistral" in name or "magistral" in name:
        return _Family("Magistral" if "magistral" in name else "Mistral", "mistral",
                       "mistral" if "magistral" in name else None)
    # Hermes-style <tool_call>{json}</tool_call>: Qwen2.5, Qwen3, QwQ, Hermes.
    if "<tool_call>" in template or model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen3_next") \
            or "qwen" in name or "hermes" in name:
        if "qwq" in name:
            return _Family("QwQ", "hermes", "deepseek_r1")
        if model_type.startswith("qwen3") or "qwen3" in name:
            thinks = "instruct-2507" not in name and ("<think>" in template or not template)
            return _Family("Qwen3", "hermes", "qwen3" if thinks else None)
        if model_type.startswith("qwen2") or "qwen" in name:
            return _Family("Qwen2.5", "hermes")
        return _Family("Hermes-style <tool_call>", "hermes")
    # Llama 4: its template writes JSON calls; vLLM's docs prefer pythonic with their own template.
    if model_type in ("llama4", "llama4_text") or arch.startswith("Llama4") or "llama-4" in name:
        if "[func_name1(" in template:
            return _Family("Llama 4 (pythonic)", "llama4_pythonic")
        return _Family("Llama 4", "llama4_json", None,
                       "vLLM's docs recommend llama4_pythonic with their pythonic Llama 4 template "
                       "(--chat-template); the model's own template asks for JSON calls, which llama4_json reads.")
    # Llama 3.1 / 3.2 / 3.3: JSON calls {"name": …, "parameters": …}.
    if model_type == "llama" or arch == "LlamaForCausalLM":
        if "[func_name1(" in template:
            return _Family("Llama 3.2 (pythonic)", "pythonic")
        if "<|start_header_id|>" in template or "llama-3" in name or "llama3" in name:
            return _Family("Llama 3.1+", "llama3_json")
        return None
    if model_type in ("gemma4", "gemma4_text") or arch.startswith("Gemma4"):
        return _Family("Gemma 4", "gemma4", "gemma4")
    if "functiongemma" in name:
        return _Family("FunctionGemma", "functiongemma")
    if model_type in ("gemma", "gemma2", "gemma3", "gemma3_text") or arch.startswith("Gemma"):
        return _Family("Gemma", None, None,
                       "Gemma 2 and 3 were not trained with a tool format vLLM parses from their own template; "
                       "vLLM's examples use the pythonic parser with examples/tool_chat_template_gemma3_pythonic.jinja.")
    if model_type == "glm4_moe":
        return _Family("GLM-4.7", "glm47", "glm47") if "4.7" in name else _Family("GLM-4.5/4.6", "glm45", "glm45")
    if model_type == "minimax_m2":
        return _Family("MiniMax-M2", "minimax_m2", "minimax_m2_append_think")
    if model_type == "granitemoehybrid":
        return _Family("Granite 4", "granite4")
    if model_type == "granite":
        return _Family("Granite 3", "granite")
    if model_type == "hunyuan_v1_moe":
        return _Family("Hunyuan-A13B", "hunyuan_a13b", "hunyuan_a13b")
    if model_type == "phi3" and "phi-4-mini" in name:
        return _Family("Phi-4-mini", "phi4_mini_json")
    if model_type == "internlm2":
        return _Family("InternLM 2.5", "internlm")
    if model_type == "jamba":
        return _Family("Jamba 1.5", "jamba")
    if model_type == "olmo3":
        return _Family("Olmo 3", "olmo3", "olmo3" if "think" in name else None)
    if model_type == "seed_oss":
        return _Family("Seed-OSS", "seed_oss", "seed_oss")
    if model_type == "ernie4_5_moe":
        return _Family("ERNIE 4.5", "ernie45", "ernie45" if "thinking" in name else None)
    if model_type == "apertus":
        return _Family("Apertus", "apertus")
    if "xlam" in name:
        return _Family("xLAM", "xlam")
    return None


# --- choices from the command line and the form --------------------------------------------------

def check_name(kind: str, name: str) -> Problem | None:
    """A Problem when ``name`` is not a parser vLLM 0.26 registers (kind "tool" or "reasoning")."""
    known = TOOL_CALL_PARSERS if kind == "tool" else REASONING_PARSERS
    if name in known:
        return None
    flag = "--tool-call-parser" if kind == "tool" else "--reasoning-parser"
    what = "tool-call parser" if kind == "tool" else "reasoning parser"
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    return Problem(f"Unknown {what}", f"vLLM {VLLM_VERSION} has no {what} called {name!r}; it would refuse to "
                   f"start.{hint}", f"Use {AUTO}, {NONE} or one of: {', '.join(sorted(known))} "
                   f"(a plugin's parser goes in the extra arguments with {flag} and its --*-parser-plugin).")


def choose(kind: str, value: str | None, matched: str | None) -> str | None:
    """``auto`` → the matched parser, ``none`` (or nothing) → None, a name → itself once checked
    (BadInput otherwise)."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() == AUTO:
        return matched
    if value.lower() in (NONE, ""):
        return None
    problem = check_name(kind, value)
    if problem is not None:
        raise BadInput(problem)
    return value
