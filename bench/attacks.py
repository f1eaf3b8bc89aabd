"""Hostile members against the voting protocol, side by side with federated averaging and its robust cousins.

On identical splits and the same local training routine (each learner's own ``propose_weights``: the
project's local SGD from the shared weights), one or two members attack and we measure the honest
learners' final accuracy on the global test set (``--test-set own``: each on its own local test split):

* ``voting``: the protocol (the in-memory reference driver, which the chain reproduces bit for bit), one
  proposer per epoch, ``--epochs`` epochs;
* ``fedavg``, ``median``, ``krum``: every member trains from the global model each round and the server
  combines the updates with Flower's own aggregation functions (``flwr.server.strategy.aggregate``: the
  peer, not a re-implementation); FedAvg weights by training-set size, Krum keeps one update and is told
  the true number of attackers.

Budgets: ``rounds`` gives federated learning as many rounds as voting has epochs (n times the local
trainings), ``trainings`` gives it as many local trainings (``epochs / n`` rounds). Two baselines: ``none``
(every member honest) and ``absent`` (the attacker's member is not in the consortium: four members making as
many honest proposals, ``epochs * 4 / 5``, or federated rounds, as the runs with one attacker; what an attack
costs beyond the member's data). Attacks (from
tests/integration/hostile_learners.py, the same code the adversarial agent tests run): random,
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
from colearn_chain.learners import ClassifierLearner, federated_data, learner_config, make_learner  # noqa: E402
from colearn_chain.learners.data import LearnerData  # noqa: E402
from colearn_chain.mli import MachineLearningInterface  # noqa: E402
from colearn_chain.typing import Weights  # noqa: E402
from hostile_learners import hostile_learner  # noqa: E402

SYSTEMS = ("voting", "fedavg", "median", "krum", "centralized")
ATTACKS = ("none", "absent", "random", "huge", "sign_flip", "label_flip", "free_rider", "collude2")
N_LEARNERS = 5


def _attackers(attack: str, position: int = 0) -> tuple[int, ...]:
    if attack == "none":
        return ()
    return (position, (position + 1) % N_LEARNERS) if attack == "collude2" else (position,)


def _learners(
    config: dict[str, Any], attack: str, self_approve: bool = False, position: int = 0
) -> list[MachineLearningInterface]:
    """The consortium: honest learners and the attackers in their seats (``absent``: the attacker's seat removed)."""
    if attack == "absent":
        return [make_learner(config, i) for i in range(N_LEARNERS) if i != position]
    kind = "collude" if attack == "collude2" else attack
    bad = _attackers(attack, position)
    return [hostile_learner(config, i, kind, self_approve=self_approve) if i in bad else make_learner(config, i)
            for i in range(N_LEARNERS)]


def _honest_accuracy(
    learners: Sequence[MachineLearningInterface], weights: Sequence[Weights], test_set: str = "global",
    seats: Sequence[int] = (),
) -> float:
    """Mean test accuracy of the honest learners (attackers are skipped), each with its ``weights``.

    ``test_set="own"``: each on its own local test split (each member weighs the same), and the members in
    ``seats`` are left out even where they are honest (``none``), so the baselines and the single attacks are
    scored on the same four members; ``collude2`` on the three honest in it, not comparable to them.
    """
    scores = []
    for learner, own in zip(learners, weights, strict=True):
        if not isinstance(learner, ClassifierLearner):  # an attacker wraps its honest learner instead
            continue
        with np.errstate(all="ignore"):
            if test_set == "global":
                scores.append(learner.evaluate(weights=own))
            elif learner.data.index not in seats:
                scores.append(learner.evaluate(learner.data.test, weights=own))
    return float(np.mean(scores))


def _seats(attack: str, position: int) -> tuple[int, ...]:
    """The members an ``own`` test set leaves out: the attacker's seat, for the baselines too (both seats for
    ``collude2``, whose measure is the count of malicious proposals accepted)."""
    return _attackers("collude2" if attack == "collude2" else "single", position)


#: Not attacks: every member honest, or the attacker's member not in the consortium at all.
BASELINES = ("none", "absent")
#: Attacks whose every proposal is malicious: under voting none of them should be accepted.
MALICIOUS = ("random", "huge", "sign_flip", "collude2")


def run_voting(
    config: dict[str, Any], attack: str, epochs: int, self_approve: bool = False, position: int = 0,
    vote_threshold: float = 0.5, proposer_votes: bool = True, test_set: str = "global",
) -> tuple[float, int, int]:
    """Honest accuracy, and how many of the attackers' proposals were accepted of how many they made.

    ``vote_threshold`` and ``proposer_votes`` are the contract's deployment settings (the driver decides as it does).
    """
    learners = _learners(config, attack, self_approve, position)
    if attack == "absent":  # as many honest proposals as a run with one attacker makes
        epochs = epochs * (N_LEARNERS - 1) // N_LEARNERS
    with np.errstate(all="ignore"):
        results = driver.run(learners, epochs, vote_threshold=vote_threshold, proposer_votes=proposer_votes)
    theirs = [r for r in results if not isinstance(learners[r.proposer], ClassifierLearner)]
    accuracy = _honest_accuracy(learners, [ln.current_weights() for ln in learners], test_set,
                                _seats(attack, position))
    return accuracy, sum(r.accepted for r in theirs), len(theirs)


def _flower(system: str, n_bad: int) -> Callable[[list[tuple[list[np.ndarray], int]]], list[np.ndarray]]:
    from flwr.server.strategy.aggregate import aggregate, aggregate_krum, aggregate_median

    if system == "fedavg":
        return aggregate
    if system == "median":
        return aggregate_median
    return lambda results: aggregate_krum(results, num_malicious=n_bad, to_keep=0)


def run_federated(
    config: dict[str, Any], attack: str, system: str, rounds: int, position: int = 0, test_set: str = "global",
) -> float:
    learners = _learners(config, attack, position=position)
    combine = _flower(system, 0 if attack == "absent" else len(_attackers(attack, position)))
    names = sorted(learners[0].current_weights())
    global_weights = learners[0].current_weights()
    sizes = [len(ln.data.train) if isinstance(ln, ClassifierLearner) else len(ln.honest.data.train)  # type: ignore[attr-defined]
             for ln in learners]
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
    return _honest_accuracy(learners, [global_weights] * len(learners), test_set, _seats(attack, position))


def run_centralized(
    config: dict[str, Any], attack: str, epochs: int, position: int = 0, test_set: str = "global",
) -> float:
    """One learner on the consortium members' pooled data (``absent``: without the attacker's member's part).

    No protocol at all: what the member's data is worth to a model trained in one place. Baselines only.
    """
    full = learner_config(**{**config, "scaling": "pooled"})
    federated = federated_data(full)
    members = federated.without(position) if attack == "absent" else federated
    first = make_learner(full, 0)
    assert isinstance(first, ClassifierLearner)
    pooled = LearnerData(
        index=0, train=members.pooled_train(), vote=members.pooled_vote(), test=members.pooled_test(),
        global_test=federated.learners[0].global_test,
        n_classes=federated.n_classes,
    )
    learner = type(first)(pooled, first.model, index=0, seed=full["seed"], training=first.training,
                          vote_rule=first.vote_rule)
    with np.errstate(all="ignore"):
        driver.run([learner], epochs)
        if test_set == "own":  # the pooled model on each honest member's own test split
            seats = _seats(attack, position)
            return float(np.mean([learner.evaluate(part.test) for part in federated.learners
                                  if part.index not in seats]))
    return _honest_accuracy([learner], [learner.current_weights()])


_TEST_SETS = {"global": "global test set", "own": "honest members' own test splits"}
Table = dict[str, dict[str, dict[str, float]]]
Accepted = dict[str, dict[str, tuple[int, int]]]


def measure(args: argparse.Namespace, position: int, started: float) -> tuple[Table, Accepted]:
    """Every dataset x system x attack of ``args`` with the attacker at ``position``: mean accuracy over the seeds."""
    rounds = args.epochs if args.budget == "rounds" else max(1, args.epochs // N_LEARNERS)
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.learner_option)}
    table: Table = {}
    accepted: Accepted = {}
    for dataset in args.datasets:
        table[dataset] = {}
        accepted[dataset] = {}
        for system in args.systems:
            table[dataset][system] = {}
            for attack in args.attacks:
                if system == "centralized" and attack not in BASELINES:
                    continue
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
                            not args.no_proposer_votes, args.test_set)
                        scores.append(score)
                        taken, made = taken + n_accepted, made + n_made
                    elif system == "centralized":
                        scores.append(run_centralized(config, attack, args.epochs, position, args.test_set))
                    else:
                        scores.append(run_federated(config, attack, system, rounds, position, args.test_set))
                table[dataset][system][attack] = round(float(np.mean(scores)), 4)
                if system == "voting" and attack not in BASELINES:
                    accepted[dataset][attack] = (taken, made)
                print(f"[{time.monotonic() - started:6.0f} s] P{position} {dataset:8} {system:11} {attack:11} "
                      f"{table[dataset][system][attack]:.3f}", file=sys.stderr, flush=True)
    return table, accepted


def print_tables(args: argparse.Namespace, position: int, table: Table, accepted: Accepted) -> None:
    """The two JSON lines, then a Markdown table per dataset."""
    rounds = args.epochs if args.budget == "rounds" else max(1, args.epochs // N_LEARNERS)
    print(json.dumps(table))
    print(json.dumps({"attackers_proposals_accepted_under_voting": {
        dataset: {a: f"{t}/{m}" for a, (t, m) in counts.items()} for dataset, counts in accepted.items()}}))
    for dataset, systems in table.items():
        print(f"\n{dataset} ({args.model}, Dirichlet 0.5, {N_LEARNERS} learners, seeds {args.seeds}, "
              f"{args.epochs} epochs; federated: {rounds} rounds; attacker: learner {position}"
              f"{', self-approving' if args.self_approve else ''}; voting: threshold {args.vote_threshold}"
              f"{', proposer does not vote' if args.no_proposer_votes else ''}; {_TEST_SETS[args.test_set]})\n")
        print("| system | " + " | ".join(args.attacks) + " |")
        print("|---|" + "---|" * len(args.attacks))
        for system, row in systems.items():
            print(f"| {system} | " + " | ".join(f"{row[a]:.3f}" if a in row else "-" for a in args.attacks) + " |")
        if accepted.get(dataset):
            print("| voting: attackers' proposals accepted | "
                  + " | ".join(_count(accepted[dataset], a) for a in args.attacks) + " |")


def _count(accepted: dict[str, tuple[int, int]], attack: str) -> str:
    """``taken/made``, in parentheses for proposals that are not malicious (a free rider's, a label-flipper's)."""
    if attack not in accepted:
        return "-"
    taken, made = accepted[attack]
    return f"{taken}/{made}" if attack in MALICIOUS else f"({taken}/{made})"


def _cell(row: dict[str, float], attack: str) -> str:
    return f"{row[attack]:.3f}" if attack in row else "-"


def print_summary(args: argparse.Namespace, runs: dict[int, tuple[Table, Accepted]]) -> None:
    """Voting at every position measured: each single attack's drop from ``none`` and from ``absent``."""
    single = [a for a in args.attacks if a not in (*BASELINES, "collude2")]
    print(f"\nvoting by attacker position ({args.model}, seeds {args.seeds}, {args.epochs} epochs"
          f"{', self-approving' if args.self_approve else ''}; {_TEST_SETS[args.test_set]}): worst single attack, "
          "its drop from no attack and from the run without the attacker's member; malicious proposals accepted\n")
    print("| dataset | P | none | absent | worst single attack | drop from none | drop from absent | collude2 "
          "| malicious accepted | centralized none / absent |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        for position, (table, accepted) in runs.items():
            row = table[dataset].get("voting", {})
            worst = min(single, key=lambda a: row[a]) if single and all(a in row for a in single) else None
            central = table[dataset].get("centralized", {})
            malicious = [accepted[dataset][a] for a in MALICIOUS if a in accepted[dataset]]
            drops = [f"{row[base] - row[worst]:+.3f}" if worst and base in row else "-" for base in BASELINES]
            print(f"| {dataset} | {position} | {_cell(row, 'none')} | {_cell(row, 'absent')} | "
                  f"{f'{row[worst]:.3f} ({worst})' if worst else '-'} | {drops[0]} | {drops[1]} | "
                  f"{_cell(row, 'collude2')} | {sum(t for t, _ in malicious)}/{sum(m for _, m in malicious)} | "
                  f"{_cell(central, 'none')} / {_cell(central, 'absent')} |")


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
    parser.add_argument("--attacker-position", type=int, nargs="+", default=[0], choices=range(N_LEARNERS),
                        metavar="P", help=f"the attacker's learner index, 0..{N_LEARNERS - 1} (colluders: P and "
                        "P + 1 mod n); several: one run each, then a summary table by position")
    parser.add_argument("--vote-threshold", type=float, default=0.5, help="the contract's threshold (default 0.5)")
    parser.add_argument("--test-set", default="global", choices=["global", "own"],
                        help="where honest accuracy is measured: the global held-out test set (default), or each "
                        "honest member's own local test split (the data it trains for; the attacker's seat is left "
                        "out of every run, the baselines' too; collude2 is scored on the three members honest in "
                        "it, so its number is not comparable to the others)")
    parser.add_argument("--no-proposer-votes", action="store_true",
                        help="the contract's proposerVotes=false: the proposer's own vote does not count")
    args = parser.parse_args(argv)
    started = time.monotonic()
    runs = {}
    for position in args.attacker_position:
        runs[position] = measure(args, position, started)
        print_tables(args, position, *runs[position])
    if len(runs) > 1 and "voting" in args.systems:
        print_summary(args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
