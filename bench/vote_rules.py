"""Which vote rule keeps honest accuracy under one hostile member and lets no malicious proposal in.

Voting only (no Flower needed), the same runs as ``bench/attacks.py``: 5 learners, Dirichlet 0.5, the
attacker is learner 0 (and 1), 20 epochs, mean honest final test accuracy over the seeds. For each vote
rule (a set of learner options) and dataset it prints the no-attack accuracy, the largest drop under a
single attacker (and which attack), and how many of the attackers' malicious proposals (random, huge,
sign-flipped, colluding) were accepted; then one JSON object
``{rule: {dataset: {"accuracy": {attack: acc}, "accepted": {attack: "k/m"}}}}``. With ``--self-approve`` the
attackers always approve their own proposals (``bench/attacks.py --self-approve``).

    .venv/bin/python bench/vote_rules.py                                  # every rule, linear, 3 datasets
    .venv/bin/python bench/vote_rules.py --model mlp --rules default "log-loss, tol 0.02"
    .venv/bin/python bench/vote_rules.py --self-approve --rules default "default, no untrained check"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from attacks import ATTACKS, BASELINES, MALICIOUS, N_LEARNERS, run_voting  # noqa: E402

from colearn_chain.learners import learner_config  # noqa: E402

#: The rule before this sweep: balanced accuracy, tolerance 0.02, nothing else.
_BEFORE: dict[str, Any] = {"vote_metric": "balanced_accuracy", "vote_tolerance": 0.02, "vote_confidence": 0.0,
                           "vote_small_part": 0, "vote_small_part_tolerance": 0.0,
                           "vote_untrained_tolerance": float("inf")}
_LOG_LOSS: dict[str, Any] = {**_BEFORE, "vote_metric": "log_loss"}
#: name -> learner options. "default" is whatever the learners use out of the box.
RULES: dict[str, dict[str, Any]] = {
    "default": {},
    "balanced accuracy, tol 0.02 (before)": _BEFORE,
    "balanced accuracy, tol 0": {**_BEFORE, "vote_tolerance": 0.0},
    "balanced accuracy, bound 1 se": {**_BEFORE, "vote_confidence": 1.0},
    "balanced accuracy, bound 1.64 se": {**_BEFORE, "vote_confidence": 1.64},
    "log-loss, tol 0.02": _LOG_LOSS,
    "log-loss, tol 0.05": {**_LOG_LOSS, "vote_tolerance": 0.05},
    "log-loss, bound 1 se": {**_LOG_LOSS, "vote_confidence": 1.0},
    "log-loss, bound 1.64 se": {**_LOG_LOSS, "vote_confidence": 1.64},
    "+ log-loss not worse, every part": {**_BEFORE, "vote_small_part": 10**9},
    "+ log-loss not worse below 10 samples": {**_BEFORE, "vote_small_part": 10},
    "+ log-loss not worse below 20 samples": {**_BEFORE, "vote_small_part": 20},
    "+ log-loss within 0.01 below 20 samples": {**_BEFORE, "vote_small_part": 20, "vote_small_part_tolerance": 0.01},
    "+ log-loss within 0.02 below 20 samples": {**_BEFORE, "vote_small_part": 20, "vote_small_part_tolerance": 0.02},
    "+ log-loss not worse below 40 samples": {**_BEFORE, "vote_small_part": 40},
    # The log-loss allowance against an untrained current model (default 1 nat); matters with --self-approve.
    "default, no untrained check": {"vote_untrained_tolerance": float("inf")},
    "default, untrained allowance 0": {"vote_untrained_tolerance": 0.0},
    "default, untrained allowance 0.25": {"vote_untrained_tolerance": 0.25},
    "default, untrained allowance 3": {"vote_untrained_tolerance": 3.0},
    "default, untrained allowance 10": {"vote_untrained_tolerance": 10.0},
}
SINGLE = tuple(a for a in ATTACKS if a not in (*BASELINES, "collude2"))


def sweep(rule: dict[str, Any], dataset: str, model: str, seeds: Sequence[int], attacks: Sequence[str],
          epochs: int, self_approve: bool = False) -> dict[str, dict[str, Any]]:
    """Mean honest accuracy per attack and the attackers' accepted proposals, for one rule on one dataset."""
    accuracy: dict[str, float] = {}
    accepted: dict[str, str] = {}
    for attack in attacks:
        scores, taken, made = [], 0, 0
        for seed in seeds:
            config = learner_config("numpy", dataset=dataset, model=model, split="dirichlet", alpha=0.5,
                                    seed=seed, n_learners=N_LEARNERS, **rule)
            score, n_accepted, n_made = run_voting(config, attack, epochs, self_approve)
            scores.append(score)
            taken, made = taken + n_accepted, made + n_made
        accuracy[attack] = round(float(np.mean(scores)), 4)
        if attack in MALICIOUS:
            accepted[attack] = f"{taken}/{made}"
    return {"accuracy": accuracy, "accepted": accepted}


def _summary(result: dict[str, dict[str, Any]]) -> str:
    accuracy, accepted = result["accuracy"], result["accepted"]
    none = accuracy.get("none", float("nan"))
    drops = {a: none - accuracy[a] for a in SINGLE if a in accuracy}
    worst = max(drops, key=lambda a: drops[a]) if drops else "-"
    taken = sum(int(v.split("/")[0]) for v in accepted.values())
    made = sum(int(v.split("/")[1]) for v in accepted.values())
    drop = f"{drops[worst]:+.3f} {worst}" if drops else "-"
    return f"{none:.3f} | {drop} | {accuracy.get('collude2', float('nan')):.3f} | {taken}/{made}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "wine", "mnist1d"])
    parser.add_argument("--model", default="linear", choices=["linear", "mlp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--self-approve", action="store_true", help="attackers always approve their own proposals")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for name in args.rules:
        out[name] = {}
        for dataset in args.datasets:
            out[name][dataset] = sweep(RULES[name], dataset, args.model, args.seeds, args.attacks, args.epochs,
                                       args.self_approve)
            print(f"[{time.monotonic() - started:6.0f} s] {name:30} {dataset:8} {_summary(out[name][dataset])}",
                  file=sys.stderr, flush=True)
    print(json.dumps(out))
    attackers = "attackers approve their own proposals" if args.self_approve else "attackers vote as their learner"
    print(f"\n{args.model}, Dirichlet 0.5, {N_LEARNERS} learners, seeds {args.seeds}, {args.epochs} epochs, "
          f"{attackers}: "
          "no-attack accuracy | largest drop under one attacker | two colluders | malicious proposals accepted\n")
    print("| rule | " + " | ".join(args.datasets) + " |")
    print("|---|" + "---|" * len(args.datasets))
    for name, datasets in out.items():
        print(f"| {name} | " + " | ".join(_summary(datasets[d]).replace(" | ", " / ") for d in args.datasets) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
