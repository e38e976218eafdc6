"""What llmdesk writes about a person's work is theirs alone: 0600 files in 0700 folders
(issue: hardening, item 15) — chats, the app log, server logs and the server record."""

from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from llmdesk.core.base import paths
from llmdesk.core.base.app_log import log_file, setup_logging
from llmdesk.core.base.settings import Settings, save_settings, settings_path
from llmdesk.core.chat.conversations import ConversationStore


@pytest.fixture(autouse=True)
def usual_umask():
    """A usual desktop umask: files 0644 unless llmdesk says otherwise."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_chats_log_and_settings_are_private(isolated_dirs):
    store = ConversationStore()
    chat = store.create("secret plans")
    store.add_message(chat, "user", "my secret question")
    db = store.path
    for path in [db] + [p for p in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()]:
        assert mode(path) == 0o600, path
    assert mode(db.parent) == 0o700
    store.close()
    setup_logging()
    logging.getLogger("test").warning("a line")
    assert mode(log_file()) == 0o600 and mode(log_file().parent) == 0o700
    save_settings(Settings())
    assert mode(settings_path()) == 0o600 and mode(settings_path().parent) == 0o700


def test_an_existing_open_folder_is_tightened(isolated_dirs):
    folder = paths.state_dir()
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    paths.private_dir(folder)
    assert mode(folder) == 0o700


def test_the_server_record_and_its_log_are_private(isolated_dirs, tmp_path):
    import asyncio

    from llmdesk.core.server.launch import LaunchConfig
    from llmdesk.core.server.supervisor import Supervisor
    from tests.fakes.server_records import only_record, record_files
    from tests.fakes.standin_server import free_port
    from tests.fakes.vllm_standin.runtime import make_fake_runtime

    python = make_fake_runtime(tmp_path / "rt", delay_scale=0.001)

    async def run():
        sup = Supervisor(str(python))
        status = await sup.start(LaunchConfig(model="/models/demo", served_model_name="demo", port=free_port()),
                                 timeout_s=60)
        try:
            assert status.state.value == "ready"
            assert mode(record_files()[0]) == 0o600 and mode(record_files()[0].parent) == 0o700 and only_record()["port"]
            assert mode(sup.log_path) == 0o600 and mode(sup.log_path.parent) == 0o700
        finally:
            await sup.stop()

    asyncio.run(run())
    assert sys.platform.startswith("linux")
