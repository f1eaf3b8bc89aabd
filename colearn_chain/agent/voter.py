"""The voter's judgement of one proposal: fetch, check the digest, decode safely, test.

Why apart from the loop: this is where untrusted input (a CID and a blob chosen by another learner,
or by anyone who can write to the store) meets the learner, so every way it can be bad is turned into
a reject :class:`Verdict` with a reason here, and the loop never has to guess what can go wrong.
"""

from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from ..codec import decode_weights, digest_hex
from ..driver import copy_weights
from ..exceptions import DigestMismatch, StoreUnavailable, WeightsMismatch, WeightStoreError
from ..mli import MachineLearningInterface, check_proposed
from ..store.base import WeightStore
from ..typing import Cid, HexDigest, Weights

__all__ = [
    "INVALID_PROPOSAL_SCORE",
    "SCORE_SCALE",
    "Verdict",
    "evaluate_proposal",
    "fetch_weights",
    "to_fixed_point",
]

#: Vote scores go on chain as fixed-point integers: 1e18 = 1.0.
SCORE_SCALE: Final[int] = 10**18
#: The score recorded with a reject vote for a proposal that could not be tested (unfetchable,
#: digest mismatch, too large, wrong shapes, non-finite values), and for a non-finite learner score.
#: int256's minimum: no real score comes near it, so readers of the chain can tell the two apart.
INVALID_PROPOSAL_SCORE: Final[int] = -(2**255)
_INT256_MAX: Final[int] = 2**255 - 1


@dataclass(frozen=True)
class Verdict:
    """What a voter decided about one proposal and why.

    ``reason`` is None when the learner tested the weights, otherwise why they were refused untested.
    ``weights`` are the decoded proposal (kept to adopt it if the epoch is accepted), None if refused.
    """

    approve: bool
    score: int
    reason: str | None = None
    vote_score: float | None = None
    test_score: float | None = None
    weights: Weights | None = field(default=None, compare=False, repr=False)
    blob: bytes | None = field(default=None, compare=False, repr=False)


def to_fixed_point(score: float) -> int:
    """``score`` as an int256 with 18 decimals; non-finite scores become INVALID_PROPOSAL_SCORE."""
    if not math.isfinite(score):
        return INVALID_PROPOSAL_SCORE
    scaled = round(Fraction(score) * SCORE_SCALE)  # exact: a float product would overflow for huge scores
    return max(INVALID_PROPOSAL_SCORE + 1, min(_INT256_MAX, scaled))


def _check_finite(weights: Weights) -> None:
    for name, array in weights.items():
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            raise WeightsMismatch(f"tensor {name!r} holds NaN or infinite values")


def fetch_weights(
    store: WeightStore, cid: Cid, digest: HexDigest, expected: Weights, *, max_bytes: int
) -> tuple[Weights, bytes]:
    """Fetch ``cid``, check it against the chain's ``digest`` and decode it into ``expected``'s shapes.

    Raises the store's errors (CidNotFound, BlobTooLarge, StoreUnavailable), DigestMismatch, or
    WeightsMismatch (wrong names, shapes or dtypes, not safetensors, non-finite values).
    """
    blob = store.get(cid, max_bytes=max_bytes)
    actual = digest_hex(blob)
    if actual != digest.lower():
        raise DigestMismatch(f"blob {cid} has digest {actual}, the chain records {digest.lower()}")
    weights = decode_weights(blob, expected=expected, max_bytes=max_bytes)
    _check_finite(weights)
    return weights, blob


def evaluate_proposal(
    learner: MachineLearningInterface, store: WeightStore, cid: Cid, digest: HexDigest, *, max_bytes: int
) -> Verdict:
    """Judge the proposal ``(digest, cid)``: a tested vote, or a reject with the reason it was refused.

    StoreUnavailable is raised, not turned into a reject: the store being down says nothing about the
    proposal, so the caller retries while voting is open.
    """
    try:
        weights, blob = fetch_weights(store, cid, digest, learner.current_weights(), max_bytes=max_bytes)
    except StoreUnavailable:
        raise
    except (WeightStoreError, WeightsMismatch) as error:
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"{type(error).__name__}: {error}")
    try:
        # The learner gets its own copy: what it does with it cannot change what we adopt later.
        result = check_proposed(learner.test_weights(copy_weights(weights)), "test_weights")
    except WeightsMismatch as error:  # the learner's own, stricter check of the weights
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"{type(error).__name__}: {error}")
    return Verdict(
        approve=bool(result.vote),
        score=to_fixed_point(float(result.vote_score)),
        vote_score=float(result.vote_score),
        test_score=float(result.test_score),
        weights=weights,
        blob=blob,
    )
