"""The explorer page inserts text only as text: no HTML sink in its script, so no CID can become markup."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "colearn_chain" / "explorer" / "static"
#: DOM and JS sinks that parse a string as HTML or code.
SINKS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\s*\(|srcdoc")


def test_the_page_script_has_no_html_or_code_sink() -> None:
    script = (STATIC / "app.js").read_text()

    assert "textContent" in script or "createTextNode" in script
    assert SINKS.findall(script) == []


def test_the_page_loads_no_inline_script() -> None:
    page = (STATIC / "index.html").read_text()

    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert re.findall(r"\son[a-z]+\s*=", page) == []
