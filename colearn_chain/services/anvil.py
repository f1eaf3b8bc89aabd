"""A private local chain (Anvil, or Ganache) on loopback, for demos, tests and benches.

Started with one known dev account only for funding: learners sign with their own keys, which the
caller funds from the dev account (see :func:`fund`). Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from typing_extensions import Self
from web3 import Web3

from ..chain.connection import http_web3
from ..exceptions import ColearnChainError
from ..text import printable
from . import stop_processes

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
#: Chain ids of local development chains (Anvil, Ganache): the only ones where DEV_KEY may be used.
LOCAL_CHAIN_IDS = frozenset({31337, 1337})
#: Anvil's first dev account (public, well known: for local chains only).
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#: How much of a chain's last output a start failure quotes (its error is in the last lines).
_SAID_LINES, _SAID_BYTES = 5, 8192


def _tail(handle: IO[bytes], start: int) -> bytes:
    """The last ``_SAID_BYTES`` of ``handle``, none from before offset ``start`` (an earlier start's output)."""
    end = handle.seek(0, os.SEEK_END)
    handle.seek(max(start, end - _SAID_BYTES))
    return handle.read()


class ServiceError(ColearnChainError):
    """Raised when a local service (chain or IPFS node) cannot be found or started."""


def free_port() -> int:
    """Ask the OS for a free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (npm's `anvil` is a node wrapper whose child is the chain)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in os.listdir(f"/proc/{current}/task"):
            todo += [int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
    return found


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` (or a descendant) listens on TCP ``port`` (None where /proc cannot tell).

    An answer on the port is not proof: another process may hold it and ours may still be failing to bind.
    """
    try:
        inodes = set()
        for member in _family(pid):
            fds = f"/proc/{member}/fd"
            inodes |= {os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)}
        tables = [Path("/proc/net/tcp").read_text(), Path("/proc/net/tcp6").read_text()]
    except OSError:
        return None
    for table in tables:
        for row in table.splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and f"socket:[{inode}]" in inodes:
                return True
    return False


def find_tool(name: str, env_var: str) -> str:
    """Find a tool: ``$env_var``, then the project's node_modules/.bin and .tools/bin, then PATH."""
    candidates = [
        os.environ.get(env_var), str(ROOT / "node_modules" / ".bin" / name), str(ROOT / ".tools" / "bin" / name)
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    raise ServiceError(f"{name} not found: run `make setup` (or set {env_var} to its path)")


class AnvilNode:
    """Start Anvil on a free loopback port; stop it on exit.

    ``block_time`` None mines each transaction at once; a number mines a block every that many seconds.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        block_time: float | None = None,
        gas_limit: int = 30_000_000,
        chain_id: int = 31337,
        log_path: Path | None = None,
    ) -> None:
        self._auto_port = port is None
        self.port = port or free_port()
        self.block_time = block_time
        self.gas_limit = gas_limit
        self.chain_id = chain_id
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        # What the chain writes (to log_path, else to an unnamed temporary file): read back when it fails to
        # start, so the error says why ("Address already in use") instead of a bare exit code.
        self._output: IO[bytes] | None = None
        self._output_start = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    name = "anvil"

    def command(self) -> list[str]:
        """The command line that starts this chain on loopback."""
        cmd = [
            find_tool("anvil", "COLEARN_ANVIL_BIN"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--gas-limit", str(self.gas_limit),
            "--accounts", "1",
            "--balance", "1000000",
            "--silent",
        ]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        return cmd

    def start(self) -> Self:
        # A port picked by free_port() may be taken by another process before the chain binds it (two test
        # sessions side by side): then our chain exits at once while the other one answers on that port.
        # So readiness counts only while our process is alive, and a lost port is picked again.
        for _attempt in range(3):
            if self._launch():
                return self
            if not self._auto_port:
                break
            self._pick_ports()
            log.info("%s lost its port to another process; trying port %d", self.name, self.port)
        said, code, cmd = self._said(), self._exit_code(), " ".join(self.command())
        self.stop()  # __exit__ is not called when __enter__ raises
        raise ServiceError(f"{self.name} exited with code {code}{f': {said}' if said else ' without a word'} "
                           f"(command: {cmd})")

    def _pick_ports(self) -> None:
        """Pick new free ports after losing one (a chain with more than one port picks them all again)."""
        self.port = free_port()

    def _launch(self) -> bool:
        """Start the chain; True once it answers and is still alive, False if it exited (port taken)."""
        cmd = self.command()
        self._close_output()
        if self.log_path:
            try:
                self._output_start = self.log_path.stat().st_size
            except OSError:
                self._output_start = 0
            with open(self.log_path, "ab") as out:  # the child keeps its own descriptor
                self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        else:
            self._output, self._output_start = tempfile.TemporaryFile(prefix=f"colearn-{self.name}-"), 0  # noqa: SIM115
            self._proc = subprocess.Popen(cmd, stdout=self._output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        w3 = http_web3(self.url, timeout=2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                answered = w3.eth.chain_id == self.chain_id
            except Exception:  # noqa: BLE001 - not listening yet, in any of many ways: ask again
                answered = False
            if answered and listens_on(self._proc.pid, self.port) is not False:
                log.info("%s listening on %s", self.name, self.url)
                return True
            time.sleep(0.1)
        said = self._said()
        self.stop()
        raise ServiceError(f"{self.name} did not answer on {self.url} within 30 s"
                           f"{f'; its last output: {said}' if said else ''}")

    def _said(self) -> str:
        """The last lines the chain wrote since this start, as one escaped line ('' if none or unreadable)."""
        try:
            if self._output is not None:
                data = _tail(self._output, self._output_start)
            elif self.log_path is not None:
                with open(self.log_path, "rb") as log_file:
                    data = _tail(log_file, self._output_start)
            else:
                return ""
        except OSError:
            return ""
        lines = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
        # From its last error on ("Error: ...", geth's "Fatal: ..."), without a JavaScript stack trace's frames:
        # the warnings before it and the frames after it would push the reason out of the quote.
        errors = [i for i, line in enumerate(lines) if line.lower().startswith(("error", "fatal"))]
        if errors:
            lines = [line for line in lines[errors[-1]:] if not line.startswith("at ")]
        quoted = lines[:_SAID_LINES] if errors else lines[-_SAID_LINES:]
        return " | ".join(printable(line, limit=200) for line in quoted)

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None

    def _exit_code(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def stop(self) -> None:
        if self._proc:
            stop_processes([self._proc])
        self._proc = None
        self._close_output()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def fund_from_unlocked(rpc_url: str, addresses: Sequence[str], amount_ether: float = 100.0) -> None:
    """Send ``amount_ether`` to each address from the node's first unlocked account (dev chains only).

    Each request is asked once: a send retried after a timeout could be a second payment.
    """
    w3 = http_web3(rpc_url)
    sender = w3.eth.accounts[0]
    value = w3.to_wei(amount_ether, "ether")
    hashes = [
        w3.eth.send_transaction({"from": sender, "to": Web3.to_checksum_address(a), "value": value})
        for a in addresses
    ]
    for tx_hash in hashes:
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)


def fund(rpc_url: str, addresses: Sequence[str], amount_ether: float = 100.0, *, funder_key: str = DEV_KEY) -> None:
    """Send ``amount_ether`` from the dev account to each address (local chains only), each request asked once."""
    w3 = http_web3(rpc_url)
    funder = w3.eth.account.from_key(funder_key)
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    hashes = []
    for i, address in enumerate(addresses):
        tx = {
            "to": Web3.to_checksum_address(address),
            "value": w3.to_wei(amount_ether, "ether"),
            "nonce": nonce + i,
            "chainId": w3.eth.chain_id,
            "gas": 21_000,
            "maxPriorityFeePerGas": w3.to_wei(1, "gwei"),
            "maxFeePerGas": w3.to_wei(100, "gwei"),
        }
        hashes.append(w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction))
    for tx_hash in hashes:
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)


class GanacheNode(AnvilNode):
    """Ganache 7 on a free loopback port, at Shanghai (its newest fork, the contract's compile target),
    with the same funded dev key as Anvil, so the same code and tests run on both chains."""

    name = "ganache"

    def __init__(self, *, chain_id: int = 1337, **kwargs: Any) -> None:
        super().__init__(chain_id=chain_id, **kwargs)

    def command(self) -> list[str]:
        funder = f"{DEV_KEY},{10**24}"
        cmd = [
            find_tool("ganache", "COLEARN_GANACHE_BIN"),
            "--server.host", "127.0.0.1",
            "--server.port", str(self.port),
            "--chain.chainId", str(self.chain_id),
            "--chain.hardfork", "shanghai",
            "--miner.blockGasLimit", str(self.gas_limit),
            "--wallet.accounts", funder,
            "--logging.quiet",
        ]
        if self.block_time is not None:
            cmd += ["--miner.blockTime", str(self.block_time)]
        return cmd
