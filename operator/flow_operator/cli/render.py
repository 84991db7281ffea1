"""flowctl's output: aligned, colored tables (colors dropped when not on a terminal), JSON, YAML.

Pure functions of the documents; `click.echo` decides whether the ANSI colors survive.
"""

from __future__ import annotations

import json
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


def colored(text: str | None) -> Cell:
    value = text or ""
    return (value, COLORS.get(value))


def _text(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


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
    return json.dumps(doc, indent=4, ensure_ascii=False)


def as_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).rstrip("\n")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def workflow_status(namespace: str, name: str, doc: dict[str, Any], message: str = "") -> str:
    """The status document as a header, a component table and a pod table."""
    head = (
        f"Workflow {namespace}/{name}: "
        + click.style(doc["actualStatus"], fg=COLORS.get(doc["actualStatus"]), bold=True)
        + f"   desired {doc['desiredStatus']}   mode {doc['publishingMode']}"
    )
    out = [head]
    if message:
        out.append(f"  {message}")
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
    if pods:
        out += ["", table(["SERVICE", "POD", "READY", "AVAILABLE", "STATUS", "AGE", "LATEST",
                           "MESSAGE"], pods)]  # fmt: skip
    return "\n".join(out)


def workflows(items: Iterable[dict[str, Any]]) -> str:
    rows: list[list[Cell]] = []
    for wf in items:
        meta, spec = wf.get("metadata") or {}, wf.get("spec") or {}
        status = wf.get("status") or {}
        rows.append(
            [
                meta.get("namespace", ""),
                meta.get("name", ""),
                spec.get("desiredStatus", ""),
                spec.get("publishingMode", "ASYNC"),
                colored(status.get("actualStatus", "")),
                status.get("servicesReady", ""),
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
