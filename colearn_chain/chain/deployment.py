"""The deployment record: where the contract lives and with which parameters.

Written by `brownie run scripts/deploy.py` and by `colearn-chain deploy`/`run`; read by agents, `status`
and the explorer, so none of them has to scan the chain for the contract's first block.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_write

FORMAT = "colearn-chain/deployment@1"


@dataclass(frozen=True)
class Deployment:
    """One deployed CollectiveLearning contract."""

    chain_id: int
    address: str
    block: int
    tx_hash: str
    learners: list[str]
    vote_threshold_bps: int
    proposal_timeout: int
    voting_timeout: int
    proposer_votes: bool
    initial_digest: str
    initial_cid: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        # Readable by others: the record is what every participant is given.
        atomic_write(path, (json.dumps(self.to_json(), indent=2) + "\n").encode(), mode=0o644)
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a colearn-chain deployment record (format {data.get('format')!r}, want {FORMAT!r})")
        fields = {k: v for k, v in data.items() if k != "format"}
        return cls(**fields)

    @classmethod
    def load(cls, path: Path | str) -> Deployment:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read deployment record {path}: {exc}") from exc
        return cls.from_json(data)
