"""Gas used per contract call at n = 5 and n = 200 learners, on a real Anvil with signed transactions.

Prints one JSON object: {"5": {"deploy", "propose", "vote", "closing_vote", "close", "skip"}, "200": {...}}
and, on stderr, the spread between the two sizes (the contract never loops over learners, so every
call but the deployment should cost the same at both sizes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from colearn_chain.chain.artifact import abi, bytecode
from colearn_chain.services.anvil import DEV_KEY, AnvilNode, fund

TIMEOUT = 100
SCORE = 931_250_000_000_000_000  # 0.93125 as the agents send it (1e18 fixed point)


class Sender:
    """Signs and sends transactions from local keys, tracking nonces."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.nonces: dict[str, int] = {}

    def send(self, account: Any, tx: dict[str, Any]) -> Any:
        nonce = self.nonces.get(account.address, self.w3.eth.get_transaction_count(account.address))
        self.nonces[account.address] = nonce + 1
        tx = {
            **tx,
            "from": account.address,
            "nonce": nonce,
            "chainId": 31337,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 10**11,
        }
        tx.setdefault("gas", int(self.w3.eth.estimate_gas(tx) * 1.2))
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        )
        if receipt.status != 1:
            raise RuntimeError(f"transaction reverted: {tx}")
        return receipt


def measure(w3: Web3, n: int) -> dict[str, int]:
    learners = [Account.from_key(keccak(text=f"colearn-bench-{n}-{i}")) for i in range(n)]
    fund(w3.provider.endpoint_uri, [a.address for a in learners], 1.0)
    deployer = Account.from_key(DEV_KEY)
    sender = Sender(w3)
    factory = w3.eth.contract(abi=abi(), bytecode=bytecode())
    init_digest = keccak(text="initial")
    deploy_tx = factory.constructor(
        [a.address for a in learners], 5000, TIMEOUT, TIMEOUT, True, init_digest, "Qm" + "a" * 44
    ).build_transaction({"from": deployer.address})
    receipt = sender.send(deployer, {"data": deploy_tx["data"]})
    contract = w3.eth.contract(address=receipt.contractAddress, abi=abi())
    gas: dict[str, int] = {"deploy": receipt.gasUsed}

    def call(account: Any, fn: Any) -> int:
        return sender.send(account, {"to": contract.address, "data": fn._encode_transaction_data()}).gasUsed

    def advance(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])
        w3.provider.make_request("evm_mine", [])

    def propose(epoch: int) -> int:
        cid = "Qm" + keccak(text=f"cid{epoch}").hex()[:44]
        return call(learners[epoch % n], contract.functions.propose(epoch, keccak(text=f"w{epoch}"), cid))

    # Epochs 0-1: warm up (both model buffers written once), all approve.
    for epoch in range(2):
        propose(epoch)
        for voter in learners:
            call(voter, contract.functions.vote(epoch, True, SCORE))
    # Epoch 2: propose, every vote; the last one closes the epoch (accept).
    gas["propose"] = propose(2)
    votes = [call(voter, contract.functions.vote(2, True, SCORE)) for voter in learners]
    gas["vote"] = votes[len(votes) // 2] if n > 1 else votes[0]
    gas["closing_vote"] = votes[-1]
    # Epoch 3: propose, one vote, the voting deadline passes, anyone closes.
    propose(3)
    call(learners[0], contract.functions.vote(3, True, SCORE))
    advance(TIMEOUT + 1)
    gas["close"] = call(deployer, contract.functions.close(3))
    # Epoch 4: the proposer is silent; after the proposal deadline anyone skips.
    advance(TIMEOUT + 1)
    gas["skip"] = call(deployer, contract.functions.close(4))
    return gas


def main() -> int:
    with AnvilNode() as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        result = {str(n): measure(w3, n) for n in (5, 200)}
    print(json.dumps(result, indent=1))
    for key in result["5"]:
        small, large = result["5"][key], result["200"][key]
        print(f"{key:>13}: n=5 {small:>9,}  n=200 {large:>9,}  ({(large - small) / small:+.2%})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
