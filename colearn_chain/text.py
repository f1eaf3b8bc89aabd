"""Text that came from outside (the chain, a store, a URL) made safe to show: one rule for every output.

Why one module: a CID or an error message chosen by another learner reaches the terminal (`status`),
log lines, the explorer and the run's report. Any control character in it (an ANSI escape that rewrites
the screen, a newline that forges a log line, a bidi override that reorders what is shown) is escaped
here, and very long text is cut, so every writer calls :func:`printable` and none has its own rule.
Likewise an RPC URL often carries a provider's API key: :func:`redact_url` is the one way to show it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_LIMIT", "printable", "redact_in", "redact_url"]

#: Characters shown of one value before it is cut (a CID is < 100; an error message a few hundred).
DEFAULT_LIMIT: Final[int] = 300
#: Unicode categories never written raw: controls, format characters (bidi overrides, zero-width
#: joiners), line/paragraph separators, surrogates, private use and unassigned code points.
_UNSAFE_CATEGORIES: Final[frozenset[str]] = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_NAMED: Final[dict[str, str]] = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Shown in place of whatever a URL carries that may be a secret (credentials, path, query, fragment).
REDACTED: Final[str] = "***"
#: The shortest user name or password :func:`redact_in` replaces wherever it occurs in a message, not
#: only where it stands as a URL's credentials.
MIN_LOOSE_SECRET: Final[int] = 8


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` as one line of text that cannot drive a terminal: unsafe characters backslash-escaped.

    Bytes are decoded as UTF-8 with invalid bytes shown as ``\\xNN``. The result is cut to ``limit``
    characters (None: never), with a note of how many were left out.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("utf-8", errors="backslashreplace")
    else:
        text = value if isinstance(value, str) else str(value)
    # isascii() and isprintable() run in C: the common case costs no Python loop.
    escaped = text if text.isascii() and text.isprintable() else "".join(_escape(char) for char in text)
    if limit is not None and len(escaped) > limit:
        return f"{escaped[:limit]}…(+{len(escaped) - limit} chars)"
    return escaped


def redact_url(url: str) -> str:
    """``url`` safe to write down: user and password, path, query and fragment replaced by ``***``.

    Why the path too: hosted RPC providers put the API key there (``/v3/<key>``). Scheme, host and
    port stay, which is what a reader needs to tell endpoints apart. Text that is not a URL with a
    host (a local store folder) is returned escaped but otherwise whole.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme or not host:
        return printable(url)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{REDACTED}@{netloc}"
    path = f"/{REDACTED}" if parts.path not in ("", "/") else parts.path
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return printable(urlunsplit((parts.scheme, netloc, path, query, fragment)))


def redact_in(text: str, url: str) -> str:
    """``text`` (an error message) with every secret part of ``url`` replaced, as :func:`redact_url` does.

    Why: HTTP libraries quote the URL, or its path and query alone ("Max retries exceeded with url:
    /v3/<key>"), in their messages, so redacting the URL where we print it is not enough. Credentials
    are replaced where they stand as a URL's ``user:password@`` and wherever else they appear; one
    shorter than ``MIN_LOOSE_SECRET`` only where it stands as a whole word (a short user name "u"
    replaced inside words would garble every word holding that letter and hide the very error the
    message reports), so a short password quoted alone is still hidden.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, "<unparseable URL>") if url else text
    replacements = {url: redact_url(url)} if url else {}
    words: list[str] = []  # short credentials: replaced where they stand alone
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        replacements[f"{userinfo}@"] = f"{REDACTED}@"
        for credential in (parts.username, parts.password):
            if credential and len(credential) >= MIN_LOOSE_SECRET:
                replacements[credential] = REDACTED
            elif credential:
                words.append(credential)
    if parts.path not in ("", "/") or parts.query:
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        for secret in (tail, parts.path if parts.path not in ("", "/") else "", parts.query):
            if secret:
                replacements[secret] = REDACTED
    for secret in sorted(replacements, key=len, reverse=True):
        text = text.replace(secret, replacements[secret])
    for word in words:
        text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(word)}(?![0-9A-Za-z])", REDACTED, text)
    return text
