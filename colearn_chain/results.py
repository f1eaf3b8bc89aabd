"""The results of a run as one dict (the schema of results.json).

Every vote, score and transaction comes from the chain's history and the agents' own evaluation
logs; the final models from the agents' state dirs; the baselines (solo, centralized, the reference
driver) are recomputed in memory on learners built exactly as the agents built theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .agent import StateDir
from .chain.deployment import Deployment
from .codec import decode_weights, encode_weights
from .exceptions import ColearnChainError, LearnerContractError
from .history import History
from .learners import ClassifierLearner, baselines, make_learner
from .progress import Progress
from .typing import Weights


def _agent_weights(index: int, state_dir: Path, template: Weights) -> Weights:
    weights = StateDir(state_dir).current_weights()
    if weights is None:
        raise ColearnChainError(f"learner {index} saved no model in {state_dir}: see its agent.log there")
    return decode_weights(encode_weights(weights), expected=template)


def _pooled_baselines_absent(config: dict[str, Any], learner: object) -> str | None:
    """Why solo, centralized and the global test accuracy cannot be computed for ``config``; None if they can.

    They need a ready-made classifier's data (numpy, scikit-learn or Keras: a :class:`ClassifierLearner`):
    a global held-out test set and every learner's parts, pooled.
    """
    if not isinstance(learner, ClassifierLearner):
        return (f"they need a ready-made classifier's pooled data and global test set (numpy, scikit-learn or "
                f"Keras learners); the {config['kind']!r} learners keep their data to themselves")
    if config.get("data") is not None:
        return "the learners' own data (--data) has no global held-out test set and is not pooled"
    return None


def _weights_equal(a: Weights, b: Weights) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _epoch_transactions(record: Any) -> list[tuple[str, Any]]:
    """The epoch's transactions, each once, named for what it did."""
    named: dict[str, tuple[str, Any]] = {}
    if record.proposal is not None:
        named[record.proposal.tx.hash] = ("propose", record.proposal.tx)
    for vote in record.votes:
        named[vote.tx.hash] = ("vote", vote.tx)
    if record.close is not None:
        kind = "closing vote" if record.close.hash in named else "close"
        named[record.close.hash] = (kind, record.close)
    return list(named.values())


def assemble_results(
    *,
    settings: dict[str, Any],
    config: dict[str, Any],
    deployment: Deployment,
    rpc_url: str,
    started_chain: bool,
    history: History,
    state_dirs: Sequence[Path],
    epochs: int,
    threshold: float,
    proposer_votes: bool,
    progress_stream: TextIO | None = None,
) -> dict[str, Any]:
    """The results dict of a run (the schema of results.json), from the chain's history, the agents'
    state dirs and baselines recomputed in memory on identically built learners.

    With ``progress_stream``, each baseline shows one progress line there and the final model's
    accuracies are printed, each named by its test set (see :mod:`colearn_chain.learners.baselines`).
    """
    learners = list(deployment.learners)
    evaluations = [StateDir(d).evaluations() for d in state_dirs]
    epoch_rows = []
    for record in history.epochs[:epochs]:
        votes = []
        for i, address in enumerate(learners):
            vote = record.vote_of(address)
            own = evaluations[i].get(record.epoch, {})
            votes.append({
                "learner": i,
                "address": address,
                "approve": None if vote is None else vote.approve,
                "vote_score": None if vote is None else vote.score,
                "test_score": own.get("test_score"),
                "reason": own.get("reason"),
                "tx": None if vote is None else vote.tx.hash,
                "gas": None if vote is None else vote.tx.gas_used,
            })
        epoch_rows.append({
            "epoch": record.epoch,
            "proposer": record.proposer_index,
            "proposer_address": record.proposer,
            "outcome": record.outcome,
            "approvals": record.approvals,
            "rejections": record.rejections,
            "cid": None if record.proposal is None else record.proposal.cid,
            "digest": None if record.proposal is None else record.proposal.digest,
            "votes": votes,
            "transactions": [
                {"kind": kind, "hash": tx.hash, "block": tx.block, "from": tx.sender, "gas": tx.gas_used}
                for kind, tx in _epoch_transactions(record)
            ],
            "gas": record.gas_used,
        })

    # Final models as the agents hold them, scored on the global held-out test set and on each
    # learner's local test split (what the epoch lines report for the proposal).
    fresh = [make_learner(config, i) for i in range(len(learners))]
    template = fresh[0].current_weights()
    final_weights = [_agent_weights(i, d, template) for i, d in enumerate(state_dirs)]
    for learner, weights in zip(fresh, final_weights, strict=True):
        learner.accept_weights(weights)
    final: dict[str, Any] = {}
    absent = _pooled_baselines_absent(config, fresh[0])
    if isinstance(fresh[0], ClassifierLearner):  # the ready-made classifiers: numpy, scikit-learn, Keras
        local = baselines.local_test_accuracy(fresh)
        final = {"local_test_accuracy_mean": local.mean, "local_test_accuracy": list(local.per_learner)}
        line = f"mean local test accuracy {local.mean:.4f} (each learner's own test split)"
        if absent is None:
            accuracies = baselines.global_test_accuracy(fresh)
            final.update({"test_accuracy_mean": accuracies.mean, "test_accuracy": list(accuracies.per_learner)})
            line = f"global test accuracy {accuracies.mean:.4f} (held-out split), {line}"
        if progress_stream is not None:
            print(f"final shared model: {line}", file=progress_stream, flush=True)
    final["same_weights_everywhere"] = all(_weights_equal(final_weights[0], w) for w in final_weights[1:])

    # The in-memory reference driver on identically built learners.
    reference_learners = [make_learner(config, i) for i in range(len(learners))]
    bar = Progress("reference driver (in memory, same learners)", epochs, progress_stream)
    try:
        reference = baselines.run_epochs(
            reference_learners, epochs, bar.advance, vote_threshold=threshold, proposer_votes=proposer_votes
        )
    except LearnerContractError as error:  # the agents went on (reject, no proposal); the reference cannot
        reference_json: dict[str, Any] = {"error": str(error), "decisions_match": False, "weights_match": False}
        bar.done(f"stopped: {error}")
    else:
        chain_decisions = [e["outcome"] == "accepted" for e in epoch_rows]
        reference_decisions = [r.accepted for r in reference]
        reference_json = {
            "decisions": reference_decisions,
            "decisions_match": chain_decisions == reference_decisions,
            "weights_match": all(
                _weights_equal(w, learner.current_weights())
                for w, learner in zip(final_weights, reference_learners, strict=True)
            ),
        }
        bar.done(f"decisions match the chain: {reference_json['decisions_match']}, "
                 f"final weights match: {reference_json['weights_match']}")
    baselines_json: dict[str, Any] = {"reference": reference_json}
    if absent is not None:
        baselines_json["absent"] = {"solo": absent, "centralized": absent, "final_test_accuracy": absent}
        if progress_stream is not None:
            print(f"solo and centralized baselines, global test accuracy: not computed ({absent})",
                  file=progress_stream, flush=True)
    else:
        bar = Progress("solo baseline (each learner alone)", epochs * len(learners), progress_stream)
        solo = baselines.solo(config, epochs, on_epoch=bar.advance)
        bar.done(f"mean global test accuracy {solo.mean:.4f}")
        bar = Progress("centralized baseline (pooled training data)", epochs, progress_stream)
        central = baselines.centralized(config, epochs, on_epoch=bar.advance)
        bar.done(f"global test accuracy {central.mean:.4f}")
        baselines_json.update({
            "solo_mean": solo.mean, "solo": list(solo.per_learner), "centralized": central.mean,
        })
        reference_json["test_accuracy_mean"] = baselines.global_test_accuracy(reference_learners).mean

    return {
        "config": {**settings, "learner_config": config},
        "chain": {
            "rpc": rpc_url,
            "started_by_run": started_chain,
            "chain_id": deployment.chain_id,
            "contract": deployment.address,
            "deploy_block": deployment.block,
            "deploy_tx": deployment.tx_hash,
        },
        "learners": learners,
        "epochs": epoch_rows,
        "final": final,
        "baselines": baselines_json,
    }
