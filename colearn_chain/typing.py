"""Type aliases used across colearn_chain, kept in one place (after Flower's common/typing.py)."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

#: One named tensor of a model.
Tensor = npt.NDArray[Any]
#: A model's weights: tensor name -> array. Names and shapes identify the model's architecture.
Weights = dict[str, Tensor]
#: Hex string of a 32-byte digest, with 0x prefix (as the chain shows it).
HexDigest = str
#: A content identifier in the weight store (IPFS CIDv0 "Qm..." by default).
Cid = str
