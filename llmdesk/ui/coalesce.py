"""Batch high-rate text updates (streamed tokens) into at most one redraw per frame.

A model at 2,000 tokens/s delivers a delta every half millisecond; drawing each one costs more
than the frame it lands in. The coalescer keeps what arrives and hands it over in one piece::

    coalescer = DeltaCoalescer(view.append, interval_ms=16)
    async for delta in client.stream(...):
        coalescer.push(delta.content)
    coalescer.flush_now()   # the rest, before end_stream()
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer


class DeltaCoalescer(QObject):
    """Buffers pushed text; calls ``flush(text)`` at most once per ``interval_ms`` (timer-driven).

    The first push after a flush starts the timer, so text is drawn at most ``interval_ms`` after
    it arrived and a steady stream is drawn once per interval. ``flush_now()`` hands over what is
    buffered at once (end of a reply); ``discard()`` drops it (a cancelled reply)."""

    def __init__(self, flush: Callable[[str], None], interval_ms: int = 16, parent: QObject | None = None):
        super().__init__(parent)
        self._flush = flush
        self._parts: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        # A coarse timer may fire up to 5 % late, which at 16 ms would skip whole frames.
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.flush_now)
        self.flushes = 0

    @property
    def interval_ms(self) -> int:
        return self._timer.interval()

    def push(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def pending(self) -> str:
        return "".join(self._parts)

    def flush_now(self) -> None:
        self._timer.stop()
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts.clear()
        self.flushes += 1
        self._flush(text)

    def discard(self) -> None:
        self._timer.stop()
        self._parts.clear()
