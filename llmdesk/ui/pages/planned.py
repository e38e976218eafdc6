"""Pages that are not built yet say plainly what they will hold."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from llmdesk.ui.widgets import page_header


@dataclass(frozen=True)
class PlannedPage:
    key: str
    title: str
    summary: str
    features: tuple[str, ...]


PLANNED_PAGES = (
    PlannedPage("deploy", "Deploy", "Take the same configuration beyond this machine.", (
        "Export the launch configuration as a Kubernetes manifest, a docker command or a systemd unit.",
    )),
)


class PlannedPageWidget(QWidget):
    def __init__(self, page: PlannedPage, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(page_header(page.title, page.summary))
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.hide()
        layout.addWidget(self.note)
        card = QFrame()
        card.setFrameShape(QFrame.Shape.StyledPanel)
        inner = QVBoxLayout(card)
        note = QLabel("Not built yet. This page will hold:")
        note.setStyleSheet("font-weight: 600;")
        inner.addWidget(note)
        for feature in page.features:
            line = QLabel(f"•  {feature}")
            line.setWordWrap(True)
            inner.addWidget(line)
        layout.addWidget(card)
        layout.addStretch()

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
