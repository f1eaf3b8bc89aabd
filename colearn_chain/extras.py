"""Optional parts of the package, and the one error that says which extra to install.

A plain ``pip install colearn-chain`` gives a working agent (web3, numpy, safetensors,
ipfshttpclient). The bundled data sets, the plot and the brownie project are extras; code that needs
one imports it where it is used, through :func:`require`, so the rest never pays for it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import ColearnChainError

__all__ = ["MissingExtra", "require"]


class MissingExtra(ColearnChainError):
    """Raised when a feature needs a package from an extra that is not installed."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed: "
            f"pip install 'colearn-chain[{extra}]'"
        )


def require(module: str, purpose: str, extra: str = "experiments") -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(module.split(".")[0], extra, purpose) from error
