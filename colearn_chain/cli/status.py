"""`colearn-chain status`: every epoch of a contract as a terminal table, or as JSON for scripts.

Why a table from events and not from a database: the chain is the only record every learner trusts,
so this reads nothing but the chain (and, optionally, the deployment record that says where to start).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from ..chain.connection import connect
from ..chain.deployment import Deployment
from ..exceptions import ColearnChainError
from ..history import EpochRecord, History, Source, TxRef
from ..text import printable
from ._options import add_rpc_option, non_negative_int, rpc_from

DEFAULT_RPC = "http://127.0.0.1:8545"


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """The arguments that name a contract on a chain; shared by `status` and `explorer`."""
    add_rpc_option(parser, default=DEFAULT_RPC)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--contract", metavar="ADDR", help="the contract's address")
    which.add_argument(
        "--deployment", metavar="FILE", help="a deployment record (deployment.json) written by deploy/run"
    )
    parser.add_argument(
        "--from-block",
        type=non_negative_int,
        metavar="N",
        help="first block to read events from (default: the deployment block, searched for with --contract)",
    )


def resolve_source(args: argparse.Namespace) -> Source:
    """The Deployment (from --deployment) or the address (from --contract); ColearnChainError when unreadable."""
    if args.deployment:
        try:
            return Deployment.load(args.deployment)
        except ValueError as exc:
            raise ColearnChainError(str(exc)) from exc
    return str(args.contract)


def open_history(args: argparse.Namespace, *, gas: bool) -> History:
    """Connect and read the whole history named by the source arguments."""
    try:
        w3 = connect(rpc_from(args))
        history = History.open(w3, resolve_source(args), args.from_block, gas=gas)
        if args.from_block is not None:
            head = int(w3.eth.block_number)
            if args.from_block > head:  # nothing to read yet: the history would have no state at all
                raise ColearnChainError(
                    f"--from-block {args.from_block} is past the chain's head {head}: give a block up to {head}, "
                    "or leave it out to start at the deployment"
                )
        history.update()
    except ValueError as exc:  # e.g. a deployment record of another chain
        raise ColearnChainError(str(exc)) from exc
    return history


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show every epoch: proposer, CID, votes and scores, outcome, transactions and gas",
        description="Read a CollectiveLearning contract's events and show each epoch and the current model.",
    )
    add_source_args(parser)
    parser.add_argument("--json", action="store_true", help="print the history as JSON instead of a table")
    parser.add_argument("--last", type=non_negative_int, metavar="N", help="only the newest N epochs")
    parser.add_argument("--no-gas", action="store_true", help="skip the receipts (faster on a slow public RPC)")
    parser.add_argument("--no-txs", action="store_true", help="one line per epoch, without the transaction lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    history = open_history(args, gas=not args.no_gas)
    if args.json:
        print(json.dumps(history.to_json(last=args.last), indent=1))
    else:
        print(render(history, last=args.last, txs=not args.no_txs))  # render escapes what the chain chose
    return 0


# ─────────────────────────────────────────────────────────────── the table


def _short(text: str, keep: int = 6) -> str:
    return text if len(text) <= 2 * keep + 3 else f"{text[:keep + 2]}…{text[-keep:]}"


def _gas(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _vote_cell(record: EpochRecord, learner: str) -> str:
    vote = record.vote_of(learner)
    if vote is None:
        return "." if record.proposal else ""
    return f"{'yes' if vote.approve else 'no'} {vote.score:.4g}"


def _tx_line(what: str, ref: TxRef) -> str:
    return f"      {what:<10} {ref.hash}  block {ref.block:<8} gas {_gas(ref.gas_used)}"


def render(history: History, *, last: int | None = None, txs: bool = True) -> str:
    """The status table: a header on the contract and its current model, then one row per epoch.

    Every string a proposer chose (the CIDs) goes through :func:`~colearn_chain.text.printable`, so no
    control character reaches the terminal; ``--json`` output is escaped by JSON itself (ASCII only).
    """
    s = history.summary
    learners = list(s.learners)
    label = {a: f"L{i}" for i, a in enumerate(learners)}
    counts = history.counts()
    rule = "every learner votes" if s.proposer_votes else "the proposer does not vote"
    lines = [
        (
            f"CollectiveLearning {s.address} on chain {s.chain_id}: "
            f"deployed at block {s.deploy_block}, read to block {s.synced_block}"
        ),
        (
            f"  rule: {s.variant} ({rule}); threshold {s.vote_threshold_bps} bps = {s.approvals_needed} of "
            f"{s.voter_count} approvals; timeouts: proposal {s.proposal_timeout} s, voting {s.voting_timeout} s"
        ),
        "  learners: " + "  ".join(f"{label[a]} {a}" for a in learners),
        f"  now: epoch {s.current_epoch}, phase {printable(s.phase)} (deadline {_when(s.deadline)})",
        (
            f"  current model: {printable(s.current_model.cid)} (digest {s.current_model.digest}) "
            f"since epoch {s.current_model.since_epoch}"
        ),
        "  epochs: " + ", ".join(f"{n} {name}" for name, n in counts.items()),
        "",
    ]
    records = history.epochs
    if last is not None:
        records = records[max(len(records) - last, 0) :]
    rows: list[Sequence[str]] = []
    for r in records:
        rows.append(
            [
                str(r.epoch),
                label.get(r.proposer, _short(r.proposer)),
                printable(r.proposal.cid) if r.proposal else "-",
                *(_vote_cell(r, a) for a in learners),
                r.outcome,
                f"{r.approvals}/{r.rejections}",
                _gas(r.gas_used),
            ]
        )
    header = ["epoch", "proposer", "CID", *(label[a] for a in learners), "outcome", "a/r", "gas"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {0, len(header) - 1}

    def fmt(row: Sequence[str]) -> str:
        cells = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "  ".join(cells).rstrip()

    lines.append(fmt(header))
    for r, row in zip(records, rows, strict=True):
        lines.append(fmt(row))
        if not txs:
            continue
        if r.proposal:
            lines.append(_tx_line(f"propose {label.get(r.proposer, '')}", r.proposal.tx))
        for v in r.votes:
            lines.append(_tx_line(f"vote {label.get(v.voter, '?')}", v.tx))
        if r.close and all(r.close.hash != v.tx.hash for v in r.votes):
            closer = label.get(r.close.sender or "", _short(r.close.sender or "?"))
            lines.append(_tx_line(f"close {closer}", r.close))
    if not records:
        lines.append("(no epochs read)")
    return "\n".join(lines)
