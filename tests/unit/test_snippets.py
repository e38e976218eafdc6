"""The endpoint's snippets quote every value: a model name with a quote must not break the snippet
or run a command when pasted (issue: hardening, item 13)."""

from __future__ import annotations

import ast
import json
import re
import shlex

import pytest

from llmdesk.core.server.snippets import snippets

HOSTILE = ["plain-model", "it's a model", "x'; touch /tmp/owned; echo '", 'say "hi" \\ $(id) `id`', "模型 ü"]


@pytest.mark.parametrize("model", HOSTILE)
def test_curl_is_one_command_whose_body_names_the_model(model):
    curl = snippets("http://127.0.0.1:8000/v1", model, "sk-a'b")["curl"]
    words = shlex.split(curl.replace("\\\n", " "))
    assert words[:2] == ["curl", "http://127.0.0.1:8000/v1/chat/completions"]
    assert words[2:6] == ["-H", "Content-Type: application/json", "-H", "Authorization: Bearer sk-a'b"]
    assert words[6] == "-d" and len(words) == 8  # nothing after the body: no second command
    assert json.loads(words[7])["model"] == model


@pytest.mark.parametrize("model", HOSTILE)
def test_python_and_javascript_carry_the_model_as_a_string(model):
    s = snippets("http://127.0.0.1:8000/v1", model, None)
    tree = ast.parse(s["Python"])
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and any(k.arg == "model" for k in n.keywords))
    assert next(k.value.value for k in call.keywords if k.arg == "model") == model
    literal = re.search(r"\n  model: (.*),\n  messages", s["JavaScript"]).group(1)
    assert json.loads(literal) == model
