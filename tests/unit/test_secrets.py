import stat

import pytest

from llmdesk.core.base import secrets
from llmdesk.core.base.secrets import (SOURCE_ENV, SOURCE_FILE, SOURCE_KEYRING, StoredToken, forget_hf_token,
                                       hf_token_file, load_hf_token, save_hf_token)


class MemoryKeyring:
    def __init__(self, fail_on_set=False):
        self.values, self.fail_on_set = {}, fail_on_set

    def get_password(self, service, user):
        return self.values.get((service, user))

    def set_password(self, service, user, value):
        if self.fail_on_set:
            raise RuntimeError("Prompt dismissed")
        self.values[(service, user)] = value

    def delete_password(self, service, user):
        self.values.pop((service, user), None)


@pytest.fixture
def no_keyring(monkeypatch):
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: None)


def test_without_a_keyring_the_token_goes_to_huggingface_hubs_file_0600(no_keyring, tmp_path):
    where = save_hf_token("  hf_abcdefghijklmnop \n")
    path = hf_token_file()
    assert where == f"{SOURCE_FILE} {path}" and path.parent == tmp_path / "hf-home"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_hf_token() == StoredToken("hf_abcdefghijklmnop", SOURCE_FILE)
    assert load_hf_token().masked == "hf_…mnop"
    forget_hf_token()
    assert load_hf_token() == StoredToken(None, None)


def test_the_keyring_is_used_when_one_is_running(monkeypatch):
    ring = MemoryKeyring()
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: ring)
    assert save_hf_token("hf_secret_value_1234") == SOURCE_KEYRING
    assert not hf_token_file().exists()
    assert load_hf_token() == StoredToken("hf_secret_value_1234", SOURCE_KEYRING)


def test_a_keyring_that_refuses_falls_back_to_the_file(monkeypatch):
    monkeypatch.setattr(secrets, "_usable_keyring", lambda: MemoryKeyring(fail_on_set=True))
    assert save_hf_token("hf_x_1234567890").startswith(SOURCE_FILE)
    assert load_hf_token().source == SOURCE_FILE


def test_the_environment_wins(no_keyring, monkeypatch):
    save_hf_token("hf_from_file_123456")
    monkeypatch.setenv("HF_TOKEN", "hf_from_env_123456")
    assert load_hf_token() == StoredToken("hf_from_env_123456", SOURCE_ENV)


def test_the_real_keyring_module_on_a_headless_machine_is_not_used():
    # CI and this machine have no D-Bus session: keyring resolves to its fail backend
    import keyring.backends.fail as fail
    import keyring
    if not isinstance(keyring.get_keyring(), fail.Keyring):
        pytest.skip("a real keyring is running here")
    assert secrets._usable_keyring() is None


def test_the_server_api_key_is_kept_0600_without_a_keyring(no_keyring):
    from llmdesk.core.base.secrets import load_server_api_key, save_server_api_key
    assert load_server_api_key() is None
    where = save_server_api_key("sk-llmdesk-abc")
    assert where.startswith("key file ") and load_server_api_key() == "sk-llmdesk-abc"
    path = where.removeprefix("key file ")
    import os
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
