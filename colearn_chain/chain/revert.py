"""Revert data -> :class:`ContractRevert` with the custom error's name and arguments.

Why: web3.py surfaces a custom error as an opaque hex string (``ContractCustomError('0x...')``).
Callers (the agent, the CLI, the tests) need to know *which* rule was broken and with which values,
e.g. to treat a lost ``close`` race (``WrongEpoch``) as routine. The 4-byte selector names the error;
the ABI of the packaged artifact gives its argument names and types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from ..exceptions import ContractRevert
from ..protocol import Phase
from .artifact import abi

__all__ = ["Phase", "decode_revert", "revert_data_of", "revert_from_exception"]


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]
    enum_args: frozenset[int]  # positions whose internalType is the Phase enum


_ERROR_STRING: Final[bytes] = bytes.fromhex("08c379a0")  # Error(string), from require/revert("...")
_PANIC: Final[bytes] = bytes.fromhex("4e487b71")  # Panic(uint256), from assert/overflow/...


def _error_specs() -> dict[bytes, _ErrorSpec]:
    specs: dict[bytes, _ErrorSpec] = {}
    for item in abi():
        if item.get("type") != "error":
            continue
        types = tuple(arg["type"] for arg in item["inputs"])
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
        specs[selector] = _ErrorSpec(
            name=item["name"],
            arg_names=tuple(arg["name"] for arg in item["inputs"]),
            arg_types=types,
            enum_args=frozenset(
                i for i, arg in enumerate(item["inputs"]) if arg.get("internalType", "").startswith("enum ")
            ),
        )
    return specs


_SPECS: Final[dict[bytes, _ErrorSpec]] = _error_specs()


def _render(value: Any) -> str:
    if isinstance(value, Phase):
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)


def _normalise(value: Any, abi_type: str, is_enum: bool) -> Any:
    if is_enum:
        try:
            return Phase(value)
        except ValueError:
            return value
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def decode_revert(data: str | bytes | None) -> ContractRevert:
    """Decode revert data into a ContractRevert; unknown data gives the name ``UnknownRevert``."""
    if isinstance(data, str):
        text = data.removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return ContractRevert("UnknownRevert", (data,), f"UnknownRevert(data={data!r})")
    else:
        raw = bytes(data or b"")
    if len(raw) < 4:
        return ContractRevert("UnknownRevert", (), "UnknownRevert(no revert data)")
    selector, payload = raw[:4], raw[4:]
    try:
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], payload)
            return ContractRevert("Error", (reason,), f"Error(reason={reason!r})")
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], payload)
            return ContractRevert("Panic", (code,), f"Panic(code={code:#x})")
        spec = _SPECS.get(selector)
        if spec is None:
            return ContractRevert("UnknownRevert", ("0x" + raw.hex(),), f"UnknownRevert(data=0x{raw.hex()})")
        values = abi_decode(list(spec.arg_types), payload)
    except Exception:  # noqa: BLE001 - malformed payload under a known selector
        return ContractRevert("UnknownRevert", ("0x" + raw.hex(),), f"UnknownRevert(data=0x{raw.hex()})")
    args = tuple(
        _normalise(value, abi_type, i in spec.enum_args)
        for i, (value, abi_type) in enumerate(zip(values, spec.arg_types, strict=True))
    )
    rendered = ", ".join(f"{name}={_render(value)}" for name, value in zip(spec.arg_names, args, strict=True))
    return ContractRevert(spec.name, args, f"{spec.name}({rendered})")


def revert_data_of(exc: BaseException) -> str | None:
    """The revert data carried by a web3 exception, or None if it carries none."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return data
        return None
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict):
            data = error.get("data")
            if isinstance(data, dict):
                data = data.get("data")
            if isinstance(data, str) and data.startswith("0x"):
                return data
    return None


def revert_from_exception(exc: BaseException) -> ContractRevert | None:
    """A ContractRevert for a web3 exception that is a contract revert, else None."""
    if isinstance(exc, ContractRevert):
        return exc
    data = revert_data_of(exc)
    if data is not None:
        return decode_revert(data)
    if isinstance(exc, ContractLogicError):  # a revert without data (e.g. out of gas in a call)
        return ContractRevert("UnknownRevert", (), f"UnknownRevert({exc})")
    return None

