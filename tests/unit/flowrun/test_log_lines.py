"""A failed task's message carries the last LOG_LINES lines of its pod's log: one constant,
the number the reconciler fetches and the number docs/flowrun.md states."""

from __future__ import annotations

import re
from pathlib import Path

from flow_operator.flowrun import taskstate
from flow_operator.reconcile import flowrun as reconcile_flowrun

DOC = Path(__file__).parents[3] / "docs" / "flowrun.md"
WORDS = {"three": 3, "four": 4, "five": 5, "six": 6, "eight": 8, "ten": 10, "twenty": 20}


def test_the_message_keeps_the_last_log_lines_without_blanks() -> None:
    log = "\n".join(f"line {i}" for i in range(1, 13)) + "\n\n   \n"
    message = taskstate._with_log("exit code 2 (Error)", log)
    lines = message.splitlines()
    assert lines[0] == "exit code 2 (Error)"
    assert lines[1:] == [f"line {i}" for i in range(13 - taskstate.LOG_LINES, 13)]


def test_the_reconciler_fetches_as_many_lines_as_the_message_keeps() -> None:
    assert reconcile_flowrun.LOG_LINES is taskstate.LOG_LINES


def test_the_doc_states_the_number() -> None:
    text = " ".join(DOC.read_text().split())
    found = re.search(r"message carries the last (\w+) lines of the pod's log", text)
    assert found, "docs/flowrun.md no longer says how many log lines a task message carries"
    assert WORDS[found.group(1)] == taskstate.LOG_LINES
