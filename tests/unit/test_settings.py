import json
import stat

from llmdesk.core.base import paths
from llmdesk.core.base.settings import (SETTINGS_SCHEMA_VERSION, AppState, Settings, load_settings, load_state,
                                        save_settings, save_state, settings_path, state_path)


def test_defaults_when_nothing_is_saved():
    settings, notice = load_settings()
    assert notice is None
    assert settings == Settings()
    assert (settings.server_host, settings.server_port, settings.gpu_memory_utilization) == ("127.0.0.1", 8000, 0.92)


def test_paths_live_under_llmdesk_home(isolated_dirs):
    assert settings_path() == isolated_dirs / "config" / "settings.json"
    assert state_path() == isolated_dirs / "state" / "state.json"
    assert paths.data_dir() == isolated_dirs / "data"


def test_round_trip_with_schema_version():
    save_settings(Settings(theme="dark", server_port=8123, runtime_python="/opt/vllm/bin/python"))
    raw = json.loads(settings_path().read_text())
    assert raw["schema_version"] == SETTINGS_SCHEMA_VERSION == 1
    assert raw["values"]["server_port"] == 8123
    loaded, notice = load_settings()
    assert notice is None
    assert (loaded.theme, loaded.server_port, loaded.runtime_python) == ("dark", 8123, "/opt/vllm/bin/python")


def test_state_is_kept_apart_from_settings():
    save_state(AppState(window_geometry="AAAA", last_page="chat", recent_models=["meta-llama/Llama-3.1-8B"]))
    assert not settings_path().exists()
    state, _ = load_state()
    assert state.recent_models == ["meta-llama/Llama-3.1-8B"] and state.last_page == "chat"


def test_corrupt_file_is_moved_aside_with_a_notice():
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text("{ this is not json")
    settings, notice = load_settings()
    assert settings == Settings()
    assert notice is not None and notice.moved_to.name.startswith("settings.json.corrupt-")
    assert notice.moved_to.read_text() == "{ this is not json"  # nothing the user wrote is lost
    assert not settings_path().exists()
    assert "could not be read" in notice.message() and "defaults are used" in notice.message()


def test_binary_garbage_and_non_objects_are_moved_aside_too():
    settings_path().parent.mkdir(parents=True)
    for content in (b"\xff\xfe\x00garbage", b"[1, 2, 3]"):
        settings_path().write_bytes(content)
        settings, notice = load_settings()
        assert settings == Settings() and notice is not None


def test_wrong_types_and_unknown_keys_fall_back_per_field():
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(json.dumps({"schema_version": 1, "values": {
        "server_port": "8000", "theme": "dark", "gpu_memory_utilization": 1, "server_host": True,
        "an_old_key": 3}}))
    settings, notice = load_settings()
    assert notice is not None and notice.moved_to is None  # said at start, the file left as it is
    assert notice.ignored == ("server_host True: not text", "server_port '8000': not a whole number")
    assert settings.server_port == 8000          # a string is not a port: default
    assert settings.theme == "dark"              # a good value survives its bad neighbours
    assert settings.gpu_memory_utilization == 1  # an int is fine where a float is wanted
    assert settings.server_host == "127.0.0.1"   # a bool is not a host


def test_recent_models_must_be_a_list_of_strings():
    state_path().parent.mkdir(parents=True)
    state_path().write_text(json.dumps({"values": {"recent_models": ["a", 3], "last_page": "models"}}))
    state, _ = load_state()
    assert state.recent_models == [] and state.last_page == "models"


def test_problems_name_each_impossible_value():
    assert Settings().problems() == []
    bad = Settings(theme="pink", server_port=0, gpu_memory_utilization=1.5, metrics_interval_s=0.1)
    assert bad.problems() == [
        "theme must be one of system, light, dark",
        "server_port must be between 1 and 65535",
        "gpu_memory_utilization must be in (0, 1]",
        "metrics_interval_s must be between 0.25 and 5 seconds",
    ]


def test_save_is_atomic_and_leaves_no_temp_files():
    save_settings(Settings())
    save_settings(Settings(server_port=9000))
    assert [p.name for p in settings_path().parent.iterdir()] == ["settings.json"]
    assert stat.S_ISREG(settings_path().stat().st_mode)


def test_values_out_of_range_are_said_and_replaced_by_the_defaults():
    """theme "purple" and a memory share of 7 used to load silently."""
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(json.dumps({"schema_version": 1, "values": {
        "theme": "purple", "gpu_memory_utilization": 7, "server_port": 9000}}))
    settings, notice = load_settings()
    assert (settings.theme, settings.gpu_memory_utilization, settings.server_port) == ("system", 0.92, 9000)
    assert notice.title == "Some of your settings could not be used"
    message = notice.message()
    assert "theme 'purple': theme must be one of system, light, dark" in message
    assert "gpu_memory_utilization 7: gpu_memory_utilization must be in (0, 1]" in message
    assert "The defaults are used for them." in message
    assert settings_path().exists()  # nothing moved aside: the user may fix the file by hand


def test_a_good_file_gives_no_notice():
    save_settings(Settings(theme="dark"))
    assert load_settings() == (Settings(theme="dark"), None)


def test_a_trailing_comma_is_read_and_said_not_moved_aside():
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text('{"schema_version": 1, "values": {"models_dir": "/data/models", "theme": "dark",}}')
    settings, notice = load_settings()
    assert settings.models_dir == "/data/models" and settings.theme == "dark"  # pull keeps its folder
    assert notice is not None and notice.moved_to is None and "trailing comma" in notice.message()
    assert settings_path().exists()


def test_an_unreadable_file_is_said_and_never_moved_aside():
    import os

    save_settings(Settings(theme="dark"))
    settings_path().chmod(0)
    try:
        if os.access(settings_path(), os.R_OK):  # root reads anything
            return
        settings, notice = load_settings()
        assert notice is not None and notice.moved_to is None and "cannot be read" in notice.message()
        assert settings_path().exists() and not list(settings_path().parent.glob("*.corrupt-*"))
    finally:
        settings_path().chmod(0o600)


def test_a_file_the_cli_moved_aside_is_told_by_the_next_window(capsys):
    from llmdesk import cli
    from llmdesk.core.base.settings import take_remembered_notice

    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text("{not json")
    assert cli.main(["models", "--json"]) == 0
    assert "note: Your settings could not be read." in capsys.readouterr().err  # said, not lost
    notice = take_remembered_notice()
    assert notice is not None and notice.moved_to.name.startswith("settings.json.corrupt-")
    assert take_remembered_notice() is None  # told once


def test_stray_temp_files_of_killed_saves_are_cleaned_up():
    import os
    import time

    settings_path().parent.mkdir(parents=True, exist_ok=True)
    stray = settings_path().with_name("settings.jsonabc123.tmp")
    stray.write_text("{}")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    save_settings(Settings())
    assert not stray.exists()
