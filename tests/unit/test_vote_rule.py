"""The vote rule as pure logic: per-sample scores, the plain tolerance, the log-loss checks (small vote part,
untrained current model), bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colearn_chain.learners import learner_config, make_learner
from colearn_chain.learners.numpy_models import ClassifierLearner
from colearn_chain.learners.vote_rule import VoteRule, chance_score, lower_bound, sample_scores

#: Four samples of two classes, three of class 0: balanced accuracy weighs each class equally.
Y = np.array([0, 0, 0, 1])


def _logits(predicted: list[int], margin: float, n_classes: int = 2) -> np.ndarray:
    """Class scores predicting ``predicted`` with ``margin`` between the predicted class and the others."""
    z = np.zeros((len(predicted), n_classes))
    z[np.arange(len(predicted)), predicted] = margin
    return z


def test_sample_scores_are_the_metric_per_sample() -> None:
    # Prepare: right on the three class-0 samples, wrong on the class-1 sample.
    logits = _logits([0, 0, 0, 0], 2.0)
    # Execute
    accuracy = sample_scores(logits, Y, "accuracy")
    balanced = sample_scores(logits, Y, "balanced_accuracy")
    loss = sample_scores(logits, Y, "log_loss")
    # Assert
    assert accuracy.mean == 0.75 and balanced.mean == 0.5
    np.testing.assert_allclose(balanced.weights, [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    p_right = np.exp(2.0) / (np.exp(2.0) + 1.0)
    np.testing.assert_allclose(loss.values, np.log([p_right, p_right, p_right, 1 - p_right]))
    for scores in (accuracy, balanced, loss):
        assert np.isclose(np.dot(scores.weights, scores.values), scores.mean)
        assert np.isclose(scores.weights.sum(), 1.0)


def test_non_finite_class_scores_count_as_wrong_and_nothing_scores_zero() -> None:
    # Prepare
    logits = _logits([0, 0, 0, 1], 2.0)
    logits[0, 1] = np.inf
    # Execute
    accuracy = sample_scores(logits, Y, "accuracy")
    loss = sample_scores(logits, Y, "log_loss")
    empty = sample_scores(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), "log_loss")
    # Assert
    assert accuracy.values.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert loss.values[0] == np.log(1e-12) and np.all(np.isfinite(loss.values))
    assert empty.mean == 0.0 and empty.values.size == 0


def test_plain_rule_approves_ties_and_losses_within_the_tolerance_only() -> None:
    # Prepare: the proposal gets the class-1 sample wrong, a loss of 0.5 balanced accuracy.
    rule = VoteRule(tolerance=0.02, small_part=0)
    current = rule.scores(_logits([0, 0, 0, 1], 2.0), Y)
    worse = rule.scores(_logits([0, 0, 0, 0], 2.0), Y)
    # Execute / Assert
    assert rule.approves(current, current)
    assert not rule.approves(worse, current)
    assert VoteRule(tolerance=0.5, small_part=0).approves(worse, current)


def test_a_small_vote_part_also_needs_log_loss_not_worse() -> None:
    # Prepare: the same predicted classes (an accuracy tie), with much less confidence: what a
    # sign-flipped update looks like on a few samples.
    rule = VoteRule(tolerance=0.02, small_part=len(Y) + 1)
    current = rule.scores(_logits([0, 0, 0, 1], 3.0), Y)
    unsure = rule.scores(_logits([0, 0, 0, 1], 0.5), Y)
    surer = rule.scores(_logits([0, 0, 0, 1], 4.0), Y)
    # Execute / Assert
    assert unsure.metric.mean == current.metric.mean
    assert not rule.approves(unsure, current)
    assert rule.approves(surer, current)
    assert VoteRule(tolerance=0.02, small_part=len(Y)).approves(unsure, current)  # not small: accuracy decides
    assert VoteRule(tolerance=0.02, small_part=0).approves(unsure, current)
    gap = current.log_loss - unsure.log_loss
    assert VoteRule(small_part=len(Y) + 1, small_part_tolerance=gap).approves(unsure, current)


def test_the_log_loss_check_never_approves_what_the_metric_rejects() -> None:
    # Prepare: more confident, but wrong on the class-1 sample.
    rule = VoteRule(tolerance=0.02, small_part=100)
    current = rule.scores(_logits([0, 0, 0, 1], 0.1), Y)
    confident_but_wrong = rule.scores(_logits([0, 0, 0, 0], 8.0), Y)
    # Execute / Assert
    assert not rule.approves(confident_but_wrong, current)


def test_against_an_untrained_current_model_log_loss_must_not_collapse() -> None:
    # Prepare: two classes, two samples each. The current model guesses (balanced accuracy 0.5, within
    # GUESS_MARGIN of chance); the proposal gets one more sample right by luck and is wildly
    # confident and wrong on another: what random weights look like at epoch 0.
    y = np.array([0, 0, 1, 1])
    rule = VoteRule(small_part=0)
    untrained = rule.scores(_logits([0, 0, 0, 0], 0.1), y)
    lucky = rule.scores(_logits([0, 0, 1, 0], 30.0), y)
    modest = rule.scores(_logits([0, 0, 1, 0], 1.0), y)
    # Execute / Assert
    assert rule.guessing(untrained) and not rule.guessing(lucky)
    assert lucky.metric.mean > untrained.metric.mean + rule.tolerance  # accuracy alone would approve
    assert untrained.log_loss - lucky.log_loss > rule.untrained_tolerance
    assert not rule.approves(lucky, untrained)
    assert rule.approves(modest, untrained)  # an honest improvement moves log-loss far less than 1 nat
    assert VoteRule(small_part=0, untrained_tolerance=float("inf")).approves(lucky, untrained)


def test_the_untrained_check_leaves_a_trained_current_model_and_a_single_class_alone() -> None:
    # Prepare: a current model already better than guessing, and a vote part of one class (no chance level).
    y = np.array([0, 0, 1, 1])
    rule = VoteRule(small_part=0)
    trained = rule.scores(_logits([0, 0, 1, 0], 0.1), y)
    confident = rule.scores(_logits([0, 0, 1, 0], 30.0), y)
    one_class = rule.scores(_logits([1, 1], 0.1), np.array([0, 0]))
    # Execute / Assert: accuracy decides as before
    assert not rule.guessing(trained) and trained.log_loss - confident.log_loss > rule.untrained_tolerance
    assert rule.approves(confident, trained)
    assert one_class.chance is None and not rule.guessing(one_class)


def test_lower_bound_subtracts_standard_errors_of_the_paired_differences() -> None:
    # Prepare
    equal = np.full(4, 0.25)
    spread = np.array([0.2, -0.2, 0.2, -0.2])
    # Execute / Assert
    assert lower_bound(np.full(4, 0.1), equal, 2.0) == pytest.approx(0.1)  # no spread, no penalty
    assert lower_bound(spread, equal, 0.0) == pytest.approx(0.0)
    se = np.sqrt(np.sum((0.25 * spread) ** 2) * 4 / 3)
    assert lower_bound(spread, equal, 1.0) == pytest.approx(-se)
    assert lower_bound(np.array([-0.3]), np.array([1.0]), 5.0) == -0.3  # one sample: no spread to measure
    assert lower_bound(np.zeros(0), np.zeros(0), 1.0) == 0.0


def test_confidence_rejects_a_mean_tie_that_rests_on_noise() -> None:
    # Prepare: the proposal wins one sample and loses another: a tie of means, with spread.
    y = np.array([0, 1, 0, 1])
    plain = VoteRule(metric="accuracy", tolerance=0.02, small_part=0)
    bounded = VoteRule(metric="accuracy", tolerance=0.02, confidence=1.0, small_part=0)
    current = plain.scores(_logits([0, 0, 0, 1], 2.0), y)
    swapped = plain.scores(_logits([1, 1, 0, 1], 2.0), y)
    # Execute / Assert
    assert swapped.metric.mean == current.metric.mean
    assert plain.approves(swapped, current)
    assert not bounded.approves(swapped, current)
    assert bounded.approves(current, current)


@pytest.mark.parametrize("settings", [
    {"metric": "f1"}, {"tolerance": -0.1}, {"tolerance": float("nan")}, {"confidence": -1.0},
    {"confidence": float("inf")}, {"small_part": -1}, {"small_part_tolerance": -0.01},
    {"untrained_tolerance": -1.0}, {"untrained_tolerance": float("nan")},
])
def test_bad_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VoteRule(**settings)  # type: ignore[arg-type]


def test_chance_score_is_guessing_among_the_present_classes() -> None:
    assert chance_score("balanced_accuracy", Y) == 0.5
    assert chance_score("log_loss", np.array([0, 1, 2])) == pytest.approx(-np.log(3))
    assert chance_score("accuracy", np.array([1, 1])) is None


def test_the_vote_settings_reach_the_learner_through_a_json_config() -> None:
    # Prepare
    config = json.loads(json.dumps(learner_config(
        n_learners=3, vote_confidence=1.5, vote_small_part=7.0, vote_small_part_tolerance=0.01,
        vote_untrained_tolerance=2,
    )))
    # Execute
    learner = make_learner(config, 1)
    # Assert
    assert isinstance(learner, ClassifierLearner)
    assert learner.vote_rule == VoteRule(confidence=1.5, small_part=7, small_part_tolerance=0.01,
                                         untrained_tolerance=2.0)
