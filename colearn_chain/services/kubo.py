"""A private, offline Kubo (IPFS) node on loopback, for tests, demos and single-machine runs.

Why its own node: the project must never touch public IPFS. The repo is made with the `test`
profile (no bootstrap peers, no MDNS, no AutoConf), every swarm address is removed, the
gateway is disabled, telemetry is off, and the daemon runs with `--offline`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from . import stop_processes

__all__ = ["KuboNode", "find_ipfs_binary"]

log = logging.getLogger(__name__)

#: Environment variable naming the `ipfs` binary to use.
ENV_BIN: Final[str] = "COLEARN_IPFS_BIN"
#: Where `make setup` caches the binary, relative to the repository root.
TOOLS_BIN: Final[Path] = Path(".tools") / "bin" / "ipfs"
_REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[2]

#: Environment for every Kubo process: telemetry off whatever the plugin's defaults become.
_QUIET_ENV: Final[dict[str, str]] = {"IPFS_TELEMETRY": "off", "DO_NOT_TRACK": "1"}


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
    """Start a private offline Kubo daemon on a free loopback port; stop it on exit.

    Use as a context manager. `.api` is the RPC multiaddr, `.url` the same as http://host:port.
    A `repo` that already holds a Kubo repo is reused (its config is made private again);
    without one, a temporary repo is created and removed on exit.
    """

    def __init__(
        self,
        repo: Path | None = None,
        *,
        binary: Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.binary = binary or find_ipfs_binary()
        self._given_repo = repo
        self.repo: Path | None = None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._api: str | None = None

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

    def start(self) -> None:
        """Init the repo if needed, make it private, start the daemon and wait for its API."""
        if self._process is not None:
            raise RuntimeError("KuboNode already started")
        if self._given_repo is not None:
            self.repo = Path(self._given_repo)
            self.repo.mkdir(parents=True, exist_ok=True)
        else:
            self.repo = Path(tempfile.mkdtemp(prefix="colearn-kubo-"))
        try:
            if not (self.repo / "config").exists():
                self._run("init", "--profile", "test", "--empty-repo")
            self._make_private()
            api_file = self.repo / "api"
            api_file.unlink(missing_ok=True)  # a stale one from a killed daemon would mislead us
            # The daemon writes to it until stop() closes it, so no `with` block.
            self._log_file = open(self.repo / "daemon.log", "ab")  # noqa: SIM115
            self._process = subprocess.Popen(
                [str(self.binary), "daemon", "--offline"],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
            )
            self._api = self._wait_for_api(api_file)
        except BaseException:
            self.stop()
            raise
        log.info("Kubo %s started offline, repo %s, API %s", self.binary, self.repo, self._api)

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

    def _env(self) -> dict[str, str]:
        assert self.repo is not None
        return {**os.environ, **_QUIET_ENV, "IPFS_PATH": str(self.repo)}

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.binary), *args],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=self.start_timeout,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise RuntimeError(f"`ipfs {' '.join(args)}` failed ({result.returncode}): {output}")

    def _make_private(self) -> None:
        """Edit the repo config so the node listens on loopback only and never dials out."""
        assert self.repo is not None
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        addresses = _section(config, "Addresses")
        addresses["API"] = "/ip4/127.0.0.1/tcp/0"  # the kernel picks a free port; read back below
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
        tmp = config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        os.replace(tmp, config_path)

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
            if api is not None and _answers(api):
                return api
            time.sleep(0.05)
        raise RuntimeError(
            f"Kubo API did not answer within {self.start_timeout:.0f} s: {self._log_tail()}"
        )

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
