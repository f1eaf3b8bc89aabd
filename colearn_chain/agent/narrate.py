"""What the agent writes to its log about chain events and models it cannot adopt.

Why apart from the loop: these are the sentences an operator reads; the loop only decides when.
"""

from __future__ import annotations

import logging

from ..chain.events import (
    EpochSkipped,
    EpochStarted,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
)
from ..exceptions import BlobTooLarge, DigestMismatch
from ..typing import Cid, HexDigest
from .view import ModelRef, Removed

__all__ = ["cannot_adopt", "log_event", "what"]

log = logging.getLogger(__name__)


def log_event(event: object, me: str) -> None:
    """One line per chain event, as it is applied."""
    tx = getattr(getattr(event, "meta", None), "tx_hash", "?")
    if isinstance(event, EpochStarted):
        log.info("epoch %d started: proposer %s%s, proposal deadline %d (tx %s)", event.epoch, event.proposer,
                 " (us)" if event.proposer == me else "", event.proposal_deadline, tx)
    elif isinstance(event, WeightsProposed):
        log.info("epoch %d: %s proposed %s (cid %s), voting until %d (tx %s)",
                 event.epoch, event.proposer, event.digest, event.cid, event.voting_deadline, tx)
    elif isinstance(event, VoteCast):
        log.debug("epoch %d: %s voted %s, score %d (tx %s)",
                  event.epoch, event.voter, "approve" if event.approve else "reject", event.score, tx)
    elif isinstance(event, (ProposalAccepted, ProposalRejected)):
        kind = "accepted" if isinstance(event, ProposalAccepted) else "rejected"
        log.info("epoch %d %s: %d approve / %d reject, proposal %s (tx %s)",
                 event.epoch, kind, event.approvals, event.rejections, event.digest, tx)
    elif isinstance(event, EpochSkipped):
        log.info("epoch %d skipped: %s proposed nothing in time (tx %s)", event.epoch, event.proposer, tx)
    elif isinstance(event, Removed):
        log.warning("a reorganisation removed %s: undoing it", type(event.event).__name__)
    elif type(event).__name__ not in ("ConsortiumFormed", "ModelInitialized"):
        log.warning("event %s not understood (tx %s): checking the chain's state instead", type(event).__name__, tx)


def what(model: ModelRef) -> str:
    """The model in words, for the log."""
    if model.since_epoch == 0:
        return "the initial model"
    return f"the model accepted in epoch {model.since_epoch - 1}"


def cannot_adopt(what: str, digest: HexDigest, cid: Cid, error: Exception, max_blob_bytes: int, fetch_cap: int) -> str:
    """Why an accepted model cannot be adopted, and what the operator can do about it."""
    if isinstance(error, BlobTooLarge):
        advice = (f"if the model really is that large, restart the agent with a larger --max-blob-bytes "
                  f"(now {max_blob_bytes}; this learner's own model encodes to about "
                  f"{fetch_cap} bytes at most)")
    elif isinstance(error, DigestMismatch):
        advice = ("the store serves other bytes under that CID than the digest on chain names: put the blob "
                  f"whose sha256 is {digest} into the weight store (another learner's state directory keeps "
                  "every model it adopted), then restart the agent")
    else:
        advice = ("the blob does not fit this learner's model: check that --learner-config matches the "
                  "deployment's; if it does, the consortium accepted weights this model cannot use, and this "
                  "learner cannot follow it")
    return (f"{what} is {digest} (cid {cid}), but this learner cannot adopt it: {type(error).__name__}: {error}. "
            f"What to do: {advice}. A restarted agent resumes from the chain's current model.")
