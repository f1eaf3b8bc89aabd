"""Local services on ports picked for them: a port taken between the pick and the bind is picked again.

Two test sessions side by side (or a test beside a demo) can be handed the same free port; the chain that
loses the race exits while the other one answers on that port, so "it answers" alone would make two
sessions share one chain.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from colearn_chain.chain.connection import http_web3
from colearn_chain.services.anvil import AnvilNode, ServiceError, listens_on
from colearn_chain.services.chains import chain_node


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


@pytest.mark.parametrize(("kind", "reason"), [
    ("anvil", "Address already in use"),
    ("ganache", "EADDRINUSE"),
    ("geth", "address already in use"),
])
def test_a_chain_that_cannot_start_says_why(kind: str, reason: str) -> None:
    # Prepare: the port the user asked for is held by another socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = int(holder.getsockname()[1])
        # Execute
        with pytest.raises(ServiceError) as error:
            chain_node(kind, port=port).start()
    # Assert: the chain's own words, not only its exit code
    assert str(error.value).startswith(f"{kind} exited with code") and reason in str(error.value)
    assert f"--port {port}" in str(error.value) or f"--http.port {port}" in str(error.value) \
        or f"--server.port {port}" in str(error.value)


def test_a_start_failure_quotes_only_this_start_of_a_log_file(tmp_path: Path) -> None:
    # Prepare: a log file holding an earlier run's lines
    log_path = tmp_path / "chain.log"
    log_path.write_text("an earlier run's last words\n")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        # Execute
        with pytest.raises(ServiceError) as error:
            AnvilNode(port=int(holder.getsockname()[1]), log_path=log_path).start()
    # Assert
    assert "Address already in use" in str(error.value) and "earlier run" not in str(error.value)
    assert "Address already in use" in log_path.read_text()
