"""A typed client of one CollectiveLearning contract, signing every transaction with the caller's own key.

It joins the three parts of the chain layer: the connection and its retry policy
(:mod:`.connection`: every RPC call is retried with backoff on transient errors before
:class:`ChainUnavailable`), the contract's views (:mod:`.views`) and the signed-transaction pipeline
(:mod:`.transactions`: EIP-1559, local nonce, replacement of stuck transactions, decoded reverts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from ..protocol import ZERO_DIGEST, ModelRecord, Phase
from .artifact import abi, bytecode
from .connection import DEFAULT_TIMEOUT, RetryPolicy, http_web3, is_transient
from .deployment import Deployment
from .events import as_hex
from .records import BlockId, ContractParams, CurrentModel, EpochState, SentTx
from .transactions import (
    DEFAULT_GAS_EXTRA,
    DEFAULT_GAS_MARGIN,
    DEFAULT_PRIORITY_FEE,
    DEFAULT_RECEIPT_POLL,
    DEFAULT_RECEIPT_TIMEOUT,
    DEFAULT_REPLACEMENTS,
    GWEI,
    TransactionSender,
)
from .views import ContractViews

__all__ = [
    "DEFAULT_PRIORITY_FEE",
    "GWEI",
    "ZERO_DIGEST",
    "BlockId",
    "ChainClient",
    "ContractParams",
    "CurrentModel",
    "EpochState",
    "Phase",
    "SentTx",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Kept for callers of the former private name; the rule lives in :func:`.connection.is_transient`.
_is_transient = is_transient


def _sender_option(name: str, doc: str) -> Any:
    """A read-write property forwarding to the TransactionSender's option ``name``."""

    def get(self: ChainClient) -> Any:
        return getattr(self.transactions, name)

    def set_(self: ChainClient, value: Any) -> None:
        setattr(self.transactions, name, value)

    return property(get, set_, doc=doc)


class ChainClient:
    """One learner's (or deployer's) view of one contract, sending transactions signed with ``account``.

    ``address`` may be None until :meth:`deploy`. ``retries`` is how many times a failing RPC call is
    retried (with exponential backoff from ``backoff`` seconds, capped at ``max_backoff``) before
    :class:`ChainUnavailable`; ``timeout`` is the HTTP timeout of one RPC call. A transaction not mined
    within ``receipt_timeout`` seconds is re-signed with the same nonce and fees raised by at least 12.5%,
    up to ``replacements`` times (see :class:`~.transactions.TransactionSender` for the other options).
    """

    def __init__(
        self,
        rpc_url: str,
        account: LocalAccount,
        address: str | None = None,
        *,
        retries: int = 5,
        timeout: float = DEFAULT_TIMEOUT,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
        gas_margin: float = DEFAULT_GAS_MARGIN,
        gas_extra: int = DEFAULT_GAS_EXTRA,
        priority_fee: int | None = DEFAULT_PRIORITY_FEE,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        receipt_poll: float = DEFAULT_RECEIPT_POLL,
        replacements: int = DEFAULT_REPLACEMENTS,
    ) -> None:
        self.rpc_url = rpc_url
        self.account = account
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # The provider asks once: this client's policy covers every call, including sends, in retrying().
        self.w3 = http_web3(rpc_url, timeout=timeout)
        self.transactions = TransactionSender(
            self.w3, account, self.retrying, gas_margin=gas_margin, gas_extra=gas_extra, priority_fee=priority_fee,
            receipt_timeout=receipt_timeout, receipt_poll=receipt_poll, replacements=replacements,
        )
        self.address: str | None = None
        self.contract: Any = None
        self._views: ContractViews | None = None
        if address is not None:
            self.attach(address)

    # ───────────────────────────────────────────────────────────── setup

    @property
    def sender(self) -> str:
        """The checksummed address that signs this client's transactions."""
        return str(self.account.address)

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy of :meth:`retrying`, from ``retries``, ``backoff`` and ``max_backoff``."""
        return RetryPolicy(retries=self.retries, backoff=self.backoff, max_backoff=self.max_backoff)

    priority_fee = _sender_option("priority_fee", "The tip in wei; None asks the node each time.")
    gas_margin = _sender_option("gas_margin", "Gas beyond the estimate, as a fraction of it.")
    gas_extra = _sender_option("gas_extra", "Gas beyond the estimate, absolute.")
    receipt_timeout = _sender_option("receipt_timeout", "Seconds before an unmined transaction is replaced.")
    receipt_poll = _sender_option("receipt_poll", "First pause between receipt polls (they slow down).")
    replacements = _sender_option("replacements", "How many times a stuck transaction is replaced.")

    @property
    def views(self) -> ContractViews:
        """The contract's typed views (RuntimeError before an address is known)."""
        if self._views is None:
            raise RuntimeError("ChainClient has no contract address: pass address= or call deploy()")
        return self._views

    def attach(self, address: str) -> None:
        """Point the client at the contract deployed at ``address``."""
        self._views = ContractViews(self.w3, address, retrying=self.retrying)
        self.address = self._views.address
        self.contract = self._views.contract

    def chain_id(self) -> int:
        return self.transactions.chain_id()

    def retrying(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call`` (one or more RPC requests), retrying transient failures with exponential backoff.

        Public so that callers reading the chain by other means (e.g. a LogCursor) share the policy.
        """
        return self.policy.run(what, call, endpoint=self.rpc_url)

    def deploy(
        self,
        learners: Sequence[str],
        threshold_bps: int,
        proposal_timeout: int,
        voting_timeout: int,
        proposer_votes: bool,
        initial_digest: str | bytes,
        initial_cid: str,
        *,
        extra: dict[str, Any] | None = None,
    ) -> Deployment:
        """Deploy the packaged contract, attach to it and return its deployment record."""
        learner_list = [Web3.to_checksum_address(a) for a in learners]
        digest = HexBytes(initial_digest)
        constructor = next(item for item in abi() if item["type"] == "constructor")
        types = [arg["type"] for arg in constructor["inputs"]]
        args = [
            learner_list, threshold_bps, proposal_timeout, voting_timeout, proposer_votes, bytes(digest), initial_cid
        ]
        data = bytecode() + abi_encode(types, args).hex()
        sent, receipt = self.transactions.transact("deploy", data, to=None)
        self.attach(receipt["contractAddress"])
        log.info("deployed CollectiveLearning at %s (tx %s, block %d)", self.address, sent.tx_hash, sent.block)
        return Deployment(
            chain_id=self.chain_id(),
            address=str(self.address),
            block=sent.block,
            tx_hash=sent.tx_hash,
            learners=[str(a) for a in learner_list],
            vote_threshold_bps=int(threshold_bps),
            proposal_timeout=int(proposal_timeout),
            voting_timeout=int(voting_timeout),
            proposer_votes=bool(proposer_votes),
            initial_digest=as_hex(digest),
            initial_cid=initial_cid,
            extra=dict(extra or {}),
        )

    # ───────────────────────────────────────────────────────────── views

    def epoch_state(self, *, block: BlockId = "latest") -> EpochState:
        return self.views.epoch_state(block=block)

    def current_model(self, *, block: BlockId = "latest") -> ModelRecord:
        return self.views.current_model(block=block)

    def current_epoch(self, *, block: BlockId = "latest") -> int:
        return self.views.current_epoch(block=block)

    def phase(self) -> Phase:
        return self.views.phase()

    def has_voted(self, learner: str | None = None, *, block: BlockId = "latest") -> bool:
        """Whether ``learner`` (default: this client's sender) has voted in the current epoch."""
        return self.views.has_voted(learner or self.sender, block=block)

    def learners(self) -> tuple[str, ...]:
        return self.views.learners()

    def learner_index(self, learner: str | None = None) -> int:
        """Position of ``learner`` (default: the sender) in the learner list; ContractRevert NotLearner otherwise."""
        return self.views.learner_index(learner or self.sender)

    def voter_count(self) -> int:
        return self.views.voter_count()

    def approvals_needed(self) -> int:
        return self.views.approvals_needed()

    def vote_threshold_bps(self) -> int:
        return self.views.vote_threshold_bps()

    def proposal_timeout(self) -> int:
        return self.views.proposal_timeout()

    def voting_timeout(self) -> int:
        return self.views.voting_timeout()

    def proposer_votes(self) -> bool:
        return self.views.proposer_votes()

    def params(self) -> ContractParams:
        """Every fixed parameter in one object (several calls; they never change)."""
        return self.views.params()

    def pending_timestamp(self) -> int:
        """The timestamp the next block would have: the chain's clock for deadlines.

        Why not the latest block's: a local chain that mines only on transactions keeps an old latest
        block while no one sends anything, so a deadline would never seem to pass.
        """
        block = self.retrying("eth_getBlockByNumber", lambda: self.w3.eth.get_block("pending"))
        return int(block["timestamp"])

    def block_number(self) -> int:
        return int(self.retrying("eth_blockNumber", lambda: self.w3.eth.block_number))

    def balance(self, account: str | None = None) -> int:
        address = Web3.to_checksum_address(account or self.sender)
        return int(self.retrying("eth_getBalance", lambda: self.w3.eth.get_balance(address)))

    # ───────────────────────────────────────────────────────────── mutators

    def propose(self, epoch: int, digest: str | bytes, cid: str) -> SentTx:
        """Record the proposal of ``epoch``: the sha256 ``digest`` of the blob and its ``cid``."""
        return self._call_mutator("propose", epoch, bytes(HexBytes(digest)), cid)

    def vote(self, epoch: int, approve: bool, score: int) -> SentTx:
        """Vote on ``epoch``'s proposal.

        ``score`` is fixed point (see :func:`colearn_chain.protocol.to_fixed_point`).
        """
        return self._call_mutator("vote", epoch, bool(approve), int(score))

    def close(self, epoch: int) -> SentTx:
        """Close ``epoch`` after its deadline (skip, or decide with the votes present)."""
        return self._call_mutator("close", epoch)

    def _call_mutator(self, name: str, *args: Any) -> SentTx:
        views = self.views
        sent, _ = self.transactions.transact(name, views.encode(name, *args), to=views.address)
        return sent
