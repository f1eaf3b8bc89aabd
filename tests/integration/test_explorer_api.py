"""The explorer's JSON API and the History index behind it, on a real Anvil.

Paging, long-poll wake-up on a new transaction, loopback-only binding and the Host check, lazy gas,
and a history that starts mid-way (``--from-block`` after the deployment).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from colearn_chain.chain.connection import connect
from colearn_chain.chain.deployment import Deployment
from colearn_chain.explorer.server import IDLE_TIMEOUT, MAX_CONNECTIONS, ExplorerServer, _Handler, serve_in_background
from colearn_chain.history import History
from colearn_chain.services.anvil import AnvilNode, fund
from history_driver import Driver, learner_keys

STATIC = Path(__file__).resolve().parents[2] / "colearn_chain" / "explorer" / "static"


def _get(url: str, host: str | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        body, status, headers = exc.read(), exc.code, dict(exc.headers)
    is_json = headers.get("Content-Type", "").startswith("application/json")
    return status, headers, json.loads(body) if is_json else body


@pytest.fixture()
def chain() -> Iterator[tuple[str, Driver, Deployment]]:
    with AnvilNode() as node:
        keys = learner_keys(3, salt="explorer-api")
        fund(node.url, [Account.from_key(k).address for k in keys])
        driver = Driver.create(node.url, keys)
        deployment = driver.deploy()
        for epoch in range(6):
            driver.epoch(epoch, [(epoch % 2 == 0, 0.5 + epoch), (True, 0.25), (epoch % 3 == 0, -1.0)])
        yield node.url, driver, deployment


@pytest.fixture()
def served(chain: tuple[str, Driver, Deployment]) -> Iterator[tuple[ExplorerServer, str, Driver]]:
    rpc_url, driver, deployment = chain
    server, url = serve_in_background(rpc_url, deployment, 0, poll_interval=0.1)
    try:
        deadline = time.monotonic() + 20
        while server.history.gas_pending and time.monotonic() < deadline:  # the poller fetches receipts
            time.sleep(0.05)
        yield server, url, driver
    finally:
        server.stop()


def test_pages_epochs_and_serves_one_epoch(served: tuple[ExplorerServer, str, Driver]) -> None:
    server, url, _ = served

    _, _, page = _get(url + "api/epochs?offset=2&limit=3")
    _, _, everything = _get(url + "api/epochs?offset=0&limit=1000")
    _, _, one = _get(url + "api/epochs/4")
    missing, _, _ = _get(url + "api/epochs/99")
    bad, _, error = _get(url + "api/epochs?offset=x")

    assert page["total"] == 7 and [e["epoch"] for e in page["epochs"]] == [2, 3, 4]
    assert everything["limit"] == 1000 and [e["epoch"] for e in everything["epochs"]] == list(range(7))
    assert one == everything["epochs"][4] == server.history.epoch(4).to_json()
    assert one["outcome"] == "accepted" and len(one["votes"]) == 3
    assert missing == 404 and bad == 400 and "offset" in error["error"]


def test_long_poll_wakes_on_a_new_transaction(served: tuple[ExplorerServer, str, Driver]) -> None:
    _, url, driver = served
    _, _, summary = _get(url + "api/summary")
    replies: list[Any] = []
    waiter = threading.Thread(target=lambda: replies.append(_get(url + f"api/events?since={summary['seq']}&wait=20")))

    waiter.start()
    time.sleep(0.3)
    sent = time.monotonic()
    driver.propose(6)
    waiter.join(timeout=20)
    woke_after = time.monotonic() - sent

    assert replies, "the long-poll never returned"
    _, _, changes = replies[0]
    assert woke_after < 5, f"woke {woke_after:.2f} s after the transaction"
    assert changes["seq"] > summary["seq"] and 6 in changes["changed"]
    assert [e["type"] for e in changes["events"]] == ["WeightsProposed"]
    assert changes["summary"]["phase"] == "Voting"


def test_binds_loopback_only_and_refuses_foreign_hosts(served: tuple[ExplorerServer, str, Driver]) -> None:
    server, url, _ = served

    page_status, headers, page = _get(url)
    foreign, _, _ = _get(url + "api/summary", host="attacker.example:80")
    local, _, _ = _get(url + "api/summary", host=f"localhost:{server.server_address[1]}")

    assert server.server_address[0] == "127.0.0.1"
    assert page_status == 200 and b"/static/app.js" in page
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert foreign == 403 and local == 200
    for name in ("index.html", "app.js", "style.css"):  # the page names no other origin
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def test_gas_is_lazy_and_a_history_can_start_mid_way(chain: tuple[str, Driver, Deployment]) -> None:
    rpc_url, _, deployment = chain
    w3 = connect(rpc_url)
    epoch3_start = History.load(w3, deployment).epoch(3).started_block

    lazy = History.load(w3, deployment, gas=False)
    pending, before = lazy.gas_pending, lazy.epoch(0).gas_used
    fetched = lazy.fill_gas(limit=5)
    late = History.load(w3, deployment.address, epoch3_start)

    assert pending == 6 * 4 and before is None
    assert fetched == 5 and lazy.gas_pending == pending - 5
    proposal = lazy.epoch(0).proposal
    assert proposal is not None and proposal.tx.gas_used is not None
    # The block that started epoch 3 holds epoch 2's last vote and decision: that much of epoch 2 is shown.
    full = History.load(w3, deployment)
    assert late.first_epoch == 2 and [e.epoch for e in late.epochs] == [2, 3, 4, 5, 6]
    assert late.epoch(2).outcome == full.epoch(2).outcome and late.epoch(2).votes == full.epoch(2).votes[-1:]
    assert [e.to_json() for e in late.epochs[1:]] == [e.to_json() for e in full.epochs[3:]]


def test_a_known_testnet_links_its_public_explorer() -> None:
    # Prepare: Anvil posing as Sepolia (chain id 11155111)
    with AnvilNode(chain_id=11155111) as node:
        keys = learner_keys(3, salt="explorer-sepolia")
        fund(node.url, [Account.from_key(k).address for k in keys])
        deployment = Driver.create(node.url, keys).deploy()

        # Execute
        server, url = serve_in_background(node.url, deployment, 0)
        try:
            _, _, summary = _get(url + "api/summary")
        finally:
            server.stop()

    # Assert
    assert summary["chain_id"] == 11155111
    assert summary["explorer"] == {"name": "Sepolia Etherscan", "base": "https://sepolia.etherscan.io"}


def _get_within(url: str, seconds: float) -> tuple[int, Any]:
    """GET ``url``, failing the test if no answer comes within ``seconds`` (a request that spins or hangs)."""
    try:
        with urllib.request.urlopen(url, timeout=seconds) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_wait_nan_is_refused_at_once_not_spun_on(served: tuple[ExplorerServer, str, Driver]) -> None:
    server, url, _ = served
    seq = server.history.seq  # nothing newer: a valid wait would wait, nan made wait_for spin forever

    status, body = _get_within(url + f"api/events?since={seq}&wait=nan", 5)

    assert status == 400 and "wait" in body["error"]


@pytest.mark.parametrize(
    "query",
    [
        "events?since={seq}&wait=inf",
        "events?since={seq}&wait=-1",
        "events?since={seq}&wait=1e309",
        "events?since={seq}&wait=31",
        "events?since={seq}&wait=0x10",
        "events?since={seq}&wait=",
        "events?since=-5",
        "events?since={seq}&since={seq}",
        "events?since={seq}&timeout=1",
        "epochs?offset=abc",
        "epochs?offset=-1",
        "epochs?limit=1000000000",
        "epochs?limit=10**9",
        "epochs?limit=1001",
        "epochs?limit=5&format=html",
        "summary?x=1",
        "epochs?" + "&".join(f"p{i}=1" for i in range(20)),
    ],
)
def test_every_bad_query_parameter_is_a_400_with_a_message(
    served: tuple[ExplorerServer, str, Driver], query: str
) -> None:
    server, url, _ = served

    status, body = _get_within(url + "api/" + query.format(seq=server.history.seq), 5)

    assert status == 400
    assert isinstance(body["error"], str) and body["error"]


def test_good_query_parameters_still_answer(served: tuple[ExplorerServer, str, Driver]) -> None:
    server, url, _ = served

    events_status, events = _get_within(url + f"api/events?since={server.history.seq}&wait=0.25", 5)
    page_status, page = _get_within(url + "api/epochs?offset=0&limit=1000", 5)
    empty_status, empty = _get_within(url + "api/epochs?offset=999999&limit=0", 5)

    assert events_status == 200 and events["seq"] == server.history.seq
    assert page_status == 200 and page["limit"] == 1000 and len(page["epochs"]) == 7
    assert empty_status == 200 and empty["epochs"] == []


def test_connections_past_the_cap_get_a_503_at_once_and_a_freed_slot_serves_again(
    served: tuple[ExplorerServer, str, Driver],
) -> None:
    # Prepare: every slot held by a connection that sends nothing (what any web page could open)
    server, url, _ = served
    host, port = server.server_address[:2]
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        deadline = time.monotonic() + 10
        status, body = 0, {}
        while time.monotonic() < deadline:  # the server accepts them one by one
            status, body = _get_within(url + "api/summary", 5)
            if status == 503:
                break
            time.sleep(0.05)
        # Execute: one idle connection goes away
        idle.pop().close()
        deadline = time.monotonic() + 10
        freed = 0
        while time.monotonic() < deadline and freed != 200:
            freed, _ = _get_within(url + "api/summary", 5)
            time.sleep(0.05)
    finally:
        for conn in idle:
            conn.close()

    # Assert
    assert status == 503 and "connections" in body["error"]
    assert freed == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    served: tuple[ExplorerServer, str, Driver], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a short idle timeout (the real one is IDLE_TIMEOUT seconds)
    server, _, _ = served
    assert _Handler.timeout == IDLE_TIMEOUT
    monkeypatch.setattr(_Handler, "timeout", 0.5)
    # Execute: connect, send nothing, wait for the server to hang up
    started = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=10) as conn:
        received = conn.recv(1024)
    # Assert: closed by the server (b"", no answer), well before our own 10 s timeout
    assert received == b"" and time.monotonic() - started < 5
