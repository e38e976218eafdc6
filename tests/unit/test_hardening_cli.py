"""Command-line hardening (issue: hardening): keys out of ps, values bounded at parse time."""

from __future__ import annotations

import argparse
import io

import pytest

from llmdesk.commands.serve import api_key_from


def args(**kw) -> argparse.Namespace:
    base = dict(api_key=None, api_key_stdin=False, host="127.0.0.1")
    base.update(kw)
    return argparse.Namespace(**base)


def test_the_key_comes_from_the_environment_without_a_warning(monkeypatch, capsys):
    monkeypatch.setenv("LLMDESK_API_KEY", "sk-env")
    assert api_key_from(args()) == "sk-env"
    assert capsys.readouterr().err == ""


def test_a_key_on_the_command_line_works_but_warns_about_ps(monkeypatch, capsys):
    monkeypatch.delenv("LLMDESK_API_KEY", raising=False)
    assert api_key_from(args(api_key="sk-argv")) == "sk-argv"
    assert "shows in ps" in capsys.readouterr().err


def test_the_key_can_come_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-stdin\n"))
    assert api_key_from(args(api_key_stdin=True)) == "sk-stdin"
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    from llmdesk.core.base.errors import BadInput
    with pytest.raises(BadInput):
        api_key_from(args(api_key_stdin=True))


def test_off_loopback_the_stored_key_is_used(monkeypatch, capsys):
    from llmdesk.core.base import secrets

    monkeypatch.delenv("LLMDESK_API_KEY", raising=False)
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: None)
    secrets.save_server_api_key("sk-stored")
    assert api_key_from(args(host="0.0.0.0")) == "sk-stored"
    assert api_key_from(args(host="127.0.0.1")) is None  # on loopback no key is needed


def test_an_export_onto_the_chat_store_itself_is_refused_and_nothing_is_lost(capsys):
    from llmdesk import cli
    from llmdesk.core.chat.conversations import ConversationStore, default_path

    store = ConversationStore()
    store.create("keep me")
    store.close()
    before = default_path().read_bytes()
    assert cli.main(["chats", "export", "--all", "-o", str(default_path()), "--force"]) == 2
    assert "would destroy every chat" in capsys.readouterr().err
    assert default_path().read_bytes() == before
    again = ConversationStore()
    assert [c.title for c in again.list()] == ["keep me"]


def test_an_export_asks_before_replacing_a_file(tmp_path, capsys):
    from llmdesk import cli
    from llmdesk.core.chat.conversations import ConversationStore

    ConversationStore().create("one")
    out = tmp_path / "chats.md"
    out.write_text("mine")
    assert cli.main(["chats", "export", "--all", "-o", str(out)]) == 2
    assert out.read_text() == "mine" and "--force" in capsys.readouterr().err
    assert cli.main(["chats", "export", "--all", "-o", str(out), "--force"]) == 0
    assert out.read_text() != "mine"


def test_metrics_csv_to_an_unwritable_place_is_refused_at_start(tmp_path, capsys):
    from llmdesk import cli

    code = cli.main(["metrics", "--watch", "--csv", str(tmp_path / "no-such-folder" / "f.csv"),
                     "--url", "http://127.0.0.1:9"])
    assert code == 2 and "Cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["fit", "x", "--gpus", "100000000"], "argument --gpus: 100000000 is out of range"),
    (["fit", "x", "--max-num-seqs", "10000000000"], "argument --max-num-seqs"),
    (["fit", "x", "--max-model-len", "99999999999999999999"], "argument --max-model-len"),
    (["fit", "x", "--weights-bytes", "-5"], "argument --weights-bytes: -5 is out of range"),
    (["serve", "x/y", "--timeout", "-1"], "argument --timeout"),
    (["chat", "--temperature", "nan", "hi"], "argument --temperature: nan is out of range"),
    (["chats", "show", "99999999999999999999999"], "argument ID"),
    (["search", "a" * 100_000], "characters is too long"),
])
def test_impossible_values_are_refused_while_parsing(capsys, argv, said):
    from llmdesk import cli

    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["fit", "ünïcødé/模型", "--gpu", "h100"], "Not a Hugging Face repo id"),
    (["pull", ""], "No repo id given"),
    (["pull", "../../etc"], "is a path, not a Hugging Face repo id"),
    (["chat", "--url", "", "hi"], "No server URL"),
])
def test_bad_names_get_the_real_reason(capsys, argv, said):
    from llmdesk import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Something went wrong" not in err


HOSTILE_IMPORTS = {
    "huge created": '{"created": 1e300, "messages": [{"role": "user", "content": "hi"}]}',
    "minus infinity updated": '{"updated": -Infinity, "messages": [{"role": "user", "content": "hi"}]}',
    "NaN time": '{"messages": [{"role": "user", "content": "hi", "created": NaN}]}',
    "deep nesting": '{"messages": [{"role": "user", "content": "hi", "stats": ' + "[" * 100_000 + "]" * 100_000 + "}]}",
    "lone surrogate": '{"messages": [{"role": "user", "content": "\\ud800 hi"}]}',
    "deep params": '{"params": ' + '{"a": ' * 50 + "1" + "}" * 50 + ', "messages": [{"role": "user", "content": "hi"}]}',
}


@pytest.mark.parametrize("name", list(HOSTILE_IMPORTS))
def test_a_hostile_import_is_refused_with_nothing_stored_and_the_store_keeps_working(tmp_path, capsys, name):
    from llmdesk import cli
    from llmdesk.core.chat.conversations import ConversationStore

    ConversationStore().create("before")
    path = tmp_path / "chat.json"
    path.write_text(HOSTILE_IMPORTS[name], encoding="utf-8")
    assert cli.main(["chats", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Something went wrong" not in err and "Traceback" not in err
    assert cli.main(["chats", "--json"]) == 0
    import json
    assert [c["title"] for c in json.loads(capsys.readouterr().out)] == ["before"]  # nothing stored
    assert cli.main(["chats", "export", "--all"]) == 0


def test_a_host_that_does_not_resolve_is_said_at_once_and_ctrl_c_is_never_needed(capsys, monkeypatch, tmp_path):
    """--host myhost.invalid used to look the name up for every port up to 65535 on the event loop."""
    import time

    from llmdesk import cli
    from tests.fakes.vllm_standin.runtime import make_fake_runtime

    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.001)
    monkeypatch.setenv("LLMDESK_API_KEY", "sk-test")  # off loopback a key is needed first
    started = time.monotonic()
    code = cli.main(["serve", "Qwen/Qwen2.5-7B-Instruct", "--host", "myhost.invalid", "--runtime", str(python)])
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert code != 0 and "Cannot listen on myhost.invalid" in err and "does not resolve" in err


def test_an_address_this_computer_does_not_have_is_not_called_port_taken():
    from llmdesk.core.server.diagnose import listen_problem, next_free_port

    problem = listen_problem("10.255.255.1", 8000)
    assert problem is not None and "has no address 10.255.255.1" in problem.explanation
    assert "in use" not in problem.title
    assert listen_problem("127.0.0.1", 8000) is None  # free or merely in use: not this question
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert listen_problem("127.0.0.1", port) is None
        assert next_free_port("127.0.0.1", port) > port
