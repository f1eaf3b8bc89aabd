"""Does the shared model really improve? Collective vs solo vs centralized, in memory.

Runs the reference driver (colearn_chain.driver) on the ready-made learners and prints, for each
dataset x split x model, the mean over seeds of: the collective's final global test accuracy
(mean over learners), the solo learners' mean, the centralized model, and the accepted epochs.

    python bench/learning.py                 # the table with the package defaults (3 seeds)
    python bench/learning.py --sweep         # the experiment that chose the defaults (digits)
    python bench/learning.py --json out.json # also write every number

Both finish in about a minute on 2 cores; the README quotes the numbers that chose the defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one process per core; tiny matrices gain nothing from threads
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colearn_chain.learners import federated_data, learner_config
from colearn_chain.learners.baselines import centralized, collective, solo

#: The ablation: one setting changed at a time over the package defaults. "issue baseline"
#: approximates the quick simulation quoted in issue 4: accuracy votes with ties approving,
#: 10 local passes, a plain softmax over all classes, no proximal term, no class weights.
SWEEP: dict[str, dict[str, Any]] = {
    "issue baseline": {"vote_metric": "accuracy", "vote_tolerance": 0.0, "mask_absent_classes": False,
                       "prox": 0.0, "class_weight": None},
    "defaults": {},
    "vote accuracy": {"vote_metric": "accuracy"},
    "vote log_loss tol 0.05": {"vote_metric": "log_loss", "vote_tolerance": 0.05},
    "vote tol 0 (ties approve)": {"vote_tolerance": 0.0},
    "prox 0": {"prox": 0.0},
    "prox 0.3": {"prox": 0.3},
    "no class weight": {"class_weight": None},
    "no class mask": {"mask_absent_classes": False},
    "local_epochs 1": {"local_epochs": 1},
    "local_epochs 3": {"local_epochs": 3},
    "local_epochs 20": {"local_epochs": 20},
    "lr 0.02": {"learning_rate": 0.02},
    "lr 0.2": {"learning_rate": 0.2},
    "scaling pooled (all learners' statistics)": {"scaling": "pooled"},
    "scaling local (each its own)": {"scaling": "local"},
}


def evaluate(config: dict[str, Any], epochs: int, baselines: bool = True) -> dict[str, Any]:
    """Collective (and, if asked, solo and centralized) on one config; the unit of work of both modes."""
    federated_data(config)  # load and split before timing the epochs
    started = time.perf_counter()
    results, final = collective(config, epochs)
    seconds = time.perf_counter() - started
    return {
        "collective": final.mean,
        "solo_mean": solo(config, epochs).mean if baselines else float("nan"),
        "centralized": centralized(config, epochs).mean if baselines else float("nan"),
        "accepted": sum(r.accepted for r in results),
        "seconds_per_epoch": seconds / max(epochs, 1),
    }


def _mean_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("collective", "solo_mean", "centralized", "accepted", "seconds_per_epoch")
    out: dict[str, Any] = {k: statistics.fmean(r[k] for r in rows) for k in keys}
    out["collective_min"] = min(r["collective"] for r in rows)
    out["collective_per_seed"] = [round(r["collective"], 4) for r in rows]
    return out


def _run_grid(
    jobs: list[tuple[tuple[Any, ...], dict[str, Any], bool]], epochs: int, workers: int
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Evaluate every (key, config, with baselines) job; average the seeds sharing a key."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        outputs = list(
            pool.map(evaluate, [j[1] for j in jobs], itertools.repeat(epochs), [j[2] for j in jobs], chunksize=4)
        )
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for (key, _, _), out in zip(jobs, outputs, strict=True):
        grouped.setdefault(key, []).append(out)
    return {key: _mean_over_seeds(rows) for key, rows in grouped.items()}


def table(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults over dataset x split x model."""
    jobs = []
    for dataset, split, model, seed in itertools.product(
        args.datasets, ("iid", "dirichlet"), ("linear", "mlp"), args.seeds
    ):
        cfg = learner_config(
            n_learners=args.learners, dataset=dataset, split=split, alpha=args.alpha, model=model, seed=seed
        )
        jobs.append(((dataset, split, model), cfg, True))
    results = _run_grid(jobs, args.epochs, args.workers)
    print(
        f"{'dataset':<14}{'split':<11}{'model':<8}{'collective':>11}{'(min)':>8}{'solo mean':>11}{'central':>9}"
        f"{'accepted':>10}{'s/epoch':>9}"
    )
    for (dataset, split, model), r in results.items():
        name = split if split == "iid" else f"dir{args.alpha}"
        print(f"{dataset:<14}{name:<11}{model:<8}{r['collective']:>11.3f}{r['collective_min']:>8.3f}{r['solo_mean']:>11.3f}"
              f"{r['centralized']:>9.3f}{r['accepted']:>7.1f}/{args.epochs:<2}{r['seconds_per_epoch']:>9.3f}")
    return {"/".join(k): v for k, v in results.items()}


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """One setting changed at a time over the defaults, on digits, both splits and models.

    The baselines are computed for the defaults only.
    """
    jobs = []
    for (name, overrides), split, model, seed in itertools.product(
        SWEEP.items(), ("iid", "dirichlet"), ("linear", "mlp"), args.seeds
    ):
        cfg = learner_config(
            n_learners=args.learners, dataset="digits", split=split, alpha=args.alpha, model=model, seed=seed,
            **overrides,
        )
        jobs.append(((name, split, model), cfg, name == "defaults"))
    results = _run_grid(jobs, args.epochs, args.workers)
    columns = [(s, m) for s in ("iid", "dirichlet") for m in ("linear", "mlp")]
    print(f"digits, {args.learners} learners, {args.epochs} epochs, dirichlet alpha {args.alpha}, seeds {args.seeds}:"
          " final global test accuracy of the collective (mean over seeds) and accepted epochs")
    print(f"{'setting':<30}" + "".join(f"{s[:3] + '/' + m:>13}" for s, m in columns))
    for name in SWEEP:
        cells = "".join(
            f"{results[(name, s, m)]['collective']:>8.3f} {results[(name, s, m)]['accepted']:>4.1f}" for s, m in columns
        )
        print(f"{name:<30}{cells}")
    for label, key in (("solo mean (defaults)", "solo_mean"), ("centralized (defaults)", "centralized")):
        print(f"{label:<30}" + "".join(f"{results[('defaults', s, m)][key]:>13.3f}" for s, m in columns))
    return {"/".join(k): v for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="run the ablation that chose the defaults")
    parser.add_argument("--datasets", nargs="+", default=["digits", "breast_cancer", "wine", "mnist1d"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--learners", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    started = time.perf_counter()
    results = sweep(args) if args.sweep else table(args)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
