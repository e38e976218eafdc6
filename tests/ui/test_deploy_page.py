"""The Deploy page: made from the Server page's settings, every format listed with its validation,
the checklist with its actions, the options of a format, saving whole and asking before replacing."""

from __future__ import annotations

import stat

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

REPO = "meta-llama/Llama-3.1-8B-Instruct"


def deploy(make_window, qtbot, model: str = REPO, **server_fields):
    window = make_window()
    window.resize(1120, 720)
    page = window.deploy_page
    window.server_page.model.setText(model)
    for name, value in server_fields.items():
        getattr(window.server_page, name).setText(value)
    window.show_page("deploy")
    wait(page, qtbot)
    return window, page


def wait(page, qtbot) -> None:
    qtbot.waitUntil(lambda: page.ctx.tasks.pending == 0 and not page._timer.isActive(), timeout=20000)


def names(page) -> list[str]:
    return [page.files.item(i).text() for i in range(page.files.count())]


def test_without_a_model_the_page_says_where_to_pick_one(make_window, qtbot):
    window, page = deploy(make_window, qtbot, model="")
    assert not page.problem.isVisible() and page.empty.isVisible() and "No model chosen" in page.empty.title.text()
    assert "docker run" in page.empty.text.text() and page.empty.action.text() == "Choose a model"
    assert page.files.count() == 0 and not page.save_button.isEnabled()
    # no model started before: the Models page's downloaded models, each with Serve
    qtbot.mouseClick(page.empty.action, Qt.MouseButton.LeftButton)
    assert window.current_page == "models" and window.models_page.tabs.currentWidget() is window.models_page.library
    # one started before: the Server page with it filled in, and the export follows it
    window.ctx.state.recent_models = ["/srv/models/earlier"]
    window.show_page("deploy")
    qtbot.mouseClick(page.empty.action, Qt.MouseButton.LeftButton)
    assert window.current_page == "server" and window.server_page.model.text() == "/srv/models/earlier"
    window.show_page("deploy")
    page.refresh()
    wait(page, qtbot)
    assert not page.empty.isVisible() and page.files.count() > 0


def test_docker_is_shown_validated_with_the_checklist(make_window, qtbot):
    window, page = deploy(make_window, qtbot)
    assert not page.problem.isVisible()
    assert names(page)[0] == "✔  docker-run.sh" and names(page)[-1].strip() == "README.md"
    assert REPO in page.view.toPlainText() and "vllm/vllm-openai:v0.26.0" in page.view.toPlainText()
    assert "valid" in page.check_text.text() and page.save_button.isEnabled()
    titles = [page.checklist.item(i).text() for i in range(page.checklist.count())]
    assert "✔  Usage statistics off" in titles and "○  API key set" in titles
    row = titles.index("○  Benchmarked under load")
    page.checklist.setCurrentRow(row)
    assert page.checklist_action.isVisible()
    qtbot.mouseClick(page.checklist_action, Qt.MouseButton.LeftButton)
    assert window.current_page == "benchmark"


def test_kubernetes_shows_its_options_and_its_files(make_window, qtbot):
    window, page = deploy(make_window, qtbot)
    page.format.setCurrentIndex(page.format.findData("k8s"))
    assert page.replicas.isVisible() and page.autoscale.isVisible() and not page.scope.isVisible()
    page.autoscale.setCurrentIndex(page.autoscale.findData("keda"))
    page.replicas.setValue(2)
    wait(page, qtbot)
    listed = [n.split("  ", 1)[1] for n in names(page)]
    assert "scaledobject.yaml" in listed and "deployment.yaml" in listed
    assert all(n.startswith("✔") for n in names(page) if "README" not in n)
    titles = [page.checklist.item(i).text() for i in range(page.checklist.count())]
    assert "✔  Failover" in titles and "✔  Monitoring exported" in titles


def test_settings_that_cannot_work_are_explained(make_window, qtbot):
    window, page = deploy(make_window, qtbot, host="0.0.0.0")
    assert page.problem.isVisible() and "API key" in page.problem.text()
    assert page.files.count() == 0 and page.server_button.isVisible()
    qtbot.mouseClick(page.server_button, Qt.MouseButton.LeftButton)
    assert window.current_page == "server"
    window.show_page("deploy")
    window.server_page.model.setText("/srv/only/here")
    window.server_page.host.setText("127.0.0.1")
    page.format.setCurrentIndex(page.format.findData("k8s"))
    wait(page, qtbot)
    assert "only on this computer" in page.problem.text()


def test_saving_writes_every_file_and_asks_before_replacing(make_window, qtbot, tmp_path):
    window, page = deploy(make_window, qtbot, api_key="sk-test-key-1234567890")
    out = tmp_path / "export"
    page._save_into(str(out))
    written = {p.name for p in out.iterdir()}
    assert written == {f.name for f in page.export.files}
    env = next(out.glob("*.env"))
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "Saved" in page.status.text()
    (out / "docker-run.sh").write_text("mine")
    page._save_into(str(out))
    assert (out / "docker-run.sh").read_text() == "mine"  # not replaced before the answer
    page.replace_box.done(QMessageBox.StandardButton.Yes)
    assert (out / "docker-run.sh").read_text() != "mine"


def test_a_live_theme_switch_recolours_the_file(make_window, qtbot, qapp):
    from llmdesk.ui.theme import apply_theme

    window, page = deploy(make_window, qtbot)
    page.format.setCurrentIndex(page.format.findData("compose"))
    wait(page, qtbot)

    def colours() -> set[str]:
        block = page.view.document().findBlockByNumber(3)  # a YAML key line
        return {r.format.foreground().color().name() for r in block.layout().formats()}

    light = colours()
    try:
        apply_theme(qapp, "dark")
        qtbot.waitUntil(lambda: colours() != light, timeout=5000)
    finally:
        apply_theme(qapp, "light")
    assert light
