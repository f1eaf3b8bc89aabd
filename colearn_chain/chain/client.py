"""A typed client of one CollectiveLearning contract, signing every transaction with the caller's own key.

Why its own client rather than web3's ``transact()``: a learner must not rely on an unlocked node
account, so the same code works on a local chain and on a public testnet. Transactions are EIP-1559,
signed locally, with a locally tracked nonce (resynchronised from the node's ``pending`` count when the
node disagrees), and every RPC call is retried with backoff on transient errors (connection refused,
timeouts) before giving up with :class:`ChainUnavailable`. Reverts come back as :class:`ContractRevert`
with the custom error's name and arguments, decoded from the revert data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Final, Sequence, TypeVar, Union

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from ..exceptions import ChainUnavailable, ContractRevert
from .artifact import abi, bytecode
from .deployment import Deployment
from .revert import Phase, revert_from_exception

__all__ = ["ChainClient", "ContractParams", "CurrentModel", "EpochState", "Phase", "SentTx", "BlockInfo"]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A block number or tag ("latest", "pending", ...).
BlockId = Union[int, str]

GWEI: Final[int] = 10**9
#: Tip offered when the node cannot suggest one (and the default on local chains).
DEFAULT_PRIORITY_FEE: Final[int] = 1 * GWEI
ZERO_DIGEST: Final[str] = "0x" + "00" * 32

#: Node messages (lower case) that mean "this nonce is not the next one", so we resync and re-sign.
_NONCE_HINTS: Final[tuple[str, ...]] = ("nonce too low", "nonce too high", "invalid nonce", "replacement transaction underpriced")
#: Node messages that mean the very same signed transaction is already in the pool.
_KNOWN_HINTS: Final[tuple[str, ...]] = ("already known", "already imported", "known transaction")


@dataclass(frozen=True)
class EpochState:
    """The contract's ``epochState()``: the current epoch at the latest block."""

    epoch: int
    phase: Phase
    proposer: str
    #: the proposal deadline while proposing, the voting deadline once proposed (unix seconds)
    deadline: int
    approvals: int
    rejections: int
    #: the proposed digest, ZERO_DIGEST before a proposal
    digest: str
    #: the proposed CID, "" before a proposal
    cid: str

    @property
    def proposed(self) -> bool:
        return self.digest != ZERO_DIGEST


@dataclass(frozen=True)
class CurrentModel:
    """The contract's ``currentModel()``: the last accepted proposal, or the initial model."""

    digest: str
    cid: str
    #: the first epoch in which this model was current (0 for the initial model)
    since_epoch: int


@dataclass(frozen=True)
class ContractParams:
    """The deployment's fixed parameters, read from the contract."""

    learners: tuple[str, ...]
    vote_threshold_bps: int
    proposal_timeout: int
    voting_timeout: int
    proposer_votes: bool
    voter_count: int
    approvals_needed: int


@dataclass(frozen=True)
class SentTx:
    """A mined, successful transaction."""

    tx_hash: str
    gas_used: int
    block: int


@dataclass(frozen=True)
class BlockInfo:
    """The latest block's number and timestamp: deadlines compare against the chain's clock, not ours."""

    number: int
    timestamp: int


def _hex(value: Any) -> str:
    return Web3.to_hex(value) if not isinstance(value, str) else value


def _is_transient(exc: BaseException) -> bool:
    """Connection refused/reset, timeouts, HTTP errors: the node may answer if we ask again."""
    # requests' exceptions derive from OSError, as do ConnectionError and TimeoutError.
    return isinstance(exc, OSError)


class ChainClient:
    """One learner's (or deployer's) view of one contract, sending transactions signed with ``account``.

    ``address`` may be None until :meth:`deploy`. ``retries`` is how many times a failing RPC call is
    retried (with exponential backoff from ``backoff`` seconds, capped at ``max_backoff``) before
    :class:`ChainUnavailable`; ``timeout`` is the HTTP timeout of one RPC call.
    """

    def __init__(
        self,
        rpc_url: str,
        account: LocalAccount,
        address: str | None = None,
        *,
        retries: int = 5,
        timeout: float = 10.0,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
        gas_margin: float = 0.25,
        gas_extra: int = 60_000,
        priority_fee: int | None = DEFAULT_PRIORITY_FEE,
        receipt_timeout: float = 120.0,
        receipt_poll: float = 0.05,
    ) -> None:
        self.rpc_url = rpc_url
        self.account = account
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # Extra gas beyond the estimate: the vote that completes the set also decides the epoch, and
        # with interval mining another voter's transaction in the same block can make ours that one.
        self.gas_margin = gas_margin
        self.gas_extra = gas_extra
        #: the tip in wei; None asks the node (eth_maxPriorityFeePerGas) each time
        self.priority_fee = priority_fee
        self.receipt_timeout = receipt_timeout
        self.receipt_poll = receipt_poll
        # web3's own retry is off: ours covers every call, including sends, with one policy.
        self.w3 = Web3(
            Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        )
        self._abi = abi()
        self._chain_id: int | None = None
        self._nonce: int | None = None
        self.address: str | None = None
        self.contract: Any = None
        if address is not None:
            self.attach(address)

    # ───────────────────────────────────────────────────────────── setup

    @property
    def sender(self) -> str:
        """The checksummed address that signs this client's transactions."""
        return str(self.account.address)

    def attach(self, address: str) -> None:
        """Point the client at the contract deployed at ``address``."""
        self.address = Web3.to_checksum_address(address)
        self.contract = self.w3.eth.contract(address=self.address, abi=self._abi)

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.retrying("eth_chainId", lambda: self.w3.eth.chain_id))
        return self._chain_id

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
        constructor = next(item for item in self._abi if item["type"] == "constructor")
        types = [arg["type"] for arg in constructor["inputs"]]
        args = [learner_list, threshold_bps, proposal_timeout, voting_timeout, proposer_votes, bytes(digest), initial_cid]
        data = bytecode() + abi_encode(types, args).hex()
        sent, receipt = self._transact("deploy", data, to=None)
        self.attach(receipt["contractAddress"])
        log.info("deployed CollectiveLearning at %s (tx %s, block %d)", self.address, sent.tx_hash, sent.block)
        return Deployment(
            chain_id=self.chain_id(),
            address=str(self.address),
            block=sent.block,
            tx_hash=sent.tx_hash,
            learners=learner_list,
            vote_threshold_bps=int(threshold_bps),
            proposal_timeout=int(proposal_timeout),
            voting_timeout=int(voting_timeout),
            proposer_votes=bool(proposer_votes),
            initial_digest=_hex(digest),
            initial_cid=initial_cid,
            extra=dict(extra or {}),
        )

    # ───────────────────────────────────────────────────────────── views

    # ``block`` pins a view to one block, so several views read one consistent state.

    def epoch_state(self, *, block: BlockId = "latest") -> EpochState:
        epoch, phase, proposer, deadline, approvals, rejections, digest, cid = self._view("epochState", block=block)
        return EpochState(
            epoch=int(epoch),
            phase=Phase(phase),
            proposer=Web3.to_checksum_address(proposer),
            deadline=int(deadline),
            approvals=int(approvals),
            rejections=int(rejections),
            digest=_hex(digest),
            cid=str(cid),
        )

    def current_model(self, *, block: BlockId = "latest") -> CurrentModel:
        digest, cid, since = self._view("currentModel", block=block)
        return CurrentModel(digest=_hex(digest), cid=str(cid), since_epoch=int(since))

    def current_epoch(self) -> int:
        return int(self._view("currentEpoch"))

    def phase(self) -> Phase:
        return Phase(self._view("phase"))

    def has_voted(self, learner: str | None = None, *, block: BlockId = "latest") -> bool:
        """Whether ``learner`` (default: this client's sender) has voted in the current epoch."""
        return bool(self._view("hasVoted", Web3.to_checksum_address(learner or self.sender), block=block))

    def learners(self) -> tuple[str, ...]:
        return tuple(Web3.to_checksum_address(a) for a in self._view("learners"))

    def learner_count(self) -> int:
        return int(self._view("learnerCount"))

    def is_learner(self, account: str) -> bool:
        return bool(self._view("isLearner", Web3.to_checksum_address(account)))

    def learner_index(self, learner: str | None = None) -> int:
        """Position of ``learner`` (default: the sender) in the learner list; ContractRevert NotLearner otherwise."""
        return int(self._view("learnerIndex", Web3.to_checksum_address(learner or self.sender)))

    def proposer_of(self, epoch: int) -> str:
        return Web3.to_checksum_address(self._view("proposerOf", epoch))

    def voter_count(self) -> int:
        return int(self._view("voterCount"))

    def approvals_needed(self) -> int:
        return int(self._view("approvalsNeeded"))

    def vote_threshold_bps(self) -> int:
        return int(self._view("voteThresholdBps"))

    def proposal_timeout(self) -> int:
        return int(self._view("proposalTimeout"))

    def voting_timeout(self) -> int:
        return int(self._view("votingTimeout"))

    def proposer_votes(self) -> bool:
        return bool(self._view("proposerVotes"))

    def params(self) -> ContractParams:
        """Every fixed parameter in one object (several calls; they never change)."""
        return ContractParams(
            learners=self.learners(),
            vote_threshold_bps=self.vote_threshold_bps(),
            proposal_timeout=self.proposal_timeout(),
            voting_timeout=self.voting_timeout(),
            proposer_votes=self.proposer_votes(),
            voter_count=self.voter_count(),
            approvals_needed=self.approvals_needed(),
        )

    def pending_timestamp(self) -> int:
        """The timestamp the next block would have: the chain's clock for deadlines.

        Why not the latest block's: a local chain that mines only on transactions keeps an old latest
        block while no one sends anything, so a deadline would never seem to pass.
        """
        block = self.retrying("eth_getBlockByNumber", lambda: self.w3.eth.get_block("pending"))
        return int(block["timestamp"])

    def latest_block(self) -> BlockInfo:
        block = self.retrying("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        return BlockInfo(number=int(block["number"]), timestamp=int(block["timestamp"]))

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
        """Vote on ``epoch``'s proposal; ``score`` is fixed point, 1e18 = 1.0."""
        return self._call_mutator("vote", epoch, bool(approve), int(score))

    def close(self, epoch: int) -> SentTx:
        """Close ``epoch`` after its deadline (skip, or decide with the votes present)."""
        return self._call_mutator("close", epoch)

    # ───────────────────────────────────────────────────────────── internals

    def _require_contract(self) -> Any:
        if self.contract is None:
            raise RuntimeError("ChainClient has no contract address: pass address= or call deploy()")
        return self.contract

    def retrying(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call`` (one or more RPC requests), retrying transient failures with exponential backoff.

        Public so that callers reading the chain by other means (e.g. a LogCursor) share the policy.
        """
        delay = self.backoff
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - only transient ones are retried, see _is_transient
                if not _is_transient(exc):
                    raise
                last = exc
            if attempt < self.retries:
                log.warning("%s: %s unreachable (%s); retry %d/%d in %.2f s",
                            what, self.rpc_url, type(last).__name__, attempt + 1, self.retries, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise ChainUnavailable(f"{what}: {self.rpc_url} unreachable after {self.retries + 1} attempts: {last}") from last

    def _view(self, name: str, *args: Any, block: BlockId = "latest") -> Any:
        function = getattr(self._require_contract().functions, name)(*args)
        try:
            return self.retrying(name, lambda: function.call(block_identifier=block))
        except (ContractLogicError, Web3RPCError) as exc:
            revert = revert_from_exception(exc)
            if revert is None:
                raise
            raise revert from exc

    def _call_mutator(self, name: str, *args: Any) -> SentTx:
        contract = self._require_contract()
        data = contract.encode_abi(name, args=list(args))
        sent, _ = self._transact(name, data, to=self.address)
        return sent

    def _estimate_gas(self, what: str, tx: dict[str, Any]) -> int:
        try:
            # Against the pending block, which the transaction joins: its timestamp is the chain's "now".
            estimate = int(
                self.retrying(f"{what} estimate_gas", lambda: self.w3.eth.estimate_gas(tx, block_identifier="pending"))  # type: ignore[arg-type]
            )
        except (ContractLogicError, Web3RPCError) as exc:
            revert = revert_from_exception(exc)
            if revert is None:
                raise
            raise revert from exc
        return int(estimate * (1 + self.gas_margin)) + self.gas_extra

    def _fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): twice the latest base fee plus the tip."""
        block = self.retrying("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        tip = self.priority_fee
        if tip is None:
            try:
                tip = int(self.retrying("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
            except (Web3RPCError, ValueError):
                tip = DEFAULT_PRIORITY_FEE
        return 2 * base_fee + tip, tip

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = int(
                self.retrying("eth_getTransactionCount", lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"))
            )
        return self._nonce

    def _known(self, tx_hash: HexBytes) -> bool:
        """Whether the node knows ``tx_hash`` (pending or mined): a retried send that had in fact arrived."""
        try:
            self.retrying("eth_getTransactionByHash", lambda: self.w3.eth.get_transaction(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def _transact(self, what: str, data: str, *, to: str | None, nonce_attempts: int = 4) -> tuple[SentTx, Any]:
        """Estimate, sign, send, wait: return the mined transaction and its receipt, or raise ContractRevert."""
        tx: dict[str, Any] = {"from": self.sender, "data": data}
        if to is not None:
            tx["to"] = to
        gas = self._estimate_gas(what, tx)
        for attempt in range(nonce_attempts):
            nonce = self._next_nonce()
            max_fee, tip = self._fees()
            signed = self.account.sign_transaction(
                {
                    **tx,
                    "chainId": self.chain_id(),
                    "nonce": nonce,
                    "gas": gas,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                    "type": 2,
                }
            )
            tx_hash = HexBytes(signed.hash)
            try:
                self.retrying(f"{what} send", lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
            except ChainUnavailable:
                self._nonce = None  # the send may or may not have arrived: ask the node next time
                raise
            except (Web3RPCError, ValueError) as exc:
                message = str(exc).lower()
                if any(hint in message for hint in _KNOWN_HINTS) or (
                    any(hint in message for hint in _NONCE_HINTS) and self._known(tx_hash)
                ):
                    log.debug("%s: %s was already sent", what, _hex(tx_hash))
                elif any(hint in message for hint in _NONCE_HINTS):
                    log.info("%s: nonce %d refused (%s); resyncing from the pending count", what, nonce, exc)
                    self._nonce = None
                    continue
                else:
                    revert = revert_from_exception(exc)
                    if revert is not None:
                        raise revert from exc
                    raise
            self._nonce = nonce + 1
            receipt = self._wait_for_receipt(what, tx_hash)
            sent = SentTx(tx_hash=_hex(tx_hash), gas_used=int(receipt["gasUsed"]), block=int(receipt["blockNumber"]))
            if int(receipt["status"]) != 1:
                raise self._revert_of_mined(what, tx, receipt)
            log.debug("%s: mined %s in block %d, gas %d", what, sent.tx_hash, sent.block, sent.gas_used)
            return sent, receipt
        raise ChainUnavailable(f"{what}: the node refused {nonce_attempts} nonces in a row")

    def _wait_for_receipt(self, what: str, tx_hash: HexBytes) -> Any:
        deadline = time.monotonic() + self.receipt_timeout
        while True:
            try:
                return self.retrying(f"{what} receipt", lambda: self.w3.eth.get_transaction_receipt(tx_hash))
            except TransactionNotFound:
                pass
            if time.monotonic() > deadline:
                self._nonce = None
                raise ChainUnavailable(f"{what}: {_hex(tx_hash)} not mined within {self.receipt_timeout:.0f} s")
            time.sleep(self.receipt_poll)

    def _revert_of_mined(self, what: str, tx: dict[str, Any], receipt: Any) -> ContractRevert:
        """Why a mined transaction reverted: replay it on the state its block left.

        A transaction that passed estimation but reverted on chain lost a race to one mined before it
        in the same block (another close, the vote that completed the set, a deadline crossed by the
        block's timestamp), so the state after that block shows the rule it broke.
        """
        block = int(receipt["blockNumber"])
        try:
            self.retrying(f"{what} replay", lambda: self.w3.eth.call(tx, block_identifier=block))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            revert = revert_from_exception(exc)
            if revert is not None:
                return revert
        tx_hash = _hex(receipt["transactionHash"])
        return ContractRevert("TransactionReverted", (tx_hash,), f"TransactionReverted(tx={tx_hash}, block={block})")
