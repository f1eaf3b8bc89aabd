"""Fixtures shared across the test suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
