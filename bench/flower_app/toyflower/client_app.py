"""One toy learner per SuperNode: each round it takes the global weights and trains one proposal from them."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from toyflower import toy_learner

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    learner = toy_learner(int(context.node_config["partition-id"]), int(context.node_config["num-partitions"]))
    names = sorted(learner.current_weights())
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    learner.accept_weights(dict(zip(names, arrays, strict=True)))
    weights = learner.propose_weights()
    content = RecordDict({
        "arrays": ArrayRecord([weights[name] for name in names]),
        "metrics": MetricRecord({"num-examples": 1}),
    })
    return Message(content=content, reply_to=msg)
