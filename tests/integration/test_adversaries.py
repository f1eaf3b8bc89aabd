"""Hostile members as real processes beside honest agents: nobody can stop, stall or poison the others.

Each case is one consortium of five on a real Anvil and Kubo: honest `colearn-chain agent` processes and
one hostile member (two for collusion) from `hostile.py`, each its own process with its own key. For every
attack: every honest agent stays alive to the last epoch, every epoch closes exactly once, the honest agents
end on the same weights, which are the chain's current model (nothing lost), and no proposal of an attacker
whose weights are malicious is accepted. The attacker is learner 0 (and 1): its first proposal comes at
epoch 0, against the untrained model, where a poisoned proposal is hardest to tell from an honest one.
Each case prints the honest learners' final global test accuracy against the same consortium with every
member honest (the in-memory reference driver).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent_harness import ROOT, Consortium, same_weights
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.learners import make_learner
from colearn_chain.services.anvil import AnvilNode
from colearn_chain.services.kubo import KuboNode
from colearn_chain.typing import Weights
from hostile_learners import LEARNER_ATTACKS

pytestmark = pytest.mark.slow

N = 5
EPOCHS = 7
CONFIG: dict[str, Any] = {
    "kind": "numpy", "dataset": "digits", "model": "linear", "split": "dirichlet", "alpha": 0.5, "seed": 0,
}
#: Attacks whose proposals are malicious: none of them may be accepted.
MALICIOUS = {"random", "huge", "sign_flip", "collude", "hostile_cid"}
HOSTILE = Path(__file__).with_name("hostile.py")


def _accuracy(weights: Weights, index: int) -> float:
    return float(make_learner({**CONFIG, "n_learners": N}, index).evaluate(weights=weights))  # type: ignore[attr-defined]


def _start_hostile(consortium: Consortium, index: int, attack: str) -> subprocess.Popen[bytes]:
    agent = consortium.agents[index]
    env = consortium._env(agent.account)
    env["COLEARN_RPC_URL"] = consortium.rpc_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HOSTILE.parent), env.get("PYTHONPATH", "")])
    args = [
        sys.executable, str(HOSTILE), attack, "--deployment", str(consortium.deployment_path),
        "--store", consortium.store_url, "--learner-config", json.dumps(consortium.config),
        "--state-dir", str(agent.state_dir), "--until-epoch", str(EPOCHS),
    ]
    with open(agent.log_path, "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    agent.proc = proc
    return proc


@pytest.fixture
def chain() -> Any:
    with AnvilNode() as node:
        yield node


@pytest.mark.parametrize(
    "attack, attackers",
    [
        ("random", [0]), ("huge", [0]), ("sign_flip", [0]), ("label_flip", [0]), ("free_rider", [0]),
        ("collude", [0, 1]), ("silent", [0]), ("spam", [0]), ("hostile_cid", [0]),
    ],
)
def test_honest_agents_survive(
    attack: str, attackers: Sequence[int], chain: AnvilNode, kubo_node: KuboNode, tmp_path: Path
) -> None:
    consortium = Consortium(
        chain.url, tmp_path, kubo_node.url, CONFIG, N, proposal_timeout=15, voting_timeout=6
    ).setup()
    honest = [i for i in range(N) if i not in attackers]
    try:
        consortium.start_all(until_epoch=EPOCHS, skip=attackers)
        hostile = [_start_hostile(consortium, i, attack) for i in attackers]
        codes = consortium.wait(timeout=60 + EPOCHS * 25, indices=honest)
    finally:
        consortium.stop_all()
    logs = "\n".join(f"== agent {a.index} ==\n{a.log_text()[-3000:]}" for a in consortium.agents)
    # Every honest agent lived to the last epoch.
    assert all(codes[i] == 0 for i in honest), f"honest agents' exit codes {codes}\n{logs}"
    del hostile
    # Every epoch closed exactly once.
    decisions = consortium.decisions()
    assert [e for e, _ in decisions][:EPOCHS] == list(range(EPOCHS)), decisions
    # Nothing lost: the honest agents hold one model, the chain's current one.
    finals = [consortium.final_weights(i) for i in honest]
    assert all(same_weights(finals[0], w) for w in finals[1:])
    assert digest_hex(encode_weights(finals[0])) == consortium.client().current_model().digest.lower()
    # No malicious proposal got through.
    outcome = dict(decisions)
    attacker_epochs = [e for e in range(EPOCHS) if e % N in attackers]
    if attack in LEARNER_ATTACKS:  # the hostile learner, plugged in through --learner, took part (it starts last,
        # so it may miss epoch 0's proposal deadline)
        proposed = [e for e in attacker_epochs if outcome.get(e) in ("accepted", "rejected")]
        assert proposed, f"{attack}: the hostile agent never proposed in epochs {attacker_epochs}\n{logs}"
    if attack in MALICIOUS:
        accepted = [e for e in attacker_epochs if outcome.get(e) == "accepted"]
        assert not accepted, f"{attack}: malicious proposals accepted in epochs {accepted}\n{logs}"
    # Chain-controlled bytes never reach a log raw: no escape sequence, no forged line.
    for i in honest:
        text = consortium.agents[i].log_text()
        assert "\x1b" not in text and "\x00" not in text, f"agent {i} logged a raw control character"
        forged = [line for line in text.splitlines() if line.startswith("INFO epoch 0 accepted")]
        assert not forged, f"agent {i}: forged line"
    # Report: the honest learners' accuracy against the same consortium with every member honest.
    reference, learners = consortium.reference(EPOCHS)
    del reference
    baseline = float(np.mean([_accuracy(learners[i].current_weights(), i) for i in honest]))
    attacked = float(np.mean([_accuracy(finals[0], i) for i in honest]))
    kinds: list[str] = [outcome.get(e, "open") for e in attacker_epochs]
    print(f"\nattack {attack:<12} honest accuracy {attacked:.3f} (all honest {baseline:.3f}, "
          f"{attacked - baseline:+.3f}); attacker epochs {attacker_epochs} -> {kinds}")
