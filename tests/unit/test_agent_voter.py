"""The voter's judgement of a proposal: every bad blob is a reject with a reason, a good one is tested."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colearn_chain.agent import (
    INVALID_PROPOSAL_SCORE,
    SCORE_SCALE,
    StateDir,
    evaluate_proposal,
    to_fixed_point,
)
from colearn_chain.agent.voter import FETCH_SLACK, fetch_limit
from colearn_chain.codec import decode_weights, digest_hex, encode_weights
from colearn_chain.exceptions import StoreUnavailable
from colearn_chain.learners.toy import ToyLearner
from colearn_chain.mli import ProposedWeights
from colearn_chain.store import LocalStore
from colearn_chain.store.unixfs import cid_v0
from colearn_chain.typing import Weights


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blobs")


def test_good_proposal_is_tested_and_scored(store: LocalStore) -> None:
    # Prepare
    proposer, voter = ToyLearner(0), ToyLearner(1)
    blob = encode_weights(proposer.propose_weights())
    cid = store.put(blob)

    # Execute
    verdict = evaluate_proposal(voter, store, cid, digest_hex(blob), max_bytes=1 << 20)

    # Assert
    expected = voter.test_weights(decode_weights(blob))
    assert verdict.reason is None
    assert verdict.approve == expected.vote
    assert verdict.score == to_fixed_point(expected.vote_score)
    assert verdict.weights is not None and verdict.blob == blob


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("tampered", "DigestMismatch"),
        ("missing", "CidNotFound"),
        ("oversized", "BlobTooLarge"),
        ("wrong-shape", "WeightsMismatch"),
        ("wrong-dtype", "WeightsMismatch"),
        ("garbage", "WeightsMismatch"),
        ("non-finite", "NaN or infinite"),
    ],
)
def test_bad_proposal_is_a_reject_with_a_reason(store: LocalStore, kind: str, reason: str) -> None:
    # Prepare
    blobs = {
        "tampered": encode_weights({"w": np.ones(4)}),
        "missing": encode_weights({"w": np.full(4, 3.0)}),
        "oversized": encode_weights({"w": np.zeros(512)}),
        "wrong-shape": encode_weights({"w": np.zeros(5)}),
        "wrong-dtype": encode_weights({"w": np.zeros(4, dtype=np.float32)}),
        "garbage": b"not safetensors at all",
        "non-finite": encode_weights({"w": np.array([0.0, np.nan, 0.0, 0.0])}),
    }
    blob = blobs[kind]
    cid = cid_v0(blob) if kind == "missing" else store.put(blob)
    digest = digest_hex(blob + b"!") if kind == "tampered" else digest_hex(blob)

    # Execute
    verdict = evaluate_proposal(ToyLearner(1), store, cid, digest, max_bytes=1024)

    # Assert
    assert not verdict.approve
    assert verdict.score == INVALID_PROPOSAL_SCORE
    assert verdict.reason is not None and reason in verdict.reason
    # Only a blob that could not be fetched is worth asking for again; a bad blob is final.
    assert verdict.retryable == (kind == "missing")


class _AdoptingVoter(ToyLearner):
    """Breaks the interface: testing a proposal adopts it."""

    def test_weights(self, weights: Weights) -> ProposedWeights:
        self.accept_weights(weights)
        return super().test_weights(weights)


class _ScorelessVoter(ToyLearner):
    """Breaks the interface: no verdict at all."""

    def test_weights(self, weights: Weights) -> ProposedWeights:
        return None  # type: ignore[return-value]


@pytest.mark.parametrize(("learner", "reason"), [
    (_AdoptingVoter(1), "learner _AdoptingVoter: test_weights changed the current weights (tensor 'w'): "
                       "they may change only through accept_weights (restored)"),
    (_ScorelessVoter(1), "learner _ScorelessVoter: test_weights must return colearn_chain.mli.ProposedWeights, "
                         "got NoneType"),
])
def test_a_learner_breaking_the_interface_in_its_test_is_a_reject_with_the_reason(
    store: LocalStore, learner: ToyLearner, reason: str
) -> None:
    # Prepare
    blob = encode_weights(ToyLearner(0).propose_weights())
    cid = store.put(blob)

    # Execute
    verdict = evaluate_proposal(learner, store, cid, digest_hex(blob), max_bytes=1 << 20)

    # Assert: a final reject naming the method and the fault; the learner's own model is back as it was
    assert not verdict.approve and not verdict.retryable and verdict.score == INVALID_PROPOSAL_SCORE
    assert verdict.reason == f"LearnerContractError: {reason}"
    assert np.array_equal(learner.current_weights()["w"], np.zeros(4))


def test_unavailable_store_is_a_retryable_reject() -> None:
    # Prepare
    class DownStore:
        def get(self, cid: str, *, max_bytes: int) -> bytes:
            raise StoreUnavailable("down")

    # Execute
    verdict = evaluate_proposal(ToyLearner(1), DownStore(), "Qm", "0x" + "00" * 32, max_bytes=1024)  # type: ignore[arg-type]

    # Assert
    assert verdict.retryable and not verdict.approve and verdict.score == INVALID_PROPOSAL_SCORE
    assert verdict.reason == "StoreUnavailable: down"


def test_fetch_limit_is_the_model_size_plus_slack_within_the_cap() -> None:
    # Prepare
    learner = ToyLearner(1)
    size = len(encode_weights(learner.current_weights()))

    # Execute / Assert
    assert fetch_limit(learner.current_weights(), 256 << 20) == size + FETCH_SLACK
    assert fetch_limit(learner.current_weights(), 1024) == 1024  # --max-blob-bytes still bounds it


def test_proposal_far_larger_than_the_model_is_refused_unread(store: LocalStore) -> None:
    # Prepare: a blob of the right name but 100k values, well under the 256 MiB default cap
    blob = encode_weights({"w": np.zeros(100_000)})
    cid = store.put(blob)
    learner = ToyLearner(1)

    # Execute
    verdict = evaluate_proposal(learner, store, cid, digest_hex(blob),
                                max_bytes=fetch_limit(learner.current_weights(), 256 << 20))

    # Assert
    assert not verdict.retryable and verdict.reason is not None and "BlobTooLarge" in verdict.reason


def test_fixed_point_scores() -> None:
    assert to_fixed_point(1.0) == SCORE_SCALE
    assert to_fixed_point(-0.25) == -SCORE_SCALE // 4
    assert to_fixed_point(float("nan")) == INVALID_PROPOSAL_SCORE
    assert to_fixed_point(1e300) == 2**255 - 1


def test_state_dir_keeps_every_model_and_names_the_current(tmp_path: Path) -> None:
    # Prepare
    state = StateDir(tmp_path / "state")
    first, second = encode_weights({"w": np.zeros(4)}), encode_weights({"w": np.ones(4)})

    # Execute
    state.save_model(0, digest_hex(first), cid_v0(first), first)
    state.save_model(4, digest_hex(second), cid_v0(second), second)

    # Assert
    current = state.current()
    assert current is not None and current.since_epoch == 4 and current.digest == digest_hex(second)
    weights = state.current_weights()
    assert weights is not None and np.array_equal(weights["w"], np.ones(4))
    models = sorted(p.name for p in (tmp_path / "state" / "models").iterdir())
    assert models == ["epoch-000003.safetensors", "initial.safetensors"]
    assert state.blob_for(digest_hex(first)) is None  # only the current model is served


def test_evaluations_keep_the_last_judgement_per_epoch(tmp_path: Path) -> None:
    # Prepare
    state = StateDir(tmp_path / "state")
    common = {"digest": "0x" + "11" * 32, "cid": "Qm", "vote_score": None, "test_score": None}

    # Execute
    state.record_evaluation(3, approve=False, score=INVALID_PROPOSAL_SCORE, reason="CidNotFound: gone", **common)
    state.record_evaluation(3, approve=True, score=SCORE_SCALE, reason=None, **common)
    state.record_evaluation(4, approve=False, score=-1, reason=None, **common)

    # Assert
    records = state.evaluations()
    assert sorted(records) == [3, 4]
    assert records[3]["approve"] is True and records[3]["score"] == SCORE_SCALE and records[3]["reason"] is None


def test_a_blob_already_held_is_judged_without_the_store(store: LocalStore) -> None:
    # Prepare: our own proposal, which the store does not hold
    proposer, voter = ToyLearner(0), ToyLearner(1)
    blob = encode_weights(proposer.propose_weights())

    # Execute
    held = evaluate_proposal(voter, store, cid_v0(blob), digest_hex(blob), max_bytes=1 << 20, cached=blob)
    other = evaluate_proposal(voter, store, cid_v0(blob), digest_hex(blob), max_bytes=1 << 20, cached=b"other bytes")

    # Assert: the held blob is tested; a held blob of another digest is ignored (and the store has nothing)
    assert held.reason is None and held.blob == blob
    assert held.approve == voter.test_weights(decode_weights(blob)).vote
    assert other.retryable and other.reason is not None and "CidNotFound" in other.reason
