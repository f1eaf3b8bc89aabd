"""The local chains a run can start for itself, by name: one table for the CLI and the experiment."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

from .anvil import AnvilNode, GanacheNode
from .geth import DEFAULT_PERIOD, GethNode

__all__ = ["CHAINS", "DEFAULT_CHAIN", "block_time_problem", "chain_node"]

#: Chain clients `colearn-chain run --chain` can start: Anvil (the default), Ganache, geth's dev mode.
CHAINS: Final[tuple[str, ...]] = ("anvil", "ganache", "geth")
DEFAULT_CHAIN: Final[str] = "anvil"


def block_time_problem(seconds: float) -> str | None:
    """What is wrong with ``seconds`` as a block time, None if nothing: it must be a finite number above 0.

    Why check it here: the chain clients refuse it only once started, each in its own words (or not at all).
    """
    if not math.isfinite(seconds) or seconds <= 0:
        return f"the block time must be a number of seconds above 0, got {seconds}"
    return None


def chain_node(
    kind: str, *, block_time: float | None = None, log_path: Path | None = None, port: int | None = None
) -> AnvilNode:
    """A local chain of ``kind``, not started yet (use it as a context manager), its RPC on 127.0.0.1:``port``
    (None: a free port).

    ``block_time`` None: Anvil and Ganache mine each transaction at once; geth seals a block every
    :data:`~.geth.DEFAULT_PERIOD` seconds, as a real chain would.
    """
    problem = None if block_time is None else block_time_problem(block_time)
    if problem is not None:
        raise ValueError(problem)
    if kind == "anvil":
        return AnvilNode(block_time=block_time, log_path=log_path, port=port)
    if kind == "ganache":
        return GanacheNode(block_time=block_time, log_path=log_path, port=port)
    if kind == "geth":
        return GethNode(block_time=DEFAULT_PERIOD if block_time is None else block_time, log_path=log_path, port=port)
    raise ValueError(f"unknown chain {kind!r}: choose one of {', '.join(CHAINS)}")
