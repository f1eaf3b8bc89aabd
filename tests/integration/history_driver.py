"""Drive a CollectiveLearning contract with plain web3 + eth_account signed transactions, for the history tests.

Also :func:`fast_history`: thousands of epochs of real transactions on Anvil in seconds, for paging
tests and bench/explorer.py.

Why not the agents: `status` and the explorer read only the chain, so their tests need exact control over
who votes what (a rejected epoch, a missing vote, a skipped epoch), which a scripted driver gives in
milliseconds. The browser test uses the real agents when they are installed (see test_explorer_browser).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from colearn_chain.chain.artifact import abi, bytecode
from colearn_chain.chain.deployment import Deployment
from colearn_chain.store.unixfs import cid_v0

GWEI = 10**9

#: A vote: (approve, score) or None for a learner that does not vote.
VotePlan = tuple[bool, float] | None


def learner_keys(n: int, *, salt: str = "history-test") -> list[str]:
    """Deterministic private keys, so a failing run can be replayed."""
    return ["0x" + hashlib.sha256(f"{salt}:{i}".encode()).hexdigest() for i in range(n)]


def fake_weights(epoch: int, proposer: int) -> tuple[str, str]:
    """A digest and a real-looking CIDv0 for some made-up blob (no IPFS needed to read the chain)."""
    blob = f"weights of epoch {epoch} by learner {proposer}".encode()
    return "0x" + hashlib.sha256(blob).hexdigest(), cid_v0(blob)


@dataclass
class Driver:
    """Sends the contract's calls, each signed by the right learner's key, and waits for each receipt."""

    w3: Web3
    accounts: list[LocalAccount]
    deployer: LocalAccount
    address: str = ""
    deploy_block: int = 0

    @classmethod
    def create(cls, rpc_url: str, keys: Sequence[str], deployer_key: str | None = None) -> Driver:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        accounts = [Account.from_key(k) for k in keys]
        return cls(w3, accounts, Account.from_key(deployer_key) if deployer_key else accounts[0])

    @property
    def learners(self) -> list[str]:
        return [a.address for a in self.accounts]

    def _send(self, account: LocalAccount, tx: dict[str, Any]) -> dict[str, Any]:
        tx = {
            **tx,
            "from": account.address,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": self.w3.eth.chain_id,
            "maxPriorityFeePerGas": Web3.to_wei(1, "gwei"),
            "maxFeePerGas": Web3.to_wei(50, "gwei"),
        }
        tx["gas"] = int(self.w3.eth.estimate_gas(tx) * 1.3) + 10_000  # type: ignore[arg-type]
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        assert receipt["status"] == 1, f"transaction {tx_hash.hex()} reverted"
        return dict(receipt)

    def deploy(
        self,
        *,
        threshold_bps: int = 5000,
        proposal_timeout: int = 3600,
        voting_timeout: int = 3600,
        proposer_votes: bool = True,
        artifact: dict[str, Any] | None = None,
    ) -> Deployment:
        """Deploy the packaged contract, or ``artifact``'s (``abi`` and ``bytecode``: an older version)."""
        digest, cid = fake_weights(-1, 0)
        code = artifact or {"abi": abi(), "bytecode": bytecode()}
        factory = self.w3.eth.contract(abi=code["abi"], bytecode=code["bytecode"])
        data = factory.constructor(
            self.learners, threshold_bps, proposal_timeout, voting_timeout, proposer_votes, digest, cid
        ).build_transaction({"from": self.deployer.address, "gas": 5_000_000})["data"]
        receipt = self._send(self.deployer, {"data": data})
        self.address = receipt["contractAddress"]
        self.deploy_block = receipt["blockNumber"]
        return Deployment(
            chain_id=self.w3.eth.chain_id,
            address=self.address,
            block=self.deploy_block,
            tx_hash=Web3.to_hex(receipt["transactionHash"]),
            learners=self.learners,
            vote_threshold_bps=threshold_bps,
            proposal_timeout=proposal_timeout,
            voting_timeout=voting_timeout,
            proposer_votes=proposer_votes,
            initial_digest=digest,
            initial_cid=cid,
        )

    @property
    def contract(self) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(self.address), abi=abi())

    def _call(self, account: LocalAccount, fn: Any) -> dict[str, Any]:
        data = fn.build_transaction({"from": account.address, "gas": 1_000_000})["data"]
        return self._send(account, {"to": self.address, "data": data})

    def propose(self, epoch: int) -> dict[str, Any]:
        proposer = epoch % len(self.accounts)
        digest, cid = fake_weights(epoch, proposer)
        return self._call(self.accounts[proposer], self.contract.functions.propose(epoch, digest, cid))

    def vote(self, epoch: int, learner: int, approve: bool, score: float) -> dict[str, Any]:
        fixed = round(score * 10**18)
        return self._call(self.accounts[learner], self.contract.functions.vote(epoch, approve, fixed))

    def close(self, epoch: int, by: int = 0) -> dict[str, Any]:
        return self._call(self.accounts[by], self.contract.functions.close(epoch))

    def advance(self, seconds: int) -> None:
        """Move block time forward (anvil and ganache both take evm_increaseTime + evm_mine)."""
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def epoch(self, epoch: int, votes: Sequence[VotePlan], *, voting_timeout: int | None = None) -> None:
        """Propose and cast ``votes`` (one per learner, in learner order, skipping None entries).

        When some vote is missing, waits out ``voting_timeout`` and closes the epoch.
        """
        self.propose(epoch)
        for learner, plan in enumerate(votes):
            if plan is not None:
                self.vote(epoch, learner, *plan)
        if any(plan is None for plan in votes):
            assert voting_timeout is not None, "an epoch with a missing vote needs voting_timeout to close"
            self.advance(voting_timeout + 1)
            self.close(epoch, by=len(self.accounts) - 1)

    def skip(self, epoch: int, proposal_timeout: int) -> None:
        """Let the proposer miss its deadline and close the epoch as skipped."""
        self.advance(proposal_timeout + 1)
        self.close(epoch, by=0)


# ─────────────────────────────────────────────────────────────── thousands of epochs, fast


class Rpc:
    """Raw JSON-RPC over one keep-alive session, with batches."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self._id = 0

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        body = []
        for method, params in calls:
            self._id += 1
            body.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        replies = sorted(self.session.post(self.url, json=body, timeout=120).json(), key=lambda r: r["id"])
        errors = [r["error"] for r in replies if "error" in r]
        if errors:
            raise RuntimeError(f"RPC errors: {errors[:3]}")
        return [r["result"] for r in replies]

    def call(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]


def fast_history(url: str, epochs: int, n: int, seed: int = 0) -> Deployment:
    """Deploy with ``n`` learners and run ``epochs`` full epochs of real transactions on Anvil, fast; return the record.

    Anvil's auto-impersonation lets each learner address send unsigned ``eth_sendTransaction`` (no
    Python signing of thousands of transactions), with automine off; each epoch is one JSON-RPC batch
    (the proposal with a higher tip, so it is ordered first, then every vote) and one ``evm_mine``.
    Votes and scores are random (seeded). Anvil only: it relies on anvil_* methods.
    """
    rng = random.Random(seed)
    rpc = Rpc(url)
    w3 = Web3(Web3.HTTPProvider(url))
    learners: list[str] = [Web3.to_checksum_address(f"0x{i + 1:040x}") for i in range(n)]
    deployer = learners[0]
    rpc.batch([("anvil_setBalance", [a, hex(10**24)]) for a in learners] + [("anvil_autoImpersonateAccount", [True])])
    digest0, cid0 = "0x" + "11" * 32, cid_v0(b"initial weights")
    data = w3.eth.contract(abi=abi(), bytecode=bytecode()).constructor(
        learners, 5000, 86_400 * 365, 86_400 * 365, True, digest0, cid0
    ).build_transaction({"from": deployer, "gas": 10_000_000, "nonce": 0, "chainId": 31337,
                         "maxFeePerGas": 50 * GWEI, "maxPriorityFeePerGas": GWEI})["data"]
    tx = rpc.call("eth_sendTransaction", [{"from": deployer, "data": data, "gas": hex(10_000_000)}])
    receipt = rpc.call("eth_getTransactionReceipt", [tx])
    while receipt is None:  # anvil mines right away, but may answer the receipt a moment later
        time.sleep(0.05)
        receipt = rpc.call("eth_getTransactionReceipt", [tx])
    address = Web3.to_checksum_address(receipt["contractAddress"])
    contract = w3.eth.contract(address=address, abi=abi())
    nonces = {a: int(rpc.call("eth_getTransactionCount", [a, "latest"]), 16) for a in learners}
    rpc.call("evm_setAutomine", [False])

    def send(sender: str, calldata: str, tip: int, gas: int) -> tuple[str, list[Any]]:
        nonce = nonces[sender]
        nonces[sender] += 1
        return ("eth_sendTransaction", [{
            "from": sender, "to": address, "data": calldata, "gas": hex(gas), "nonce": hex(nonce),
            "maxPriorityFeePerGas": hex(tip * GWEI), "maxFeePerGas": hex(100 * GWEI),
        }])

    for e in range(epochs):
        proposer = learners[e % n]
        blob = f"epoch {e} weights by {proposer}".encode()
        digest = "0x" + hashlib.sha256(blob).hexdigest()
        calls = [send(proposer, contract.encode_abi("propose", [e, digest, cid_v0(blob)]), 3, 400_000)]
        approve_rate = rng.choice([0.3, 0.7, 0.9])
        for voter in learners:
            approve = rng.random() < approve_rate
            score = int(rng.uniform(-2.0, 2.0) * 10**18)
            calls.append(send(voter, contract.encode_abi("vote", [e, approve, score]), 1, 300_000))
        rpc.batch(calls)
        rpc.call("evm_mine", [])
    rpc.call("evm_setAutomine", [True])
    state = contract.functions.epochState().call()
    if state[0] != epochs:
        raise RuntimeError(f"the chain is at epoch {state[0]}, expected {epochs}: some transaction reverted")
    return Deployment(
        chain_id=31337, address=address, block=int(receipt["blockNumber"], 16), tx_hash=tx, learners=learners,
        vote_threshold_bps=5000, proposal_timeout=86_400 * 365, voting_timeout=86_400 * 365, proposer_votes=True,
        initial_digest=digest0, initial_cid=cid0,
    )
