"""System prompt and sampling parameters, with named presets and a default per model.

Fields are text: empty means "the server's default" (the model's generation_config, which vLLM
applies), which a spin box cannot say. A value that does not parse is shown in red and kept;
`params()` raises BadInput naming the field.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

from llmdesk.core.base.errors import ProblemError
from llmdesk.core.chat.client import ChatParams
from llmdesk.core.chat.session import (PARAM_FIELDS, PRESETS, format_param, params_from_dict, params_to_dict,
                                       parse_param, parse_stop)
from llmdesk.ui import design
from llmdesk.ui.widgets import section_title

CUSTOM = "Custom"
MODEL_DEFAULT = "This model's default"


class ParamsPanel(QWidget):
    changed = Signal()
    save_for_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("You are a helpful assistant.  (optional)")
        self.system_prompt.setFixedHeight(90)
        self.system_prompt.textChanged.connect(self.changed)

        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, CUSTOM])
        self.preset.setCurrentText("Server defaults")
        self.preset.activated.connect(self._preset_chosen)
        self._model_default: dict | None = None

        self.fields: dict[str, QLineEdit] = {}
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Preset", self.preset)
        for name, (_kind, lo, hi, label) in PARAM_FIELDS.items():
            edit = QLineEdit()
            edit.setPlaceholderText("default")
            span = f"{lo:g}–{hi:g}" if lo is not None and hi is not None else (f"≥ {lo:g}" if lo is not None else "any whole number")
            edit.setToolTip(f"{label}: {span}. Empty: the server's default.")
            edit.textEdited.connect(lambda _t, n=name: self._edited(n))
            self.fields[name] = edit
            form.addRow(label, edit)
        self.stop = QPlainTextEdit()
        self.stop.setPlaceholderText("one per line")
        self.stop.setFixedHeight(52)
        self.stop.textChanged.connect(lambda: self._edited("stop"))
        form.addRow("Stop", self.stop)

        self.save_for_model = design.action(QPushButton("Save as this model's default"), "mdi6.content-save-outline")
        self.save_for_model.setToolTip("New chats with this model start with these parameters")
        self.save_for_model.clicked.connect(self.save_for_model_requested)
        self.error = QLabel()
        self.error.setWordWrap(True)
        design.tone(self.error, "error")
        self.error.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section_title("System prompt"))
        layout.addWidget(self.system_prompt)
        layout.addWidget(section_title("Parameters"))
        layout.addLayout(form)
        layout.addWidget(self.error)
        row = QHBoxLayout()
        row.addWidget(self.save_for_model)
        row.addStretch()
        layout.addLayout(row)
        layout.addStretch()

    # -- values --

    def params(self) -> ChatParams:
        """The parameters as typed; BadInput names the first field that does not parse."""
        values = {name: parse_param(name, edit.text()) for name, edit in self.fields.items()}
        return ChatParams(**values, stop=parse_stop(self.stop.toPlainText()))

    def params_or_none(self) -> ChatParams | None:
        try:
            params = self.params()
        except ProblemError as exc:
            self._show_error(exc.problem.title + ". " + exc.problem.explanation)
            return None
        self._show_error("")
        return params

    def show_params(self, params: ChatParams | dict | None) -> None:
        if not isinstance(params, ChatParams):
            params = params_from_dict(params)
        for name, edit in self.fields.items():
            edit.setText(format_param(getattr(params, name)))
            self._mark(name, ok=True)
        self.stop.blockSignals(True)
        self.stop.setPlainText("\n".join(s.encode("unicode_escape").decode("ascii") for s in params.stop))
        self.stop.blockSignals(False)
        self.preset.setCurrentText(self._preset_of(params))
        self._show_error("")

    def set_model_default(self, params: dict | None) -> None:
        """The stored default of the chosen model: offered as a preset when there is one."""
        self._model_default = params
        index = self.preset.findText(MODEL_DEFAULT)
        if params is None and index >= 0:
            self.preset.removeItem(index)
        elif params is not None and index < 0:
            self.preset.insertItem(0, MODEL_DEFAULT)

    # -- internals --

    def _preset_of(self, params: ChatParams) -> str:
        if self._model_default is not None and params_to_dict(params) == params_to_dict(params_from_dict(self._model_default)):
            return MODEL_DEFAULT
        for name, preset in PRESETS.items():
            if preset == params:
                return name
        return CUSTOM

    def _preset_chosen(self, _index: int) -> None:
        name = self.preset.currentText()
        if name == MODEL_DEFAULT:
            self.show_params(self._model_default)
        elif name in PRESETS:
            self.show_params(PRESETS[name])
        self.changed.emit()

    def _edited(self, name: str) -> None:
        if name in self.fields:
            try:
                parse_param(name, self.fields[name].text())
                self._mark(name, ok=True)
            except ProblemError:
                self._mark(name, ok=False)
        params = self.params_or_none()
        if params is not None:
            self.preset.setCurrentText(self._preset_of(params))
            self.changed.emit()

    def _mark(self, name: str, *, ok: bool) -> None:
        design.invalid(self.fields[name], not ok)

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))
