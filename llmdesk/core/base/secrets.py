"""The Hugging Face token: the OS keyring when a real one is running, else the file
huggingface_hub itself uses ($HF_TOKEN_PATH or $HF_HOME/token), written 0600 in a 0700 folder.

So `hf auth login`, huggingface_hub and the vLLM child all see the same token. HF_TOKEN in the
environment wins over both. keyring calls are synchronous D-Bus calls that can hang on a locked
desktop keyring: callers run these functions in a thread with a timeout. The token is never logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from llmdesk.core.base import paths

SERVICE, USER = "llmdesk", "hf_token"
SOURCE_ENV, SOURCE_KEYRING, SOURCE_FILE = "HF_TOKEN environment variable", "the system keyring", "token file"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredToken:
    token: str | None
    source: str | None  # where it came from, for people; None when there is none

    @property
    def masked(self) -> str:
        return f"{self.token[:3]}…{self.token[-4:]}" if self.token and len(self.token) > 10 else "…"


def hf_token_file() -> Path:
    if os.environ.get("HF_TOKEN_PATH"):
        return Path(os.environ["HF_TOKEN_PATH"]).expanduser()
    return paths.hf_home() / "token"


def _usable_keyring():
    """The keyring module when a real backend is active (not the fail/null ones headless machines get)."""
    try:
        import keyring
        from keyring.backends import chainer, fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or type(backend).__module__.startswith("keyring.backends.null"):
            return None
        if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
            return None
        return keyring
    except Exception:  # a broken keyring install must not take the app down
        return None


def load_hf_token() -> StoredToken:
    if os.environ.get("HF_TOKEN"):
        return StoredToken(os.environ["HF_TOKEN"].strip(), SOURCE_ENV)
    if (keyring := _usable_keyring()) is not None:
        try:
            if token := keyring.get_password(SERVICE, USER):
                return StoredToken(token, SOURCE_KEYRING)
        except Exception:
            log.warning("the system keyring could not be read; trying the token file")
    path = hf_token_file()
    if path.is_file() and (token := path.read_text(encoding="utf-8").strip()):
        return StoredToken(token, SOURCE_FILE)
    return StoredToken(None, None)


def save_hf_token(token: str) -> str:
    """Store the token; returns where it went (for the UI to say)."""
    token = token.strip()
    if (keyring := _usable_keyring()) is not None:
        try:
            keyring.set_password(SERVICE, USER, token)
            return SOURCE_KEYRING
        except Exception:  # locked, prompt dismissed, D-Bus error: fall back to the file
            log.warning("the system keyring refused the token; using the token file")
    path = hf_token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token)
    os.chmod(path, 0o600)
    return f"{SOURCE_FILE} {path}"


def forget_hf_token() -> None:
    if (keyring := _usable_keyring()) is not None:
        try:
            keyring.delete_password(SERVICE, USER)
        except Exception:
            pass
    hf_token_file().unlink(missing_ok=True)


# --- the API key of the server llmdesk runs: same rules, its own entry --------------------------

API_KEY_USER = "server_api_key"


def _api_key_file() -> Path:
    return paths.state_dir() / "server_api_key"


def load_server_api_key() -> str | None:
    if (keyring := _usable_keyring()) is not None:
        try:
            if key := keyring.get_password(SERVICE, API_KEY_USER):
                return key
        except Exception:
            log.warning("the system keyring could not be read; trying the key file")
    path = _api_key_file()
    return path.read_text(encoding="utf-8").strip() or None if path.is_file() else None


def save_server_api_key(key: str) -> str:
    """Keep the key the server was given, so clients configured once keep working after restarts."""
    if (keyring := _usable_keyring()) is not None:
        try:
            keyring.set_password(SERVICE, API_KEY_USER, key)
            return SOURCE_KEYRING
        except Exception:
            log.warning("the system keyring refused the API key; using the key file")
    path = _api_key_file()
    with paths.open_private(path, "w") as out:  # in llmdesk's own 0700 state folder
        out.write(key)
    return f"key file {path}"
