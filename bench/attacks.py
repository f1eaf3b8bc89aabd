"""Hostile members against the voting protocol, side by side with federated averaging and its robust cousins.

On identical splits and the same local training routine (each learner's own ``propose_weights``: the
project's local SGD from the shared weights), one or two members attack and we measure the honest
learners' final accuracy on the global test set:

* ``voting``: the protocol (the in-memory reference driver, which the chain reproduces bit for bit), one
  proposer per epoch, ``--epochs`` epochs;
* ``fedavg``, ``median``, ``krum``: every member trains from the global model each round and the server
  combines the updates with Flower's own aggregation functions (``flwr.server.strategy.aggregate``: the
  peer, not a re-implementation); FedAvg weights by training-set size, Krum keeps one update and is told
  the true number of attackers.

Budgets: ``rounds`` gives federated learning as many rounds as voting has epochs (n times the local
trainings), ``trainings`` gives it as many local trainings (``epochs / n`` rounds). Attacks (from
tests/integration/hostile_learners.py, the same code the adversarial agent tests run): none, random,
huge, sign_flip, label_flip, free_rider, collude2 (two sign-flipping colluders; under voting they approve
each other and reject every honest proposal). Attackers sit at learner index 0 (and 1) by default: the first
proposal, against the untrained model, is theirs; ``--attacker-position P`` puts them at P (and P + 1 mod n),
for the cost of losing a particular member's data (the ``free_rider`` column: a member that brings nothing). An
attacker tests its own proposal as its honest learner would;
with ``--self-approve`` it always approves it (a stronger attacker; voting only).

Prints one JSON object ``{dataset: {system: {attack: mean honest final test accuracy}}}`` (mean over the
seeds), a second with how many of the attackers' proposals voting accepted, then Markdown tables (counts
in parentheses are of proposals that are not malicious: a free rider's or a label-flipper's). Needs Flower
(``pip install flwr==1.42.0``): brownie pins versions Flower
does not accept, so `make bench-setup` puts it in its own ``.venv-bench``.

    .venv-bench/bin/python bench/attacks.py                       # digits, wine, mnist1d; linear
    .venv-bench/bin/python bench/attacks.py --model mlp --datasets digits --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from colearn_chain import driver  # noqa: E402
from colearn_chain.learners import ClassifierLearner, learner_config, make_learner  # noqa: E402
from colearn_chain.mli import MachineLearningInterface  # noqa: E402
from colearn_chain.typing import Weights  # noqa: E402
from hostile_learners import hostile_learner  # noqa: E402

SYSTEMS = ("voting", "fedavg", "median", "krum")
ATTACKS = ("none", "random", "huge", "sign_flip", "label_flip", "free_rider", "collude2")
N_LEARNERS = 5


def _attackers(attack: str, position: int = 0) -> tuple[int, ...]:
    if attack == "none":
        return ()
    return (position, (position + 1) % N_LEARNERS) if attack == "collude2" else (position,)


def _learners(
    config: dict[str, Any], attack: str, self_approve: bool = False, position: int = 0
) -> list[MachineLearningInterface]:
    kind = "collude" if attack == "collude2" else attack
    bad = _attackers(attack, position)
    return [hostile_learner(config, i, kind, self_approve=self_approve) if i in bad else make_learner(config, i)
            for i in range(N_LEARNERS)]


def _honest_accuracy(
    learners: Sequence[MachineLearningInterface], weights: Sequence[Weights], attack: str, position: int = 0
) -> float:
    honest = [i for i in range(N_LEARNERS) if i not in _attackers(attack, position)]
    scores = []
    for i in honest:
        learner = learners[i]
        assert isinstance(learner, ClassifierLearner)
        with np.errstate(all="ignore"):
            scores.append(learner.evaluate(weights=weights[i]))
    return float(np.mean(scores))


#: Attacks whose every proposal is malicious: under voting none of them should be accepted.
MALICIOUS = ("random", "huge", "sign_flip", "collude2")


def run_voting(
    config: dict[str, Any], attack: str, epochs: int, self_approve: bool = False, position: int = 0,
    vote_threshold: float = 0.5, proposer_votes: bool = True,
) -> tuple[float, int, int]:
    """Honest accuracy, and how many of the attackers' proposals were accepted of how many they made.

    ``vote_threshold`` and ``proposer_votes`` are the contract's deployment settings (the driver decides as it does).
    """
    learners = _learners(config, attack, self_approve, position)
    with np.errstate(all="ignore"):
        results = driver.run(learners, epochs, vote_threshold=vote_threshold, proposer_votes=proposer_votes)
    theirs = [r for r in results if r.proposer in _attackers(attack, position)]
    accuracy = _honest_accuracy(learners, [ln.current_weights() for ln in learners], attack, position)
    return accuracy, sum(r.accepted for r in theirs), len(theirs)


def _flower(system: str, n_bad: int) -> Callable[[list[tuple[list[np.ndarray], int]]], list[np.ndarray]]:
    from flwr.server.strategy.aggregate import aggregate, aggregate_krum, aggregate_median

    if system == "fedavg":
        return aggregate
    if system == "median":
        return aggregate_median
    return lambda results: aggregate_krum(results, num_malicious=n_bad, to_keep=0)


def run_federated(config: dict[str, Any], attack: str, system: str, rounds: int, position: int = 0) -> float:
    learners = _learners(config, attack, position=position)
    combine = _flower(system, len(_attackers(attack, position)))
    names = sorted(learners[0].current_weights())
    global_weights = learners[0].current_weights()
    sizes = [len(ln.honest.data.train) if hasattr(ln, "honest") else len(ln.data.train) for ln in learners]  # type: ignore[attr-defined]
    for _ in range(rounds):
        results = []
        for learner, size in zip(learners, sizes, strict=True):
            learner.accept_weights({k: v.copy() for k, v in global_weights.items()})
            with np.errstate(all="ignore"):
                update = learner.propose_weights()
            results.append(([update[k] for k in names], size))
        with np.errstate(all="ignore"):
            combined = combine(results)
        global_weights = {k: np.asarray(v, dtype=np.float64) for k, v in zip(names, combined, strict=True)}
    return _honest_accuracy(learners, [global_weights] * N_LEARNERS, attack, position)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "wine", "mnist1d"])
    parser.add_argument("--model", default="linear", choices=["linear", "mlp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20, help="voting epochs (default 20)")
    parser.add_argument("--budget", default="rounds", choices=["rounds", "trainings"],
                        help="federated rounds = epochs (rounds) or epochs / n (trainings)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--learner-option", action="append", default=[], metavar="KEY=VALUE",
                        help="override a learner setting (JSON value), e.g. vote_tolerance=0.0")
    parser.add_argument("--self-approve", action="store_true",
                        help="attackers always approve their own proposals (default: they test them honestly)")
    parser.add_argument("--attacker-position", type=int, default=0, choices=range(N_LEARNERS), metavar="P",
                        help=f"the attacker's learner index, 0..{N_LEARNERS - 1} (colluders: P and P + 1 mod n)")
    parser.add_argument("--vote-threshold", type=float, default=0.5, help="the contract's threshold (default 0.5)")
    parser.add_argument("--no-proposer-votes", action="store_true",
                        help="the contract's proposerVotes=false: the proposer's own vote does not count")
    args = parser.parse_args(argv)
    position = args.attacker_position
    rounds = args.epochs if args.budget == "rounds" else max(1, args.epochs // N_LEARNERS)
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.learner_option)}
    table: dict[str, dict[str, dict[str, float]]] = {}
    accepted: dict[str, dict[str, str]] = {}
    started = time.monotonic()
    for dataset in args.datasets:
        table[dataset] = {}
        accepted[dataset] = {}
        for system in args.systems:
            table[dataset][system] = {}
            for attack in args.attacks:
                scores = []
                taken = made = 0
                for seed in args.seeds:
                    config = learner_config(
                        "numpy", dataset=dataset, model=args.model, split="dirichlet", alpha=0.5, seed=seed,
                        n_learners=N_LEARNERS, **options,
                    )
                    if system == "voting":
                        score, n_accepted, n_made = run_voting(
                            config, attack, args.epochs, args.self_approve, position, args.vote_threshold,
                            not args.no_proposer_votes)
                        scores.append(score)
                        taken, made = taken + n_accepted, made + n_made
                    else:
                        scores.append(run_federated(config, attack, system, rounds, position))
                table[dataset][system][attack] = round(float(np.mean(scores)), 4)
                if system == "voting" and attack != "none":
                    accepted[dataset][attack] = f"{taken}/{made}"
                print(f"[{time.monotonic() - started:6.0f} s] {dataset:8} {system:7} {attack:11} "
                      f"{table[dataset][system][attack]:.3f}", file=sys.stderr, flush=True)
    print(json.dumps(table))
    print(json.dumps({"attackers_proposals_accepted_under_voting": accepted}))
    for dataset, systems in table.items():
        print(f"\n{dataset} ({args.model}, Dirichlet 0.5, {N_LEARNERS} learners, seeds {args.seeds}, "
              f"{args.epochs} epochs; federated: {rounds} rounds; attacker: learner {position}"
              f"{', self-approving' if args.self_approve else ''}; voting: threshold {args.vote_threshold}"
              f"{', proposer does not vote' if args.no_proposer_votes else ''})\n")
        print("| system | " + " | ".join(args.attacks) + " |")
        print("|---|" + "---|" * len(args.attacks))
        for system, row in systems.items():
            print(f"| {system} | " + " | ".join(f"{row[a]:.3f}" for a in args.attacks) + " |")
        if accepted.get(dataset):
            print("| voting: attackers' proposals accepted | " + " | ".join(
                "-" if a == "none" else accepted[dataset].get(a, "-") if a in MALICIOUS
                else f"({accepted[dataset].get(a, '-')})"
                for a in args.attacks) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
