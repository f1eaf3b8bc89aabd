"""The RPC calls an agent made, written beside its models when it stops, for bench/epoch.py to add up.

Why a file: the agents run in processes of their own; their counters die with them. The calls of the
follower the agents of one process share are split evenly among them (``shared``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from .._files import atomic_write
from ..agent import Agent
from ..chain.connection import RetryingHTTPProvider
from ..chain.follow import ChainFollower

#: The file in an agent's state directory.
RPC_CALLS_FILE: Final[str] = "rpc_calls.json"


def write_rpc_calls(state_dir: Path, agent: Agent, follower: ChainFollower | None, sharing: int) -> None:
    """Write the agent's own calls by method and its share of the follower's (``sharing`` agents share it)."""
    provider = agent.client.w3.provider
    own = dict(provider.calls) if isinstance(provider, RetryingHTTPProvider) else {}
    shared = {k: v / max(1, sharing) for k, v in follower.provider.calls.items()} if follower is not None else {}
    record = {
        "own": own,
        "shared": shared,
        "total": sum(own.values()) + sum(shared.values()),
        "follow_mode": follower.mode if follower is not None else "none",
        "agents_in_process": sharing,
    }
    atomic_write(state_dir / RPC_CALLS_FILE, json.dumps(record, indent=1).encode(), mode=0o644)
