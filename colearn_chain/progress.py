"""One line of progress per long task: rewritten in place on a terminal, printed once otherwise.

The baselines of a run replay hundreds of in-memory epochs; a line per epoch would bury the run's
own output, and a silent minute looks like a hang. On a terminal the line counts up while the task
runs; in a log file or pipe only the finished line appears; without a stream nothing does.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``label: step k/total`` while running, then ``label: result (N steps, T s)`` once done."""

    def __init__(self, label: str, total: int, stream: TextIO | None, unit: str = "epochs") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream
        self.count = 0
        self.started = time.monotonic()
        self._live = stream is not None and stream.isatty()
        self._draw()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more done."""
        self.count += steps
        self._draw()

    def done(self, result: str) -> None:
        """Print the finished line, replacing the live one."""
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.started
        line = f"{self.label}: {result} ({self.count} {self.unit}, {elapsed:.1f} s)"
        self.stream.write(f"\r\033[K{line}\n" if self._live else f"{line}\n")
        self.stream.flush()

    def _draw(self) -> None:
        if self._live and self.stream is not None:
            self.stream.write(f"\r\033[K{self.label}: {self.unit} {self.count}/{self.total}")
            self.stream.flush()
