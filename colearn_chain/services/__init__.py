"""Local services the project starts for itself (a private Kubo node, a dev chain), loopback only."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from typing import Any


def stop_processes(
    processes: Iterable[subprocess.Popen[Any]], timeout: float = 10.0
) -> list[subprocess.Popen[Any]]:
    """Ask each running process to stop (SIGTERM), give them ``timeout`` seconds together, then kill the
    rest. Returns the processes that had to be killed, so callers can say so."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    killed = []
    for process in running:
        try:
            # One shared grace period: they were all asked at once.
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed.append(process)
            timeout = 0.1
    return killed
