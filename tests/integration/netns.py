"""Separate networks for the integration tests: namespaces built by tools/netns-demo.sh, a chain inside one.

The test process itself stays in the host's namespace. It reaches the chain (which listens on its
namespace's address only) through :class:`Relay`: a loopback listener here whose outgoing connections are
made from a thread that entered the chain's namespace (``setns``), so no address on the host changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Final

import pytest
from web3 import Web3

from colearn_chain.services import stop_processes
from colearn_chain.services.anvil import find_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT: Final[Path] = ROOT / "tools" / "netns-demo.sh"
SUBNET: Final[str] = "10.77.0.0/24"
CHAIN_IP: Final[str] = "10.77.0.1"
CHAIN_PORT: Final[int] = 8545
_CLONE_NEWNET: Final[int] = 0x40000000


def require_namespaces() -> None:
    """Fail (never skip) with what the machine lacks to build network namespaces."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (CAP_NET_ADMIN and CAP_SYS_ADMIN, for `ip netns add` and setns)")
    if shutil.which("ip") is None:
        missing.append("iproute2's `ip` command on PATH")
    if shutil.which("ss") is None:
        missing.append("iproute2's `ss` command on PATH")
    if missing:
        pytest.fail("the network-namespace test needs " + " and ".join(missing), pytrace=False)


def enter_namespace(name: str) -> None:
    """Move the calling thread (only it) into network namespace ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {name}: {os.strerror(error)}")
    finally:
        os.close(fd)


class Topology:
    """The chain's namespace and one per participant, under a name no other run uses; removed on exit."""

    def __init__(self, participants: int) -> None:
        self.name = f"cct{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.participants = participants
        self.chain_ns = f"{self.name}-chain"
        self.output = ""

    def participant_ns(self, index: int) -> str:
        return f"{self.name}-p{index}"

    def participant_ip(self, index: int) -> str:
        return f"10.77.0.{index + 2}"

    def namespaces(self) -> list[str]:
        return [self.chain_ns, *(self.participant_ns(i) for i in range(self.participants))]

    def __enter__(self) -> Topology:
        result = subprocess.run(
            ["bash", str(SCRIPT), "up", "--name", self.name, "--participants", str(self.participants)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        self.output = result.stdout
        if result.returncode != 0:
            self.down()
            pytest.fail(f"cannot build network namespaces ({result.returncode}): {result.stderr.strip()}; the "
                        "network-namespace test needs root (CAP_NET_ADMIN) and iproute2", pytrace=False)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def down(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "down", "--name", self.name], capture_output=True, timeout=60,
                       check=False)

    def exec(self, namespace: str, *command: str) -> str:
        """Run a command inside ``namespace`` and return its stdout."""
        return subprocess.run(["ip", "netns", "exec", namespace, *command], capture_output=True, text=True,
                              timeout=30, check=True).stdout


class Relay:
    """A loopback TCP listener in the host namespace forwarding each connection to (host, port) in a namespace."""

    def __init__(self, namespace: str, host: str, port: int) -> None:
        self.namespace, self.host, self.port = namespace, host, port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, name="netns-relay", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            enter_namespace(self.namespace)  # this thread only; it ends with the connection
            upstream = socket.create_connection((self.host, self.port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class NamespacedAnvil:
    """Anvil inside the chain's namespace, listening on its namespace address only; reached here by a relay."""

    def __init__(self, topology: Topology, log_path: Path) -> None:
        self.topology = topology
        self.log_path = log_path
        self.rpc_inside = f"http://{CHAIN_IP}:{CHAIN_PORT}"  # what the participants use
        self.relay: Relay | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.relay is not None
        return self.relay.url

    def __enter__(self) -> NamespacedAnvil:
        cmd = [
            "ip", "netns", "exec", self.topology.chain_ns, find_tool("anvil", "COLEARN_ANVIL_BIN"),
            "--host", CHAIN_IP, "--port", str(CHAIN_PORT), "--chain-id", "31337", "--accounts", "1",
            "--balance", "1000000", "--silent",
        ]
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.relay = Relay(self.topology.chain_ns, CHAIN_IP, CHAIN_PORT)
        w3 = Web3(Web3.HTTPProvider(self.relay.url, request_kwargs={"timeout": 2}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {self._proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if w3.eth.chain_id == 31337:
                    return self
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("anvil in the chain namespace did not answer within 30 s")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            stop_processes([self._proc])
        if self.relay is not None:
            self.relay.close()


def established_peers(topology: Topology, namespace: str) -> list[str]:
    """The remote IP of every TCP connection and every connected UDP socket inside ``namespace`` (a socket
    still listening, or unconnected UDP, has no remote address and is left out)."""
    lines = topology.exec(namespace, "ss", "-Htuna").splitlines()
    peers = []
    for line in lines:
        fields = line.split()  # netid state recv-q send-q local peer [process]
        if len(fields) < 6 or fields[1] in ("LISTEN", "UNCONN"):
            continue
        address = fields[5].rsplit(":", 1)[0].strip("[]")
        if address not in ("*", "0.0.0.0", "::"):
            peers.append(address.split("%")[0])
    return peers
