"""One exception root with families, so callers can catch as broadly or narrowly as they need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ColearnChainError(Exception):
    """Root of every error colearn_chain raises on purpose."""


class ContractRevert(ColearnChainError):
    """Raised when a contract call reverts; carries the decoded custom error name and arguments."""

    def __init__(self, name: str, args: Sequence[Any] = (), message: str | None = None) -> None:
        self.name = name
        self.args_ = tuple(args)
        rendered = ", ".join(str(a) for a in self.args_)
        super().__init__(message or f"contract reverted with {name}({rendered})")


class TransactionFailed(ColearnChainError):
    """Raised when a mined transaction failed but replaying it does not revert (e.g. it ran out of gas).

    Unlike :class:`ContractRevert`, no rule of the contract refused it: sending it again (with a fresh
    gas estimate) may well succeed.
    """

    def __init__(self, message: str, *, tx_hash: str, block: int, gas_used: int, gas_limit: int | None) -> None:
        self.tx_hash = tx_hash
        self.block = block
        self.gas_used = gas_used
        self.gas_limit = gas_limit
        super().__init__(message)


class ChainUnavailable(ColearnChainError):
    """Raised when the JSON-RPC endpoint cannot be reached after the retries."""


class WeightStoreError(ColearnChainError):
    """Raised when the weight store cannot give or take a blob."""


class StoreUnavailable(WeightStoreError):
    """Raised when the weight store (e.g. the Kubo node) cannot be reached."""


class CidNotFound(WeightStoreError):
    """Raised when no blob with the requested CID can be found in the store."""


class DigestMismatch(WeightStoreError):
    """Raised when a fetched blob's digest differs from the digest recorded on chain."""


class BlobTooLarge(WeightStoreError):
    """Raised when a blob exceeds the size limit set for fetching or decoding weights."""


class WeightsMismatch(ColearnChainError):
    """Raised when decoded weights do not fit the receiving model (names, shapes or dtypes)."""


class LearnerContractError(ColearnChainError):
    """Raised when a learner breaks the learner interface; ``method`` names the method that did."""

    def __init__(self, message: str, *, method: str | None = None) -> None:
        self.method = method
        super().__init__(message)
