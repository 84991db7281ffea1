"""flowctl's output: aligned, colored tables (colors dropped when not on a terminal), JSON, YAML.

Pure functions of the documents; `click.echo` decides whether the ANSI colors survive.
Text from the cluster (statuses, messages, logs) never reaches the terminal raw: control
characters are shown as visible escapes, as kubectl does (`printable`, `LogText`), so a
message or a log cannot move the cursor, retitle the window or hide what follows.
"""

from __future__ import annotations

import codecs
import json
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import click
import yaml

Cell = str | tuple[str, str | int | None]  # text, or (text, color)

COLORS: dict[str, str | int] = {
    "GREEN": "green",
    "YELLOW": "yellow",
    "ORANGE": 208,
    "RED": "red",
    # flow-run and task states
    "Completed": "green",
    "Succeeded": "green",
    "Running": "cyan",
    "Deployed": "cyan",
    "Queued": "blue",
    "Submitted": "blue",
    "Pending": "blue",
    "Failed": "red",
    "Crashed": "red",
    "Cancelled": 244,
    "Skipped": 244,
}


# Bidirectional overrides and isolates reorder what follows them on screen.
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(char: str) -> str:
    if char == "\x1b":
        return "^["  # kubectl's spelling of ESC
    named = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character (C0, DEL, C1), line or paragraph separator and
    bidi control as a visible escape (ESC as `^[`, CR as `\\r`, others `\\xNN`/`\\uNNNN`),
    except the characters in `keep`."""
    if text.isprintable() and not any(c in BIDI for c in text):
        return text
    return "".join(_escape(c) if _unsafe(c) and c not in keep else c for c in text)


class LogText:
    """A pod log's bytes as printable text, chunk by chunk: UTF-8 decoded across chunk
    boundaries (invalid bytes as U+FFFD), newlines and tabs kept, a CR kept only before
    a newline (CRLF line ends), every other control character escaped."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cr = False  # the last chunk ended in a CR: its meaning depends on the next

    def feed(self, chunk: bytes, final: bool = False) -> str:
        text = ("\r" if self._cr else "") + self._decoder.decode(chunk, final)
        self._cr = not final and text.endswith("\r")
        if self._cr:
            text = text[:-1]
        lines = text.split("\r\n")
        return "\r\n".join(printable(line, keep="\n\t") for line in lines)

    def end(self) -> str:
        return self.feed(b"", final=True)


def colored(text: str | None) -> Cell:
    value = text or ""
    return (value, COLORS.get(value))


def _text(cell: Cell) -> str:
    return printable(cell[0] if isinstance(cell, tuple) else cell)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """kubectl-style columns: upper-case headers, three spaces apart, no trailing blanks."""
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(_text(cell)))
    lines = []
    for row in [list(headers), *rows]:
        parts = []
        for i, cell in enumerate(row):
            text = _text(cell)
            pad = text.ljust(widths[i]) if i < len(row) - 1 else text
            color = cell[1] if isinstance(cell, tuple) else None
            parts.append(click.style(pad, fg=color, bold=True) if color is not None else pad)
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines)


def as_json(doc: Any) -> str:
    """JSON, non-ASCII text as is except what `printable` escapes: C1 controls and bidi
    controls become \\uNNNN escapes (C0 ones JSON escapes itself), the same string."""
    text = json.dumps(doc, indent=4, ensure_ascii=False)
    if text.isprintable() or all(c == "\n" or not _unsafe(c) for c in text):
        return text
    return "".join(f"\\u{ord(c):04x}" if c != "\n" and _unsafe(c) else c for c in text)


def as_yaml(doc: Any) -> str:
    """YAML, non-ASCII text as is, unless the document holds a character `printable`
    escapes: then every non-ASCII character is a \\uNNNN escape (YAML leaves bidi controls
    raw otherwise; it escapes C0 and C1 controls itself)."""
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).rstrip("\n")
    if any(c in BIDI or unicodedata.category(c) in ("Zl", "Zp") for c in text):
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False).rstrip("\n")
    return text


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def workflow_status(namespace: str, name: str, doc: dict[str, Any], message: str = "") -> str:
    """The status document as a header, a component table and a pod table."""
    color = printable(str(doc["actualStatus"]))
    head = (
        f"Workflow {namespace}/{name}: "
        + click.style(color, fg=COLORS.get(doc["actualStatus"]), bold=True)
        + f"   desired {printable(str(doc['desiredStatus']))}"
        + f"   mode {printable(str(doc['publishingMode']))}"
    )
    out = [head]
    if message:
        out.append(f"  {printable(message)}")
    details = doc.get("details") or {}
    rows: list[list[Cell]] = []
    stream = details.get("stream")
    if stream:
        rows.append([stream["id"], "stream", str(stream["desired"]), str(stream["actual"]),
                     colored(stream["status"]), "", ""])  # fmt: skip
    pods: list[list[Cell]] = []
    for svc in details.get("services") or []:
        rows.append(
            [
                svc["id"],
                "service",
                str(svc["desired"]),
                str(svc["actual"]),
                colored(svc["status"]),
                svc.get("rolloutStatus", ""),
                svc.get("rolloutStatusReason", ""),
            ]
        )
        for r in svc.get("replicasDetail", []):
            pods.append(
                [
                    svc["id"],
                    r["name"],
                    _yes(r["ready"]),
                    _yes(r["available"]),
                    (r["status"], "green" if r["status"] == "Running" else "yellow"),
                    r["age"],
                    _yes(r["atLatestSpec"]),
                    r.get("statusMessage", ""),
                ]
            )
    if rows:
        out += ["", table(["COMPONENT", "KIND", "DESIRED", "ACTUAL", "STATUS", "ROLLOUT",
                           "REASON"], rows)]  # fmt: skip
    # Why a service's pods cannot be created (its Deployment's ReplicaFailure message):
    # a line of its own, as it is too long for a column and is the fix a reader needs.
    for svc in details.get("services") or []:
        if svc.get("message"):
            out.append(f"  {printable(str(svc['id']))}: {printable(str(svc['message']))}")
    if pods:
        out += ["", table(["SERVICE", "POD", "READY", "AVAILABLE", "STATUS", "AGE", "LATEST",
                           "MESSAGE"], pods)]  # fmt: skip
    return "\n".join(out)


def workflows(items: Iterable[dict[str, Any]]) -> str:
    """The Workflow list rows (views.workflows.WorkflowRow, dumped) as a table."""
    rows: list[list[Cell]] = []
    for wf in items:
        rows.append(
            [
                wf["namespace"],
                wf["name"],
                wf["desiredStatus"],
                wf["publishingMode"],
                colored(wf.get("actualStatus")),
                wf.get("servicesReady") or "",
            ]
        )
    return table(["NAMESPACE", "NAME", "DESIRED", "MODE", "COLOR", "SERVICES"], rows)


RUN_COLUMNS = (
    ("NAME", "name"),
    ("VERSION", "version"),
    ("LEVEL", "level"),
    ("RUN TYPE", "runType"),
    ("CONFIGURATION", "configuration"),
    ("FLOW TYPE", "flowType"),
    ("START", "startTime"),
    ("END", "endTime"),
    ("DURATION", "duration"),
    ("STATUS", "status"),
    ("MESSAGE", "message"),
)


def _short(value: str | None, limit: int = 60) -> str:
    text = (value or "").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def runs(rows: Iterable[dict[str, Any]], all_namespaces: bool = False) -> str:
    """The seed's Flow Run Status table."""
    headers = [h for h, _ in RUN_COLUMNS]
    body: list[list[Cell]] = []
    for r in rows:
        cells: list[Cell] = []
        for _, field in RUN_COLUMNS:
            value = r.get(field) or ""
            if field == "status":
                cells.append(colored(value))
            elif field == "message":
                cells.append(_short(value))
            else:
                cells.append(str(value))
        if all_namespaces:
            cells.insert(0, r.get("namespace", ""))
        body.append(cells)
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    return table(headers, body)


def run(row: dict[str, Any]) -> str:
    """One run: its line of the table, then its tasks."""
    out = [runs([row])]
    tasks: list[list[Cell]] = [
        [
            t.get("name", ""),
            t.get("version", ""),
            colored(t.get("status")),
            t.get("startTime", ""),
            t.get("endTime", ""),
            t.get("runtime", ""),
            _short(t.get("message")),
        ]
        for t in row.get("tasks") or []
    ]
    out += ["", table(["TASK", "VERSION", "STATUS", "START", "END", "RUNTIME", "MESSAGE"], tasks)]
    return "\n".join(out)


def archived(row: dict[str, Any]) -> str:
    """A run read from the run history (gone from the cluster): marked so, then as `run`."""
    where = f"{row.get('namespace', '')}/{row.get('name', '')}"
    mark = click.style("archived", bold=True)
    return (
        f"flow run {printable(where)}: {mark} (from the run history, no longer in the cluster)\n\n"
        + run(row)
    )
