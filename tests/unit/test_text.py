"""printable, redact_url and the CLI's log filter: what the chain or a URL chose never reaches an output raw."""

from __future__ import annotations

import io
import logging

import pytest

from colearn_chain.chain.events import MAX_CID_BYTES, cid_problem, decode_cid
from colearn_chain.cli._logging import TRACEBACK_PREFIX, EscapingFilter
from colearn_chain.text import printable, redact_in, redact_url

FORGED = "Qm\x1b[2J\r\n2026-01-01 00:00:00,000 INFO colearn_chain.agent.loop: epoch 0 accepted\x1b[0m"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("QmAbc123", "QmAbc123"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("abc\u202edcba\u2066x\u200b", "abc\\u202edcba\\u2066x\\u200b"),
        ("\x7f\x85\u2028", "\\x7f\\x85\\u2028"),
        ("héllo wörld ✓", "héllo wörld ✓"),
        (b"Qm\xff\xfe", "Qm\\xff\\xfe"),
    ],
)
def test_printable_escapes_every_control_and_format_character(raw: str | bytes, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_cuts_long_text_and_says_how_much() -> None:
    text = printable("x" * 1000, limit=10)

    assert text == "xxxxxxxxxx…(+990 chars)"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://user:secret@127.0.0.1:8545/", "http://***@127.0.0.1:8545/"),
        ("https://mainnet.infura.io/v3/0123456789abcdef", "https://mainnet.infura.io/***"),
        ("https://rpc.example.org/?apikey=SECRET#frag", "https://rpc.example.org/?***#***"),
        ("wss://k3y@[::1]:8546/ws/TOKEN", "wss://***@[::1]:8546/***"),
        ("http://host:99999999/", "<unparseable URL>"),
    ],
)
def test_redact_url_keeps_scheme_host_port_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "secret" not in redact_url(url).lower() and "0123456789abcdef" not in redact_url(url)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", None),
        (b"", "empty CID"),
        (b"Qm\xff", "CID is not valid UTF-8"),
        (FORGED.encode(), "CID holds characters other than ASCII letters and digits"),
        (b"Q" * (MAX_CID_BYTES + 1), f"CID longer than {MAX_CID_BYTES} bytes"),
        ("Qmé".encode(), "CID holds characters other than ASCII letters and digits"),
    ],
)
def test_decode_cid_never_raises_and_an_invalid_cid_never_looks_valid(raw: bytes, problem: str | None) -> None:
    cid = decode_cid(raw)

    assert cid.invalid == problem
    assert (cid_problem(cid.text) is None) == (problem is None)
    assert printable(cid.text, limit=None) == cid.text  # always safe to show as it is


def test_the_log_filter_turns_a_forged_line_into_one_escaped_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(EscapingFilter())
    logger = logging.getLogger("test_text.forged")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.warning("epoch %d: proposal %s (cid %s)", 3, "0xab", FORGED)
        logger.info(f"an f-string carrying {FORGED}")
        try:
            raise ValueError(FORGED)
        except ValueError:
            logger.exception("failed on %s", FORGED)
    finally:
        logger.removeHandler(handler)

    lines = stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert lines[0].startswith("WARNING epoch 3: proposal 0xab (cid Qm\\x1b[2J\\r\\n2026-01-01")
    assert lines[1].startswith("INFO an f-string carrying Qm\\x1b")
    assert lines[2].startswith("ERROR failed on Qm\\x1b")
    assert all(line.startswith(TRACEBACK_PREFIX) for line in lines[3:]) and len(lines) > 4
    assert not any(line.startswith("2026-01-01") for line in lines)  # the forged line is escaped or prefixed


def test_redact_in_scrubs_a_url_and_its_parts_from_an_error_message() -> None:
    url = "https://alice:hunter2@rpc.example.org/v3/KEY123?token=T0K"
    message = (f"HTTPSConnectionPool(host='rpc.example.org', port=443): Max retries exceeded with url: "
               f"/v3/KEY123?token=T0K (caused by {url})")

    scrubbed = redact_in(message, url)

    assert "KEY123" not in scrubbed and "T0K" not in scrubbed and "hunter2" not in scrubbed and "alice" not in scrubbed
    assert "host='rpc.example.org'" in scrubbed and "https://***@rpc.example.org/***?***" in scrubbed


def test_redact_in_keeps_a_message_readable_when_the_credentials_are_short() -> None:
    # Prepare: what requests says for --rpc http://u:pw@127.0.0.1:1 (the URL itself is not quoted)
    url = "http://u:pw@127.0.0.1:1"
    message = ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: / (Caused by "
               "NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused')); "
               f"also tried {url}/ and u:pw@127.0.0.1")
    # Execute
    scrubbed = redact_in(message, url)
    # Assert: every word stays whole; the credentials go wherever they stand as credentials
    assert scrubbed == ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: / (Caused by "
                        "NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused')); "
                        "also tried http://***@127.0.0.1:1/ and ***@127.0.0.1")


def test_redact_in_replaces_a_long_password_even_where_it_stands_alone() -> None:
    # Prepare
    url = "https://alice:s3cretTokenValue@rpc.example.org"
    # Execute
    scrubbed = redact_in("auth failed for password s3cretTokenValue (user alice)", url)
    # Assert: a secret of meaningful length is never shown, nor a short user name standing as a word
    assert scrubbed == "auth failed for password *** (user ***)"


def test_redact_in_replaces_short_credentials_where_they_stand_as_words_and_nowhere_else() -> None:
    # Prepare: a proxy error quoting the credentials alone; and a short user name that also occurs inside words
    quoted = redact_in("ProxyError: 'alice', 's3cr3t!'", "https://alice:s3cr3t!@rpc.example")
    inside = redact_in("user u refused: unauthorized (pw pw2)", "http://u:pw@127.0.0.1:1")
    # Assert
    assert quoted == "ProxyError: '***', '***'"
    assert inside == "user *** refused: unauthorized (*** pw2)"
