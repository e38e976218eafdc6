"""Garbage collection only on the GUI thread.

Python's cyclic collector runs in whichever thread happens to allocate. When that is a download or
Hub worker thread and the garbage holds Qt objects (widgets in reference cycles with their slots),
Qt objects get destroyed off the GUI thread and Qt later crashes (seen here as a segfault inside
event processing). So automatic collection is switched off and a GUI-thread timer collects instead —
the scheme pyqtgraph ships as pyqtgraph.util.garbage_collector, written out here because importing
pyqtgraph costs 0.6 s at start-up.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 1000


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.collect)
        self._timer.start()

    def collect(self) -> None:
        """Collect the generations whose counts passed their thresholds, as gc itself would."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.thresholds[generation]:
                gc.collect(generation)
                return
