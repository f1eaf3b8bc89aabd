"""mnist1d against its paper: centralized on the paper's split, and collective vs centralized vs FedAvg.

The MNIST-1D paper (Greydanus 2020) reports on its default split (4,000 train / 1,000 test): logistic
regression 32 %, MLP 68 %, CNN 94 %. Three measurements, every model trained by its learner's own
``propose_weights`` (the local training a proposal does):

* ``--paper``: one learner on the paper's 4,000 training samples, ``--epochs`` proposals each kept
  (nobody votes), accuracy on the paper's 1,000 test samples;
* default: 5 learners (iid and Dirichlet 0.5), ``--epochs`` epochs of the reference driver, against
  the run's centralized baseline (one learner on the pooled training parts, same proposals) and
  FedAvg for as many rounds as epochs (every learner trains from the global model each round; the
  mean of their weights weighted by training-set size, in numpy), all on the run's global test set;
* ``--sweep``: one setting changed at a time over each model's defaults, collective only.

    python bench/paper_mnist1d.py --paper
    python bench/paper_mnist1d.py --models sklearn-mlp cnn --seeds 0 1 2 --json out.json
    python bench/paper_mnist1d.py --sweep --seeds 0

Models: ``linear`` / ``mlp`` (the numpy learners), ``sklearn-mlp`` (MLPClassifier), ``cnn`` (Keras).
Prints a table and, with --json, every number.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from colearn_chain.driver import run
from colearn_chain.learners import MODEL_KINDS, ClassifierLearner, learner_config, make_learner
from colearn_chain.learners.baselines import centralized
from colearn_chain.learners.data import LearnerData, Split, load_dataset

MODELS = ("linear", "mlp", "sklearn-mlp", "cnn")
PAPER = {"linear": 0.32, "mlp": 0.68, "sklearn-mlp": 0.68, "cnn": 0.94}
#: One setting at a time over each model's defaults, then the combinations that the first round suggested.
SWEEP: dict[str, dict[str, dict[str, Any]]] = {
    model: {
        "defaults": {},
        "local_epochs 2": {"local_epochs": 2},
        "local_epochs 15": {"local_epochs": 15},
        "lr 0.003": {"learning_rate": 0.003},
        "vote tolerance 0.05": {"vote_tolerance": 0.05},
        "vote log_loss tol 0.05": {"vote_metric": "log_loss", "vote_tolerance": 0.05},
        "train absent classes": {"keep_absent_classes": False},
        "no class weight": {"class_weight": None},
        "no cw + tol 0.05": {"class_weight": None, "vote_tolerance": 0.05},
        "no cw + local 15": {"class_weight": None, "local_epochs": 15},
        "no cw + local 15 + tol .05": {"class_weight": None, "local_epochs": 15, "vote_tolerance": 0.05},
        "no cw + absent + tol .05": {"class_weight": None, "keep_absent_classes": False, "vote_tolerance": 0.05},
        "batch 100 + no cw + tol .05": {"batch_size": 100, "class_weight": None, "vote_tolerance": 0.05},
        "l2 0.3 + local 15 + tol .05": {"l2": 0.3, "local_epochs": 15, "vote_tolerance": 0.05},
    }
    for model in ("sklearn-mlp", "cnn")
}
del SWEEP["cnn"]["l2 0.3 + local 15 + tol .05"]  # the CNN has no l2 setting
SWEEP["cnn"].update({  # a third round, over the CNN's new defaults (no class weight, tolerance 0.05)
    "tol 0.1": {"vote_tolerance": 0.1},
    "local_epochs 10": {"local_epochs": 10},
    "vote accuracy": {"vote_metric": "accuracy"},
    # a fourth round, for the Dirichlet gap to FedAvg: FedProx's proximal term, with more local training
    "prox 0.01": {"prox": 0.01},
    "prox 0.1": {"prox": 0.1},
    "prox 1": {"prox": 1.0},
    "prox 0.1 + local 10": {"prox": 0.1, "local_epochs": 10},
    "prox 1 + local 10": {"prox": 1.0, "local_epochs": 10},
    "lr 0.003 + local 15": {"learning_rate": 0.003, "local_epochs": 15},
    "lr 0.005 + local 10": {"learning_rate": 0.005, "local_epochs": 10},
    "batch 16": {"batch_size": 16},
    "sgd 0.05": {"optimizer": "sgd", "learning_rate": 0.05},
    "sgd 0.05 + prox 0.1": {"optimizer": "sgd", "learning_rate": 0.05, "prox": 0.1},
    "sgd 0.05 + local 10 + prox .1": {"optimizer": "sgd", "learning_rate": 0.05, "local_epochs": 10, "prox": 0.1},
    "lr 0.02": {"learning_rate": 0.02},
    "local_epochs 7": {"local_epochs": 7},
    "tol 0.03": {"vote_tolerance": 0.03},
    "sgd 0.1": {"optimizer": "sgd", "learning_rate": 0.1},
    "sgd 0.05 + local 10": {"optimizer": "sgd", "learning_rate": 0.05, "local_epochs": 10},
    "channels 50": {"channels": 50},
    "tol 0.07": {"vote_tolerance": 0.07},
    "logit adjustment 1": {"logit_adjustment": 1.0},
    "logit adjustment 0.5": {"logit_adjustment": 0.5},
    "logit adjustment 2": {"logit_adjustment": 2.0},
    "logit adj 1 + tol 0.07": {"logit_adjustment": 1.0, "vote_tolerance": 0.07},
    # a fifth round, over logit adjustment 1 without distillation (the CNN's earlier defaults): damped
    # proposals (averaged passes, a partial step), then FedNTD's not-true distillation, constant or (the
    # defaults: distill 3, distill_skew) scaled by the local labels' skew
    "no distillation": {"distill": 0.0},
    "average passes": {"distill": 0.0, "average_passes": True},
    "average passes + local 10": {"distill": 0.0, "average_passes": True, "local_epochs": 10},
    "step 0.5": {"distill": 0.0, "step": 0.5},
    "step 0.7 + local 10": {"distill": 0.0, "step": 0.7, "local_epochs": 10},
    "step 0.7": {"distill": 0.0, "step": 0.7},
    "step 0.5 + local 10": {"distill": 0.0, "step": 0.5, "local_epochs": 10},
    "average passes + step 0.7": {"distill": 0.0, "average_passes": True, "step": 0.7},
    "distill 1": {"distill": 1.0, "distill_skew": False},
    "distill 3": {"distill": 3.0, "distill_skew": False},
    "distill 10": {"distill": 10.0, "distill_skew": False},
})


def config(model: str, split: str, seed: int, **overrides: Any) -> dict[str, Any]:
    """The learner spec ``run --dataset mnist1d --model MODEL`` writes (another framework's model is its kind)."""
    kind, named = (MODEL_KINDS[model], {}) if model in MODEL_KINDS else ("numpy", {"model": model})
    return learner_config(kind, n_learners=5, dataset="mnist1d", split=split, alpha=0.5, seed=seed,
                          **named, **overrides)


def paper_split(model: str, epochs: int, seed: int) -> dict[str, Any]:
    """One learner on the paper's 4,000 training samples (scaled on them), tested on its 1,000."""
    data = load_dataset("mnist1d")
    mean, scale = data.x[:4000].mean(axis=0), data.x[:4000].std(axis=0)
    train = Split((data.x[:4000] - mean) / scale, data.y[:4000])
    test = Split((data.x[4000:] - mean) / scale, data.y[4000:])
    shaped = make_learner(config(model, "iid", seed), 0)
    assert isinstance(shaped, ClassifierLearner)
    pooled = LearnerData(index=0, train=train, vote=train, test=test, global_test=test, n_classes=10)
    learner = type(shaped)(pooled, shaped.model, index=0, seed=seed, training=shaped.training,
                           vote_rule=shaped.vote_rule)
    started = time.perf_counter()
    curve = []
    for _ in range(epochs):
        learner.accept_weights(learner.propose_weights())
        curve.append(round(learner.evaluate(), 4))
    return {"model": model, "seed": seed, "test": curve[-1], "best": max(curve), "curve": curve,
            "seconds": round(time.perf_counter() - started, 1)}


def fedavg(cfg: dict[str, Any], rounds: int) -> float:
    """FedAvg for ``rounds`` rounds with each learner's own local training; the global model's test accuracy."""
    learners = [make_learner(cfg, i) for i in range(cfg["n_learners"])]
    sizes = np.array([len(ln.data.train) for ln in learners if isinstance(ln, ClassifierLearner)], dtype=np.float64)
    global_weights = learners[0].current_weights()
    for _ in range(rounds):
        updates = []
        for learner in learners:
            learner.accept_weights({k: v.copy() for k, v in global_weights.items()})
            updates.append(learner.propose_weights())
        global_weights = {
            k: (sum(s * u[k].astype(np.float64) for s, u in zip(sizes, updates, strict=True)) / sizes.sum())
            .astype(global_weights[k].dtype)
            for k in global_weights
        }
    learners[0].accept_weights(global_weights)
    assert isinstance(learners[0], ClassifierLearner)
    return learners[0].evaluate()


def collective_cell(model: str, split: str, seed: int, epochs: int, overrides: dict[str, Any],
                    baselines: bool) -> dict[str, Any]:
    cfg = config(model, split, seed, **overrides)
    started = time.perf_counter()
    learners = [make_learner(cfg, i) for i in range(cfg["n_learners"])]
    results = run(learners, epochs)
    out: dict[str, Any] = {
        "collective": statistics.fmean(ln.evaluate() for ln in learners if isinstance(ln, ClassifierLearner)),
        "accepted": sum(r.accepted for r in results),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if baselines:
        out["centralized"] = centralized(cfg, epochs).mean
        out["fedavg"] = fedavg(cfg, epochs)
    return out


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn: JAX does not survive fork
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="centralized on the paper's 4,000 / 1,000 split")
    parser.add_argument("--sweep", action="store_true", help="one setting at a time over the defaults (collective)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--settings", nargs="+", help="with --sweep: only these settings (names as printed)")
    parser.add_argument("--splits", nargs="+", default=["iid", "dirichlet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    started = time.perf_counter()
    out: dict[str, Any] = {}
    with _pool(args.workers) as pool:
        if args.paper:
            jobs = [(m, s) for m in args.models for s in args.seeds]
            rows = list(pool.map(paper_split, [m for m, _ in jobs], [args.epochs] * len(jobs), [s for _, s in jobs]))
            print(f"mnist1d, the paper's split (4,000 train / 1,000 test), {args.epochs} proposals, seeds {args.seeds}")
            print(f"{'model':<14}{'paper':>7}{'ours':>8}{'(min)':>8}{'best epoch':>12}{'s/run':>8}")
            for model in args.models:
                cell = [r for r in rows if r["model"] == model]
                print(f"{model:<14}{PAPER[model]:>7.2f}{_mean(cell, 'test'):>8.3f}{min(r['test'] for r in cell):>8.3f}"
                      f"{_mean(cell, 'best'):>12.3f}{_mean(cell, 'seconds'):>8.0f}")
            out["paper"] = rows
        else:
            cells = []
            for model in args.models:
                settings = SWEEP.get(model, {"defaults": {}}) if args.sweep else {"defaults": {}}
                for name, overrides in settings.items():
                    if args.settings and name not in args.settings:
                        continue
                    for split in args.splits:
                        for seed in args.seeds:
                            cells.append((model, name, split, seed, overrides, not args.sweep))
            rows = list(pool.map(collective_cell, [c[0] for c in cells], [c[2] for c in cells], [c[3] for c in cells],
                                 [args.epochs] * len(cells), [c[4] for c in cells], [c[5] for c in cells]))
            print(f"mnist1d, 5 learners, {args.epochs} epochs, seeds {args.seeds}: final global test accuracy "
                  "(mean over seeds)")
            header = f"{'model':<13}{'setting':<22}{'split':<11}{'collective':>11}{'accepted':>10}"
            print(header + ("" if args.sweep else f"{'centralized':>12}{'fedavg':>8}"))
            groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
            for cell, row in zip(cells, rows, strict=True):
                groups.setdefault(cell[:3], []).append({**row, "seed": cell[3]})
            for (model, name, split), group in groups.items():
                line = (f"{model:<13}{name:<22}{split:<11}{_mean(group, 'collective'):>11.3f}"
                        f"{_mean(group, 'accepted'):>7.1f}/{args.epochs:<2}")
                if not args.sweep:
                    line += f"{_mean(group, 'centralized'):>12.3f}{_mean(group, 'fedavg'):>8.3f}"
                print(line, flush=True)
            out["collective"] = {"/".join(k): v for k, v in groups.items()}
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
