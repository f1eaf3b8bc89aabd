"""The command line's logging: one line per record, with nothing from outside written raw.

Why a filter on the handlers and not care at each call: a CID, an error message of a node or a
store, any text another learner chose can reach a log message, and one newline or ANSI escape in it
could forge a line ("epoch 0 accepted") or rewrite the terminal. The filter escapes every record's
formatted message (format string and arguments alike) with :func:`~colearn_chain.text.printable`,
and prefixes each line of a traceback, so every line that does not start with a timestamp is visibly
part of the record above it.
"""

from __future__ import annotations

import logging
from typing import Final

from ..text import printable

__all__ = ["EscapingFilter", "setup_logging"]

FORMAT: Final[str] = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Characters of one log message kept (the rest is cut with a note): a record is one line, not a file.
MESSAGE_LIMIT: Final[int] = 4000
#: Put before every line of a traceback.
TRACEBACK_PREFIX: Final[str] = "  | "


class EscapingFilter(logging.Filter):
    """Replaces each record's message by its escaped, single-line rendering (and its traceback likewise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a bad format string: show it and its arguments, escaped
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = printable(message, limit=MESSAGE_LIMIT)
        record.args = None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = "\n".join(
                TRACEBACK_PREFIX + printable(line, limit=MESSAGE_LIMIT) for line in text.splitlines()
            )
        if record.stack_info:
            record.stack_info = "\n".join(
                TRACEBACK_PREFIX + printable(line, limit=MESSAGE_LIMIT) for line in record.stack_info.splitlines()
            )
        return True


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG when ``verbose``), every handler of the root logger escaping its records."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapingFilter) for f in handler.filters):
            handler.addFilter(EscapingFilter())
