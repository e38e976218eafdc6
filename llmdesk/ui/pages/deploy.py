"""Deploy: the server the Server page would start, as docker, compose, systemd, Kubernetes or Helm
files, each validated offline, with the production checklist. Pick the format, read the files, copy
one, or save them all to a folder. The files are made and validated off the GUI thread (NVML, the
saved runs, kubernetes-validate's schemas and systemd-analyze take up to a few hundred ms)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.deploy.bundle import FAILED, PASSED, SKIPPED, Export, write_export
from llmdesk.core.deploy.checklist import Item
from llmdesk.core.deploy.exports import FORMATS, ExportOptions, gather_target, make_export
from llmdesk.core.deploy.kubernetes import AUTOSCALERS, KubeOptions
from llmdesk.core.machine.gpus import GpuScan
from llmdesk.core.server.launch import LaunchConfig
from llmdesk.ui import design
from llmdesk.ui.context import AppContext
from llmdesk.ui.deploy.file_view import FileView
from llmdesk.ui.problems import show_in_box
from llmdesk.ui.widgets import EmptyState, choose_folder, page_header, problem_box, section_title, status_glyph

GLYPHS = {PASSED: "✔", FAILED: "✘", SKIPPED: "–"}
REFRESH_MS = 250


class DeployPage(QWidget):
    open_page_requested = Signal(str)
    choose_model_requested = Signal()  # the empty state's Choose a model

    def __init__(self, ctx: AppContext, config_source: Callable[[], LaunchConfig], parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.config_source = config_source
        self.export: Export | None = None
        self._generation = 0
        layout = QVBoxLayout(self)
        layout.addWidget(page_header("Deploy", "The server the Server page would start, as files for another "
                                               "machine or a cluster, validated here, offline."))
        row = QHBoxLayout()
        row.addWidget(QLabel("Format"))
        self.format = QComboBox()
        for key, label in FORMATS.items():
            self.format.addItem(label, key)
        row.addWidget(self.format)
        self.scope = QComboBox()
        self.scope.addItem("for my user", "user")
        self.scope.addItem("for the system", "system")
        row.addWidget(self.scope)
        row.addStretch()
        self.refresh_button = design.action(QPushButton("Refresh from the Server page"), "mdi6.refresh")
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        self.kube_row = QWidget()  # Kubernetes' own options, on their own line: the first stays short
        kube_row = QHBoxLayout(self.kube_row)
        kube_row.setContentsMargins(0, 0, 0, 0)
        self.replicas_label = QLabel("Replicas")
        self.replicas = QSpinBox()
        self.replicas.setRange(1, 64)
        self.autoscale = QComboBox()
        for key, label in zip(AUTOSCALERS, ("no autoscaling", "KEDA autoscaling", "HPA autoscaling")):
            self.autoscale.addItem(label, key)
        self.namespace = QLineEdit()
        self.namespace.setPlaceholderText("namespace (optional)")
        self.namespace.setMinimumWidth(170)
        for widget in (self.replicas_label, self.replicas, self.autoscale, self.namespace):
            kube_row.addWidget(widget)
        kube_row.addStretch()
        layout.addWidget(self.kube_row)
        problem_row = QHBoxLayout()
        self.problem = problem_box()
        problem_row.addWidget(self.problem, 1)
        self.server_button = QPushButton("Open the Server page")
        self.server_button.hide()
        problem_row.addWidget(self.server_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(problem_row)
        self.empty = EmptyState("mdi6.rocket-launch-outline")  # no model yet: what this page makes, and the way
        self.empty.action.clicked.connect(self.choose_model_requested)
        self.empty.hide()
        layout.addWidget(self.empty)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        left_column.addWidget(section_title("Files"))
        self.files = QListWidget()
        self.files.setMaximumHeight(190)
        left_column.addWidget(self.files)
        left_column.addWidget(section_title("Production checklist"))
        hint = QLabel("Pick an item for what it means and what does it.")
        hint.setWordWrap(True)
        left_column.addWidget(hint)
        self.checklist = QListWidget()
        self.checklist.setWordWrap(True)
        left_column.addWidget(self.checklist, 1)
        self.checklist_action = QPushButton("")
        self.checklist_action.hide()
        left_column.addWidget(self.checklist_action)
        split.addWidget(left)
        right = QWidget()
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.file_glyph = status_glyph("ok")
        self.file_glyph.hide()
        head.addWidget(self.file_glyph)
        self.check_text = QLabel("")
        self.check_text.setWordWrap(True)
        self.check_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        head.addWidget(self.check_text, 1)
        right_column.addLayout(head)
        self.view = FileView()
        right_column.addWidget(self.view, 1)
        buttons = QHBoxLayout()
        self.copy_button = design.action(QPushButton("Copy this file"), "mdi6.content-copy")
        self.save_button = design.action(QPushButton("Save all to a folder…"), "mdi6.content-save", primary=True)
        self.empty.steps_aside = (self.save_button,)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch()
        right_column.addLayout(buttons)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        layout.addWidget(split, 1)

        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS, timeout=self.refresh)
        for combo in (self.format, self.scope, self.autoscale):
            combo.currentIndexChanged.connect(self._changed)
        self.replicas.valueChanged.connect(self._changed)
        self.namespace.textChanged.connect(self._changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.server_button.clicked.connect(lambda: self.open_page_requested.emit("server"))
        self.files.currentRowChanged.connect(self._show_file)
        self.checklist.currentRowChanged.connect(self._show_item)
        self.checklist_action.clicked.connect(self._do_item)
        self.copy_button.clicked.connect(self._copy)
        self.save_button.clicked.connect(self._save)
        self._show_options()
        self._set_busy(False)

    # -- making the export
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh()  # the Server page may have changed meanwhile

    def _changed(self) -> None:
        self._show_options()
        self._timer.start()

    def _show_options(self) -> None:
        fmt = self.format.currentData()
        self.scope.setVisible(fmt == "systemd")
        self.kube_row.setVisible(fmt == "k8s")

    def options(self) -> ExportOptions:
        kube = KubeOptions(namespace=self.namespace.text().strip() or None, replicas=self.replicas.value(),
                           autoscale=self.autoscale.currentData(), max_replicas=max(4, self.replicas.value()))
        return ExportOptions(scope=self.scope.currentData(), kube=kube)

    def refresh(self) -> None:
        self._timer.stop()
        config = self.config_source()
        if not config.model:
            self._hide_problem()
            self.empty.say("No model chosen yet", "This page writes the server the Server page would start as files "
                           "for another machine or a cluster (docker run, Compose, systemd, Kubernetes, Helm), checked "
                           "here, offline. It follows the Server page's settings, which have no model yet.",
                           "Choose a model")
            self._set_export(None)
            return
        self.empty.hide()
        self._generation += 1
        self._set_busy(True)
        self.ctx.tasks.run(self._make(self._generation, config, self.format.currentData(), self.options()),
                           "making the export")

    async def _make(self, generation: int, config: LaunchConfig, fmt: str, options: ExportOptions) -> None:
        runtime = self.ctx.settings.runtime_python
        try:
            export = await asyncio.to_thread(_make_export, config, fmt, options, runtime, self.ctx.machine.scan)
        except (BadInput, ProblemError) as exc:
            if generation == self._generation:
                self._set_busy(False)
                self._show_problem(exc.problem)
                self._set_export(None)
            return
        if generation != self._generation:
            return  # the settings changed meanwhile: a newer export is on its way
        self._set_busy(False)
        self._hide_problem()
        self._set_export(export)

    @property
    def items(self) -> tuple[Item, ...]:
        """The production checklist of the export shown (its README carries the same rows)."""
        return self.export.checklist if self.export is not None else ()

    def _set_busy(self, busy: bool) -> None:
        if busy:
            self.status.setText("Making and validating the files…")
        self.save_button.setEnabled(not busy and self.export is not None and not self.export.failed)
        self.copy_button.setEnabled(not busy and self.export is not None)

    def _show_problem(self, problem: Problem, settings: bool = True) -> None:
        """A problem above the files; `settings`: the Server page's settings cause it, offer to go there."""
        show_in_box(self.problem, problem, "the Deploy page")
        self.server_button.setVisible(settings)

    def _hide_problem(self) -> None:
        self.problem.hide()
        self.server_button.hide()

    def _set_export(self, export: Export | None) -> None:
        self.export = export
        self.files.clear()
        self.checklist.clear()
        self.view.show_file("", "text")
        self.check_text.setText("")
        self.file_glyph.hide()
        self.checklist_action.hide()
        if export is None:
            self.status.setText("")
            self._set_busy(False)
            return
        for f in export.files:
            state = f.check.state if f.check else None
            item = QListWidgetItem(f"{GLYPHS.get(state, '  ')}  {f.name}" + ("   (secret)" if f.secret else ""))
            item.setToolTip(f.check.summary if f.check else "How to use these files")
            self.files.addItem(item)
        for it in self.items:
            entry = QListWidgetItem(f"{'✔' if it.done else '○'}  {it.title}")
            entry.setToolTip(it.detail)
            self.checklist.addItem(entry)
        failed = export.failed
        skipped = [f for f in export.files if f.check is not None and f.check.state == SKIPPED]
        if failed:
            self.status.setText(f"{len(failed)} file(s) did not pass validation: nothing can be saved until the "
                                "settings are changed.")
        else:
            checked = sum(1 for f in export.files if f.check is not None and f.check.state == PASSED)
            self.status.setText(f"{checked} file(s) validated" + (f", {len(skipped)} not validated here"
                                                                   if skipped else "") + ". "
                                + " ".join(export.notes))
        self.files.setCurrentRow(0)
        self._set_busy(False)

    # -- reading it
    def _show_file(self, row: int) -> None:
        if self.export is None or not 0 <= row < len(self.export.files):
            return
        f = self.export.files[row]
        self.view.show_file(f.text, f.language)
        if f.check is None:
            self.file_glyph.hide()
            self.check_text.setText("How to apply these files and test the server.")
        else:
            self.file_glyph.set_status({PASSED: "ok", FAILED: "fail"}.get(f.check.state, "warn"))
            self.file_glyph.show()
            self.check_text.setText(f.check.summary + ("  This file holds a secret: keep it private." if f.secret else ""))

    def _show_item(self, row: int) -> None:
        if not 0 <= row < len(self.items):
            return
        item = self.items[row]
        self.check_text.setText(f"{item.title}: {item.detail}" + ("" if item.done else f"  To do: {item.action}"))
        self.file_glyph.hide()
        self.checklist_action.setVisible(not item.done and item.page is not None)
        self.checklist_action.setText(f"Open the {item.page.title()} page" if item.page else "")

    def _do_item(self) -> None:
        row = self.checklist.currentRow()
        if 0 <= row < len(self.items) and self.items[row].page:
            self.open_page_requested.emit(self.items[row].page)

    def _copy(self) -> None:
        row = self.files.currentRow()
        if self.export is not None and 0 <= row < len(self.export.files):
            QGuiApplication.clipboard().setText(self.export.files[row].text)
            self.status.setText(f"Copied {self.export.files[row].name}.")

    def _save(self) -> None:
        if self.export is None:
            return
        self.dialog = choose_folder(self, "Save the export into a folder", self._save_into)

    def _save_into(self, folder: str, force: bool = False) -> None:
        export = self.export
        if export is None:
            return
        try:
            written = write_export(export, Path(folder), force=force)
        except BadInput as exc:
            if "already holds" in exc.problem.title and not force:
                self._ask_replace(folder, exc.problem)
                return
            self._show_problem(exc.problem, settings=False)
            return
        except ProblemError as exc:
            self._show_problem(exc.problem, settings=False)
            return
        self._hide_problem()
        self.status.setText(f"Saved {len(written)} files to {folder}.")

    def _ask_replace(self, folder: str, problem: Problem) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Replace the files?", f"{problem.title}.\n\nReplace them?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.window())
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.finished.connect(lambda result: result == QMessageBox.StandardButton.Yes and self._save_into(folder, True))
        box.finished.connect(box.deleteLater)
        self.replace_box = box  # tests answer it
        box.open()


def _make_export(config: LaunchConfig, fmt: str, options: ExportOptions, runtime: str | None,
                 gpu_scan: GpuScan | None) -> Export:
    """Off the GUI thread: the facts, the files, their validation and the checklist. The GPUs are the
    window's last scan (NVML is not asked again at every change of format)."""
    python = None
    if fmt == "systemd":
        from llmdesk.core.server.runtime import find_vllm_runtime

        found = find_vllm_runtime(runtime).runtime
        python = str(found.python) if found is not None else None
    return make_export(fmt, gather_target(config, gpu_scan=gpu_scan, runtime_python=python), options)
