"""Send one action's transaction and classify how it failed, in one table.

Why one table: propose, vote and close fail in the same few ways (another agent or the clock got there
first, nothing is left to do, worth sending again, waiting cannot fix it); deciding that per action in
separate ``except`` chains let the three drift apart. The caller acts on the :class:`Outcome` only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from web3.exceptions import Web3Exception

from ..chain.client import SentTx
from ..exceptions import ChainUnavailable, ContractRevert, TransactionFailed

__all__ = ["Kind", "Outcome", "Sent", "classify", "send"]

Kind = Literal["propose", "vote", "close"]


class Outcome(Enum):
    """What a send came to, as far as the agent's next step is concerned."""

    #: mined and successful
    SENT = "sent"
    #: another agent or the chain's clock got there first: routine, nothing to do
    LOST_RACE = "lost race"
    #: refused for good in this epoch: do not send it again
    SETTLED = "settled"
    #: worth sending again at a later poll (a node down, a transaction out of gas, a passing refusal)
    RETRY = "retry"
    #: waiting cannot fix it: the agent stops
    FATAL = "fatal"

    @property
    def done(self) -> bool:
        """Whether the action is over for this epoch (nothing to send again)."""
        return self in (Outcome.SENT, Outcome.LOST_RACE, Outcome.SETTLED)


#: (action, revert name) -> outcome and the level its log line gets. ``None`` as the action: any action.
_REVERTS: Final[dict[tuple[Kind | None, str], tuple[Outcome, int]]] = {
    (None, "NotLearner"): (Outcome.FATAL, logging.ERROR),
    ("close", "WrongEpoch"): (Outcome.LOST_RACE, logging.DEBUG),
    ("close", "TooEarlyToClose"): (Outcome.LOST_RACE, logging.DEBUG),
    ("vote", "AlreadyVoted"): (Outcome.SETTLED, logging.INFO),
    ("vote", "VotingClosed"): (Outcome.LOST_RACE, logging.DEBUG),
    ("vote", "WrongEpoch"): (Outcome.LOST_RACE, logging.DEBUG),
    ("vote", "UnexpectedPhase"): (Outcome.LOST_RACE, logging.DEBUG),
    ("vote", "ProposerCannotVote"): (Outcome.SETTLED, logging.WARNING),
}
#: Any other revert, by action: a refused proposal is not sent again (the epoch will be skipped); a vote
#: or a close refused for another reason is tried again.
_OTHER_REVERT: Final[dict[Kind, tuple[Outcome, int]]] = {
    "propose": (Outcome.SETTLED, logging.WARNING),
    "vote": (Outcome.RETRY, logging.WARNING),
    "close": (Outcome.RETRY, logging.WARNING),
}
#: Failures that no rule of the contract caused: send again (with a fresh gas estimate).
_RETRYABLE: Final[tuple[type[Exception], ...]] = (TransactionFailed, ChainUnavailable, Web3Exception)


@dataclass(frozen=True)
class Sent:
    """One send's outcome: the mined transaction, or the error and how to log it."""

    outcome: Outcome
    tx: SentTx | None = None
    error: Exception | None = None
    level: int = logging.INFO

    @property
    def revert(self) -> str | None:
        """The custom error's name when the contract refused it."""
        return self.error.name if isinstance(self.error, ContractRevert) else None


def classify(kind: Kind, error: Exception) -> tuple[Outcome, int]:
    """How a failed ``kind`` send ends, and the log level it deserves."""
    if isinstance(error, ContractRevert):
        return _REVERTS.get((kind, error.name)) or _REVERTS.get((None, error.name)) or _OTHER_REVERT[kind]
    if isinstance(error, _RETRYABLE):
        return Outcome.RETRY, logging.WARNING
    raise TypeError(f"not a send failure: {type(error).__name__}")


def send(kind: Kind, call: Callable[[], SentTx]) -> Sent:
    """Run ``call`` (one of ChainClient.propose / vote / close) and classify what came of it."""
    try:
        return Sent(Outcome.SENT, tx=call())
    except (ContractRevert, TransactionFailed, ChainUnavailable, Web3Exception) as error:
        outcome, level = classify(kind, error)
        return Sent(outcome, error=error, level=level)
