"""Hostile consortium members, for the adversarial tests: each runs as its own process with its own key.

Run as ``python tests/integration/hostile.py ATTACK --deployment FILE --store URL --learner-config JSON
--state-dir DIR --until-epoch N [--partner INDEX]`` with the key in ``COLEARN_PRIVATE_KEY`` and the RPC URL in
``COLEARN_RPC_URL``, exactly as an honest agent gets them.

Two families, both built on the project's own chain client and weight store:

* **Hostile learners** run the real agent (``colearn-chain agent``) around a learner that lies:
  ``random`` / ``huge`` weights, a ``sign_flip`` scaled update (global - 5 x (local - global)), honest training
  on ``label_flip``-ped data, a ``free_rider`` proposing the current weights unchanged, and ``collude``
  (two members who mark their own sign-flipped proposals, approve each other's and reject every honest one).
* **Hostile senders** drive the contract by hand: ``silent`` proposes honestly but never votes, ``spam``
  floods the chain with votes and closes for wrong epochs (mined, failing transactions), ``hostile_cid``
  proposes a CID of raw invalid-UTF-8 bytes and terminal escapes, forcing it on chain with a fixed gas limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.deployment import Deployment
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.exceptions import ColearnChainError
from colearn_chain.learners import make_learner
from colearn_chain.store import from_url
from hostile_learners import ATTACKS, HOSTILE_CID, LEARNER_ATTACKS

log = logging.getLogger("hostile")


def run_hostile_agent(args: argparse.Namespace, config: Mapping[str, Any]) -> int:
    """The real `colearn-chain agent`, with the hostile learner plugged in through --learner."""
    from colearn_chain import cli

    argv = [
        "agent", "--rpc", os.environ["COLEARN_RPC_URL"], "--deployment", str(args.deployment),
        "--store", args.store, "--learner-config", json.dumps(dict(config)),
        "--learner", "hostile_learners:hostile_factory", "--learner-option", f"attack={args.attack}",
        "--learner-option", f"honest={json.dumps(dict(config))}",
        "--state-dir", str(args.state_dir), "--poll-interval", "0.1", "--until-epoch", str(args.until_epoch),
    ]
    return int(cli.main(argv))


class _Sender:
    """Sends transactions of this member's own key with a fixed gas limit, so failing ones are mined too."""

    def __init__(self, client: ChainClient, account: LocalAccount) -> None:
        self.client = client
        self.account = account
        self.w3 = client.w3
        self.nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        self.chain_id = self.w3.eth.chain_id

    def send(self, signature: str, types: list[str], values: list[Any], gas: int = 200_000) -> str:
        data = Web3.keccak(text=signature)[:4] + abi_encode(types, values)
        base = int(self.w3.eth.get_block("latest")["baseFeePerGas"])  # type: ignore[typeddict-item]
        tx = {
            "to": self.client.address, "data": Web3.to_hex(data), "gas": gas, "nonce": self.nonce,
            "chainId": self.chain_id, "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9, "type": 2,
        }
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonce += 1
        self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        return Web3.to_hex(tx_hash)


def run_hostile_sender(args: argparse.Namespace, config: Mapping[str, Any], account: LocalAccount) -> int:
    """Drive the contract by hand until ``--until-epoch``: never crash, never stop the others."""
    deployment = Deployment.load(args.deployment)
    client = ChainClient(os.environ["COLEARN_RPC_URL"], account, deployment.address)
    sender = _Sender(client, account)
    store = from_url(args.store)
    learner = make_learner(config, client.learners().index(account.address))
    proposed: set[int] = set()
    sent = 0
    while True:
        try:
            state = client.epoch_state()
        except (ColearnChainError, ValueError) as error:  # a reader of hostile bytes may fail; keep going
            log.info("cannot read the epoch state: %s", error)
            time.sleep(0.2)
            continue
        if state.epoch >= args.until_epoch:
            log.info("epoch %d reached after %d hostile transactions", state.epoch, sent)
            return 0
        ours = state.proposer == account.address and not state.proposed and state.epoch not in proposed
        if ours and args.attack == "silent":
            weights = learner.propose_weights()
            blob = encode_weights(weights)
            client.propose(state.epoch, digest_hex(blob), store.put(blob))
            proposed.add(state.epoch)
        elif ours and args.attack == "hostile_cid":
            digest = bytes.fromhex(digest_hex(b"hostile")[2:])
            sender.send("propose(uint256,bytes32,string)", ["uint256", "bytes32", "bytes"],
                        [state.epoch, digest, HOSTILE_CID])
            proposed.add(state.epoch)
            sent += 1
        elif args.attack == "spam":
            for epoch in (state.epoch + 1, state.epoch + 2, max(state.epoch - 1, 0)):
                sender.send("vote(uint256,bool,int256)", ["uint256", "bool", "int256"], [epoch, True, 10**18])
                sender.send("close(uint256)", ["uint256"], [epoch])
                sent += 2
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attack", choices=ATTACKS)
    parser.add_argument("--deployment", type=Path, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--learner-config", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--until-epoch", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s hostile %(levelname)s %(message)s")
    config = json.loads(args.learner_config)
    if args.attack in LEARNER_ATTACKS:
        return run_hostile_agent(args, config)
    account: LocalAccount = Account.from_key(os.environ["COLEARN_PRIVATE_KEY"])
    return run_hostile_sender(args, config, account)


if __name__ == "__main__":
    sys.exit(main())

