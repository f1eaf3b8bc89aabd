"""Seconds per Flower round for bench/epoch.py's toy learners: a SuperLink and one SuperNode per learner.

Run in .venv-bench (flwr 1.42; `make bench-attacks` sets it up): python bench/flower_rounds.py --learners N
[--rounds R]. Everything listens on loopback in insecure mode, nothing is downloaded (no `flwr new`, no
runtime dependency installation, telemetry and update checks off, FLWR_HOME a temporary folder). The app
(bench/flower_app) runs FedAvg over every learner for R rounds and notes the wall clock after each round;
round 1 absorbs the start-up (as epoch 0 does on chain), so seconds per round are over rounds 2..R.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent / "flower_app"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group we started, then SIGKILL what is left (SuperNodes' superexec children)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run(n: int, rounds: int, timeout: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="colearn-flower-"))
    env = {
        **os.environ, "FLWR_HOME": str(work / "home"), "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    port = _free_port()
    (work / "home").mkdir()
    (work / "home" / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    timings = work / "timings.json"
    processes: list[subprocess.Popen[bytes]] = []
    log = open(work / "flower.log", "ab")  # noqa: SIM115 - closed in finally, shared by every process

    def start(cmd: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        processes.append(process)
        return process

    try:
        # The SuperLink's state stays in memory: a database file was "locked" under load, losing a message.
        start([str(BIN / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
               "--host", "127.0.0.1", "--port", str(port)])
        _wait_port(port, 60)
        for i in range(n):
            start([str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{port}",
                   "--host", "127.0.0.1", "--port", str(_free_port()),
                   "--node-config", f"partition-id={i} num-partitions={n}"])
        started = time.monotonic()
        config = f"num-server-rounds={rounds} n-learners={n} timings-path='{timings}'"
        submit = subprocess.run([str(BIN / "flwr"), "run", str(APP), "bench", "--run-config", config],
                                env=env, cwd=work, capture_output=True, text=True, timeout=120, check=False)
        if submit.returncode != 0:
            raise RuntimeError(f"flwr run failed: {submit.stdout}\n{submit.stderr}")
        progress = started
        stamps: list[list[float]] = []
        while len(stamps) < rounds + 1:
            now = json.loads(timings.read_text()) if timings.exists() else []
            if len(now) > len(stamps):
                stamps, progress = now, time.monotonic()
            if time.monotonic() - progress > timeout:
                raise RuntimeError(f"{len(stamps)} of {rounds + 1} round stamps, none for {timeout} s; see {work}")
            time.sleep(0.5)
    finally:
        _stop(processes)
        log.close()
    times = [t for _, t in sorted(stamps)]
    per_round = [b - a for a, b in itertools.pairwise(times)]
    timed = per_round[1:] or per_round
    shutil.rmtree(work, ignore_errors=True)
    return {
        "rounds": rounds,
        "seconds_per_round": round(sum(timed) / len(timed), 3),
        "round_seconds": [round(s, 3) for s in per_round],
        "setup": "flwr 1.42 deployment engine: SuperLink + one SuperNode per learner, insecure, loopback, FedAvg",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default 3)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds without a finished round before giving up (default 600)")
    args = parser.parse_args()
    # A SIGTERM (e.g. from bench/epoch.py's timeout) stops the SuperLink and SuperNodes too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    print(json.dumps(run(args.learners, args.rounds, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
