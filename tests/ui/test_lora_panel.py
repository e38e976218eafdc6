"""The Server page's LoRA adapters (#22): added from a folder or a Hub repo id with rank and base check,
the fit preview follows their slots, Start serves them, Load/Unload on the running stand-in (and why not,
when not), and the Dashboard's per-adapter line."""

from __future__ import annotations

import dataclasses
import os

import httpx
from PySide6.QtCore import Qt

from llmdesk.core.server.launch import LaunchConfig
from llmdesk.core.server.supervisor import ServerState, ServerStatus
from llmdesk.ui.pages.metrics import lora_line_text
from tests.fakes.hub_server import HubStandIn
from tests.fakes.lora_adapters import make_adapter, make_model
from tests.fakes.standin_server import free_port, running_standin
from tests.fakes.vllm_standin.runtime import make_fake_runtime
from tests.ui.conftest import scan_of
from tests.unit.test_model_source import point_hub_client_at


def page_with_model(make_window, qtbot, tmp_path):
    window = make_window(scan_of("H100 80GB HBM3"))
    python = make_fake_runtime(tmp_path / "runtime", delay_scale=0.005)
    window.ctx.settings = dataclasses.replace(window.ctx.settings, runtime_python=str(python))
    window.show_page("server")
    page = window.server_page
    page.model.setText(str(make_model(tmp_path / "Llama-3.1-8B-Instruct")))
    page.served_name.setText("demo")
    page.port.setValue(free_port())
    qtbot.waitUntil(lambda: page.report is not None, timeout=10000)
    return window, page


def click(qtbot, button) -> None:
    qtbot.waitUntil(lambda: button.height() > 0, timeout=3000)  # the page's pending layout has run
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def add(qtbot, panel, name: str, source: str):
    panel.name.setText(name)
    panel.source.setText(source)
    click(qtbot, panel.add_button)
    row = next(r for r in panel.rows if r.name == name)
    qtbot.waitUntil(lambda: row.state in ("ready", "failed"), timeout=15000)
    return row


def cells(panel, i: int) -> list[str]:
    return [panel.table.item(i, c).text() for c in range(panel.table.columnCount())]


def test_adapters_show_rank_and_base_and_size_the_fit(make_window, qtbot, tmp_path):
    window, page = page_with_model(make_window, qtbot, tmp_path)
    panel = page.lora_panel
    assert "lora" not in page.report.allowances and not page.launch_config().lora_enabled
    add(qtbot, panel, "sql", str(make_adapter(tmp_path / "sql")))
    qtbot.waitUntil(lambda: "lora" in page.report.allowances, timeout=5000)
    one_slot = page.report.allowances["lora"].bytes
    assert cells(panel, 0)[0] == "sql" and cells(panel, 0)[2:] == ["16", "✓ same", "ready"]
    add(qtbot, panel, "poem", str(make_adapter(tmp_path / "poem", rank=32)))
    qtbot.waitUntil(lambda: page.report.allowances["lora"].bytes > one_slot, timeout=5000)
    assert "2 adapter slots of rank 32" in page.report.allowances["lora"].why
    config = page.launch_config()
    assert (config.max_loras, config.max_lora_rank) == (2, 32)
    assert [a.name for a in config.lora_adapters] == ["sql", "poem"]
    assert "--max-loras 2, --max-lora-rank 32" in panel.note.text()
    # a bad name is said in the panel and added to nothing
    panel.name.setText("demo")
    panel.source.setText(str(tmp_path / "sql"))
    panel.add_from_form()
    assert panel.problem.isVisible() and "base model's name" in panel.problem.text() and len(panel.rows) == 2
    # removing one: the slots follow
    panel.table.selectRow(1)
    click(qtbot, panel.remove_button)
    qtbot.waitUntil(lambda: page.report.allowances["lora"].bytes == one_slot, timeout=5000)
    assert page.launch_config().max_lora_rank == 16


def test_an_adapter_of_another_model_stops_the_start_until_allowed(make_window, qtbot, tmp_path):
    window, page = page_with_model(make_window, qtbot, tmp_path)
    panel = page.lora_panel
    add(qtbot, panel, "tiny", str(make_adapter(tmp_path / "tiny", base="TinyLlama/TinyLlama-1.1B-Chat-v1.0")))
    assert cells(panel, 0)[3] == "✗ other model"
    assert cells(panel, 0)[4] == "✗ The adapter 'tiny' was trained on another model"
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.problem.isVisible() and "trained on another model" in page.problem.text()
    assert window.ctx.server.status.state == ServerState.STOPPED
    panel.allow_other_base.setChecked(True)
    assert cells(panel, 0)[4] == "ready" and panel.problems() == []
    panel.name.setText("file")
    panel.source.setText(str(tmp_path / "tiny" / "adapter_model.safetensors"))  # a file, not a folder
    panel.add_from_form()
    assert "No adapter at" in panel.problem.text() and len(panel.rows) == 1
    (tmp_path / "empty").mkdir()
    empty = add(qtbot, panel, "empty", str(tmp_path / "empty"))
    assert empty.state == "failed" and cells(panel, 1)[4] == "✗ No adapter_config.json in " + str(tmp_path / "empty")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert "No adapter_config.json" in page.problem.text()


def test_start_serves_the_list_then_load_and_unload(make_window, qtbot, tmp_path):
    window, page = page_with_model(make_window, qtbot, tmp_path)
    panel = page.lora_panel
    add(qtbot, panel, "sql", str(make_adapter(tmp_path / "sql")))
    assert not panel.load_button.isEnabled() and "not running" in panel.load_button.toolTip()
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.READY, timeout=30000)
    url = window.ctx.server.status.url
    qtbot.waitUntil(lambda: cells(panel, 0)[4] == "serving", timeout=5000)
    extra = add(qtbot, panel, "extra", str(make_adapter(tmp_path / "extra", rank=8)))
    assert extra.state == "ready" and cells(panel, 1)[4] == "not loaded"
    panel.table.selectRow(1)
    assert panel.load_button.isEnabled()
    click(qtbot, panel.load_button)
    qtbot.waitUntil(lambda: cells(panel, 1)[4] == "serving", timeout=5000)
    assert "added successfully" in panel.note.text()
    ids = [m["id"] for m in httpx.get(url + "/models").json()["data"]]
    assert ids == ["demo", "sql", "extra"]
    panel.table.selectRow(1)
    click(qtbot, panel.unload_button)
    qtbot.waitUntil(lambda: cells(panel, 1)[4] == "not loaded", timeout=5000)
    # rank above what the running server holds: refused in the panel, before vLLM
    big = add(qtbot, panel, "big", str(make_adapter(tmp_path / "big", rank=64)))
    assert "greater than the server's max_lora_rank 16" in cells(panel, 2)[4]
    panel.table.selectRow(2)
    click(qtbot, panel.load_button)
    qtbot.waitUntil(panel.problem.isVisible, timeout=5000)
    assert "--max-lora-rank 64" in panel.problem.text() and big.served is False
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.server.status.state == ServerState.STOPPED, timeout=30000)
    assert cells(panel, 2)[4] == "ready"  # against the next start's rank: no problem


def test_load_is_off_with_a_reason_when_the_server_does_not_allow_it(make_window, qtbot, tmp_path):
    window, page = page_with_model(make_window, qtbot, tmp_path)
    panel = page.lora_panel
    add(qtbot, panel, "sql", str(make_adapter(tmp_path / "sql")))
    panel.table.selectRow(0)
    exposed = LaunchConfig("m", host="0.0.0.0", enable_lora=True)  # as an adopted or foreign start could be
    panel.show_server(ServerStatus(ServerState.READY, url="http://127.0.0.1:9/v1", config=exposed))
    assert not panel.load_button.isEnabled()
    assert panel.load_button.toolTip().startswith("Loading adapters is off on this server")
    assert "without an API key" in panel.note.text()
    panel.show_server(ServerStatus(ServerState.READY, url="http://127.0.0.1:9/v1", config=None))
    assert panel.load_button.toolTip().startswith("The server's settings are not known")
    panel.show_server(ServerStatus(ServerState.READY, url="http://127.0.0.1:9/v1", config=LaunchConfig("m")))
    assert panel.load_button.toolTip().startswith("LoRA is off on the running server")


def test_an_adapter_from_the_hub_goes_through_the_download_queue(make_window, qtbot, tmp_path, monkeypatch):
    folder = make_adapter(tmp_path / "src")
    files = {n: (folder / n).read_bytes() for n in ("adapter_config.json", "adapter_model.safetensors")}
    with HubStandIn() as hub:
        hub.add_model("org/sql-lora", files=files, lfs=("adapter_model.safetensors",))
        point_hub_client_at(monkeypatch, hub.url)
        window, page = page_with_model(make_window, qtbot, tmp_path)
        row = add(qtbot, page.lora_panel, "sql", "org/sql-lora")
        assert row.state == "ready", row.problem
        assert window.ctx.downloads.find("org/sql-lora") is not None
        assert row.folder.name == hub.repos["org/sql-lora"].commit and "models--org--sql-lora" in str(row.folder)
        assert os.path.isfile(row.folder / "adapter_config.json")


def test_the_dashboard_names_the_adapters_with_requests(make_window, qtbot, tmp_path):
    adapter = make_adapter(tmp_path / "sql")
    with running_standin(tmp_path / "rt", "ok", "--enable-lora", "--max-loras", "2", "--lora-modules",
                         f"sql={adapter}", env={"FAKE_VLLM_TOKEN_RATE": "20"}) as root:
        window = make_window()
        page = window.dashboard_page
        page.url.setText(root)
        page.interval.setCurrentIndex(page.interval.findData(0.25))
        window.show_page("dashboard")
        qtbot.waitUntil(lambda: page.lora_line.isVisible(), timeout=5000)
        assert page.lora_line.text() == "LoRA adapters (2 slots): no adapter has requests now"
        import threading
        done = threading.Event()

        def ask() -> None:
            httpx.post(root + "/v1/chat/completions", timeout=30, json={
                "model": "sql", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30})
            done.set()
        threading.Thread(target=ask, daemon=True).start()
        qtbot.waitUntil(lambda: page.lora_line.text() == "LoRA adapters (2 slots): requests for sql", timeout=5000)
        qtbot.waitUntil(done.is_set, timeout=10000)
        qtbot.waitUntil(lambda: "no adapter has requests now" in page.lora_line.text(), timeout=5000)


def test_lora_line_text():
    from llmdesk.core.metrics.window import MetricsSnapshot

    snap = MetricsSnapshot(time_s=0.0, timestamp=0.0, interval_s=None, window_s=None)
    assert lora_line_text(snap) is None  # LoRA off
    assert lora_line_text(dataclasses.replace(snap, lora_slots=1, lora_adapters_running=("a",),
                                              lora_adapters_waiting=("b",))) == \
        "LoRA adapters (1 slot): running a · waiting b"
