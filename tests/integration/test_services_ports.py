"""Local services on ports picked for them: a port taken between the pick and the bind is picked again.

Two test sessions side by side (or a test beside a demo) can be handed the same free port; the chain that
loses the race exits while the other one answers on that port, so "it answers" alone would make two
sessions share one chain.
"""

from __future__ import annotations

from colearn_chain.chain.connection import http_web3
from colearn_chain.services.anvil import AnvilNode, listens_on


def test_a_chain_whose_port_was_taken_starts_on_another() -> None:
    with AnvilNode() as first:
        # Prepare: the second node was handed the first one's port, as a race between two sessions would.
        second = AnvilNode()
        second.port = first.port
        # Execute
        with second:
            # Assert: its own chain, on its own port, held by its own process
            assert second.port != first.port
            assert second._proc is not None and listens_on(second._proc.pid, second.port) is True
            assert first._proc is not None and listens_on(first._proc.pid, second.port) is False
            http_web3(second.url).provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            assert http_web3(second.url).eth.block_number == 1
            assert http_web3(first.url).eth.block_number == 0
