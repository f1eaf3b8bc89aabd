"""A private Kubo (IPFS) node with its API on loopback, for tests, demos and runs.

Why its own node: the project must never touch public IPFS. The repo is made with the `test`
profile (no bootstrap peers, no MDNS, no AutoConf), the gateway is disabled and telemetry is off.
Without a swarm address the daemon runs `--offline` with no swarm at all. With one (a participant's
own node, see :mod:`.kubo_swarm`) it listens there only, knows no public bootstrap peer, DHT, relay,
AutoNAT or hole punching, may dial only the consortium's networks (`Swarm.AddrFilters` blocks every
other address) and peers explicitly with the consortium's other nodes (`Peering.Peers`), so blobs move
between members by bitswap and nowhere else.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from . import stop_processes

__all__ = ["KuboNode", "SwarmPeer", "addr_filters", "find_ipfs_binary"]

log = logging.getLogger(__name__)

#: Environment variable naming the `ipfs` binary to use.
ENV_BIN: Final[str] = "COLEARN_IPFS_BIN"
#: Where `make setup` caches the binary, relative to the repository root.
TOOLS_BIN: Final[Path] = Path(".tools") / "bin" / "ipfs"
_REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[2]

#: Environment for every Kubo process: telemetry off whatever the plugin's defaults become.
_QUIET_ENV: Final[dict[str, str]] = {"IPFS_TELEMETRY": "off", "DO_NOT_TRACK": "1"}


@dataclass(frozen=True)
class SwarmPeer:
    """Another consortium node: its peer ID and the swarm multiaddr it listens on (no /p2p part)."""

    peer_id: str
    address: str

    def to_config(self) -> dict[str, Any]:
        """The entry Kubo's `Peering.Peers` takes."""
        return {"ID": self.peer_id, "Addrs": [self.address]}


def addr_filters(allowed: Sequence[str]) -> list[str]:
    """`Swarm.AddrFilters` that block every address outside the ``allowed`` IPv4 networks, and all of IPv6.

    Kubo refuses to dial (and to accept from) a filtered address, so a node given these can reach no
    one but the consortium, whatever a peer announces.
    """
    blocked = [ipaddress.IPv4Network("0.0.0.0/0")]
    for text in allowed:
        network = ipaddress.IPv4Network(text, strict=False)
        rest: list[ipaddress.IPv4Network] = []
        for block in blocked:
            if network.subnet_of(block):
                rest.extend(block.address_exclude(network))
            elif not block.subnet_of(network):
                rest.append(block)
        blocked = rest
    filters = [f"/ip4/{block.network_address}/ipcidr/{block.prefixlen}" for block in sorted(blocked)]
    return [*filters, "/ip6/::/ipcidr/0"]


def find_ipfs_binary() -> Path:
    """$COLEARN_IPFS_BIN, else <repo>/.tools/bin/ipfs, else `ipfs` on PATH."""
    from_env = os.environ.get(ENV_BIN)
    if from_env:
        path = Path(from_env).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{ENV_BIN}={from_env!r} is not an executable file")
        return path
    tools = _REPO_ROOT / TOOLS_BIN
    if tools.is_file() and os.access(tools, os.X_OK):
        return tools
    on_path = shutil.which("ipfs")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        f"no Kubo `ipfs` binary: set {ENV_BIN}, or run `make setup` to build {tools}, "
        "or put `ipfs` on PATH"
    )


class KuboNode:
    """Start a private Kubo daemon with its API on a free loopback port; stop it on exit.

    Use as a context manager. `.api` is the RPC multiaddr, `.url` the same as http://host:port.
    A `repo` that already holds a Kubo repo is reused (its config is made private again);
    without one, a temporary repo is created and removed on exit.

    Without `swarm` the node is offline (no swarm at all). With `swarm` (a multiaddr such as
    '/ip4/10.77.0.2/tcp/4001') it listens there, dials only addresses inside `allowed_networks`, and
    keeps connections to `peers` (set them before `start`, e.g. once every node's `init` gave its ID).
    `netns` runs the daemon (and every `ipfs` command) inside that Linux network namespace; its API
    is then on that namespace's loopback, reachable through :meth:`command` only.
    """

    def __init__(
        self,
        repo: Path | None = None,
        *,
        binary: Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        swarm: str | None = None,
        peers: Sequence[SwarmPeer] = (),
        allowed_networks: Sequence[str] = ("127.0.0.0/8",),
        netns: str | None = None,
        api_port: int = 0,
    ) -> None:
        self.binary = binary or find_ipfs_binary()
        self._given_repo = repo
        self.repo: Path | None = None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.swarm = swarm
        self.peers: list[SwarmPeer] = list(peers)
        self.allowed_networks = tuple(allowed_networks)
        self.netns = netns
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._api: str | None = None
        self._peer_id: str | None = None
        self._api_port = api_port  # 0: the kernel picks one at the first start; a restart keeps it (agents know it)

    @property
    def peer_id(self) -> str:
        """This node's libp2p peer ID (known once :meth:`init` ran)."""
        if self._peer_id is None:
            raise RuntimeError("KuboNode has no repo yet: call init() or start()")
        return self._peer_id

    def as_peer(self) -> SwarmPeer:
        """How the other consortium nodes reach this one."""
        if self.swarm is None:
            raise RuntimeError("an offline KuboNode has no swarm address")
        return SwarmPeer(self.peer_id, self.swarm)

    @property
    def api(self) -> str:
        """The RPC API multiaddr, e.g. '/ip4/127.0.0.1/tcp/40123/http'."""
        if self._api is None:
            raise RuntimeError("KuboNode is not running")
        return self._api

    @property
    def url(self) -> str:
        """The RPC API as an http URL, e.g. 'http://127.0.0.1:40123'."""
        parts = self.api.strip("/").split("/")  # ip4, host, tcp, port, http
        return f"http://{parts[1]}:{parts[3]}"

    def __enter__(self) -> KuboNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def init(self) -> str:
        """Create the repo (and so the node's identity) if needed; return the peer ID. start() calls it."""
        if self.repo is None:
            if self._given_repo is not None:
                self.repo = Path(self._given_repo)
                self.repo.mkdir(parents=True, exist_ok=True)
            else:
                self.repo = Path(tempfile.mkdtemp(prefix="colearn-kubo-"))
        if not (self.repo / "config").exists():
            self._run("init", "--profile", "test", "--empty-repo")
        identity = json.loads((self.repo / "config").read_text()).get("Identity") or {}
        self._peer_id = str(identity.get("PeerID", ""))
        return self._peer_id

    def configure(self) -> str:
        """Init the repo if needed and write its private config without starting it; return the peer ID.

        For a person who runs the daemon themselves (`IPFS_PATH=REPO ipfs daemon`).
        """
        peer_id = self.init()
        self._make_private()
        return peer_id

    def start(self) -> None:
        """Init the repo if needed, make it private, start the daemon and wait for its API."""
        if self._process is not None:
            raise RuntimeError("KuboNode already started")
        try:
            self.init()
            assert self.repo is not None
            self._make_private()
            api_file = self.repo / "api"
            api_file.unlink(missing_ok=True)  # a stale one from a killed daemon would mislead us
            # The daemon writes to it until stop() closes it, so no `with` block.
            self._log_file = open(self.repo / "daemon.log", "ab")  # noqa: SIM115
            daemon = ["daemon"] if self.swarm is not None else ["daemon", "--offline"]
            self._process = subprocess.Popen(
                [*self._prefix(), str(self.binary), *daemon],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
            )
            self._api = self._wait_for_api(api_file)
            self._api_port = int(self._api.strip("/").split("/")[3])
        except BaseException:
            self.stop()
            raise
        log.info("Kubo %s started %s, repo %s, API %s", self.binary,
                 f"with swarm {self.swarm}" if self.swarm else "offline", self.repo, self._api)

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and remove a temporary repo."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None and stop_processes([process], self.stop_timeout):
            log.warning("Kubo did not stop within %.0f s; killed it", self.stop_timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._api = None
        if self.repo is not None and self._given_repo is None:
            shutil.rmtree(self.repo, ignore_errors=True)
            self.repo = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, *args: str, timeout: float = 30.0) -> str:
        """Run `ipfs ARGS` against this running node (inside its namespace, if any) and return its stdout.

        Why the CLI: with a namespace, the API listens on that namespace's loopback, which only a process
        inside it can reach; the CLI finds the API through the repo's `api` file either way.
        """
        return self._run("--api", self.api, *args, timeout=timeout)

    def json_command(self, *args: str, timeout: float = 30.0) -> Any:
        """:meth:`command` with `--enc=json`, decoded."""
        return json.loads(self.command(*args, "--enc=json", timeout=timeout))

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def _env(self) -> dict[str, str]:
        assert self.repo is not None
        return {**os.environ, **_QUIET_ENV, "IPFS_PATH": str(self.repo)}

    def _run(self, *args: str, timeout: float | None = None) -> str:
        result = subprocess.run(
            [*self._prefix(), str(self.binary), *args],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout or self.start_timeout,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise RuntimeError(f"`ipfs {' '.join(args)}` failed ({result.returncode}): {output}")
        return result.stdout.decode(errors="replace")

    def _make_private(self) -> None:
        """Edit the repo config so the node listens on loopback only and never dials out."""
        assert self.repo is not None
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        addresses = _section(config, "Addresses")
        addresses["API"] = f"/ip4/127.0.0.1/tcp/{self._api_port}"  # 0: the kernel picks; read back below
        addresses["Gateway"] = []
        addresses["Swarm"] = []
        addresses["Announce"] = []
        addresses["AppendAnnounce"] = []
        addresses["NoAnnounce"] = []
        config["Bootstrap"] = []
        _section(_section(config, "Discovery"), "MDNS")["Enabled"] = False
        _section(config, "AutoConf")["Enabled"] = False
        _section(config, "AutoTLS")["Enabled"] = False
        _section(config, "Swarm")["DisableNatPortMap"] = True
        _section(config, "Routing")["Type"] = "none"  # no DHT even if someone drops --offline
        telemetry = _section(_section(_section(config, "Plugins"), "Plugins"), "telemetry")
        _section(telemetry, "Config")["Mode"] = "off"
        if self.swarm is not None:
            self._join_consortium(config)
        tmp = config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        os.replace(tmp, config_path)

    def _join_consortium(self, config: dict[str, Any]) -> None:
        """Listen on the swarm address only and reach nobody but the consortium's peers."""
        assert self.swarm is not None
        config["Addresses"]["Swarm"] = [self.swarm]
        swarm = _section(config, "Swarm")
        swarm["AddrFilters"] = addr_filters(self.allowed_networks)
        swarm["EnableHolePunching"] = False
        _section(swarm, "RelayClient")["Enabled"] = False
        _section(swarm, "RelayService")["Enabled"] = False
        # TCP only: the swarm address is TCP; no QUIC, WebTransport, WebRTC, websocket or relay listeners.
        network = _section(_section(swarm, "Transports"), "Network")
        for transport in ("QUIC", "WebTransport", "WebRTCDirect", "Websocket", "Relay"):
            network[transport] = False
        swarm["ConnMgr"] = {"Type": "none"}  # a small consortium: never trim a member's connection
        _section(config, "AutoNAT")["ServiceMode"] = "disabled"
        _section(config, "HTTPRetrieval")["Enabled"] = False
        _section(config, "Provide")["Enabled"] = False  # no routing to announce to
        _section(config, "Peering")["Peers"] = [peer.to_config() for peer in self.peers]

    def _wait_for_api(self, api_file: Path) -> str:
        """Wait for the daemon to write its `api` file and answer POST /api/v0/id."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        api: str | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Kubo daemon exited with {self._process.returncode}: {self._log_tail()}"
                )
            if api is None and api_file.exists():
                text = api_file.read_text().strip()
                api = (text if text.endswith("/http") else text + "/http") if text else None
            if api is not None and (self._answers_in_netns(api) if self.netns else _answers(api)):
                return api
            time.sleep(0.05)
        raise RuntimeError(
            f"Kubo API did not answer within {self.start_timeout:.0f} s: {self._log_tail()}"
        )

    def _answers_in_netns(self, api: str) -> bool:
        try:
            self._run("--api", api, "id", timeout=5.0)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def _log_tail(self, lines: int = 20) -> str:
        assert self.repo is not None
        try:
            text = (self.repo / "daemon.log").read_text(errors="replace")
        except OSError:
            return "(no daemon log)"
        return "\n".join(text.splitlines()[-lines:])


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    """config[key] as a dict, creating it when absent or null (Kubo writes nulls)."""
    value = config.get(key)
    if not isinstance(value, dict):
        value = config[key] = {}
    return value


def _answers(api: str) -> bool:
    """True if POST /api/v0/id at the multiaddr `api` answers 200."""
    parts = api.strip("/").split("/")
    url = f"http://{parts[1]}:{parts[3]}/api/v0/id"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(urllib.request.Request(url, method="POST"), timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
