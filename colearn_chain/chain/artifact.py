"""The compiled contract shipped inside the package, so agents need no compiler at run time."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, cast

CONTRACT_NAME = "CollectiveLearning"


@lru_cache(maxsize=1)
def load_artifact() -> dict[str, Any]:
    """Return the packaged artifact: abi, bytecode, deployedBytecode, compiler settings."""
    text = resources.files("colearn_chain.artifacts").joinpath(f"{CONTRACT_NAME}.json").read_text()
    return cast(dict[str, Any], json.loads(text))


def abi() -> list[dict[str, Any]]:
    """The contract ABI."""
    return cast(list[dict[str, Any]], load_artifact()["abi"])


def bytecode() -> str:
    """The contract's creation bytecode, 0x-prefixed."""
    code = str(load_artifact()["bytecode"])
    return code if code.startswith("0x") else "0x" + code
