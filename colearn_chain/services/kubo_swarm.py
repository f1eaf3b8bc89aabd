"""One Kubo node per participant, peered with each other and with nobody else: `--ipfs-topology per-agent`.

Why: a consortium's members each run their own IPFS node; a proposer adds its blob to its own node and
the voters' nodes fetch it by bitswap from whichever member holds it. Each node listens on its own swarm
address (loopback ports on one machine, or each member's private address), knows the others through
`Peering.Peers`, and may dial nothing outside the consortium's networks (see :class:`~.kubo.KuboNode`).
Its RPC API stays on loopback: only its own participant's agent talks to it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .kubo import KuboNode

__all__ = ["KuboSwarm", "bitswap_stat", "connected_peers", "free_port"]

log = logging.getLogger(__name__)

#: The swarm port each node uses when every node has an address of its own (one per namespace or machine).
DEFAULT_SWARM_PORT: Final[int] = 4001


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` a moment ago (each loopback node needs its own, known before it starts)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class KuboSwarm:
    """n Kubo nodes under ``root`` (``node-0``, ...), each peered with all the others; stop them on exit.

    ``hosts`` gives each node's swarm IP (default: all on 127.0.0.1, each on a free port); ``netns`` the
    network namespace each runs in (default: none); ``allowed_networks`` the only networks a node may dial.
    """

    def __init__(
        self,
        root: Path,
        n: int,
        *,
        hosts: Sequence[str] | None = None,
        netns: Sequence[str | None] | None = None,
        allowed_networks: Sequence[str] = ("127.0.0.0/8",),
        connect_timeout: float = 30.0,
    ) -> None:
        if n < 1:
            raise ValueError(f"a swarm needs at least one node, got {n}")
        hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * n
        namespaces = list(netns) if netns is not None else [None] * n
        if len(hosts) != n or len(namespaces) != n:
            raise ValueError(f"need {n} hosts and namespaces, got {len(hosts)} and {len(namespaces)}")
        shared_host = len(set(hosts)) < n  # several nodes on one address: each needs its own port
        self.connect_timeout = connect_timeout
        self.nodes = [
            KuboNode(
                root / f"node-{i}",
                swarm=f"/ip4/{host}/tcp/{free_port(host) if shared_host else DEFAULT_SWARM_PORT}",
                allowed_networks=allowed_networks,
                netns=namespace,
            )
            for i, (host, namespace) in enumerate(zip(hosts, namespaces, strict=True))
        ]

    def __enter__(self) -> KuboSwarm:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Create every identity, give each node the others as peers, start them all and connect them."""
        try:
            for node in self.nodes:
                node.init()
            for node in self.nodes:
                node.peers = [other.as_peer() for other in self.nodes if other is not node]
            for node in self.nodes:
                node.start()
            for i in range(len(self.nodes)):
                self.connect(i)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def stop_node(self, index: int) -> None:
        """Stop one node (a member leaving, or its node going down); its repo and pins stay."""
        self.nodes[index].stop()

    def start_node(self, index: int) -> None:
        """Start one node again (same repo, address and identity) and reconnect it to the running others."""
        self.nodes[index].start()
        self.connect(index)

    def replace_node(self, index: int, repo: Path) -> KuboNode:
        """Give member ``index`` a brand-new node (empty repo, new identity) on the same address, peered with
        the others, and start it: a member joining again from a fresh machine."""
        old = self.nodes[index]
        old.stop()
        assert old.swarm is not None
        node = KuboNode(repo, swarm=old.swarm, allowed_networks=old.allowed_networks, netns=old.netns)
        node.init()
        node.peers = [other.as_peer() for other in self.nodes if other is not old]
        self.nodes[index] = node
        self.start_node(index)
        return node

    def connect(self, index: int) -> None:
        """Dial every running peer now (Kubo's peering would too, after a delay) and wait for the connections."""
        node = self.nodes[index]
        wanted = {p.peer_id for p in node.peers if self._running(p.peer_id)}
        for peer in node.peers:
            if peer.peer_id in wanted:
                try:
                    node.command("swarm", "connect", f"{peer.address}/p2p/{peer.peer_id}", timeout=10.0)
                except RuntimeError as error:
                    log.debug("swarm connect to %s failed (peering will retry): %s", peer.peer_id, error)
        deadline = time.monotonic() + self.connect_timeout
        while True:
            missing = wanted - {peer for _, peer in connected_peers(node)}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kubo node {index} did not connect to {sorted(missing)} within "
                                   f"{self.connect_timeout:.0f} s")
            time.sleep(0.2)

    def _running(self, peer_id: str) -> bool:
        return any(node.running and node.peer_id == peer_id for node in self.nodes)

    def describe(self) -> list[str]:
        """One line per node: its peer ID, swarm address and API (for logs and the run's output)."""
        return [
            f"node {i}: {node.peer_id} swarm {node.swarm} api {node.url if node.running else '(stopped)'}"
            + (f" netns {node.netns}" if node.netns else "")
            for i, node in enumerate(self.nodes)
        ]


def connected_peers(node: KuboNode) -> list[tuple[str, str]]:
    """(remote multiaddr, peer ID) of each of the node's open connections."""
    answer: Any = node.json_command("swarm", "peers")
    return [(str(entry["Addr"]), str(entry["Peer"])) for entry in answer.get("Peers") or []]


def bitswap_stat(node: KuboNode) -> dict[str, int]:
    """The node's bitswap counters (blocks and bytes received and sent)."""
    answer: Any = node.json_command("bitswap", "stat")
    keys = ("BlocksReceived", "DataReceived", "BlocksSent", "DataSent", "DupBlksReceived")
    return {key: int(answer.get(key, 0)) for key in keys}
