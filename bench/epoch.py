"""Seconds per epoch on chain (Anvil + Kubo, one agent process per learner) against the in-memory driver.

Run: python bench/epoch.py [--learners 3,10,25] [--epochs 6] [--block-time S] [--chain anvil|ganache|geth]

For each learner count a fresh Anvil chain is started (Kubo is shared), the toy learner consortium is
deployed through the CLI and its agents are started as processes. Epoch 0 absorbs the agents' start-up,
so the clock runs from the moment the bench sees ``EpochStarted(1)`` until it sees
``EpochStarted(1 + epochs)``. The reference driver runs the same epochs on identically built learners.
Prints one JSON object keyed by learner count; ``decisions_equal`` checks the on-chain run against the
driver, so a fast but wrong run does not pass unnoticed.

Blocks per epoch (``blocks``): with slow blocks (``--block-time 12 --chain geth``, a real client sealing a
block every 12 s, as Ethereum's mainnet does) what counts is blocks, not seconds. For each timed epoch it
reports the blocks from one ``EpochStarted`` to the next, and the blocks from the proposal's block to the
decision's block, both included: the proposer's training happens before its proposal, so 2 there means
the proposal in one block and every vote (the last one decides) in the next.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # the consortium harness the integration tests use

from agent_harness import Consortium  # noqa: E402
from colearn_chain import driver  # noqa: E402
from colearn_chain.chain.events import (  # noqa: E402
    ChainEvent,
    EpochSkipped,
    EpochStarted,
    LogCursor,
    ProposalAccepted,
    ProposalRejected,
    WeightsProposed,
)
from colearn_chain.learners import make_learner  # noqa: E402
from colearn_chain.services.chains import CHAINS, DEFAULT_CHAIN, chain_node  # noqa: E402
from colearn_chain.services.kubo import KuboNode  # noqa: E402

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}


def _watch_epochs(consortium: Consortium, first: int, last: int, timeout: float) -> dict[int, float]:
    """Wall-clock time at which each EpochStarted(first..last) was seen on chain."""
    assert consortium.deployment is not None
    client = consortium.client()
    cursor = LogCursor(client.w3, consortium.deployment.address, start_block=consortium.deployment.block)
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while last not in seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"epoch {last} not reached within {timeout} s (seen {sorted(seen)})")
        now = time.perf_counter()
        for event in cursor.poll():
            if isinstance(event, EpochStarted) and first <= event.epoch <= last:
                seen[event.epoch] = now
        time.sleep(0.01)
    return seen


def blocks_per_epoch(events: list[ChainEvent], first: int, last: int) -> dict[str, Any]:
    """Blocks each epoch ``first..last-1`` took: start to next start, and proposal to decision (both included)."""
    started = {e.epoch: e.meta.block_number for e in events if isinstance(e, EpochStarted)}
    proposed = {e.epoch: e.meta.block_number for e in events if isinstance(e, WeightsProposed)}
    decided = {
        e.epoch: e.meta.block_number
        for e in events if isinstance(e, (ProposalAccepted, ProposalRejected, EpochSkipped))
    }
    per_epoch = [started[e + 1] - started[e] for e in range(first, last)]
    after_training = [decided[e] - proposed[e] + 1 for e in range(first, last) if e in proposed]
    return {
        "start_to_start": per_epoch,
        "proposal_to_decision": after_training,
        "mean_start_to_start": round(sum(per_epoch) / len(per_epoch), 2),
        "max_proposal_to_decision": max(after_training) if after_training else None,
    }


def _driver_seconds_per_epoch(n: int, epochs: int) -> tuple[float, list[bool]]:
    learners = [make_learner({**TOY, "n_learners": n}, i) for i in range(n)]
    started = time.perf_counter()
    results = driver.run(learners, epochs)
    return (time.perf_counter() - started) / epochs, [r.accepted for r in results]


def bench_one(
    n: int, epochs: int, kubo: KuboNode, workdir: Path, block_time: float | None, chain: str = DEFAULT_CHAIN
) -> dict[str, Any]:
    with chain_node(chain, block_time=block_time) as node:
        # Generous timeouts: 25 agent processes take a while to start on a small machine.
        consortium = Consortium(node.url, workdir, kubo.url, TOY, n, proposal_timeout=300, voting_timeout=300).setup()
        try:
            consortium.start_all(until_epoch=1 + epochs)
            seen = _watch_epochs(consortium, 1, 1 + epochs, timeout=600 + 4 * epochs * (block_time or 0))
            codes = consortium.wait(timeout=60 + 2 * (block_time or 0))
        finally:
            consortium.stop_all()
        on_chain = [kind == "accepted" for _, kind in consortium.decisions()]
        blocks = blocks_per_epoch(consortium.events(), 1, 1 + epochs)
    chain_s = (seen[1 + epochs] - seen[1]) / epochs
    driver_s, reference = _driver_seconds_per_epoch(n, 1 + epochs)
    return {
        "epochs_timed": epochs,
        "chain_seconds_per_epoch": round(chain_s, 4),
        "driver_seconds_per_epoch": round(driver_s, 7),
        "ratio": round(chain_s / driver_s, 1),
        "accepted": sum(on_chain),
        "decisions_equal": on_chain == reference,
        "agents_exit_codes_ok": all(code == 0 for code in codes.values()),
        "blocks": blocks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", default="3,10,25", help="comma-separated learner counts (default 3,10,25)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs timed per count, after epoch 0 (default 6)")
    parser.add_argument(
        "--block-time", type=float, default=None,
        help="seconds between blocks (default: instant mining on anvil and ganache, 2 s on geth)",
    )
    parser.add_argument("--chain", choices=CHAINS, default=DEFAULT_CHAIN,
                        help=f"chain client the bench starts (default {DEFAULT_CHAIN})")
    args = parser.parse_args()
    counts = [int(c) for c in args.learners.split(",")]
    results: dict[str, Any] = {}
    with KuboNode() as kubo, tempfile.TemporaryDirectory(prefix="colearn-bench-") as tmp:
        for n in counts:
            results[str(n)] = bench_one(n, args.epochs, kubo, Path(tmp) / f"n{n}", args.block_time, args.chain)
    results["setup"] = {
        "learner": TOY,
        "chain": args.chain,
        "block_time": args.block_time,
        "cpus": os.cpu_count(),
        "store": "kubo (private, offline)",
        "agents": "one `colearn-chain agent` process per learner, poll interval 0.1 s",
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
