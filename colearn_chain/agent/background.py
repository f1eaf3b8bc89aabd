"""Jobs that wait on peers (fetching a blob, then testing it) run here, beside the agent's loop.

Why: a store that cannot find a CID may take its whole timeout to say so; the loop meanwhile must keep
following events, closing epochs and voting before deadlines. Each job runs on a daemon thread (a
fetch that hangs cannot delay the process's exit), at most one per key, and at most ``limit`` at once
(a job given up on still counts until its thread ends), so hanging fetches cannot pile up threads. A job
that waits on no peer (testing a blob already held, such as our own proposal) may take one place beyond
the limit: peers whose blobs hang in every slot must not make us reject our own proposal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

__all__ = ["Background", "Cancelled"]


class Cancelled(Exception):
    """Raised inside a job that found it was given up on (its result would be thrown away)."""


class Background:
    """Keyed jobs on daemon threads; the loop collects finished ones with :meth:`finished`."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._jobs: dict[Hashable, tuple[Future[Any], threading.Event]] = {}
        self._abandoned: list[Future[Any]] = []
        self._wake = threading.Event()  # set whenever a job ends: the loop need not sleep a full poll

    def busy(self) -> int:
        """Threads still running, including those of jobs given up on."""
        self._abandoned = [f for f in self._abandoned if not f.done()]
        return len(self._abandoned) + sum(1 for f, _ in self._jobs.values() if not f.done())

    def has(self, key: Hashable) -> bool:
        return key in self._jobs

    def submit(self, key: Hashable, job: Callable[[threading.Event], Any], *, local: bool = False) -> bool:
        """Run ``job(cancelled)`` on a thread unless ``key`` already has one or the limit is reached.

        ``local``: the job waits on no peer; it may run with ``limit`` others already running (one more).
        """
        if key in self._jobs or self.busy() >= self.limit + (1 if local else 0):
            return False
        future: Future[Any] = Future()
        cancelled = threading.Event()

        def run() -> None:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(job(cancelled))
            except BaseException as error:  # noqa: BLE001 - handed to the loop, which decides
                future.set_exception(error)
            finally:
                self._wake.set()

        # Named after the thread that asked (an agent's): its log lines go where that agent's go.
        name = f"{threading.current_thread().name}:job-{key}"
        threading.Thread(target=run, name=name, daemon=True).start()
        self._jobs[key] = (future, cancelled)
        return True

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, waking as soon as a job ends (its result is due to the loop).

        A wake-up lost between the loop's last look and this call costs nothing: the loop collects every
        finished job at its next step whatever woke it.
        """
        if self._wake.wait(timeout):
            self._wake.clear()

    def wake(self) -> None:
        """Cut a :meth:`wait` short from another thread (e.g. a new block was mined)."""
        self._wake.set()

    def finished(self) -> list[tuple[Hashable, Future[Any]]]:
        """The jobs done since the last call (each returned once), in submission order."""
        done = [(key, future) for key, (future, _) in self._jobs.items() if future.done()]
        for key, _ in done:
            del self._jobs[key]
        return done

    def abandon(self, keep: Callable[[Hashable], bool]) -> None:
        """Give up on every job whose key ``keep`` refuses: its result will be ignored."""
        for key in [k for k in self._jobs if not keep(k)]:
            future, cancelled = self._jobs.pop(key)
            cancelled.set()
            self._abandoned.append(future)

    def __len__(self) -> int:
        return len(self._jobs)
