"""What the follower takes from a node's WebSocket: only well-formed newHeads notifications of its own
subscription; anything else a hostile or broken node sends is ignored, never raised."""

from __future__ import annotations

import json

import pytest

from colearn_chain.chain.follow import _new_head, websocket_url

SUB = "0xabc"


def _note(result: object, subscription: str = SUB, method: str = "eth_subscription") -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": {"subscription": subscription, "result": result}})


def test_a_new_head_gives_its_number_and_bloom() -> None:
    # Prepare
    bloom = "0x" + "00" * 255 + "01"

    # Execute
    head = _new_head(_note({"number": "0x1f", "logsBloom": bloom}), SUB)

    # Assert
    assert head == (31, 1)


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        json.dumps([1, 2]),
        _note({"number": "0x1f"}, subscription="0xother"),
        _note({"number": "0x1f"}, method="eth_other"),
        _note({"number": 31}),
        _note({"number": "zz"}),
        _note("0x1f"),
        json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x1"}),
    ],
    ids=["not-json", "a-list", "other-subscription", "other-method", "number-not-hex-text", "bad-hex",
         "result-not-a-header", "a-reply-not-a-notification"],
)
def test_anything_else_is_ignored(message: str) -> None:
    assert _new_head(message, SUB) is None


def test_a_malformed_bloom_means_unknown_not_an_error() -> None:
    assert _new_head(_note({"number": "0x2", "logsBloom": "0x1234"}), SUB) == (2, None)


def test_websocket_url_keeps_host_port_and_path() -> None:
    assert websocket_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert websocket_url("https://node.example/v3/KEY") == "wss://node.example/v3/KEY"
    assert websocket_url("ws://127.0.0.1:8546") == "ws://127.0.0.1:8546"
    assert websocket_url("ipc:///tmp/geth.ipc") is None
