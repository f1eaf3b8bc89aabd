"""The protocol's shared rules: the fixed-point score scale, the proposer rotation, phase names, the model record."""

from __future__ import annotations

import math

import pytest

from colearn_chain.protocol import (
    INVALID_SCORE,
    SCORE_SCALE,
    ModelRecord,
    Phase,
    from_fixed_point,
    phase_name,
    proposer_index,
    proposer_of,
    to_fixed_point,
)


@pytest.mark.parametrize("score", [0.0, 1.0, -0.25, 0.93125, 0.1, 123.456])
def test_scores_round_trip_through_fixed_point(score: float) -> None:
    fixed = to_fixed_point(score)
    assert isinstance(fixed, int)
    assert abs(from_fixed_point(fixed) - score) <= abs(score) * 1e-15


def test_fixed_point_is_exact_clamped_and_marks_non_finite_scores() -> None:
    assert to_fixed_point(1.0) == SCORE_SCALE == 10**18
    assert to_fixed_point(-0.25) == -(SCORE_SCALE // 4)
    assert to_fixed_point(1e300) == 2**255 - 1
    assert to_fixed_point(-1e300) == INVALID_SCORE + 1  # a real score never reads as "invalid"
    assert to_fixed_point(math.nan) == to_fixed_point(math.inf) == INVALID_SCORE


def test_proposers_take_turns_in_list_order() -> None:
    learners = ["a", "b", "c"]
    assert [proposer_of(e, learners) for e in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]
    assert proposer_index(7, 3) == 1
    with pytest.raises(ValueError):
        proposer_index(0, 0)


def test_phase_names_follow_the_contract_enum() -> None:
    assert [phase_name(i) for i in range(4)] == ["Proposing", "Voting", "ProposalExpired", "VotingExpired"]
    assert phase_name(9) == "9"
    assert Phase(1) is Phase.Voting


def test_the_model_record_serialises_its_three_fields() -> None:
    record = ModelRecord("0x" + "ab" * 32, "QmX", 3)
    assert record.to_json() == {"digest": "0x" + "ab" * 32, "cid": "QmX", "since_epoch": 3}
