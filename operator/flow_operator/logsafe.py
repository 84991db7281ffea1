"""Text from outside made safe for one log line: a request's path, a token's user name, a
string of a spec or of an API server's answer can hold a newline, a carriage return or a
terminal escape, and a log line that quotes it must stay one line that forges nothing.

`printable` is the one helper: control characters (C0, DEL, C1, and the Unicode line and
paragraph separators) become visible escapes, and a value can be cut to a length.
`EscapingFormatter` applies it to every record's message, so whatever a log call quotes,
the operator writes one line per record (main.py installs it on the root handler); the
traceback of `log.exception` keeps its lines. The audit lines are JSON with
`ensure_ascii` (api/audit.py), escaped the same way by construction.
"""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
DEFAULT_LIMIT = 256  # characters of one quoted value (`printable`'s default)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, limit: int | None = DEFAULT_LIMIT) -> str:
    """`value` as text without control characters (escaped as \\n, \\x1b, \\u2028), cut
    to `limit` characters of the original (None: whole) with how much was cut."""
    text = str(value)
    cut = ""
    if limit is not None and len(text) > limit:
        cut = f"...({len(text) - limit} more characters)"
        text = text[:limit]
    return _CONTROL.sub(_escape, text) + cut


class EscapingFormatter(logging.Formatter):
    """A formatter whose records' messages are `printable` (not cut): one line each."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message, limit=None)
        return super().formatMessage(record)
