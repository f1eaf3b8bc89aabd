"""The agent's state directory: every model it adopted, written atomically, and which one is current.

Why: the weight store is someone else's service; a learner must keep the models it adopted itself,
so no accepted model is lost and a restart does not depend on the store. Layout::

    STATE_DIR/models/epoch-000007.safetensors   the blob accepted in epoch 7 (current from epoch 8)
    STATE_DIR/models/initial.safetensors        the deployment's initial model
    STATE_DIR/current.json                      {"since_epoch", "digest", "cid", "file"} of the current model
    STATE_DIR/evaluations.jsonl                 one line per judged proposal: epoch, vote, scores, reason

Each file is written to a temporary name, fsynced and renamed, so a crash leaves the old or the new
file, never a half-written one; ``current.json`` is written after the blob it names.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from .._files import atomic_write
from ..codec import decode_weights, digest_hex
from ..exceptions import DigestMismatch
from ..typing import Cid, HexDigest, Weights

__all__ = ["SavedModel", "StateDir"]

CURRENT: Final[str] = "current.json"
EVALUATIONS: Final[str] = "evaluations.jsonl"
MODELS: Final[str] = "models"


@dataclass(frozen=True)
class SavedModel:
    """Which model is current: the one that became current in epoch ``since_epoch``."""

    since_epoch: int
    digest: HexDigest
    cid: Cid
    file: str  # relative to the state directory


class StateDir:
    """One agent's state directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save_model(self, since_epoch: int, digest: HexDigest, cid: Cid, blob: bytes) -> SavedModel:
        """Keep ``blob`` (the model current from ``since_epoch``) and make it the current one."""
        if digest_hex(blob) != digest.lower():
            raise DigestMismatch(f"refusing to save a blob whose digest is not {digest}")
        name = "initial.safetensors" if since_epoch == 0 else f"epoch-{since_epoch - 1:06d}.safetensors"
        relative = f"{MODELS}/{name}"
        atomic_write(self.root / relative, blob)
        saved = SavedModel(since_epoch=since_epoch, digest=digest.lower(), cid=cid, file=relative)
        atomic_write(self.root / CURRENT, (json.dumps(asdict(saved), indent=2) + "\n").encode())
        return saved

    def record_evaluation(
        self,
        epoch: int,
        *,
        digest: HexDigest,
        cid: Cid,
        approve: bool,
        score: int,
        vote_score: float | None,
        test_score: float | None,
        reason: str | None,
    ) -> None:
        """Append this learner's judgement of ``epoch``'s proposal (the chain keeps only the vote and score).

        The test score and the reason a proposal was refused exist only here; reports read them back.
        A restarted agent may judge an epoch again: readers keep the last line per epoch.
        """
        record: dict[str, Any] = {
            "epoch": epoch, "digest": digest, "cid": cid, "approve": approve, "score": score,
            "vote_score": vote_score, "test_score": test_score, "reason": reason,
        }
        with open(self.root / EVALUATIONS, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def evaluations(self) -> dict[int, dict[str, Any]]:
        """epoch -> the last judgement recorded for it."""
        records: dict[int, dict[str, Any]] = {}
        try:
            lines = (self.root / EVALUATIONS).read_text().splitlines()
        except FileNotFoundError:
            return records
        for line in lines:
            if line.strip():
                record = json.loads(line)
                records[int(record["epoch"])] = record
        return records

    def current(self) -> SavedModel | None:
        """The current model's record, or None before the first save."""
        try:
            data = json.loads((self.root / CURRENT).read_text())
        except FileNotFoundError:
            return None
        return SavedModel(**data)

    def blob_for(self, digest: HexDigest) -> bytes | None:
        """The blob of the current model if its digest is ``digest`` (checked), else None."""
        saved = self.current()
        if saved is None or saved.digest != digest.lower():
            return None
        try:
            blob = (self.root / saved.file).read_bytes()
        except FileNotFoundError:
            return None
        return blob if digest_hex(blob) == saved.digest else None

    def current_weights(self) -> Weights | None:
        """The current model's weights, or None before the first save (what tests and tools read)."""
        saved = self.current()
        if saved is None:
            return None
        blob = self.blob_for(saved.digest)
        if blob is None:
            raise DigestMismatch(f"{self.root / saved.file} is missing or does not match {saved.digest}")
        return decode_weights(blob)
