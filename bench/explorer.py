"""The explorer serves the page's data for 1,000 epochs x 10 learners in under a second; numbers as JSON.

Run: python bench/explorer.py [--epochs 1000] [--learners 10] [--repeat 5] [--no-browser]

How the history is made: real transactions on a private Anvil, the fast way (tests/integration/
history_driver.py ``fast_history``). Anvil's auto-impersonation lets each learner address send unsigned
``eth_sendTransaction`` (no Python signing of 11k txs), with automine off; each epoch is one JSON-RPC batch
(the proposal with a higher tip, so it is ordered first, then the ten votes) followed by ``evm_mine``:
one block per epoch, every event from a real call of the real contract. Then the bench measures:

- ``load``: History.load from the deployment block, events and then the 11k receipts (gas);
- ``page_data``: what the page fetches when it opens (summary, newest 50 epochs, all scores for the
  chart, recent events), cold (first request after the load) and warm (best and worst of --repeat);
- ``all_epochs``: every epoch in one request, and the whole history;
- ``update``: one more epoch on chain until the index has it;
- ``browser`` (when Debian's chromium is installed): headless Chromium until the page has rendered.

Exit status 1 when the page's data takes a second or more.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from colearn_chain.chain.artifact import abi
from colearn_chain.explorer.server import start_server
from colearn_chain.history import History, connect
from colearn_chain.services.anvil import AnvilNode
from colearn_chain.store.unixfs import cid_v0
from history_driver import Rpc, fast_history
from webdriver import Browser, find_browser

LIMIT_SECONDS = 1.0


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def page_data(base: str, total: int, seq: int) -> tuple[float, int]:
    """Fetch what the page fetches on opening; return (seconds, bytes)."""
    lo = max(total - 50, 0)
    since = max(seq - 40, 0)
    paths = ["api/summary", f"api/epochs?offset={lo}&limit={total - lo}", "api/scores", f"api/events?since={since}"]
    started = time.perf_counter()
    size = sum(len(_get(base + p)) for p in paths)
    return time.perf_counter() - started, size


def browser_seconds(url: str, total: int) -> float | None:
    """Seconds for headless Chromium to open the page and render the newest page and the chart, if installed."""
    found = find_browser()
    if found is None:
        return None
    with Browser(*found) as browser:
        browser.execute("return 1")  # the browser is up before timing starts
        started = time.perf_counter()
        browser.get(url)
        browser.wait_for(f"return document.body.dataset.ready === '1' && document.body.dataset.epochs === '{total}'",
                         timeout=60, interval=0.02)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--learners", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"epochs": args.epochs, "learners": args.learners}
    with AnvilNode() as node:
        seconds, deployment = _timed(lambda: fast_history(node.url, args.epochs, args.learners))
        report["generate"] = {"seconds": round(seconds, 2), "transactions": args.epochs * (args.learners + 1),
                              "blocks": args.epochs, "method": "anvil auto-impersonation, one block per epoch"}

        w3 = connect(node.url)
        history = History.open(w3, deployment, gas=False)
        events_s, _ = _timed(lambda: history.update(gas=False))
        receipts_s, fetched = _timed(history.fill_gas)
        report["load"] = {"events_seconds": round(events_s, 3), "receipts_seconds": round(receipts_s, 3),
                          "receipts": fetched, "epochs_indexed": len(history)}

        server = start_server(history, poll_interval=0.2)
        try:
            base = server.url
            total, seq = len(history), history.seq
            cold, size = page_data(base, total, seq)
            warm = [page_data(base, total, seq)[0] for _ in range(args.repeat)]
            report["page_data"] = {
                "requests": [
                    "/api/summary", "/api/epochs (newest 50)", "/api/scores (all epochs x learners)", "/api/events"
                ],
                "bytes": size, "cold_seconds": round(cold, 4),
                "warm_best_seconds": round(min(warm), 4), "warm_median_seconds": round(statistics.median(warm), 4),
                "warm_worst_seconds": round(max(warm), 4),
            }
            all_s, body = _timed(lambda: _get(f"{base}api/epochs?offset=0&limit=1000"))
            hist_s, whole = _timed(lambda: _get(f"{base}api/history"))
            report["all_epochs"] = {"one_request_seconds": round(all_s, 4), "bytes": len(body),
                                    "history_seconds": round(hist_s, 4), "history_bytes": len(whole)}

            # One more epoch on chain: how long until the served index has it.
            rpc = Rpc(node.url)
            contract = w3.eth.contract(address=deployment.address, abi=abi())
            e, n = args.epochs, args.learners
            started = time.perf_counter()
            proposal = contract.encode_abi("propose", [e, "0x" + "22" * 32, cid_v0(b"one more")])
            rpc.call("eth_sendTransaction", [{"from": deployment.learners[e % n], "to": deployment.address,
                                              "gas": hex(400_000), "data": proposal}])
            for voter in deployment.learners:
                rpc.call("eth_sendTransaction", [{"from": voter, "to": deployment.address, "gas": hex(300_000),
                                                  "data": contract.encode_abi("vote", [e, True, 10**18])}])
            sent = time.perf_counter()
            while json.loads(_get(f"{base}api/summary"))["current_epoch"] != e + 1:
                time.sleep(0.01)
            report["update"] = {"poll_interval_seconds": 0.2,
                                "seconds_from_last_tx_to_served": round(time.perf_counter() - sent, 3),
                                "send_seconds": round(sent - started, 3)}
            if not args.no_browser:
                seconds_b = browser_seconds(base, len(history))
                report["browser"] = {"seconds_to_rendered_page": None if seconds_b is None else round(seconds_b, 3)}
        finally:
            server.stop()
    report["limit_seconds"] = LIMIT_SECONDS
    page = report["page_data"]
    report["ok"] = page["cold_seconds"] < LIMIT_SECONDS and page["warm_worst_seconds"] < LIMIT_SECONDS
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
