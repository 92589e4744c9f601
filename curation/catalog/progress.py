"""A one-line terminal progress display: phase, done/total, rate and ETA, rewritten in place."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """Callable as ``progress(phase, done, total)``; redraws at most every ``interval`` seconds.

    On a terminal the line is rewritten with a carriage return; in a log (not a tty) one line is
    printed per ``log_interval`` seconds so CI logs stay short but still show the job moving.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2, log_interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self._phase: str | None = None
        self._phase_start = 0.0
        self._last_draw = 0.0
        self._width = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self._phase:
            if self._phase is not None:
                self._newline()
            self._phase, self._phase_start, self._last_draw = phase, now, 0.0
        finished = total > 0 and done >= total
        if not finished and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        elapsed = now - self._phase_start
        # A rate from the first few milliseconds is noise: show it once there is something to measure.
        rate = done / elapsed if elapsed >= 0.25 else 0.0
        if finished:
            tail = f"done in {elapsed:.1f}s"
        elif rate > 0 and total:
            tail = f"ETA {max(total - done, 0) / rate:.0f}s"
        else:
            tail = "ETA ?"
        pct = f"{100 * done / total:5.1f}%" if total else ""
        speed = f"{rate:.0f}/s" if rate else "?/s"
        text = f"{phase}: {done}/{total} {pct} {speed} {tail}"
        if self.tty:
            pad = max(self._width - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _newline(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._width = 0

    def close(self) -> None:
        self._newline()
        self._phase = None
