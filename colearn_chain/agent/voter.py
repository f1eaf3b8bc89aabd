"""The voter's judgement of one proposal: fetch, check the digest, decode safely, test.

Why apart from the loop: this is where untrusted input (a CID and a blob chosen by another learner,
or by anyone who can write to the store) meets the learner, so every way it can be bad is turned into
a reject :class:`Verdict` with a reason here, and the loop never has to guess what can go wrong.
A blob that cannot be fetched *yet* (store down, CID not found) is a reject marked ``retryable``: the
loop asks again on later polls and casts it only when the voting deadline is near.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from ..chain.events import cid_problem
from ..codec import decode_weights, digest_hex, encode_weights
from ..exceptions import (
    CidNotFound,
    DigestMismatch,
    LearnerContractError,
    StoreUnavailable,
    WeightsMismatch,
    WeightStoreError,
)
from ..learners.checked import checked
from ..mli import MachineLearningInterface, copy_weights
from ..protocol import INVALID_SCORE, SCORE_SCALE, to_fixed_point
from ..store.base import WeightStore
from ..typing import Cid, HexDigest, Weights

__all__ = [
    "FETCH_SLACK",
    "INVALID_PROPOSAL_SCORE",
    "SCORE_SCALE",
    "TRANSIENT_FETCH_ERRORS",
    "Verdict",
    "evaluate_proposal",
    "fetch_limit",
    "fetch_weights",
    "to_fixed_point",
]

#: The score recorded with a reject vote for a proposal that could not be tested (unfetchable,
#: digest mismatch, too large, wrong shapes, non-finite values), and for a non-finite learner score.
#: int256's minimum: no real score comes near it, so readers of the chain can tell the two apart.
INVALID_PROPOSAL_SCORE: Final[int] = INVALID_SCORE
#: Bytes a proposal may exceed the encoding of the current weights by (a longer header, metadata).
FETCH_SLACK: Final[int] = 64 * 1024
#: Fetch failures that say nothing about the blob itself: asking again later may succeed.
TRANSIENT_FETCH_ERRORS: Final[tuple[type[WeightStoreError], ...]] = (StoreUnavailable, CidNotFound)


@dataclass(frozen=True)
class Verdict:
    """What a voter decided about one proposal and why.

    ``reason`` says why a proposal was refused: untested (unfetchable, tampered, malformed), or by the
    learner's own guard (out of scale, non-finite outputs); None for an ordinary tested vote.
    ``weights`` are the decoded proposal (kept to adopt it if the epoch is accepted), None if refused.
    ``retryable`` marks a reject because the blob could not be fetched (yet): worth asking again.
    """

    approve: bool
    score: int
    reason: str | None = None
    retryable: bool = False
    vote_score: float | None = None
    test_score: float | None = None
    weights: Weights | None = field(default=None, compare=False, repr=False)
    blob: bytes | None = field(default=None, compare=False, repr=False)


def _check_finite(weights: Weights) -> None:
    for name, array in weights.items():
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            raise WeightsMismatch(f"tensor {name!r} holds NaN or infinite values")


def fetch_limit(expected: Weights, max_bytes: int) -> int:
    """The most bytes worth fetching for a blob that must decode into ``expected``'s shapes.

    A valid blob has the size of ``expected``'s own encoding (same names, shapes and dtypes), give or take
    a header: anything much larger is refused without downloading it, whatever ``max_bytes`` allows.
    """
    return min(max_bytes, len(encode_weights(expected)) + FETCH_SLACK)


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
    learner: MachineLearningInterface,
    store: WeightStore,
    cid: Cid,
    digest: HexDigest,
    *,
    max_bytes: int,
    expected: Weights | None = None,
    cached: bytes | None = None,
    guard: AbstractContextManager[object] | None = None,
) -> Verdict:
    """Judge the proposal ``(digest, cid)``: a tested vote, or a reject with the reason it was refused.

    A blob that cannot be fetched (StoreUnavailable, CidNotFound) gives a ``retryable`` reject: the store
    being down or slow says nothing certain about the proposal, so the caller asks again while voting is
    open and casts the reject only near the deadline. Every other refusal is final.

    ``expected`` (the model's shapes; default: the learner's current weights) lets the fetch run without
    touching the learner; ``cached`` is a blob already held (our own proposal), used if its digest matches;
    ``guard`` is entered around the learner's test (a lock, when the loop runs beside this).
    """
    problem = cid_problem(cid)  # not UTF-8, control characters, too long: no store is asked for it
    if problem is not None:
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"unreadable proposal: {problem}")
    try:
        template = learner.current_weights() if expected is None else expected
        if cached is not None and digest_hex(cached) == digest.lower():
            weights, blob = decode_weights(cached, expected=template, max_bytes=max_bytes), cached
            _check_finite(weights)
        else:
            weights, blob = fetch_weights(store, cid, digest, template, max_bytes=max_bytes)
    except TRANSIENT_FETCH_ERRORS as error:
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"{type(error).__name__}: {error}",
                       retryable=True)
    except (WeightStoreError, WeightsMismatch) as error:
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"{type(error).__name__}: {error}")
    try:
        with guard if guard is not None else nullcontext():
            # The learner gets its own copy: what it does with it cannot change what we adopt later.
            result = checked(learner).test_weights(copy_weights(weights))
    except WeightsMismatch as error:  # the learner's own, stricter check of the weights
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"{type(error).__name__}: {error}")
    except LearnerContractError as error:  # our learner broke the interface on this proposal: reject, go on
        return Verdict(approve=False, score=INVALID_PROPOSAL_SCORE, reason=f"{type(error).__name__}: {error}")
    return Verdict(
        approve=bool(result.vote),
        score=to_fixed_point(float(result.vote_score)),
        reason=result.reason,  # the learner's own word on a refusal (out of scale, non-finite outputs, ...)
        vote_score=float(result.vote_score),
        test_score=float(result.test_score),
        weights=weights,
        blob=blob,
    )
