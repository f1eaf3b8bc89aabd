"""A run whose services cannot start says why, as an ExperimentError the CLI prints, never a traceback."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from colearn_chain.experiment import ExperimentError, ExperimentSettings, _stores


def test_per_agent_ipfs_nodes_without_a_kubo_binary_are_an_experiment_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the binary named is not executable, so no daemon ever starts
    not_a_binary = tmp_path / "ipfs"
    not_a_binary.write_text("")
    monkeypatch.setenv("COLEARN_IPFS_BIN", str(not_a_binary))
    settings = ExperimentSettings(learners=2, ipfs_topology="per-agent", out=tmp_path / "out")
    # Execute / Assert
    with contextlib.ExitStack() as stack, pytest.raises(ExperimentError) as error:
        _stores(settings, stack)
    assert str(error.value) == (f"cannot start the learners' IPFS nodes (--ipfs-topology per-agent): "
                                f"COLEARN_IPFS_BIN={str(not_a_binary)!r} is not an executable file")
