"""Weight stores against a real, private, offline Kubo node.

The embedded store must name every blob exactly as Kubo does, so a CID recorded on chain can be
fetched from either; both stores must fail in the same, typed way.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ipfshttpclient.exceptions as ipfs_errors
import numpy as np
import pytest

from colearn_chain.exceptions import BlobTooLarge, CidNotFound, StoreUnavailable
from colearn_chain.services import kubo as kubo_service
from colearn_chain.services.kubo import KuboNode
from colearn_chain.store import KuboStore, LocalStore, WeightStore, from_url
from colearn_chain.store.unixfs import cid_v0

MB = 1_000_000
SIZES = [0, 1, 262_144, 262_145, 10 * MB, 50 * MB]
#: A CIDv0 no test ever stores (sha256 multihash of b"colearn-chain: never stored").
ABSENT_CID = "QmaFgFridFc8W9LGoekEC6wuRNV6rAcX1aAHaVUNpbaGMq"


def _blob(size: int, seed: int = 0) -> bytes:
    """Deterministic random bytes, so a failing CID can be reproduced anywhere."""
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8).tobytes()


@pytest.fixture()
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blobs")


@pytest.fixture()
def kubo_store(kubo_node: KuboNode) -> KuboStore:
    return KuboStore(kubo_node.api, timeout=10.0)


@pytest.fixture(params=["local", "kubo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WeightStore]:
    """Each store in turn, for behaviour both must share."""
    if request.param == "local":
        yield LocalStore(tmp_path / "blobs")
    else:
        yield KuboStore(request.getfixturevalue("kubo_node").api, timeout=10.0)


def test_absent_cid_is_well_formed_and_not_the_cid_of_anything_stored() -> None:
    # Assert: guards the tests below against passing for the wrong reason
    assert len(ABSENT_CID) == 46 and ABSENT_CID.startswith("Qm")
    assert ABSENT_CID not in {cid_v0(_blob(size)) for size in SIZES if size < 10 * MB}


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_embedded_cid_equals_kubo_cid(size: int, kubo_store: KuboStore, local_store: LocalStore) -> None:
    # Prepare
    data = _blob(size)
    # Execute
    kubo_cid = kubo_store.put(data)
    local_cid = local_store.put(data)
    computed = cid_v0(data)
    # Assert
    assert kubo_cid.startswith("Qm")
    assert local_cid == kubo_cid == computed


def test_put_get_round_trip(store: WeightStore) -> None:
    # Prepare
    data = _blob(600_000, seed=1)
    # Execute
    cid = store.put(data)
    fetched = store.get(cid, max_bytes=len(data))
    # Assert
    assert fetched == data
    assert cid == cid_v0(data)


def test_put_is_idempotent(store: WeightStore) -> None:
    # Prepare
    data = _blob(1000, seed=2)
    # Execute
    first, second = store.put(data), store.put(data)
    # Assert
    assert first == second
    assert store.get(first, max_bytes=1000) == data


def test_empty_blob_round_trip(store: WeightStore) -> None:
    # Execute
    cid = store.put(b"")
    # Assert
    assert store.get(cid, max_bytes=0) == b""


def test_a_blob_put_on_kubo_is_readable_by_its_cid_from_the_local_store_after_copy(
    kubo_store: KuboStore, local_store: LocalStore
) -> None:
    # Prepare: what an agent moving between stores does
    data = _blob(300_000, seed=3)
    cid = kubo_store.put(data)
    # Execute
    local_cid = local_store.put(kubo_store.get(cid, max_bytes=len(data)))
    # Assert
    assert local_cid == cid
    assert local_store.get(cid, max_bytes=len(data)) == data


def test_missing_cid_raises_cid_not_found(store: WeightStore) -> None:
    # Execute
    with pytest.raises(CidNotFound) as raised:
        store.get(ABSENT_CID, max_bytes=1000)
    # Assert
    assert ABSENT_CID in str(raised.value)


@pytest.mark.parametrize(
    "bad_cid", ["", "not-a-cid", "../../etc/passwd", "/ipns/example.com", "Qm x"]
)
def test_malformed_cid_raises_cid_not_found(store: WeightStore, bad_cid: str) -> None:
    # Execute / Assert
    with pytest.raises(CidNotFound):
        store.get(bad_cid, max_bytes=1000)


def test_oversized_blob_raises_blob_too_large(store: WeightStore) -> None:
    # Prepare
    data = _blob(262_145, seed=4)
    cid = store.put(data)
    # Execute
    with pytest.raises(BlobTooLarge) as raised:
        store.get(cid, max_bytes=len(data) - 1)
    # Assert
    assert cid in str(raised.value)
    assert store.get(cid, max_bytes=len(data)) == data  # the limit itself is allowed


def test_kubo_store_on_dead_port_is_unavailable_quickly() -> None:
    # Prepare: a port that was free a moment ago and has no listener
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = KuboStore(f"http://127.0.0.1:{port}", timeout=5.0)
    # Execute
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as put_error:
        dead.put(b"x")
    with pytest.raises(StoreUnavailable) as get_error:
        dead.get(ABSENT_CID, max_bytes=10)
    elapsed = time.monotonic() - started
    # Assert
    assert elapsed < 2.0
    assert "add" in str(put_error.value) and ABSENT_CID in str(get_error.value)


def test_kubo_store_accepts_multiaddr_and_url(kubo_node: KuboNode) -> None:
    # Prepare
    by_multiaddr, by_url = KuboStore(kubo_node.api), KuboStore(kubo_node.url)
    # Execute
    cid = by_multiaddr.put(b"same node")
    # Assert
    assert by_url.api == kubo_node.api
    assert by_url.get(cid, max_bytes=100) == b"same node"


def test_kubo_node_is_offline_with_no_swarm_and_loopback_api(kubo_node: KuboNode) -> None:
    # Prepare
    client = KuboStore(kubo_node.api)._client
    # Execute
    ident = client.id()
    with pytest.raises(ipfs_errors.ErrorResponse) as swarm_error:
        client.swarm.peers()
    # Assert
    assert kubo_node.api.startswith("/ip4/127.0.0.1/tcp/")
    assert not ident["Addresses"]  # no swarm listener at all
    assert "online mode" in str(swarm_error.value)


def test_local_store_writes_files_named_by_cid_and_no_temporaries(local_store: LocalStore) -> None:
    # Prepare
    data = _blob(5000, seed=5)
    # Execute
    cid = local_store.put(data)
    # Assert
    assert sorted(p.name for p in local_store.root.iterdir()) == [cid]
    assert (local_store.root / cid).read_bytes() == data


def test_local_stores_sharing_a_directory_see_each_others_blobs(tmp_path: Path) -> None:
    # Prepare
    writer, reader = LocalStore(tmp_path / "shared"), LocalStore(tmp_path / "shared")
    # Execute
    cid = writer.put(b"from another agent")
    # Assert
    assert reader.get(cid, max_bytes=100) == b"from another agent"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("local:{tmp}/a", LocalStore),
        ("file://{tmp}/b", LocalStore),
        ("{tmp}/c", LocalStore),
        ("/ip4/127.0.0.1/tcp/5001/http", KuboStore),
        ("http://127.0.0.1:5001", KuboStore),
        ("kubo:http://localhost:5001", KuboStore),
    ],
)
def test_from_url_picks_the_store(url: str, kind: type, tmp_path: Path) -> None:
    # Execute
    store = from_url(url.format(tmp=tmp_path))
    # Assert
    assert isinstance(store, kind)
    assert isinstance(store, WeightStore)


@pytest.mark.parametrize("url", ["", "ftp://example.com/x", "http://127.0.0.1"])
def test_from_url_rejects_unknown_or_incomplete_urls(url: str) -> None:
    with pytest.raises(ValueError):
        from_url(url)


@pytest.mark.parametrize("url", [
    "http://admin:hunter2secret@127.0.0.1:5001", "kubo:http://admin@127.0.0.1:5001",
    "http://127.0.0.1:5001?token=hunter2secret", "http://127.0.0.1:5001#hunter2secret",
    "http://127.0.0.1:5001/admin/hunter2secret", "ftp://admin:hunter2secret@127.0.0.1:5001",
])
def test_a_kubo_address_with_credentials_or_a_path_is_refused_without_quoting_them(url: str) -> None:
    # Why: the multiaddr Kubo's client takes has no place for them, so they were dropped silently (and the
    # address, as given, was written into the deployment record every member receives).
    with pytest.raises(ValueError, match="Kubo API address") as refused:
        from_url(url)
    assert "hunter2secret" not in str(refused.value) and "admin" not in str(refused.value)


def test_kubo_node_keeps_a_given_repo_and_its_pins_across_restarts(tmp_path: Path) -> None:
    # Prepare
    repo = tmp_path / "kubo-repo"
    with KuboNode(repo) as first:
        cid = KuboStore(first.api).put(b"survives a restart")
    # Execute
    with KuboNode(repo) as second:
        fetched = KuboStore(second.api).get(cid, max_bytes=100)
    # Assert
    assert fetched == b"survives a restart"
    assert (repo / "config").exists()


def test_missing_binary_error_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Prepare: no env override, no cached tools binary, nothing on PATH
    monkeypatch.delenv(kubo_service.ENV_BIN, raising=False)
    monkeypatch.setattr(kubo_service, "_REPO_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    # Execute
    with pytest.raises(FileNotFoundError) as raised:
        kubo_service.find_ipfs_binary()
    # Assert
    assert "make setup" in str(raised.value) and kubo_service.ENV_BIN in str(raised.value)


def test_env_override_must_name_an_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Prepare
    monkeypatch.setenv(kubo_service.ENV_BIN, str(tmp_path / "nope"))
    # Execute
    with pytest.raises(FileNotFoundError) as raised:
        kubo_service.find_ipfs_binary()
    # Assert
    assert "nope" in str(raised.value)


def test_kubo_store_times_out_on_a_silent_server() -> None:
    # Prepare: a listener that accepts connections and never answers
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        silent = KuboStore(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.5)
        # Execute
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            silent.get(ABSENT_CID, max_bytes=10)
        elapsed = time.monotonic() - started
    # Assert
    assert 0.4 < elapsed < 3.0


def test_a_fetch_that_breaks_off_midway_is_unavailable_never_a_short_blob(kubo_node: KuboNode) -> None:
    # Prepare: a three-chunk blob whose last block the (offline) node no longer has. Kubo starts sending,
    # fails at the missing block, and reports that only in an HTTP trailer the client library ignores.
    store = KuboStore(kubo_node.api, timeout=5.0)
    blob = _blob(600_000, seed=7)
    cid = store.put(blob)
    leaves = kubo_node.command("refs", cid).split()
    kubo_node.command("pin", "rm", cid)
    kubo_node.command("block", "rm", leaves[-1])
    # Execute
    with pytest.raises(StoreUnavailable) as raised:
        store.get(cid, max_bytes=10 * MB)
    # Assert: transient (a peer may hold the block next time), and it says how much came
    assert "of its 600000 bytes" in str(raised.value)


class _FakeKubo:
    """A loopback 'Kubo API' that answers `files/stat` and `cat` of a ``size``-byte file, misbehaving one way:

    ``cut``: promises the whole `cat` body, sends ten bytes and hangs up (a node restarted, a proxy dropped);
    ``trickle-files/stat``, ``trickle-cat``: sends that answer a byte every 0.1 s (the stat's from its first
    byte, the cat's after honest headers), never silent long enough for a socket timeout.
    """

    def __init__(self, misbehave: str, size: int = 1000) -> None:
        self.misbehave, self.size = misbehave, size
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            command = "files/stat" if b"/api/v0/files/stat?" in request else "cat"
            if command == "files/stat":
                body, kind = json.dumps({"Type": "file", "Size": self.size}).encode(), b"application/json"
            else:
                body, kind = b"x" * self.size, b"application/octet-stream"
            answer = (b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            headers = len(answer) - len(body)
            try:
                if self.misbehave == "cut" and command == "cat":
                    conn.sendall(answer[:headers + 10])
                    return
                sent = len(answer)
                if self.misbehave == f"trickle-{command}":
                    sent = 0 if command == "files/stat" else headers
                conn.sendall(answer[:sent])
                for index in range(sent, len(answer)):
                    time.sleep(0.1)
                    conn.sendall(answer[index:index + 1])
            except OSError:
                return  # the client gave up

    def close(self) -> None:
        self.server.close()


def test_a_connection_cut_mid_answer_is_unavailable_not_a_crash() -> None:
    # Prepare
    cut = _FakeKubo("cut")
    store = KuboStore(cut.url, timeout=5.0)
    # Execute
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.get(ABSENT_CID, max_bytes=10_000)
    finally:
        cut.close()
    # Assert: the store's own transient error (an agent retries, then votes reject), naming the cause
    assert "connection failed" in str(raised.value)


@pytest.mark.parametrize("slow", ["files/stat", "cat"])
def test_a_fetch_that_trickles_ends_by_the_stores_timeout(slow: str) -> None:
    # Prepare: an answer that would take 100 s at a byte every 0.1 s; the store's timeout is 1 s
    trickle = _FakeKubo(f"trickle-{slow}")
    store = KuboStore(trickle.url, timeout=1.0)
    # Execute
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.get(ABSENT_CID, max_bytes=10_000)
    finally:
        trickle.close()
    elapsed = time.monotonic() - started
    # Assert: transient, naming the timeout, and over within about the timeout (not per read)
    assert "within the store's timeout of 1 s" in str(raised.value) and slow in str(raised.value)
    assert elapsed < 3.0, elapsed
