"""A typed client of one CollectiveLearning contract, signing every transaction with the caller's own key.

Why its own client rather than web3's ``transact()``: a learner must not rely on an unlocked node
account, so the same code works on a local chain and on a public testnet. Transactions are EIP-1559,
signed locally, with a locally tracked nonce (resynchronised from the node's ``pending`` count when the
node disagrees), and every RPC call is retried with backoff on transient errors (connection refused,
timeouts, rate limits, a node that has not seen a block yet) before giving up with
:class:`ChainUnavailable`. Reverts come back as :class:`ContractRevert` with the custom error's name and
arguments, decoded from the revert data; a mined transaction that failed without a rule refusing it
(e.g. out of gas) comes back as :class:`TransactionFailed`, which is worth sending again. A transaction
not mined in time is replaced (same nonce, fees raised by at least 12.5%), never queued behind.
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
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    TransactionIndexingInProgress,
    TransactionNotFound,
    Web3RPCError,
)

from ..exceptions import ChainUnavailable, ContractRevert, TransactionFailed
from ..text import redact_in, redact_url
from .artifact import bytecode
from .deployment import Deployment
from .events import as_hex as _hex
from .events import decode_cid, view_abi
from .revert import Phase, revert_data_of, revert_from_exception

__all__ = ["ChainClient", "ContractParams", "CurrentModel", "EpochState", "Phase", "SentTx"]

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
#: Node messages that mean a replacement's fees are not high enough above the transaction it replaces.
_UNDERPRICED_HINTS: Final[tuple[str, ...]] = ("replacement transaction underpriced",)

#: Errors that say nothing about the request, only that the node could not answer it now.
_TRANSIENT_TYPES: Final[tuple[type[BaseException], ...]] = (
    OSError,  # requests' exceptions (incl. HTTP 429/5xx from raise_for_status), ConnectionError, TimeoutError
    TooManyRequests,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionIndexingInProgress,
)
#: JSON-RPC error codes meaning "busy, ask again": -32005 limit exceeded (EIP-1474), 429 from gateways.
_TRANSIENT_CODES: Final[frozenset[int]] = frozenset({-32005, 429})
#: Node messages (lower case) meaning the same: rate limits, a node behind its peers, timeouts.
_TRANSIENT_HINTS: Final[tuple[str, ...]] = (
    "rate limit",
    "too many requests",
    "limit exceeded",
    "header not found",  # a load-balanced node that has not seen the block its peer just reported
    "timeout",
    "timed out",
    "deadline exceeded",
    "try again",
    "temporarily unavailable",
    "service unavailable",
)


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
    #: the proposed CID, "" before a proposal (an escaped rendering when ``cid_invalid``)
    cid: str
    #: why the proposed CID is not a plausible CID (not UTF-8, control characters, too long), else None
    cid_invalid: str | None = None

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
    #: why ``cid`` is not a plausible CID (then it is an escaped rendering), else None
    cid_invalid: str | None = None


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


def _rpc_error(exc: Web3RPCError) -> tuple[int | None, str]:
    """(code, lower-case message) of a JSON-RPC error response."""
    code: int | None = None
    message = str(exc)
    response = exc.rpc_response
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        error = response["error"]
        if isinstance(error.get("code"), int):
            code = error["code"]
        message = f"{error.get('message', '')} {message}"
    return code, message.lower()


def _is_transient(exc: BaseException) -> bool:
    """Whether the node may answer if asked again: connection or HTTP errors, timeouts, rate limits, lag.

    A revert is never transient, whatever its message says.
    """
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, ContractLogicError) or revert_data_of(exc) is not None:
        return False
    if isinstance(exc, Web3RPCError) and not isinstance(exc, TransactionNotFound):
        code, message = _rpc_error(exc)
        return code in _TRANSIENT_CODES or any(hint in message for hint in _TRANSIENT_HINTS)
    return False


def _bump(fee: int) -> int:
    """``fee`` raised by more than 12.5%: what nodes require of a replacement (geth 10%, others 12.5%)."""
    return fee * 9 // 8 + 1


class ChainClient:
    """One learner's (or deployer's) view of one contract, sending transactions signed with ``account``.

    ``address`` may be None until :meth:`deploy`. ``retries`` is how many times a failing RPC call is
    retried (with exponential backoff from ``backoff`` seconds, capped at ``max_backoff``) before
    :class:`ChainUnavailable`; ``timeout`` is the HTTP timeout of one RPC call. A transaction not mined
    within ``receipt_timeout`` seconds is re-signed with the same nonce and fees raised by at least 12.5%,
    up to ``replacements`` times.
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
        replacements: int = 3,
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
        self.replacements = replacements
        # web3's own retry is off: ours covers every call, including sends, with one policy.
        self.w3 = Web3(
            Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        )
        self._abi = view_abi()  # views return CIDs as bytes, decoded by decode_cid: never a UnicodeDecodeError
        self._chain_id: int | None = None
        self._nonce: int | None = None
        #: (nonce, maxFeePerGas, tip) of a transaction given up on unmined: the next one replaces it
        self._stuck: tuple[int, int, int] | None = None
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
        epoch, phase, proposer, deadline, approvals, rejections, digest, raw_cid = self._view("epochState", block=block)
        cid = decode_cid(raw_cid, empty_ok=_hex(digest) == ZERO_DIGEST)
        return EpochState(
            epoch=int(epoch),
            phase=Phase(phase),
            proposer=Web3.to_checksum_address(proposer),
            deadline=int(deadline),
            approvals=int(approvals),
            rejections=int(rejections),
            digest=_hex(digest),
            cid=cid.text,
            cid_invalid=cid.invalid,
        )

    def current_model(self, *, block: BlockId = "latest") -> CurrentModel:
        digest, raw_cid, since = self._view("currentModel", block=block)
        cid = decode_cid(raw_cid)
        return CurrentModel(digest=_hex(digest), cid=cid.text, since_epoch=int(since), cid_invalid=cid.invalid)

    def current_epoch(self, *, block: BlockId = "latest") -> int:
        return int(self._view("currentEpoch", block=block))

    def phase(self) -> Phase:
        return Phase(self._view("phase"))

    def has_voted(self, learner: str | None = None, *, block: BlockId = "latest") -> bool:
        """Whether ``learner`` (default: this client's sender) has voted in the current epoch."""
        return bool(self._view("hasVoted", Web3.to_checksum_address(learner or self.sender), block=block))

    def learners(self) -> tuple[str, ...]:
        return tuple(Web3.to_checksum_address(a) for a in self._view("learners"))

    def learner_index(self, learner: str | None = None) -> int:
        """Position of ``learner`` (default: the sender) in the learner list; ContractRevert NotLearner otherwise."""
        return int(self._view("learnerIndex", Web3.to_checksum_address(learner or self.sender)))

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
                            what, redact_url(self.rpc_url), type(last).__name__, attempt + 1, self.retries, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise ChainUnavailable(
            f"{what}: {redact_url(self.rpc_url)} unreachable after {self.retries + 1} attempts: "
            f"{redact_in(str(last), self.rpc_url)}"
        ) from last

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

    def _fees(self, nonce: int) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): twice the latest base fee plus the tip.

        For a nonce still held by a transaction we gave up on, at least that transaction's fees raised by
        12.5%, so the node takes the new one as its replacement.
        """
        block = self.retrying("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        tip = self.priority_fee
        if tip is None:
            try:
                tip = int(self.retrying("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
            except (Web3RPCError, ValueError):
                tip = DEFAULT_PRIORITY_FEE
        max_fee = 2 * base_fee + tip
        if self._stuck is not None and self._stuck[0] == nonce:
            _, stuck_max_fee, stuck_tip = self._stuck
            tip = max(tip, _bump(stuck_tip))
            max_fee = max(max_fee, _bump(stuck_max_fee), tip)
        return max_fee, tip

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
        """Estimate, sign, send, wait: return the mined transaction and its receipt.

        Raises ContractRevert when a rule of the contract refused it, TransactionFailed when it failed on
        chain for another reason (out of gas), ChainUnavailable when it could not be sent or mined.
        """
        tx: dict[str, Any] = {"from": self.sender, "data": data}
        if to is not None:
            tx["to"] = to
        gas = self._estimate_gas(what, tx)
        for _ in range(nonce_attempts):
            nonce = self._next_nonce()
            max_fee, tip = self._fees(nonce)
            status, tx_hash = self._send(what, tx, nonce=nonce, gas=gas, max_fee=max_fee, tip=tip)
            if tx_hash is None:
                log.info("%s: nonce %d refused (%s); resyncing from the pending count", what, nonce, status)
                self._nonce = None
                if self._stuck is not None and self._stuck[0] == nonce:
                    self._stuck = None  # whatever held the nonce is mined or replaced by another sender
                continue
            self._nonce = nonce + 1
            receipt = self._wait_or_replace(what, tx, [tx_hash], nonce=nonce, gas=gas, max_fee=max_fee, tip=tip)
            sent = SentTx(tx_hash=_hex(receipt["transactionHash"]), gas_used=int(receipt["gasUsed"]),
                          block=int(receipt["blockNumber"]))
            if int(receipt["status"]) != 1:
                raise self._failure_of_mined(what, tx, receipt, gas)
            log.debug("%s: mined %s in block %d, gas %d", what, sent.tx_hash, sent.block, sent.gas_used)
            return sent, receipt
        raise ChainUnavailable(f"{what}: the node refused {nonce_attempts} nonces in a row")

    def _send(
        self, what: str, tx: dict[str, Any], *, nonce: int, gas: int, max_fee: int, tip: int
    ) -> tuple[str, HexBytes | None]:
        """Sign and send; ("sent", hash), or (why, None) when the node refused the nonce or the fees."""
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
            elif any(hint in message for hint in _UNDERPRICED_HINTS):
                return "underpriced", None
            elif any(hint in message for hint in _NONCE_HINTS):
                return message, None
            else:
                revert = revert_from_exception(exc)
                if revert is not None:
                    raise revert from exc
                raise
        return "sent", tx_hash

    def _wait_or_replace(
        self, what: str, tx: dict[str, Any], hashes: list[HexBytes], *, nonce: int, gas: int, max_fee: int, tip: int
    ) -> Any:
        """The receipt of whichever of ``hashes`` (one nonce) is mined; re-sign with higher fees while none is.

        Why not give up and resync the nonce: the node counts the stuck transaction as pending, so the
        next one would queue behind it. Replacing it (same nonce, fees raised by >= 12.5%) unblocks it.
        """
        for replacement in range(self.replacements + 1):
            receipt = self._wait_for_receipt(what, hashes)
            if receipt is not None:
                if self._stuck is not None and self._stuck[0] == nonce:
                    self._stuck = None
                return receipt
            if replacement == self.replacements:
                break
            fresh_max_fee, fresh_tip = self._fees(nonce)
            tip = max(fresh_tip, _bump(tip))
            max_fee = max(fresh_max_fee, _bump(max_fee), tip)
            log.warning("%s: %s not mined within %.0f s; replacing it (nonce %d) with tip %d, max fee %d wei",
                        what, _hex(hashes[-1]), self.receipt_timeout, nonce, tip, max_fee)
            try:
                status, tx_hash = self._send(what, tx, nonce=nonce, gas=gas, max_fee=max_fee, tip=tip)
            except ChainUnavailable:
                self._nonce, self._stuck = nonce, (nonce, max_fee, tip)
                raise
            if tx_hash is not None:
                hashes.append(tx_hash)
            elif status != "underpriced":  # the nonce is used: by one of ours, or by another sender
                receipt = self._wait_for_receipt(what, hashes, timeout=1.0)
                if receipt is not None:
                    return receipt
                self._nonce = None
                raise ChainUnavailable(f"{what}: nonce {nonce} was used by another transaction of {self.sender}")
        # Keep the nonce: the next transaction takes its place (with fees above the stuck one's), not behind it.
        self._nonce = nonce
        self._stuck = (nonce, max_fee, tip)
        raise ChainUnavailable(
            f"{what}: nonce {nonce} not mined within {self.receipt_timeout:.0f} s, "
            f"{self.replacements} replacements with higher fees (last {_hex(hashes[-1])})"
        )

    def _wait_for_receipt(self, what: str, hashes: Sequence[HexBytes], *, timeout: float | None = None) -> Any:
        """The receipt of the first of ``hashes`` found mined within ``timeout`` seconds, else None."""
        deadline = time.monotonic() + (self.receipt_timeout if timeout is None else timeout)
        while True:
            for tx_hash in hashes:
                try:
                    return self.retrying(f"{what} receipt", lambda: self.w3.eth.get_transaction_receipt(tx_hash))
                except TransactionNotFound:
                    pass
            if time.monotonic() > deadline:
                return None
            time.sleep(self.receipt_poll)

    def _failure_of_mined(self, what: str, tx: dict[str, Any], receipt: Any, gas: int) -> ContractRevert | TransactionFailed:
        """Why a mined transaction failed: replay it on the state its block left.

        A transaction that passed estimation but reverted on chain usually lost a race to one mined before
        it in the same block (another close, the vote that completed the set, a deadline crossed by the
        block's timestamp), so the state after that block shows the rule it broke. If the replay passes,
        no rule refused it: it ran out of gas (e.g. an estimate made before another vote made ours the one
        that decides the epoch), and sending it again with a fresh estimate may succeed.
        """
        block = int(receipt["blockNumber"])
        try:
            self.retrying(f"{what} replay", lambda: self.w3.eth.call(tx, block_identifier=block))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            revert = revert_from_exception(exc)
            if revert is not None:
                return revert
        tx_hash = _hex(receipt["transactionHash"])
        gas_used = int(receipt["gasUsed"])
        cause = "ran out of gas" if gas_used >= gas else "failed"
        return TransactionFailed(
            f"{what}: {tx_hash} {cause} in block {block} (gas used {gas_used} of {gas}) though its replay passes; "
            "send it again",
            tx_hash=tx_hash, block=block, gas_used=gas_used, gas_limit=gas,
        )
