"""logsafe: a value quoted in a log line cannot add a line nor a terminal escape."""

from __future__ import annotations

import io
import logging

import pytest

from flow_operator.logsafe import EscapingFormatter, printable


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("team-a/run-1", "team-a/run-1"),
        ("a\nFAKE INFO admin logged in", "a\\nFAKE INFO admin logged in"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("nul\x00del\x7fc1\x85", "nul\\x00del\\x7fc1\\x85"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        ("émoji ✓ 名前", "émoji ✓ 名前"),
    ],
)
def test_control_characters_are_escaped(given: str, shown: str) -> None:
    assert printable(given) == shown


def test_a_long_value_is_cut_saying_how_much() -> None:
    assert printable("x" * 300, limit=10) == "x" * 10 + "...(290 more characters)"
    assert printable("x\n" * 3, limit=None) == "x\\n" * 3


def test_every_record_is_one_line_the_traceback_keeps_its_lines() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.logsafe")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("GET %s failed", "/api/v1/x\nINFO forged line")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("path %s", "a\rb")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "WARNING GET /api/v1/x\\nINFO forged line failed"
    assert lines[1] == "ERROR path a\\rb"
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
