"""FedAvg over every toy learner for ``num-server-rounds`` rounds; the wall clock at the end of each round
(Flower calls ``evaluate_fn`` after round 0's set-up and after each round) goes to ``timings-path``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from toyflower import toy_learner

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    n = int(context.run_config["n-learners"])
    path = Path(str(context.run_config["timings-path"]))
    initial = toy_learner(0, n).current_weights()
    stamps: list[tuple[int, float]] = []

    def stamp(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        stamps.append((server_round, time.time()))
        path.write_text(json.dumps(stamps))
        return None

    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
    strategy.start(grid=grid, initial_arrays=ArrayRecord([initial[k] for k in sorted(initial)]), num_rounds=rounds,
                   evaluate_fn=stamp)
