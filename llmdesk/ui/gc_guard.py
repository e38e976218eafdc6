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

# Often enough that a worker thread allocating fast (the benchmark's load generator at 30,000 tokens/s)
# leaves a few ms of young objects per collection, not 40 ms of them once a second.
INTERVAL_MS = 100


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


_frozen = False


def freeze_long_lived() -> None:
    """Leave what exists now out of every later garbage collection, once per process (called once
    pyqtgraph is loaded).

    Importing pyqtgraph and numpy adds some 35,000 objects that live as long as the app. The collector
    walks every tracked object at each full collection: about 50-110 ms on a 2-core machine once they
    are there, a stall the charts would be blamed for. Frozen objects are never walked again (nor freed,
    which only matters for the few that are garbage by now)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
