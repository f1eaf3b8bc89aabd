"""The experiment table from real runs on chain: dataset x split x model, over seeds.

Each cell runs `colearn-chain run` (Anvil it starts, the embedded store, one agent process per learner)
and reports the mean over seeds of: the collective's final test accuracy, the solo learners' mean,
centralized, accepted epochs, and whether the chain matched the in-memory reference driver.

    python bench/experiments.py                       # 4 datasets x 2 splits x 5 models x 3 seeds
    python bench/experiments.py --datasets digits --models linear mlp --seeds 0 1 2 --json table.json
    python bench/experiments.py --datasets mnist1d --models sklearn-mlp cnn   # scikit-learn's MLP, the Keras CNN

Models (``run --model``): ``linear`` and ``mlp`` (numpy), ``sklearn-sgd`` and ``sklearn-mlp``
(scikit-learn's estimators), ``cnn`` (the Keras 1-D CNN; needs the ``keras`` extra), each with its
kind's defaults (the scikit-learn MLP's and the CNN's are mnist1d's: see ``bench/paper_mnist1d.py``).

Prints the table as markdown and, with --json, every run's numbers. About 30 s per run of the numpy
models on 2 cores; the scikit-learn MLP and the CNN take a few minutes per mnist1d run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colearn_chain.experiment import ExperimentSettings, run_experiment
from colearn_chain.learners import MODEL_KINDS

#: Every model `run --model` names: the numpy ones, then the other frameworks' kinds.
MODELS = ("linear", "mlp", *MODEL_KINDS)


def one_run(dataset: str, split: str, model: str, seed: int, epochs: int, learners: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix=f"colearn-{dataset}-{split}-{model}-{seed}-")
    settings = ExperimentSettings(
        learners=learners, epochs=epochs, dataset=dataset, split=split, model=model, seed=seed, out=Path(tmp)
    )
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            results = run_experiment(settings)
    except Exception as exc:  # noqa: BLE001 - a failed run is a result too: report it, keep its logs, go on
        print(f"run failed ({dataset} {split} {model} seed {seed}): {exc}; logs kept in {tmp}", file=sys.stderr)
        return {"dataset": dataset, "split": split, "model": model, "seed": seed, "error": str(exc), "out": tmp}
    shutil.rmtree(tmp)
    seconds = time.perf_counter() - started
    return {
        "dataset": dataset, "split": split, "model": model, "seed": seed,
        "collective": results["final"]["test_accuracy_mean"],
        "solo_mean": results["baselines"]["solo_mean"],
        "centralized": results["baselines"]["centralized"],
        "accepted": sum(e["outcome"] == "accepted" for e in results["epochs"]),
        "reference_match": results["baselines"]["reference"]["decisions_match"]
        and results["baselines"]["reference"]["weights_match"],
        "seconds": round(seconds, 1),
    }


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "breast_cancer", "wine", "mnist1d"])
    parser.add_argument("--splits", nargs="+", default=["iid", "dirichlet"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learners", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runs = []
    cells = list(itertools.product(args.datasets, args.splits, args.models))
    print("| dataset | split | model | collective | solo mean | centralized | accepted | reference match | s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset, split, model in cells:
        every = [one_run(dataset, split, model, seed, args.epochs, args.learners) for seed in args.seeds]
        runs.extend(every)
        cell = [r for r in every if "error" not in r]
        if not cell:
            print(f"| {dataset} | {split} | {model} | all {len(every)} runs failed (see stderr) |||||||", flush=True)
            continue
        mean = functools.partial(_mean, cell)
        split_name = "dirichlet 0.5" if split == "dirichlet" else split
        print(
            f"| {dataset} | {split_name} | {model} | {mean('collective'):.3f} | {mean('solo_mean'):.3f} | "
            f"{mean('centralized'):.3f} | {mean('accepted'):.1f}/{args.epochs} | "
            f"{sum(r['reference_match'] for r in cell)}/{len(every)} | {mean('seconds'):.0f} |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
