"""The learner agent: one process per learner following the contract (PROTOCOL.md, "The agents").

:class:`Agent` runs the loop (:mod:`.loop`), judging proposals with :mod:`.voter` and keeping every
adopted model in its state directory (:mod:`.state`).
"""

from .loop import Agent, AgentError, AgentSettings
from .state import SavedModel, StateDir
from .voter import (
    INVALID_PROPOSAL_SCORE,
    SCORE_SCALE,
    Verdict,
    evaluate_proposal,
    to_fixed_point,
)

__all__ = [
    "INVALID_PROPOSAL_SCORE",
    "SCORE_SCALE",
    "Agent",
    "AgentError",
    "AgentSettings",
    "SavedModel",
    "StateDir",
    "Verdict",
    "evaluate_proposal",
    "to_fixed_point",
]
