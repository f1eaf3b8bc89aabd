"""The learner agent: one process per learner following the contract (docs/protocol.md, "The agents").

:mod:`.view` is the protocol as a pure reducer (what the agent knows, what it should do next);
:class:`Agent` (:mod:`.loop`) connects it to the chain, the weight store and the learner, sending
transactions through :mod:`.send`'s one failure table and fetching blobs beside the loop
(:mod:`.background`); :mod:`.voter` judges proposals, :mod:`.state` keeps every adopted model.
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
