"""The agent's sense of time: the chain's clock as estimated locally, and log lines that repeat slowly.

Why apart: deadlines are in the chain's time (the pending block's timestamp), which may run ahead of the
wall clock (a dev chain's time travel); asking the node on every poll would double the agent's calls.
And a loop that retries every poll must not write the same warning every poll.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["ChainClock", "Throttled"]

#: Seconds between repeats of the same warning (a store that stays down, an unfetchable model).
WARN_EVERY: Final[float] = 5.0


class ChainClock:
    """The chain's time: read from the node when it matters, estimated from the wall clock in between."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._offset = 0.0  # chain time - wall time, as last read

    def read(self) -> int:
        """The chain's clock (the pending block's timestamp), refreshing the estimate's offset."""
        now = self._read()
        self._offset = now - time.time()
        return now

    def set(self, now: int) -> None:
        """Take ``now`` as the chain's clock, read by the caller (e.g. in a batch with other reads)."""
        self._offset = now - time.time()

    def estimate(self) -> float:
        """The chain's clock as of the last read, moved on by the wall clock (no call to the node)."""
        return time.time() + self._offset


class Throttled:
    """A logger that writes a line of one kind at most every ``every`` seconds.

    Kinds are a fixed set of names (the epoch goes in the message, not the kind), so this stays small.
    """

    def __init__(self, log: logging.Logger, every: float = WARN_EVERY) -> None:
        self._log = log
        self.every = every
        self._last: dict[str, float] = {}

    def __call__(self, kind: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) >= self.every:
            self._last[kind] = now
            self._log.log(level, message, *args)
