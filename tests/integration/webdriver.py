"""A minimal W3C WebDriver client over urllib, for driving Debian's headless Chromium through chromedriver.

Why not selenium: the browser test needs five endpoints (new session, navigate, execute script,
screenshot, delete session); speaking them directly keeps the test free of a large dependency, and
the test tools' own browser downloads fail on these machines anyway.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from colearn_chain.services import stop_processes

#: The flags docs/environment.md lists for headless Chromium on these machines.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1400",
]


class WebDriverError(RuntimeError):
    """Raised when chromedriver answers a command with an error."""


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when Debian's packages are not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Browser:
    """One chromedriver process and one headless Chromium session with a fresh profile."""

    def __init__(self, chromium: str, chromedriver: str, *, log_path: Path | None = None) -> None:
        self.chromium = chromium
        self.chromedriver = chromedriver
        self.port = _free_port()
        self.log_path = log_path
        self.profile = tempfile.mkdtemp(prefix="colearn-chromium-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.session: str | None = None

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
            value = payload.get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:500]}") from exc
        return payload.get("value")

    def start(self) -> Browser:
        with contextlib.ExitStack() as files:  # the child keeps its own descriptor of the log
            out = files.enter_context(open(self.log_path, "ab")) if self.log_path else subprocess.DEVNULL
            self._proc = subprocess.Popen(
                [self.chromedriver, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._request("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.stop()
                raise WebDriverError("chromedriver did not become ready")
            time.sleep(0.1)
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                        "binary": self.chromium,
                        "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"],
                    },
                }
            }
        }
        self.session = self._request("POST", "/session", caps)["sessionId"]
        return self

    def stop(self) -> None:
        if self.session:
            with contextlib.suppress(OSError, WebDriverError):
                self._request("DELETE", f"/session/{self.session}", timeout=20)
            self.session = None
        if self._proc:
            stop_processes([self._proc])
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ───────────────────────────── commands

    def get(self, url: str) -> None:
        self._request("POST", f"/session/{self.session}/url", {"url": url})

    def execute(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body; ``arguments`` holds ``args``) in the page; return its value."""
        return self._request("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": list(args)})

    def set_window(self, width: int, height: int) -> None:
        self._request("POST", f"/session/{self.session}/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """Save a PNG of the page; ``full_page`` first grows the window to the document's height."""
        if full_page:
            height = int(self.execute("return document.documentElement.scrollHeight") or 1400)
            self.set_window(1400, min(max(height + 140, 800), 8000))
        png = base64.b64decode(self._request("GET", f"/session/{self.session}/screenshot"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path

    def console(self) -> list[str]:
        """The page's console messages so far (for a failing test's report)."""
        try:
            entries = self._request("POST", f"/session/{self.session}/se/log", {"type": "browser"})
        except (OSError, WebDriverError) as exc:
            return [f"(no console log: {exc})"]
        return [f"{e.get('level')}: {e.get('message')}" for e in entries or []]

    def wait_for(self, script: str, *args: Any, timeout: float = 30, interval: float = 0.2) -> Any:
        """Poll ``script`` until it returns something truthy; return it, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.execute(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                console = "\n".join(self.console()[-20:])
                raise TimeoutError(f"page condition not met within {timeout} s: {script[:300]}\nconsole:\n{console}")
            time.sleep(interval)
