"""Seconds per epoch on chain (Anvil + Kubo) against the in-memory driver, and what each agent costs.

Run: python bench/epoch.py [--learners 3,10,25,50,100] [--epochs 6] [--agents-per-process K] [--block-time S]
       [--chain anvil|ganache|geth]

For each learner count a fresh chain is started (--chain, Anvil by default; Kubo is shared), the toy
learner consortium is
deployed through the CLI and its agents are started: one `colearn-chain agent` process per learner
(K = 1), or K agents per `colearn-chain agents` process. Epoch 0 absorbs the agents' start-up, so the
clock runs from the moment the bench sees ``EpochStarted(1)`` until it sees ``EpochStarted(1 + epochs)``.
In that window it also measures the agents' CPU seconds (per agent per epoch, and Anvil's apart); over
the whole run it samples the memory of every process it started (Anvil, Kubo, agents: peak of the
summed RSS) and adds up the RPC calls each agent wrote down when it stopped (its own, plus its share
of its process's follower of the chain), per agent per epoch over all 1 + epochs epochs.
The reference driver runs the same epochs on identically built learners; ``decisions_equal`` checks the
on-chain run against it, so a fast but wrong run does not pass unnoticed.

Beside it, for --flower-learners (default 3, 10, 25), the same toy learners as a Flower app (flwr 1.42 in
.venv-bench, which `make bench-attacks` sets up: a SuperLink and one SuperNode per learner on loopback,
FedAvg, --flower-rounds rounds; bench/flower_rounds.py) give Flower's seconds per round, measured in the
same run. Prints a table and one JSON object keyed by learner count.

Blocks per epoch (``blocks``): with slow blocks (``--block-time 12 --chain geth``, a real client sealing a
block every 12 s, as Ethereum's mainnet does) what counts is blocks, not seconds. For each timed epoch it
reports the blocks from one ``EpochStarted`` to the next, and the blocks from the proposal's block to the
decision's block, both included: the proposer's training happens before its proposal, so 2 there means
the proposal in one block and every vote (the last one decides) in the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

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
from colearn_chain.cli.calls import RPC_CALLS_FILE  # noqa: E402
from colearn_chain.learners import make_learner  # noqa: E402
from colearn_chain.services.chains import CHAINS, DEFAULT_CHAIN, chain_node  # noqa: E402
from colearn_chain.services.geth import GethNode  # noqa: E402
from colearn_chain.services.kubo import KuboNode  # noqa: E402

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
#: Flower lives in a venv of its own (its pins conflict with brownie's).
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"


def _flower(n: int, rounds: int) -> dict[str, Any]:
    """Flower's seconds per round for ``n`` toy learners (bench/flower_rounds.py in .venv-bench)."""
    if not BENCH_PY.exists():
        return {"error": "no .venv-bench (make bench-attacks sets it up with flwr 1.42)"}
    result = subprocess.run(
        [str(BENCH_PY), str(ROOT / "bench" / "flower_rounds.py"), "--learners", str(n), "--rounds", str(rounds)],
        capture_output=True, text=True, timeout=3600, check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip()[-2000:]}
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


class _Sampler:
    """Samples the processes the bench started: peak summed RSS over the run, CPU times on demand."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def tree() -> list[psutil.Process]:
        return psutil.Process().children(recursive=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            total = 0
            for process in self.tree():
                with contextlib.suppress(psutil.Error):  # a process that just ended
                    total += process.memory_info().rss
            self.peak_rss = max(self.peak_rss, total)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _watch_epochs(
    consortium: Consortium, first: int, last: int, timeout: float, on_epoch: Any = None
) -> dict[int, float]:
    """Wall-clock time at which each EpochStarted(first..last) was seen on chain (``on_epoch(e)`` at each)."""
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
                if on_epoch is not None:
                    on_epoch(event.epoch)
        time.sleep(0.05)
    return seen


def _rpc_calls(consortium: Consortium) -> tuple[float, dict[str, float], list[str]]:
    """Total calls of all agents, by method, and the follow modes they used."""
    total = 0.0
    by_method: dict[str, float] = {}
    modes = []
    for agent in consortium.agents:
        record = json.loads((agent.state_dir / RPC_CALLS_FILE).read_text())
        total += record["total"]
        for part in ("own", "shared"):
            for method, count in record[part].items():
                by_method[method] = by_method.get(method, 0.0) + count
        modes.append(record["follow_mode"])
    return total, by_method, modes


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
    n: int, epochs: int, kubo: KuboNode, workdir: Path, block_time: float | None, per_process: int,
    chain: str = DEFAULT_CHAIN,
) -> dict[str, Any]:
    with chain_node(chain, block_time=block_time) as node, _Sampler() as sampler:
        # Generous timeouts: 25 agent processes take a while to start on a small machine.
        consortium = Consortium(node.url, workdir, kubo.url, TOY, n, proposal_timeout=300, voting_timeout=300).setup()
        chain_pid = {p.pid for p in _Sampler.tree() if chain in p.name()}
        cpu: dict[int, tuple[float, float]] = {}

        def on_epoch(epoch: int) -> None:
            if epoch in (1, 1 + epochs):
                agent_pids = {a.proc.pid for a in consortium.agents if a.proc is not None}
                cpu[epoch] = (_cpu_seconds(agent_pids), _cpu_seconds(chain_pid))

        try:
            # geth serves WebSocket on a port of its own; Anvil on its RPC port, which agents find by themselves
            ws = ("--ws", node.ws_url) if isinstance(node, GethNode) else ()
            consortium.start_all(until_epoch=1 + epochs, per_process=per_process, extra=ws)
            seen = _watch_epochs(consortium, 1, 1 + epochs, timeout=900 + 4 * epochs * (block_time or 0),
                                 on_epoch=on_epoch)
            codes = consortium.wait(timeout=120 + 2 * (block_time or 0))
        finally:
            consortium.stop_all()
        on_chain = [kind == "accepted" for _, kind in consortium.decisions()]
        peak_rss = sampler.peak_rss
        blocks = blocks_per_epoch(consortium.events(), 1, 1 + epochs)
    chain_s = (seen[1 + epochs] - seen[1]) / epochs
    driver_s, reference = _driver_seconds_per_epoch(n, 1 + epochs)
    calls, by_method, modes = _rpc_calls(consortium)
    agents_cpu = cpu[1 + epochs][0] - cpu[1][0]
    anvil_cpu = cpu[1 + epochs][1] - cpu[1][1]
    return {
        "agents_per_process": min(per_process, n),
        "epochs_timed": epochs,
        "chain_seconds_per_epoch": round(chain_s, 4),
        "driver_seconds_per_epoch": round(driver_s, 7),
        "ratio": round(chain_s / driver_s, 1),
        "cpu_seconds_per_agent_per_epoch": round(agents_cpu / n / epochs, 4),
        "anvil_cpu_seconds_per_epoch": round(anvil_cpu / epochs, 4),
        "rpc_calls_per_agent_per_epoch": round(calls / n / (1 + epochs), 2),
        "rpc_calls_by_method_per_agent_per_epoch": {
            k: round(v / n / (1 + epochs), 2) for k, v in sorted(by_method.items(), key=lambda kv: -kv[1])
        },
        "follow_modes": sorted(set(modes)),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "accepted": sum(on_chain),
        "decisions_equal": on_chain == reference,
        "agents_exit_codes_ok": all(code == 0 for code in codes.values()),
        "blocks": blocks,
    }


def _table(results: dict[str, Any]) -> str:
    rows = [f"{'learners':>8} {'K':>3} {'s/epoch':>8} {'cpu s/agent/ep':>14} {'rpc/agent/ep':>12} "
            f"{'peak MB':>8}  decisions  {'flower s/round':>14}"]
    for n, r in results.items():
        if not n.isdigit():
            continue
        rows.append(f"{n:>8} {r['agents_per_process']:>3} {r['chain_seconds_per_epoch']:>8.3f} "
                    f"{r['cpu_seconds_per_agent_per_epoch']:>14.4f} {r['rpc_calls_per_agent_per_epoch']:>12.1f} "
                    f"{r['peak_rss_mb']:>8.0f}  {'equal    ' if r['decisions_equal'] else 'DIFFER   '}  "
                    f"{r.get('flower', {}).get('seconds_per_round', '-'):>14}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", default="3,10,25,50,100",
                        help="comma-separated learner counts (default 3,10,25,50,100)")
    parser.add_argument("--flower-learners", default="3,10,25",
                        help="learner counts also run under Flower (default 3,10,25; '' for none)")
    parser.add_argument("--flower-rounds", type=int, default=None, metavar="R",
                        help="Flower rounds per count (default: 1 + --epochs, as many as the epochs on chain)")
    parser.add_argument("--agents-per-process", type=int, default=25, metavar="K",
                        help="agents per process (default 25; 1: a `colearn-chain agent` process per learner)")
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
            results[str(n)] = bench_one(
                n, args.epochs, kubo, Path(tmp) / f"n{n}", args.block_time, args.agents_per_process, args.chain
            )
            if str(n) in args.flower_learners.split(","):
                results[str(n)]["flower"] = _flower(n, args.flower_rounds or 1 + args.epochs)
            print(_table({str(n): results[str(n)]}).splitlines()[-1], file=sys.stderr, flush=True)
    results["setup"] = {
        "learner": TOY,
        "chain": args.chain,
        "block_time": args.block_time,
        "cpus": os.cpu_count(),
        "store": "kubo (private, offline)",
        "agents": f"{args.agents_per_process} per process (1: `colearn-chain agent`, else `colearn-chain "
                  "agents`), poll interval 0.1 s, new heads over WebSocket where the node serves it",
    }
    print(_table(results))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
