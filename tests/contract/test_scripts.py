"""scripts/deploy.py and scripts/status.py, run as `brownie run` runs them, on the test chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colearn_chain.chain.deployment import Deployment
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.store.unixfs import cid_v0
from conftest import current_model


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "initial.safetensors"
    path.write_bytes(encode_weights({"w": np.arange(6, dtype=np.float64).reshape(2, 3)}))
    return path


def test_deploy_script_records_deployment(
    CollectiveLearning: Any, accounts: Any, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    from scripts import deploy

    record_path = tmp_path / "deployment.json"
    learners = [str(a) for a in accounts[2:5]]
    monkeypatch.setenv("COLEARN_LEARNERS", ",".join(learners))
    monkeypatch.setenv("COLEARN_THRESHOLD", "0.6667")
    monkeypatch.setenv("COLEARN_VOTING_TIMEOUT", "42")
    monkeypatch.setenv("COLEARN_COLEARN_VARIANT", "1")
    monkeypatch.setenv("COLEARN_DEPLOYMENT", str(record_path))
    # Execute
    returned = deploy.main(str(model_file))
    # Assert: the record on disk, the return value and the chain agree
    record = Deployment.load(record_path)
    assert record == returned
    contract = CollectiveLearning.at(record.address)
    blob = model_file.read_bytes()
    assert (record.initial_digest, record.initial_cid) == (digest_hex(blob), cid_v0(blob))
    assert current_model(contract) == (record.initial_digest, record.initial_cid, 0)
    assert [str(a) for a in contract.learners()] == learners == record.learners
    assert (contract.voteThresholdBps(), record.vote_threshold_bps) == (6667, 6667)
    assert contract.votingTimeout() == record.voting_timeout == 42
    assert contract.proposerVotes() is False and record.proposer_votes is False
    assert record.block == contract.tx.block_number


def test_status_script_prints_epoch_and_model(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    from scripts import deploy, status

    monkeypatch.setenv("COLEARN_DEPLOYMENT", str(tmp_path / "deployment.json"))
    record = deploy.main(str(model_file))
    capsys.readouterr()
    # Execute
    status.main()
    # Assert
    out = capsys.readouterr().out
    assert record.address in out
    assert "epoch      0  phase Proposing" in out
    assert f"model      {record.initial_cid}" in out


def test_deploy_script_without_model_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from scripts import deploy

    monkeypatch.delenv("COLEARN_INITIAL_MODEL", raising=False)
    with pytest.raises(SystemExit, match="initial model"):
        deploy.main()
