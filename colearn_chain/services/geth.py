"""A private geth development chain (``geth --dev``) on loopback: a real Ethereum client as a second chain.

Why geth beside Anvil: Anvil is a simulator; geth is the client many real networks run, with its own
transaction pool, fee rules, log filtering and block production. ``--dev`` makes a one-node chain
(chain id 1337) that seals a block every ``--dev.period`` seconds, with its peer-to-peer side off
(``--nodiscover --maxpeers 0``, and dev mode listens on no peer port at all), its HTTP and WebSocket
RPC on 127.0.0.1, no IPC socket, and its data in a temporary folder removed on stop.

Funding: geth's dev mode pre-funds the first account of its keystore. The node's keystore gets the
same well-known dev key as Anvil and Ganache (:data:`~colearn_chain.services.anvil.DEV_KEY`, encrypted
with an empty password and cheap key derivation: it guards nothing), so :func:`~.anvil.fund` and the
node's unlocked account (:func:`~.anvil.fund_from_unlocked`) work on every local chain alike.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from eth_typing import HexStr
from typing_extensions import Self

from .anvil import DEV_KEY, AnvilNode, ServiceError, find_tool, free_port

__all__ = ["DEFAULT_PERIOD", "GethNode"]

#: Seconds between blocks when none is asked for: short enough for a demo, long enough to batch votes.
DEFAULT_PERIOD: Final[int] = 2
#: geth --dev's chain id (fixed by its dev genesis).
GETH_DEV_CHAIN_ID: Final[int] = 1337


class GethNode(AnvilNode):
    """``geth --dev`` on free loopback ports (HTTP, WebSocket, and its engine port); stopped and removed on exit.

    ``block_time`` is geth's ``--dev.period`` in whole seconds (default :data:`DEFAULT_PERIOD`); None
    (or 0) seals a block only when a transaction waits, as Anvil's instant mining does.
    """

    name = "geth"

    def __init__(self, *, block_time: float | None = DEFAULT_PERIOD, **kwargs: Any) -> None:
        period = 0 if block_time is None else block_time
        if period < 0 or period != int(period):
            raise ServiceError(f"geth's block period is a whole number of seconds, not {block_time}")
        super().__init__(block_time=None if period == 0 else int(period), chain_id=GETH_DEV_CHAIN_ID, **kwargs)
        self.ws_port = free_port()
        self.auth_port = free_port()
        self.datadir: Path | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def _pick_ports(self) -> None:
        super()._pick_ports()
        self.ws_port = free_port()
        self.auth_port = free_port()

    def command(self) -> list[str]:
        if self.datadir is None:
            raise ServiceError("GethNode.command() needs the data folder start() makes")
        return [
            find_tool("geth", "COLEARN_GETH_BIN"),
            "--dev",
            "--dev.period", str(int(self.block_time or 0)),
            "--dev.gaslimit", str(self.gas_limit),
            "--datadir", str(self.datadir),
            "--http", "--http.addr", "127.0.0.1", "--http.port", str(self.port),
            "--http.api", "eth,net,web3,txpool",
            "--ws", "--ws.addr", "127.0.0.1", "--ws.port", str(self.ws_port),
            "--ws.api", "eth,net,web3",
            "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(self.auth_port),
            "--nodiscover", "--maxpeers", "0", "--nat", "none",
            "--ipcdisable",
            "--verbosity", "2",
        ]

    def start(self) -> Self:
        self.datadir = Path(tempfile.mkdtemp(prefix="colearn-geth-"))
        try:
            keystore = self.datadir / "keystore"
            keystore.mkdir()
            # scrypt at n=2: the key is public; geth reads the cost from the file.
            encrypted = Account.encrypt(HexStr(DEV_KEY), "", kdf="scrypt", iterations=2)
            (keystore / "dev-account.json").write_text(json.dumps(encrypted))
            return super().start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        super().stop()
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.datadir = None
