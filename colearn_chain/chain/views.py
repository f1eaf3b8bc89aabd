"""Typed reads of one CollectiveLearning contract: its parameters and its state at a block.

Why apart from the signer: readers with no key (status, the explorer, a run's history) and learners
read the same views the same way, with reverts decoded into :class:`ContractRevert`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from ..protocol import ZERO_DIGEST, ModelRecord, Phase
from .events import as_hex, decode_cid, view_abi
from .records import BlockId, ContractParams, EpochState
from .revert import revert_from_exception

__all__ = ["ContractViews", "Retrying", "Snapshot"]

T = TypeVar("T")


class Retrying(Protocol):
    """Runs one call (one or more RPC requests) under a retry policy, e.g. ``ChainClient.retrying``."""

    def __call__(self, what: str, call: Callable[[], T]) -> T: ...


def _once(what: str, call: Callable[[], T]) -> T:
    return call()


def _epoch_state(raw: Any) -> EpochState:
    epoch, phase, proposer, deadline, approvals, rejections, digest, raw_cid = raw
    cid = decode_cid(raw_cid, empty_ok=as_hex(digest) == ZERO_DIGEST)
    return EpochState(
        epoch=int(epoch),
        phase=Phase(phase),
        proposer=Web3.to_checksum_address(proposer),
        deadline=int(deadline),
        approvals=int(approvals),
        rejections=int(rejections),
        digest=as_hex(digest),
        cid=cid.text,
        cid_invalid=cid.invalid,
    )


def _model_record(raw: Any) -> ModelRecord:
    digest, raw_cid, since = raw
    cid = decode_cid(raw_cid)
    return ModelRecord(digest=as_hex(digest), cid=cid.text, since_epoch=int(since), cid_invalid=cid.invalid)


class Snapshot(NamedTuple):
    """What an agent compares with its view, read at one block in one request (:meth:`ContractViews.snapshot`)."""

    state: EpochState
    model: ModelRecord
    voted: bool
    #: ``epochState`` read after the other views equals the one read before them. Every transaction of
    #: the contract changes it, so then all of them saw one state; a node may answer reads at its newest
    #: block from the block it is mining (Anvil does), and a mixed read is not to be trusted.
    consistent: bool
    #: the pending block's timestamp: the chain's clock
    pending_timestamp: int


class ContractViews:
    """The views of the contract at ``address`` on ``w3``.

    ``retrying`` wraps each call; by default each is asked once (a Web3 from
    :func:`~colearn_chain.chain.connection.connect` already retries per request). ``block`` pins a view
    to one block, so several views read one consistent state.
    """

    def __init__(self, w3: Web3, address: str, *, retrying: Retrying = _once) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        # CIDs read as bytes, decoded by decode_cid: never a UnicodeDecodeError.
        self.contract: Any = w3.eth.contract(address=self.address, abi=view_abi())
        self._retrying = retrying

    def call(self, name: str, *args: Any, block: BlockId = "latest") -> Any:
        """The raw result of view ``name``; ContractRevert when the contract refuses it."""
        function = getattr(self.contract.functions, name)(*args)
        return self._decoding_reverts(name, lambda: function.call(block_identifier=block))

    def _decoding_reverts(self, what: str, call: Callable[[], T]) -> T:
        """``call`` through the retry wrapper, a contract's refusal raised as its ContractRevert."""
        try:
            return self._retrying(what, call)
        except (ContractLogicError, Web3RPCError) as exc:
            revert = revert_from_exception(exc)
            if revert is None:
                raise
            raise revert from exc

    def epoch_state(self, *, block: BlockId = "latest") -> EpochState:
        return _epoch_state(self.call("epochState", block=block))

    def current_model(self, *, block: BlockId = "latest") -> ModelRecord:
        return _model_record(self.call("currentModel", block=block))

    def snapshot(self, learner: str, *, block: BlockId) -> Snapshot:
        """``epochState``, ``currentModel`` and ``hasVoted(learner)`` at ``block``, ``epochState`` again,
        and the pending block's timestamp (the chain's clock), in one batched request.

        Why batched: an agent compares this with its view every few seconds; five requests each time
        were most of its calls. Why ``epochState`` twice: see :attr:`Snapshot.consistent`.
        """
        functions = self.contract.functions
        learner = Web3.to_checksum_address(learner)

        def read() -> list[Any]:
            with self.w3.batch_requests() as batch:
                batch.add(functions.epochState().call(block_identifier=block))
                batch.add(functions.currentModel().call(block_identifier=block))
                batch.add(functions.hasVoted(learner).call(block_identifier=block))
                batch.add(functions.epochState().call(block_identifier=block))
                batch.add(self.w3.eth.get_block("pending"))
                return list(batch.execute())

        raw_state, raw_model, voted, raw_again, pending = self._decoding_reverts("snapshot", read)
        state = _epoch_state(raw_state)
        return Snapshot(state, _model_record(raw_model), bool(voted), state == _epoch_state(raw_again),
                        int(pending["timestamp"]))

    def current_epoch(self, *, block: BlockId = "latest") -> int:
        return int(self.call("currentEpoch", block=block))

    def phase(self, *, block: BlockId = "latest") -> Phase:
        return Phase(self.call("phase", block=block))

    def has_voted(self, learner: str, *, block: BlockId = "latest") -> bool:
        """Whether ``learner`` has voted in the current epoch."""
        return bool(self.call("hasVoted", Web3.to_checksum_address(learner), block=block))

    def learners(self) -> tuple[str, ...]:
        return tuple(Web3.to_checksum_address(a) for a in self.call("learners"))

    def learner_index(self, learner: str) -> int:
        """Position of ``learner`` in the learner list; ContractRevert NotLearner otherwise."""
        return int(self.call("learnerIndex", Web3.to_checksum_address(learner)))

    def voter_count(self) -> int:
        return int(self.call("voterCount"))

    def approvals_needed(self) -> int:
        return int(self.call("approvalsNeeded"))

    def vote_threshold_bps(self) -> int:
        return int(self.call("voteThresholdBps"))

    def proposal_timeout(self) -> int:
        return int(self.call("proposalTimeout"))

    def voting_timeout(self) -> int:
        return int(self.call("votingTimeout"))

    def proposer_votes(self) -> bool:
        return bool(self.call("proposerVotes"))

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

    def encode(self, name: str, *args: Any) -> str:
        """Calldata of the contract function ``name`` with ``args``."""
        return str(self.contract.encode_abi(name, args=list(args)))
