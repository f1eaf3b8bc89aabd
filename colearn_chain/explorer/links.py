"""Public block explorers by chain id, so the page can link a transaction where people can inspect it.

Why a fixed table: the explorer must make no external requests to find out, and on a local chain
(Anvil 31337, Ganache 1337) there is no public explorer at all, so nothing is linked.
"""

from __future__ import annotations

from typing import Any

#: chain id -> (name, base URL); every one serves /tx/<hash>, /address/<addr> and /block/<n>.
EXPLORERS: dict[int, tuple[str, str]] = {
    1: ("Etherscan", "https://etherscan.io"),
    11155111: ("Sepolia Etherscan", "https://sepolia.etherscan.io"),
    17000: ("Holesky Etherscan", "https://holesky.etherscan.io"),
    560048: ("Hoodi Etherscan", "https://hoodi.etherscan.io"),
    10: ("Optimism Etherscan", "https://optimistic.etherscan.io"),
    11155420: ("OP Sepolia Etherscan", "https://sepolia-optimism.etherscan.io"),
    8453: ("Basescan", "https://basescan.org"),
    84532: ("Base Sepolia Basescan", "https://sepolia.basescan.org"),
    42161: ("Arbiscan", "https://arbiscan.io"),
    421614: ("Arbitrum Sepolia Arbiscan", "https://sepolia.arbiscan.io"),
    137: ("Polygonscan", "https://polygonscan.com"),
    80002: ("Polygon Amoy Polygonscan", "https://amoy.polygonscan.com"),
    100: ("Gnosisscan", "https://gnosisscan.io"),
}


def explorer_for(chain_id: int) -> dict[str, Any] | None:
    """``{"name", "base"}`` of the public explorer for ``chain_id``, or None for a local or unknown chain."""
    found = EXPLORERS.get(chain_id)
    return {"name": found[0], "base": found[1]} if found else None


def tx_url(chain_id: int, tx_hash: str) -> str | None:
    """The explorer page of a transaction, or None."""
    found = EXPLORERS.get(chain_id)
    return f"{found[1]}/tx/{tx_hash}" if found else None
