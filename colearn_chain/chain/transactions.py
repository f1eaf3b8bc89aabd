"""The signed-transaction pipeline: estimate, sign locally, send, wait, replace when stuck, explain failures.

Why its own pipeline rather than web3's ``transact()``: a learner must not rely on an unlocked node
account, so the same code works on a local chain and on a public testnet. Transactions are EIP-1559,
signed locally, with a locally tracked nonce (resynchronised from the node's ``pending`` count when the
node disagrees). Reverts come back as :class:`ContractRevert` with the custom error's name and
arguments; a mined transaction that failed without a rule refusing it (e.g. out of gas) comes back as
:class:`TransactionFailed`, which is worth sending again. A transaction not mined in time is replaced
(same nonce, fees raised by at least 12.5%), never queued behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from ..exceptions import ChainUnavailable, ContractRevert, TransactionFailed
from .events import as_hex
from .records import SentTx
from .revert import revert_from_exception
from .views import Retrying

__all__ = [
    "DEFAULT_GAS_EXTRA",
    "DEFAULT_GAS_MARGIN",
    "DEFAULT_PRIORITY_FEE",
    "DEFAULT_RECEIPT_POLL",
    "DEFAULT_RECEIPT_TIMEOUT",
    "DEFAULT_REPLACEMENTS",
    "GWEI",
    "TransactionSender",
    "bump_fee",
]

log = logging.getLogger(__name__)

GWEI: Final[int] = 10**9
#: Tip offered when the node cannot suggest one (and the default on local chains).
DEFAULT_PRIORITY_FEE: Final[int] = 1 * GWEI
# The sender's other defaults, here once for TransactionSender and ChainClient (which passes them on).
DEFAULT_GAS_MARGIN: Final[float] = 0.25
DEFAULT_GAS_EXTRA: Final[int] = 60_000
DEFAULT_RECEIPT_TIMEOUT: Final[float] = 120.0
DEFAULT_RECEIPT_POLL: Final[float] = 0.05
#: Receipt polls start at the sender's ``receipt_poll`` and slow down by this factor up to
#: :data:`RECEIPT_POLL_CAP`: a dev chain mines at once, a public one every 12 s, and a node (or the
#: provider's rate limit) should not hear 20 requests a second for each transaction waiting in its pool.
RECEIPT_POLL_BACKOFF: Final[float] = 1.5
RECEIPT_POLL_CAP: Final[float] = 0.5
DEFAULT_REPLACEMENTS: Final[int] = 3
#: Seconds between two checks, while waiting for a receipt, that no vanished nonce holds the transaction back.
GAP_CHECK_SECONDS: Final[float] = 1.0
#: What a receipt wait returns when the node has forgotten the transaction (a reorganisation dropped it).
_VANISHED: Final[object] = object()

#: Node messages (lower case) that mean "this nonce is not the next one", so we resync and re-sign.
_NONCE_HINTS: Final[tuple[str, ...]] = (
    "nonce too low", "nonce too high", "invalid nonce", "replacement transaction underpriced"
)
#: Node messages that mean the very same signed transaction is already in the pool.
_KNOWN_HINTS: Final[tuple[str, ...]] = ("already known", "already imported", "known transaction")
#: Node messages that mean a replacement's fees are not high enough above the transaction it replaces.
_UNDERPRICED_HINTS: Final[tuple[str, ...]] = ("replacement transaction underpriced",)


def bump_fee(fee: int) -> int:
    """``fee`` raised by more than 12.5%: what nodes require of a replacement (geth 10%, others 12.5%)."""
    return fee * 9 // 8 + 1


class TransactionSender:
    """Sends transactions signed by ``account`` through ``w3``, each RPC call under ``retrying``.

    Extra gas beyond the estimate (``gas_margin`` of it plus ``gas_extra``): the vote that completes the
    set also decides the epoch, and with interval mining another voter's transaction in the same block
    can make ours that one. ``priority_fee`` None asks the node (eth_maxPriorityFeePerGas) each time. A
    transaction not mined within ``receipt_timeout`` seconds is re-signed with the same nonce and fees
    raised by at least 12.5%, up to ``replacements`` times.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        retrying: Retrying,
        *,
        gas_margin: float = DEFAULT_GAS_MARGIN,
        gas_extra: int = DEFAULT_GAS_EXTRA,
        priority_fee: int | None = DEFAULT_PRIORITY_FEE,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        receipt_poll: float = DEFAULT_RECEIPT_POLL,
        replacements: int = DEFAULT_REPLACEMENTS,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.retrying = retrying
        self.gas_margin = gas_margin
        self.gas_extra = gas_extra
        self.priority_fee = priority_fee
        self.receipt_timeout = receipt_timeout
        self.receipt_poll = receipt_poll
        self.replacements = replacements
        self._chain_id: int | None = None
        self._nonce: int | None = None
        #: (nonce, maxFeePerGas, tip) of a transaction given up on unmined: the next one replaces it
        self._stuck: tuple[int, int, int] | None = None

    @property
    def sender(self) -> str:
        """The checksummed address that signs the transactions."""
        return str(self.account.address)

    def forget_nonce(self) -> None:
        """Ask the node for the next nonce before the next send: a reorganisation may have dropped one of ours.

        A node that replays a dropped block's transactions keeps our count; one that drops them (a dev chain's
        reorg) moves it back, and a transaction signed with the old count would wait forever behind the gap.
        """
        self._nonce = None
        self._stuck = None

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.retrying("eth_chainId", lambda: self.w3.eth.chain_id))
        return self._chain_id

    def transact(self, what: str, data: str, *, to: str | None, nonce_attempts: int = 4) -> tuple[SentTx, Any]:
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
            sent = SentTx(tx_hash=as_hex(receipt["transactionHash"]), gas_used=int(receipt["gasUsed"]),
                          block=int(receipt["blockNumber"]))
            if int(receipt["status"]) != 1:
                raise self._failure_of_mined(what, tx, receipt, gas)
            log.debug("%s: mined %s in block %d, gas %d", what, sent.tx_hash, sent.block, sent.gas_used)
            return sent, receipt
        raise ChainUnavailable(f"{what}: the node refused {nonce_attempts} nonces in a row")

    # ───────────────────────────────────────────────────────────── steps

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
            tip = max(tip, bump_fee(stuck_tip))
            max_fee = max(max_fee, bump_fee(stuck_max_fee), tip)
        return max_fee, tip

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self._pending_count()
        return self._nonce

    def _pending_count(self) -> int:
        """The node's count of our transactions, pending ones included (the next nonce it would take)."""
        address = self.account.address
        return int(
            self.retrying("eth_getTransactionCount", lambda: self.w3.eth.get_transaction_count(address, "pending"))
        )

    def _known(self, tx_hash: HexBytes) -> bool:
        """Whether the node knows ``tx_hash`` (pending or mined): a retried send that had in fact arrived."""
        try:
            self.retrying("eth_getTransactionByHash", lambda: self.w3.eth.get_transaction(tx_hash))
            return True
        except TransactionNotFound:
            return False

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
                log.debug("%s: %s was already sent", what, as_hex(tx_hash))
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
            receipt = self._wait_for_receipt(what, hashes, nonce=nonce)
            vanished = receipt is _VANISHED
            if receipt is not None and not vanished:
                if self._stuck is not None and self._stuck[0] == nonce:
                    self._stuck = None
                return receipt
            if replacement == self.replacements:
                break
            fresh_max_fee, fresh_tip = self._fees(nonce)
            tip = max(fresh_tip, bump_fee(tip))
            max_fee = max(fresh_max_fee, bump_fee(max_fee), tip)
            if vanished:
                log.warning("%s: %s vanished from the node (a reorganisation dropped it?); sending it again (nonce %d) "
                            "with tip %d, max fee %d wei", what, as_hex(hashes[-1]), nonce, tip, max_fee)
            else:
                log.warning("%s: %s not mined within %.0f s; replacing it (nonce %d) with tip %d, max fee %d wei",
                            what, as_hex(hashes[-1]), self.receipt_timeout, nonce, tip, max_fee)
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
            f"{self.replacements} replacements with higher fees (last {as_hex(hashes[-1])})"
        )

    def _wait_for_receipt(
        self, what: str, hashes: Sequence[HexBytes], *, timeout: float | None = None, nonce: int | None = None
    ) -> Any:
        """The receipt of the first of ``hashes`` found mined within ``timeout`` seconds, else None.

        With ``nonce``, every :data:`GAP_CHECK_SECONDS` it also checks that no gap below that nonce holds it back,
        and returns :data:`_VANISHED` when the node no longer knows any of ``hashes`` (dropped by a reorganisation).
        """
        now = time.monotonic()
        deadline = now + (self.receipt_timeout if timeout is None else timeout)
        gap_check = now + GAP_CHECK_SECONDS
        pause = self.receipt_poll
        while True:
            for tx_hash in hashes:
                try:
                    return self._receipt(what, tx_hash)
                except TransactionNotFound:
                    pass
            now = time.monotonic()
            if now > deadline:
                return None
            if nonce is not None and now >= gap_check:
                gap_check = now + GAP_CHECK_SECONDS
                if self._fill_gap(what, nonce) and not any(self._known(h) for h in hashes):
                    return _VANISHED
            time.sleep(pause)
            pause = min(pause * RECEIPT_POLL_BACKOFF, max(self.receipt_poll, RECEIPT_POLL_CAP))

    def _fill_gap(self, what: str, nonce: int) -> bool:
        """Fill the nonces below ``nonce`` that the node no longer counts, with empty transfers to ourselves.

        Why: a reorganisation that drops a mined transaction of ours (a node that does not replay the dropped
        block's transactions) moves our count back, and a transaction signed after it waits behind the gap
        forever. Whatever the dropped transaction did, the agent sends again when its event comes back as
        removed; this only lets the waiting one through. Returns whether the node counts ``nonce`` itself as
        unused (then the transaction holding it may have vanished too).
        """
        address = self.account.address
        counted = self._pending_count()
        if counted >= nonce:
            return counted == nonce
        log.warning("%s: nonces %d..%d of %s vanished (a reorganisation?); filling them with empty transfers so "
                    "nonce %d can be mined", what, counted, nonce - 1, address, nonce)
        max_fee, tip = self._fees(counted)
        for gap in range(counted, nonce):
            self._send(f"{what} gap filler", {"to": address, "value": 0, "data": "0x"}, nonce=gap, gas=21_000,
                       max_fee=max_fee, tip=tip)
        return True

    def _receipt(self, what: str, tx_hash: HexBytes) -> Any:
        return self.retrying(f"{what} receipt", lambda: self.w3.eth.get_transaction_receipt(tx_hash))

    def _failure_of_mined(
        self, what: str, tx: dict[str, Any], receipt: Any, gas: int
    ) -> ContractRevert | TransactionFailed:
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
        tx_hash = as_hex(receipt["transactionHash"])
        gas_used = int(receipt["gasUsed"])
        cause = "ran out of gas" if gas_used >= gas else "failed"
        return TransactionFailed(
            f"{what}: {tx_hash} {cause} in block {block} (gas used {gas_used} of {gas}) though its replay passes; "
            "send it again",
            tx_hash=tx_hash, block=block, gas_used=gas_used, gas_limit=gas,
        )
