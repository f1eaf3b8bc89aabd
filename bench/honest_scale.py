"""How large do honest models and steps get? The evidence behind the poisoning guards' bounds.

Runs the reference driver with the package defaults and records, for every proposal: each tensor's
RMS, the RMS of all tensors together ("joint") and its ratio to the current model's, and the largest
gradient norm of any local step. The vote refuses what honest training never produces
(``colearn_chain.learners.numpy_models``: MAX_RMS, SCALE_GROWTH, JOINT_SCALE_FACTOR, JOINT_MAX_RMS,
MAX_GRAD_NORM), so these maxima must stay well inside those constants.

    python bench/honest_scale.py                    # 4 datasets x iid/Dirichlet 0.5 x both models x 3 seeds
    python bench/honest_scale.py --epochs 60 --json out.json

About 20 s on 2 cores for 20 epochs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one process per core; tiny matrices gain nothing from threads
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colearn_chain.driver import run_one_epoch
from colearn_chain.learners import learner_config, make_learner, numpy_models
from colearn_chain.typing import Weights


def _joint(weights: Weights) -> float:
    return numpy_models.rms(np.concatenate([v.ravel() for v in weights.values()]))


def measure(job: tuple[str, str, str, int, int]) -> dict[str, Any]:
    """One collective run; the largest honest scales it produced."""
    dataset, split, model, seed, epochs = job
    steepest = [0.0]
    clip: Callable[[Weights, float], Weights] = numpy_models._clip

    def recording_clip(grads: Weights, max_norm: float) -> Weights:
        norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
        steepest[0] = max(steepest[0], norm)
        return clip(grads, max_norm)

    numpy_models._clip = recording_clip  # this worker process only
    config = learner_config(n_learners=5, dataset=dataset, split=split, alpha=0.5, model=model, seed=seed)
    learners = [make_learner(config, i) for i in range(config["n_learners"])]
    tensor_rms, joint_rms, ratios, refused = 0.0, 0.0, [], 0
    for epoch in range(epochs):
        current = learners[0].current_weights()
        result = run_one_epoch(epoch, learners)
        tensor_rms = max(tensor_rms, *(numpy_models.rms(v) for v in result.proposal.values()))
        joint, now = _joint(result.proposal), _joint(current)
        joint_rms = max(joint_rms, joint)
        if now > 0:
            ratios.append(joint / now)
        refused += sum(1 for v in result.votes if v is not None and v.reason is not None
                       and "RMS" in v.reason)
    return {"tensor_rms": tensor_rms, "joint_rms": joint_rms, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "grad_norm": steepest[0], "refused_for_scale": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "breast_cancer", "wine", "mnist1d"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    started = time.perf_counter()
    keys = list(itertools.product(args.datasets, ("iid", "dirichlet"), ("linear", "mlp")))
    jobs = [(*key, seed, args.epochs) for key in keys for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        outputs = list(pool.map(measure, jobs))
    per_key: dict[str, dict[str, Any]] = {}
    for job, out in zip(jobs, outputs, strict=True):
        row = per_key.setdefault("/".join(job[:3]), {})
        for name, value in out.items():
            keep = min if name == "ratio_min" else max
            row[name] = keep(row[name], value) if name in row else value
    print(f"{args.epochs} epochs, seeds {args.seeds}: the largest honest value over seeds and proposals")
    header = f"{'tensor RMS':>11}{'joint RMS':>10}{'joint x':>14}{'grad norm':>10}{'refused':>8}"
    print(f"{'dataset/split/model':<28}{header}")
    for key, row in per_key.items():
        print(f"{key:<28}{row['tensor_rms']:>11.3f}{row['joint_rms']:>10.3f}"
              f"{row['ratio_min']:>7.2f}-{row['ratio_max']:<6.2f}{row['grad_norm']:>10.1f}{row['refused_for_scale']:>8}")
    worst = {name: (min if name == "ratio_min" else max)(r[name] for r in per_key.values())
             for name in next(iter(per_key.values()))}
    print("overall:", json.dumps({k: round(v, 3) for k, v in worst.items()}))
    print(f"bounds: MAX_RMS {numpy_models.MAX_RMS}, SCALE_GROWTH {numpy_models.SCALE_GROWTH}, "
          f"JOINT_MAX_RMS {numpy_models.JOINT_MAX_RMS}, JOINT_SCALE_FACTOR {numpy_models.JOINT_SCALE_FACTOR}, "
          f"MAX_GRAD_NORM {numpy_models.MAX_GRAD_NORM}")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(per_key, indent=2))


if __name__ == "__main__":
    main()
