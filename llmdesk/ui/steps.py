"""Work done one step per turn of the event loop: a generator that yields between steps (a chart fed,
then painted by Qt before the next), run by a single-shot timer. Feeding and painting several charts
at once holds the loop for tens of milliseconds on a 2-core machine; one at a time, a few each."""

from __future__ import annotations

from collections.abc import Iterator

from PySide6.QtCore import QObject, QTimer

STEP_MS = 12  # between two steps: time for Qt to paint what the last one changed


class Stepper(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = STEP_MS):
        super().__init__(parent)
        self._steps: Iterator[None] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.step)

    @property
    def busy(self) -> bool:
        return self._steps is not None

    def run(self, steps: Iterator[None]) -> None:
        """Drop the steps under way, take these: the first now, the others a turn apart."""
        self._steps = steps
        self.step()

    def step(self) -> None:
        if self._steps is None:
            return
        try:
            next(self._steps)
        except StopIteration:
            self._steps = None
            return
        self._timer.start()

    def finish(self) -> None:
        """Every step left, now (tests, pictures)."""
        while self._steps is not None:
            self.step()

    def cancel(self) -> None:
        self._timer.stop()
        self._steps = None
