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
