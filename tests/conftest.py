"""Fixtures shared across the test suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from colearn_chain.chain.deployment import Deployment
from colearn_chain.services.kubo import KuboNode, find_ipfs_binary


@pytest.fixture(scope="session")
def kubo_node() -> Iterator[KuboNode]:
    """A private offline Kubo daemon on loopback for the whole session.

    Fails (never skips) when no `ipfs` binary is found: IPFS is part of what is tested.
    """
    try:
        binary = find_ipfs_binary()
    except FileNotFoundError as error:
        missing = str(error)
    else:
        missing = ""
    if missing:
        pytest.fail(f"Kubo is required for this test: {missing}", pytrace=False)
    with KuboNode(binary=binary) as node:
        yield node


@pytest.fixture()
def record_of_nothing(tmp_path: Path) -> Path:
    """A well-formed deployment record (a toy learner, chain 31337) naming an address where nothing is deployed."""
    return Deployment(
        chain_id=31337, address="0x" + "12" * 20, block=0, tx_hash="0x" + "00" * 32, learners=[],
        vote_threshold_bps=5000, proposal_timeout=10, voting_timeout=10, proposer_votes=True,
        initial_digest="0x" + "11" * 32, initial_cid="QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
        extra={"learner_config": {"kind": "toy"}},
    ).save(tmp_path / "deployment.json")
