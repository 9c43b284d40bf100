"""One line of progress on a terminal's standard error while a report works; nothing elsewhere.

A part that ends within :data:`DELAY` seconds prints nothing; a longer one shows what runs,
its estimate and the time spent so far, redrawn every :data:`TICK` seconds by a daemon thread
and erased when it ends, so piped output and ``--json`` never see a byte of it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from lstm_gradcheck.streams import is_terminal

__all__ = ["Progress", "DELAY", "TICK"]

DELAY = 1.0
TICK = 0.5


class Progress:
    """Progress of one report on ``stream`` (default standard error), shown only when ``enabled``
    (default: the stream is a terminal)."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = (is_terminal(self.stream) if enabled is None else enabled) and self.stream is not None
        self._lock = threading.Lock()
        self._width = 0

    @contextmanager
    def step(self, what: str, estimate: float | None = None) -> Iterator[None]:
        """Show ``what`` (and its ``estimate`` in seconds) while the block runs, once it passes DELAY."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()
        start = time.perf_counter()
        about = f", about {estimate:.2g} s" if estimate is not None else ""

        def tick() -> None:
            if stop.wait(DELAY):
                return
            while not stop.is_set():
                self._draw(f"lstm-gradcheck: {what}{about}: {time.perf_counter() - start:.0f} s")
                stop.wait(TICK)

        thread = threading.Thread(target=tick, name="lstm-gradcheck-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self._draw("")

    def _draw(self, text: str) -> None:
        with self._lock:
            if not text and not self._width:
                return
            pad = max(0, self._width - len(text))
            try:
                self.stream.write("\r" + text + " " * pad + ("\r" if not text else ""))
                self.stream.flush()
            except (OSError, ValueError):  # a terminal gone away: progress is not worth an error
                self.enabled = False
            self._width = len(text)
