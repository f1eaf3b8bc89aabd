"""What the contract's views and transactions return, as small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ..protocol import ZERO_DIGEST, ModelRecord, Phase

__all__ = ["BlockId", "ContractParams", "CurrentModel", "EpochState", "SentTx"]

#: A block number or tag ("latest", "pending", ...).
BlockId: TypeAlias = int | str

#: The contract's ``currentModel()``: the last accepted proposal, or the initial model.
CurrentModel = ModelRecord


@dataclass(frozen=True)
class EpochState:
    """The contract's ``epochState()``: the current epoch at one block."""

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
