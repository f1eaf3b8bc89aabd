"""Per-participant Kubo nodes (`--ipfs-topology per-agent`): blobs move between members by bitswap, and a
node talks to the consortium's other nodes only.

Real Kubo daemons on loopback ports, peered through their config; no mocks.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from colearn_chain.services.kubo import KuboNode
from colearn_chain.services.kubo_swarm import KuboSwarm, bitswap_stat, connected_peers
from colearn_chain.store import KuboStore

pytestmark = pytest.mark.slow


@pytest.fixture()
def swarm(tmp_path: Path) -> Iterator[KuboSwarm]:
    with KuboSwarm(tmp_path / "ipfs", 2) as started:
        yield started


def test_a_blob_added_to_one_node_is_fetched_through_the_other_by_bitswap(swarm: KuboSwarm) -> None:
    # Prepare: 600 kB of random bytes: three distinct 256 KiB chunks and a root
    data = np.random.default_rng(7).integers(0, 256, size=600_000, dtype=np.uint8).tobytes()
    proposer, voter = swarm.nodes
    before = bitswap_stat(voter)
    cid = KuboStore(proposer.api, timeout=20).put(data)
    # Execute
    fetched = KuboStore(voter.api, timeout=20).get(cid, max_bytes=len(data))
    # Assert
    after, sent = bitswap_stat(voter), bitswap_stat(proposer)
    print(f"voter bitswap {after}, proposer bitswap {sent}")
    assert fetched == data
    assert before["BlocksReceived"] == 0
    assert after["BlocksReceived"] == 4 and after["DataReceived"] >= len(data)
    assert sent["BlocksSent"] == 4


def test_each_node_is_connected_to_its_consortium_peers_and_nothing_else(swarm: KuboSwarm) -> None:
    # Execute
    peers = [connected_peers(node) for node in swarm.nodes]
    identities = [node.json_command("id") for node in swarm.nodes]
    # Assert
    for i, node in enumerate(swarm.nodes):
        other = swarm.nodes[1 - i]
        assert [peer for _, peer in peers[i]] == [other.peer_id]
        assert all(addr.startswith("/ip4/127.0.0.1/tcp/") for addr, _ in peers[i])
        assert identities[i]["Addresses"] == [f"{node.swarm}/p2p/{node.peer_id}"]
        assert node.api.startswith("/ip4/127.0.0.1/tcp/")


def test_the_config_has_no_public_bootstrap_dht_mdns_relay_or_autonat(swarm: KuboSwarm) -> None:
    for node in swarm.nodes:
        # Execute
        assert node.repo is not None
        config = json.loads((node.repo / "config").read_text())
        # Assert
        assert config["Bootstrap"] == []
        assert config["Routing"]["Type"] == "none"
        assert config["Discovery"]["MDNS"]["Enabled"] is False
        assert config["AutoNAT"]["ServiceMode"] == "disabled"
        assert config["Swarm"]["RelayClient"]["Enabled"] is False
        assert config["Swarm"]["RelayService"]["Enabled"] is False
        assert config["Swarm"]["EnableHolePunching"] is False
        assert config["Addresses"]["Announce"] == [] and config["Addresses"]["Gateway"] == []
        assert [p["ID"] for p in config["Peering"]["Peers"]] == [n.peer_id for n in swarm.nodes if n is not node]


def test_a_node_refuses_to_dial_outside_the_consortium_networks(swarm: KuboSwarm, tmp_path: Path) -> None:
    # Prepare: a stranger's identity at an address outside 127.0.0.0/8; the filter must stop the dial itself
    stranger = KuboNode(tmp_path / "stranger").init()
    target = f"/ip4/10.255.255.1/tcp/4001/p2p/{stranger}"
    # Execute
    with pytest.raises(RuntimeError) as refused:
        swarm.nodes[0].command("swarm", "connect", target, timeout=30)
    # Assert
    print(refused.value)
    assert "filter" in str(refused.value).lower() or "gater" in str(refused.value).lower()


def test_ipfs_node_command_writes_a_consortium_config_and_prints_the_address(tmp_path: Path) -> None:
    # Prepare: the other member's address, as its own ipfs-node printed it
    other = KuboNode(tmp_path / "other").init()
    peer = f"/ip4/10.77.0.3/tcp/4001/p2p/{other}"
    command = [sys.executable, "-m", "colearn_chain.cli", "ipfs-node", "--repo", str(tmp_path / "mine"),
               "--swarm", "/ip4/10.77.0.2/tcp/4001", "--allow", "10.77.0.0/24", "--peer", peer, "--api-port", "5123"]
    # Execute
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    refused = subprocess.run([*command[:-4], "--peer", "10.77.0.3:4001"], capture_output=True, text=True,
                             timeout=60, check=False)
    # Assert
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "mine" / "config").read_text())
    assert result.stdout.strip() == f"/ip4/10.77.0.2/tcp/4001/p2p/{config['Identity']['PeerID']}"
    assert config["Addresses"]["Swarm"] == ["/ip4/10.77.0.2/tcp/4001"]
    assert config["Addresses"]["API"] == "/ip4/127.0.0.1/tcp/5123"
    assert config["Peering"]["Peers"] == [{"ID": other, "Addrs": ["/ip4/10.77.0.3/tcp/4001"]}]
    assert config["Bootstrap"] == [] and config["Routing"]["Type"] == "none"
    blocked = [ipaddress.ip_network(f"{f.split('/')[2]}/{f.split('/')[4]}") for f in config["Swarm"]["AddrFilters"]]
    assert any(ipaddress.ip_address("127.0.0.1") in net for net in blocked)  # only 10.77.0.0/24 is allowed
    assert not any(ipaddress.ip_address("10.77.0.3") in net for net in blocked)
    assert refused.returncode == 2 and "--peer wants" in refused.stderr
