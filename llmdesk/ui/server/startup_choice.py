"""The Server form's start-up and pause settings: CUDA-graph sizes, the forked engine, and sleep mode
(Pause frees the GPU without stopping; after an idle time by itself; a request wakes it or is refused)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QSpinBox, QWidget

from llmdesk.core.server.launch import LaunchConfig, MAX_CUDAGRAPH_SIZE


class StartupChoice(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.graphs = QSpinBox()
        self.graphs.setRange(0, MAX_CUDAGRAPH_SIZE)
        self.graphs.setSpecialValueText("vLLM's choice")
        self.graphs.setToolTip("CUDA graphs are captured for batches up to this many requests (vLLM: twice the "
                               "requests at once, at most 512). Fewer sizes start sooner; larger batches then run "
                               "without graphs.")
        self.graphs.setMaximumWidth(180)
        self.fork = QCheckBox("Fork the engine (vLLM imported once)")
        self.fork.setToolTip("vLLM's engine process is forked from its API server, which has imported vLLM "
                             "already, instead of started afresh (vLLM's own library default; its command line "
                             "spawns). With Settings' Faster Start an 8B model on an H100 was ready in 18 s "
                             "instead of 59.")
        self.fork.setChecked(True)  # on by default (#23); vLLM falls back to spawning where CUDA is already up
        self.sleep = QCheckBox("Allow Pause (frees the GPU without stopping)")
        self.sleep.setToolTip("vLLM's sleep mode. Its development routes are kept behind llmdesk's gate: clients "
                              "never reach them.")
        self.level = QComboBox()
        self.level.addItem("drop the weights (read again on Resume)", 2)  # the default: the faster pause
        self.level.addItem("keep the weights in CPU memory", 1)
        self.level.setToolTip("On an H100 an 8B model: dropping them paused in 0.06 s and resumed in 2.2 s; keeping "
                              "them resumed in 0.6 s, but the first pause took 7 s (later ones 0.4 s) and the "
                              "paused weights take their size in CPU memory.")
        self.idle = QSpinBox()
        self.idle.setRange(0, 24 * 60)
        self.idle.setSuffix(" min idle")
        self.idle.setSpecialValueText("only when asked")
        self.idle.setMaximumWidth(180)
        self.wake = QCheckBox("A request wakes it")
        self.wake.setChecked(True)
        self.wake.setToolTip("Off: requests to a paused server are refused with 503 and a plain message.")
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("CUDA graphs up to"), 0, 0)
        layout.addWidget(self.graphs, 0, 1)
        layout.addWidget(self.fork, 1, 0, 1, 2)
        layout.addWidget(self.sleep, 2, 0, 1, 2)
        layout.addWidget(QLabel("Paused model"), 3, 0)
        layout.addWidget(self.level, 3, 1)
        layout.addWidget(QLabel("Pause by itself"), 4, 0)
        layout.addWidget(self.idle, 4, 1)
        layout.addWidget(self.wake, 5, 0, 1, 2)
        self.sleep.toggled.connect(self._enable)
        self._enable(False)

    def _enable(self, on: bool) -> None:
        for widget in (self.level, self.idle, self.wake):
            widget.setEnabled(on)

    def fields(self) -> dict[str, Any]:
        """LaunchConfig fields from the choices."""
        return {"cudagraph_max_size": self.graphs.value() or None, "fork_engine": self.fork.isChecked(),
                "sleep_mode": self.sleep.isChecked(), "sleep_level": self.level.currentData(),
                "idle_pause_s": self.idle.value() * 60.0 if self.sleep.isChecked() and self.idle.value() else None,
                "wake_on_request": self.wake.isChecked()}

    def show_config(self, config: LaunchConfig) -> None:
        self.graphs.setValue(config.cudagraph_max_size or 0)
        self.fork.setChecked(config.fork_engine)
        self.sleep.setChecked(config.sleep_mode)
        self.level.setCurrentIndex(max(0, self.level.findData(config.sleep_level)))
        self.idle.setValue(round((config.idle_pause_s or 0) / 60))
        self.wake.setChecked(config.wake_on_request)
