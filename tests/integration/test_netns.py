"""The consortium across separate networks: the chain in one Linux network namespace, each participant (its
agent and its own Kubo node) in another, joined by veth pairs to a bridge (tools/netns-demo.sh).

A full run there must decide exactly as the reference driver, the weights must move between the Kubo nodes
by bitswap (each voter's node received blocks from a peer), and the namespaces' own addresses must be the
only non-loopback addresses anything talks to: every Kubo connection is to a consortium peer, every TCP
connection in every namespace is on loopback or the bridge's subnet, and no namespace has any other route.
The test needs root (it fails, saying so, without it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest
from netns import SUBNET, NamespacedAnvil, Topology, established_peers, require_namespaces

from agent_harness import Consortium, same_weights
from colearn_chain.services.kubo_swarm import KuboSwarm, bitswap_stat, connected_peers

pytestmark = pytest.mark.slow

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
N, EPOCHS = 3, 4


def _inside(address: str, *networks: str) -> bool:
    return any(ipaddress.ip_address(address) in ipaddress.ip_network(net) for net in networks)


def test_a_consortium_in_separate_network_namespaces_decides_as_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def show(text: str) -> None:
        """Print past pytest's capture: `make test` shows the topology and what each node received."""
        with capsys.disabled():
            print(text, flush=True)

    require_namespaces()
    with contextlib.ExitStack() as stack:
        # Prepare: the topology, the chain in its namespace, a Kubo node in each participant's namespace
        topology = stack.enter_context(Topology(N))
        show(f"\ntopology {topology.name}:\n{topology.output.rstrip()}")
        anvil = stack.enter_context(NamespacedAnvil(topology, tmp_path / "anvil.log"))
        swarm = stack.enter_context(KuboSwarm(
            tmp_path / "ipfs", N, hosts=[topology.participant_ip(i) for i in range(N)],
            netns=[topology.participant_ns(i) for i in range(N)], allowed_networks=[SUBNET],
        ))
        for line in swarm.describe():
            show(line)
        consortium = Consortium(
            anvil.url, tmp_path / "work", f"local:{tmp_path / 'deployer-store'}", TOY, N,
            agent_rpc_url=anvil.rpc_inside, store_urls=[node.url for node in swarm.nodes],
            prefixes=[["ip", "netns", "exec", topology.participant_ns(i)] for i in range(N)],
            proposal_timeout=30, voting_timeout=30,  # generous: a loaded machine starts agents slowly
        ).setup()
        stack.callback(consortium.stop_all)
        reference, learners = consortium.reference(EPOCHS)
        assert {r.accepted for r in reference} == {True, False}, "the run must include accepts and rejects"

        # Execute
        consortium.start_all(until_epoch=EPOCHS)
        sockets: dict[str, set[str]] = {ns: set() for ns in topology.namespaces()}
        deadline = time.monotonic() + 240
        while True:  # look at every namespace's connections while the agents run
            for ns in sockets:
                sockets[ns].update(established_peers(topology, ns))
            codes = consortium.wait(timeout=1.0)
            if None not in codes.values() or time.monotonic() > deadline:
                break
        stats = [bitswap_stat(node) for node in swarm.nodes]
        kubo_peers = [connected_peers(node) for node in swarm.nodes]
        identities = [node.json_command("id") for node in swarm.nodes]
        routes = {ns: topology.exec(ns, "ip", "route", "show").splitlines() for ns in topology.namespaces()}
        decisions, votes = consortium.decisions(), consortium.votes()
        logs = "\n".join(f"== agent {a.index} ==\n{a.log_text()[-3000:]}" for a in consortium.agents)

    # Assert: the run decided exactly as the reference driver
    assert codes == {i: 0 for i in range(N)}, logs
    assert decisions == [(r.epoch, "accepted" if r.accepted else "rejected") for r in reference], logs
    assert votes == {r.epoch: {j: v for j, v in enumerate(r.vote_flags) if v is not None} for r in reference}
    for i in range(N):
        assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"
    # the weights moved between the nodes by bitswap: every node voted on another member's proposal
    for i, stat in enumerate(stats):
        show(f"node {i} ({topology.participant_ns(i)} {topology.participant_ip(i)}): bitswap blocks received "
              f"{stat['BlocksReceived']} ({stat['DataReceived']} bytes), sent {stat['BlocksSent']} "
              f"({stat['DataSent']} bytes); peers {sorted(addr for addr, _ in kubo_peers[i])}")
        assert stat["BlocksReceived"] > 0 and stat["BlocksSent"] > 0
    # each Kubo node is connected to the consortium's other nodes, on their namespace addresses, and to nothing else
    ids = {node.peer_id: topology.participant_ip(i) for i, node in enumerate(swarm.nodes)}
    for i, peers in enumerate(kubo_peers):
        assert sorted(peer for _, peer in peers) == sorted(p for p in ids if p != swarm.nodes[i].peer_id)
        for addr, peer in peers:
            assert addr.split("/")[2] == ids[peer], (addr, peer)
    # each node listens (and announces) its namespace address only
    for node, identity in zip(swarm.nodes, identities, strict=True):
        assert identity["Addresses"] == [f"{node.swarm}/p2p/{node.peer_id}"]
    # nothing in any namespace talks to anything but loopback and the bridge's subnet, nor could it
    for ns, remote in sockets.items():
        show(f"{ns}: TCP connections and connected UDP sockets seen during the run go to {sorted(remote)}")
        assert remote, f"{ns} has no connection at all"
        assert all(_inside(address, SUBNET, "127.0.0.0/8") for address in remote), (ns, remote)
        assert routes[ns] and all(line.startswith("10.77.0.0/24 ") for line in routes[ns]), (ns, routes[ns])
    for agent in consortium.agents:
        text = agent.log_text()
        assert "Traceback" not in text and " ERROR " not in text, text[-3000:]


def test_without_root_the_namespace_test_fails_saying_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: a machine where the test does not run as root
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    # Execute
    with pytest.raises(pytest.fail.Exception) as failed:
        require_namespaces()
    # Assert
    assert "needs root" in str(failed.value) and "CAP_NET_ADMIN" in str(failed.value)
