"""A block explorer for one CollectiveLearning contract, served on loopback: a JSON API and a page.

Local chains (Anvil, Ganache) have no public explorer; this shows every epoch, vote and transaction of
the contract, read only from the chain, and updates live as events arrive.
"""

from __future__ import annotations

from .server import ExplorerServer, start_server

__all__ = ["ExplorerServer", "start_server"]
