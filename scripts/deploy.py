"""Deploy CollectiveLearning with brownie and record the deployment for the agents.

    brownie run scripts/deploy.py --network anvil
    brownie run scripts/deploy.py main MODEL.safetensors --network anvil

Settings come from the environment (never from files in the repo):
  COLEARN_LEARNERS          comma-separated learner addresses (default on a local chain: dev accounts 1..5)
  COLEARN_THRESHOLD         vote threshold as a fraction (default 0.5)
  COLEARN_PROPOSAL_TIMEOUT  seconds (default 600)     COLEARN_VOTING_TIMEOUT  seconds (default 600)
  COLEARN_COLEARN_VARIANT   1: the proposer does not vote (colearn 0.2.8); default 0 (the seed's rule)
  COLEARN_INITIAL_MODEL     safetensors file of the initial weights (or the first script argument)
  COLEARN_DEPLOYER_KEY      deployer's private key on a live network (local chains use dev account 0)
  COLEARN_DEPLOYMENT        where to write the record (default deployments/<network>.json)

The initial model's CID is computed locally exactly as `ipfs add` computes it; add the same file to
your IPFS node (`ipfs add FILE`) or use `colearn-chain deploy`, which uploads it for you.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from brownie import CollectiveLearning, accounts, network  # type: ignore[attr-defined]  # contract classes exist at run time
from brownie.network.main import show_active

from colearn_chain.chain.deployment import Deployment
from colearn_chain.codec import digest_hex
from colearn_chain.decision import threshold_to_bps
from colearn_chain.store.unixfs import cid_v0


def _deployer() -> Any:
    active = str(show_active())
    if active in ("anvil", "development", "ganache-cli", "geth-dev") or "fork" in active:
        return accounts[0]
    key = os.environ.get("COLEARN_DEPLOYER_KEY")
    if not key:
        raise SystemExit("set COLEARN_DEPLOYER_KEY to the deployer's private key for a live network")
    return accounts.add(key)


def main(model_path: str | None = None) -> Deployment:
    learners_env = os.environ.get("COLEARN_LEARNERS")
    if not learners_env and len(accounts) < 6:
        raise SystemExit(f"set COLEARN_LEARNERS to the learners' addresses: this node has {len(accounts)} unlocked "
                         "account(s), not the 5 besides the deployer's that the default takes (geth --dev has one)")
    learners = [a.strip() for a in learners_env.split(",")] if learners_env else [str(accounts[i]) for i in range(1, 6)]
    model_path = model_path or os.environ.get("COLEARN_INITIAL_MODEL")
    if not model_path:
        raise SystemExit(
            "give the initial model: `brownie run scripts/deploy.py main MODEL.safetensors` "
            "or COLEARN_INITIAL_MODEL (or deploy with `colearn-chain deploy --learner-config ...`, which "
            "makes the initial model from the learners and uploads it)"
        )
    blob = Path(model_path).read_bytes()
    threshold_bps = threshold_to_bps(float(os.environ.get("COLEARN_THRESHOLD", "0.5")))
    proposal_timeout = int(os.environ.get("COLEARN_PROPOSAL_TIMEOUT", "600"))
    voting_timeout = int(os.environ.get("COLEARN_VOTING_TIMEOUT", "600"))
    proposer_votes = os.environ.get("COLEARN_COLEARN_VARIANT", "0") != "1"
    digest, cid = digest_hex(blob), cid_v0(blob)

    args = (learners, threshold_bps, proposal_timeout, voting_timeout, proposer_votes, digest, cid)
    deployer = _deployer()
    # The gas the deployment needs plus a margin, not the block's gas limit (brownie's default on a local
    # chain), which geth refuses: it caps a transaction at 2**24 gas.
    gas = CollectiveLearning.deploy.estimate_gas(*args, {"from": deployer})
    contract = CollectiveLearning.deploy(*args, {"from": deployer, "gas_limit": gas * 6 // 5})
    record = Deployment(
        chain_id=network.chain.id,
        address=contract.address,
        block=contract.tx.block_number,
        tx_hash=contract.tx.txid,
        learners=learners,
        vote_threshold_bps=threshold_bps,
        proposal_timeout=proposal_timeout,
        voting_timeout=voting_timeout,
        proposer_votes=proposer_votes,
        initial_digest=digest,
        initial_cid=cid,
    )
    out = Path(os.environ.get("COLEARN_DEPLOYMENT", f"deployments/{show_active()}.json"))
    record.save(out)
    print(f"CollectiveLearning deployed at {contract.address} (chain {record.chain_id}, block {record.block})")
    print(f"deployment record: {out}")
    return record
