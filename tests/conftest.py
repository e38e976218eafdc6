"""Every test gets its own llmdesk folders and Hugging Face home: the user's real files are never touched.

Qt-free on purpose: the unit tests must run without importing Qt (Qt fixtures live in tests/ui).
"""

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # for any subprocess a test starts, too


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    home = tmp_path / "llmdesk-home"
    monkeypatch.setenv("LLMDESK_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads HF_HOME once, when first imported: point its cache at this test's too, or a
    # config one test's Hub stand-in served would be found by the next test asking for the same repo.
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
        monkeypatch.setattr(hub_constants, "HF_HOME", str(tmp_path / "hf-home"))
    return home
