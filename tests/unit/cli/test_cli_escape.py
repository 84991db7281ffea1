"""flowctl never writes the cluster's control characters to the terminal raw: statuses and
messages in tables, JSON and YAML, errors, and logs (where newlines and tabs stay)."""

from __future__ import annotations

import json

import pytest
import yaml

from flow_operator.cli import render
from tests.unit.cli.test_cli_flowruns import fake_with_runs, ok
from tests.unit.cli.test_cli_workflows import FakeCluster, invoke

HOSTILE = "ok\x1b]0;pwned\x07\x1b[2J\rgone\x08\x7f\x9b31m\u202eevil\u2028x"
ESCAPED = "ok^[]0;pwned\\x07^[[2J\\rgone\\x08\\x7f\\x9b31m\\u202eevil\\u2028x"


def raw_controls(text: str, allowed: str = "\n") -> list[str]:
    return [c for c in text if (c < " " or "\x7f" <= c <= "\x9f" or c in render.BIDI
                                or c in "\u2028\u2029") and c not in allowed]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcödé, 日本語, emoji 🚀", "plain text, ünïcödé, 日本語, emoji 🚀"),
        ("a\tb\nc", "a\\tb\\nc"),
        ("\x1b[31mred\x1b[0m", "^[[31mred^[[0m"),
        ("bell\x07", "bell\\x07"),
        ("\x00", "\\x00"),
        ("\u202etxt.exe", "\\u202etxt.exe"),
        ("non\xa0breaking", "non\xa0breaking"),
        (HOSTILE, ESCAPED),
    ],
)
def test_printable(text: str, shown: str) -> None:
    assert render.printable(text) == shown


def test_printable_keeps_what_it_is_told_to() -> None:
    assert render.printable("a\tb\nc\x1b", keep="\n\t") == "a\tb\nc^["


def test_log_text_keeps_lines_and_tabs_and_escapes_the_rest() -> None:
    log = render.LogText()
    chunks = [b"line 1\tok\r\n", b"\x1b[2Jcleared\r", b"\n", b"progress\rover\n",
              "é".encode()[:1], "é".encode()[1:] + b"\n", b"\xff\x9b\n"]  # fmt: skip
    out = "".join(log.feed(c) for c in chunks) + log.end()
    assert out == "line 1\tok\r\n^[[2Jcleared\r\nprogress\\rover\né\n\ufffd\ufffd\n"


def test_log_text_escapes_a_trailing_carriage_return() -> None:
    log = render.LogText()
    assert log.feed(b"end\r") + log.end() == "end\\r"


def hostile_cluster() -> FakeCluster:
    fake = fake_with_runs()
    body = fake.get("flowruns", "ns", "churn-001")
    body["status"]["phase"] = "Deployed"
    body["status"]["message"] = HOSTILE
    body["status"]["tasks"][1]["message"] = HOSTILE
    body["status"]["tasks"][1]["status"] = "Running\x1b[8m"
    fake.put("flowruns", body)
    fake.log_lines[("churn-001-train-x2", None)] = [b"epoch 1\t0.9\n\x1b]0;title\x07epoch 2\n"]
    return fake


def test_tables_show_escapes() -> None:
    fake = hostile_cluster()
    for args in (("runs",), ("run", "churn-001")):
        out = ok(invoke(fake, *args))
        assert raw_controls(out) == [], args
        assert "^[]0;pwned\\x07" in out
    assert "Running^[[8m" in ok(invoke(fake, "run", "churn-001"))


def test_json_and_yaml_escape_and_round_trip() -> None:
    fake = hostile_cluster()
    out = ok(invoke(fake, "run", "churn-001", "-o", "json"))
    assert raw_controls(out) == []
    assert json.loads(out)["message"] == HOSTILE  # the same string, escaped
    out = ok(invoke(fake, "run", "churn-001", "-o", "yaml"))
    assert raw_controls(out) == []
    assert yaml.safe_load(out)["message"] == HOSTILE


def test_logs_keep_newlines_and_tabs_only() -> None:
    out = ok(invoke(hostile_cluster(), "logs", "churn-001", "train"))
    assert out == "epoch 1\t0.9\n^[]0;title\\x07epoch 2\n"


def test_errors_show_escapes() -> None:
    result = invoke(hostile_cluster(), "cancel", "churn-001\x1b[2J")
    assert result.exit_code == 1 and raw_controls(result.output) == []
    assert "churn-001^[[2J" in result.output
