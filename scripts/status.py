"""Print the current epoch and model of a deployed CollectiveLearning (brownie).

    brownie run scripts/status.py --network anvil
    brownie run scripts/status.py main deployments/anvil.json --network anvil

For the full history of epochs and votes use `colearn-chain status` (any JSON-RPC, no brownie).
"""

from __future__ import annotations

import os

from brownie import CollectiveLearning, chain  # type: ignore[attr-defined]  # contract classes exist at run time
from brownie.network.main import show_active

from colearn_chain.chain.deployment import Deployment
from colearn_chain.protocol import phase_name


def main(deployment_path: str | None = None) -> None:
    path = deployment_path or os.environ.get("COLEARN_DEPLOYMENT", f"deployments/{show_active()}.json")
    record = Deployment.load(str(path))
    contract = CollectiveLearning.at(record.address)
    state = contract.epochState()
    digest, cid, since = contract.currentModel()
    print(f"contract   {record.address} on chain {chain.id} (deployed in block {record.block})")
    print(f"learners   {contract.learnerCount()}  threshold {contract.voteThresholdBps() / 100:.2f}%"
          f"  proposer votes: {contract.proposerVotes()}")
    print(f"epoch      {state['epoch']}  phase {phase_name(state['currentPhase'])}  proposer {state['proposer']}")
    print(f"deadline   {state['deadline']} (chain time now {chain.time()})")
    print(f"votes      {state['approvals']} approve, {state['rejections']} reject of {contract.voterCount()}")
    if state["cid"]:
        print(f"proposal   {state['cid']}  digest {state['digest']}")
    print(f"model      {cid}  digest {digest}  (current since epoch {since})")
