"""The learner interface, enforced: a wrapper that turns every violation into a LearnerContractError.

A plug-in learner is code the consortium did not write, and a violation of the interface would
otherwise surface far from its cause (a proposal that changed the proposer's own model shows up as
a weights mismatch with the reference epochs later). The agent and the reference driver call every
learner through :class:`CheckedLearner`, which checks, on each call:

* return types: ``propose_weights`` and ``current_weights`` give a non-empty ``dict[str, numpy.ndarray]``
  of numeric (or bool) arrays; ``test_weights`` gives a :class:`~colearn_chain.mli.ProposedWeights`
  with a bool-like ``vote``, real-number scores and a ``reason`` that is None or a string;
* the layout: tensor names, shapes and dtypes never change between calls (the first weights seen fix it);
* purity: ``propose_weights`` and ``test_weights`` leave the current weights as they were, bit for bit
  (a learner that changed them gets them back through ``accept_weights`` before the error is raised);
* that nothing else escapes: any other exception a method raises becomes a LearnerContractError naming
  it, except the package's own errors (a learner's WeightsMismatch on weights it refuses stays one).

The message names the learner's class, the method and what was wrong; ``error.method`` names the method.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NoReturn, TypeVar

import numpy as np

from ..exceptions import ColearnChainError, LearnerContractError
from ..mli import MachineLearningInterface, ProposedWeights
from ..typing import Weights

T = TypeVar("T")
#: Tensor name -> (shape, dtype): what every weights of one learner must look like.
Layout = dict[str, tuple[tuple[int, ...], np.dtype]]


class CheckedLearner(MachineLearningInterface):
    """``inner`` behind the interface's checks; ``inner`` stays reachable for what the interface does not cover."""

    def __init__(self, inner: MachineLearningInterface) -> None:
        self.inner = inner
        self._layout: Layout | None = None

    def propose_weights(self) -> Weights:
        before = self.current_weights()
        proposal = self._weights("propose_weights", self._call("propose_weights", self.inner.propose_weights))
        self._unchanged("propose_weights", before)
        return proposal

    def test_weights(self, weights: Weights) -> ProposedWeights:
        before = self.current_weights()
        result = self._call("test_weights", lambda: self.inner.test_weights(weights))
        self._proposed(result)
        self._unchanged("test_weights", before)
        return result

    def accept_weights(self, weights: Weights) -> None:
        self._call("accept_weights", lambda: self.inner.accept_weights(weights))

    def current_weights(self) -> Weights:
        return self._weights("current_weights", self._call("current_weights", self.inner.current_weights))

    def restore_proposal_count(self, count: int) -> None:
        hook = getattr(self.inner, "restore_proposal_count", None)  # optional for learners not subclassing mli's
        if callable(hook):
            self._call("restore_proposal_count", lambda: hook(count))

    # ───────────────────────────────────────────────────────────── checks

    def _fail(self, method: str, problem: str) -> NoReturn:
        raise LearnerContractError(f"learner {type(self.inner).__name__}: {method} {problem}", method=method)

    def _call(self, method: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ColearnChainError:
            raise
        except Exception as error:  # plug-in code: whatever it raises is named, re-raised as ours
            raise LearnerContractError(
                f"learner {type(self.inner).__name__}: {method} raised {type(error).__name__}: {error}", method=method
            ) from error

    def _weights(self, method: str, value: object) -> Weights:
        """``value`` if it is weights of this learner's layout, else a LearnerContractError saying what differs."""
        if not isinstance(value, dict) or not value:
            self._fail(method, f"must return a non-empty dict of name -> numpy array, got {_describe(value)}")
        layout: Layout = {}
        for name, array in value.items():
            if not isinstance(name, str):
                self._fail(method, f"returned a tensor named {name!r}: names must be strings")
            if not isinstance(array, np.ndarray):
                self._fail(method, f"returned entry {name!r} as {_describe(array)}, not a numpy array")
            if array.dtype.kind not in "biuf":
                self._fail(method, f"returned tensor {name!r} of dtype {array.dtype}: only bool, integer and "
                           "float arrays travel as weights")
            layout[name] = (tuple(array.shape), array.dtype)
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            self._fail(method, f"returned weights of another layout than before: {_difference(self._layout, layout)}")
        return value

    def _proposed(self, value: object) -> None:
        method = "test_weights"
        if not isinstance(value, ProposedWeights):
            self._fail(method, f"must return colearn_chain.mli.ProposedWeights, got {_describe(value)}")
        if not isinstance(value.vote, (bool, np.bool_)):
            self._fail(method, f"returned vote={value.vote!r} ({type(value.vote).__name__}): it must be a bool")
        for field in ("vote_score", "test_score"):
            score = getattr(value, field)
            if isinstance(score, (bool, np.bool_)) or not isinstance(score, numbers.Real):
                self._fail(method, f"returned {field}={score!r} ({type(score).__name__}): it must be a real number")
        if value.reason is not None and not isinstance(value.reason, str):
            self._fail(method, f"returned reason={value.reason!r}: it must be None or a string")
        if not isinstance(value.weights, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in value.weights.items()
        ):
            self._fail(method, f"returned ProposedWeights whose weights are {_describe(value.weights)}, not weights")

    def _unchanged(self, method: str, before: Weights) -> None:
        after = self.current_weights()
        changed = sorted(name for name in before if before[name].tobytes() != after[name].tobytes())
        if changed:
            self._call("accept_weights", lambda: self.inner.accept_weights(before))  # put the model back
            self._fail(method, f"changed the current weights (tensor {', '.join(map(repr, changed))}): they may "
                       "change only through accept_weights (restored)")


def checked(learner: MachineLearningInterface) -> CheckedLearner:
    """``learner`` behind the interface's checks (itself when it already is)."""
    return learner if isinstance(learner, CheckedLearner) else CheckedLearner(learner)


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return f"a dict of {len(value)} entries" if value else "an empty dict"
    return type(value).__name__


def _difference(expected: Layout, got: Layout) -> str:
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        return f"tensors missing {missing}, unexpected {extra}"
    name = next(n for n in sorted(expected) if expected[n] != got[n])
    (shape, dtype), (new_shape, new_dtype) = expected[name], got[name]
    return f"tensor {name!r} was {dtype} {shape}, now {new_dtype} {new_shape}"


__all__ = ["CheckedLearner", "checked"]
