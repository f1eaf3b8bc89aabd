"""ipfs-node's --swarm and --peer: one IPv4 address and a TCP port, never an unspecified or malformed one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from colearn_chain.cli.ipfs_node import run, swarm_address


@pytest.mark.parametrize(("text", "message"), [
    ("/ip4/999.1.1.1/tcp/4001", "'999.1.1.1' is not an IPv4 address"),
    ("/ip4/10.0.0.1/tcp/notaport", "'notaport' is not a TCP port (1 to 65535)"),
    ("/ip4/10.0.0.1/tcp/0", "'0' is not a TCP port"),
    ("/ip4/10.0.0.1/tcp/65536", "'65536' is not a TCP port"),
    ("/ip4/10.0.0.1/tcp/\uff14\uff10\uff10\uff11", "is not a TCP port"),  # fullwidth digits
    ("/ip4/0.0.0.0/tcp/4001", "0.0.0.0 is not one machine's address (0.0.0.0 would mean every interface)"),
    ("/ip4/224.0.0.1/tcp/4001", "224.0.0.1 is not one machine's address"),
    ("/ip4/255.255.255.255/tcp/4001", "255.255.255.255 is not one machine's address"),
    ("/ip6/::/tcp/4001", "got '/ip6/::/tcp/4001'"),
    ("/ip4/10.0.0.1/udp/4001", "got '/ip4/10.0.0.1/udp/4001'"),
    ("/ip4/10.0.0.1/tcp/4001/ws", "got '/ip4/10.0.0.1/tcp/4001/ws'"),
    ("ip4/10.0.0.1/tcp/4001", "got 'ip4/10.0.0.1/tcp/4001'"),
])
def test_a_bad_swarm_address_is_refused_saying_why(text: str, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError) as error:
        swarm_address(text)
    assert str(error.value).startswith("--swarm wants /ip4/ADDRESS/tcp/PORT") and message in str(error.value)


def test_a_good_swarm_address_is_taken_in_its_canonical_form() -> None:
    # Execute / Assert
    assert swarm_address("/ip4/10.77.0.2/tcp/4001") == "/ip4/10.77.0.2/tcp/4001"
    assert swarm_address("/ip4/127.0.0.1/tcp/04001") == "/ip4/127.0.0.1/tcp/4001"


@pytest.mark.parametrize(("swarm", "peer", "message"), [
    ("/ip4/0.0.0.0/tcp/4001", None, "--swarm wants /ip4/ADDRESS/tcp/PORT"),
    ("/ip4/999.1.1.1/tcp/notaport", None, "--swarm wants /ip4/ADDRESS/tcp/PORT"),
    ("/ip4/10.77.0.2/tcp/4001", "/ip4/0.0.0.0/tcp/4001/p2p/QmPeer", "--peer wants /ip4/ADDRESS/tcp/PORT"),
])
def test_ipfs_node_refuses_a_bad_address_before_writing_a_repo(
    tmp_path: Path, swarm: str, peer: str | None, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    args = argparse.Namespace(repo=tmp_path / "repo", swarm=swarm, allow=["10.77.0.0/24"],
                              peer=[] if peer is None else [peer], api_port=5001)
    # Execute
    code = run(args)
    # Assert
    assert code == 2 and message in caplog.text
    assert not (tmp_path / "repo").exists()
