"""Figure tables in the docs, generated from committed result JSON and checked for drift.

A doc marks a generated table with a comment that names its files and its columns:

    <!-- figures: bench/results/s1-1000-*.json
         columns: commit=commit | ratio=s1_ratio:.3f | lag p99 (ms)=s1_lag_p99_ms:,.0f -->
    | file | commit | ratio | lag p99 (ms) |
    |---|---|---|---|
    | s1-1000-20261124-030129.json | 5e87697 | 1.001 | 668 |
    <!-- /figures -->

* `figures:` lists result files, paths relative to the repository's root, separated by
  white space (the list may go on over several lines). A glob stands for the files it
  matches, sorted; otherwise the order is the doc's. A file named twice is shown once.
* `columns:` lists `header=path[:format]`, separated by ` | `. The path is dotted: each
  part is a key of an object, an index (0, 1, -1) of a list, or `*`: every item of a list
  (`s1_tail.*.lag_ms`). The format is Python's (`.3f`, `,.0f`, `.1%`), applied to each
  item of a list, which shows as `a / b / c`; without one, a value is shown as `str()`
  shows it. A key a file does not have is shown as `-`: allowed, and visible.
* One row per file; the first column is the file's name.

`--write DOC...` regenerates every block in place. `--check [DOC...]` (by default over
docs/*.md and README.md) fails, naming the doc, the block and each cell that differs from
its file, when a table is not what its files say, or when a cited file is missing. The
test tests/unit/test_doc_figures.py runs `--check` over the repository's docs.

A doc may also have its prose checked (opt-in): after a comment

    <!-- figures-prose: ...; not measured: 1,000 (N) 60 (a window's length) -->

every number in the prose (not in code, comments or tables; not a date, a clock time, an
`issue N` or a target after ≤ ≥ < >) must be the value of a cell of one of the doc's
generated tables, or one of the numbers listed after `not measured:` (settings, sizes of
the scenario). `--check` names the line of each one that is neither.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MISSING = "-"

# The opening comment (with its file list and column spec), the table, the closing comment.
# Both comments start a line, so prose that quotes the syntax mid-line is not a block.
BLOCK = re.compile(
    r"^(?P<open><!--\s*figures:(?P<spec>.*?)-->)(?P<body>.*?)^(?P<close><!--\s*/figures\s*-->)",
    re.DOTALL | re.MULTILINE,
)
SEPARATOR = re.compile(r"^:?-{3,}:?$")


class FigureError(Exception):
    """A block that cannot be generated: a missing file, a bad spec, an unformattable value."""


@dataclass(frozen=True)
class Column:
    header: str
    path: tuple[str, ...]
    fmt: str


@dataclass(frozen=True)
class Block:
    """One generated table of a doc: where it is, what it cites, how it renders."""

    start: int  # offsets of the body (between the comments) in the doc's text
    end: int
    line: int  # 1-based line of the opening comment
    sources: tuple[str, ...]
    columns: tuple[Column, ...]
    body: str

    @property
    def name(self) -> str:
        return f"block at line {self.line} ({' '.join(self.sources)})"


def parse_spec(spec: str, line: int) -> tuple[tuple[str, ...], tuple[Column, ...]]:
    """The file list and the columns of an opening comment's text (after `figures:`)."""
    files_part, sep, columns_part = spec.partition("columns:")
    if not sep:
        raise FigureError(f"line {line}: a figures block without `columns:`")
    sources = tuple(files_part.split())
    if not sources:
        raise FigureError(f"line {line}: a figures block that names no file")
    columns: list[Column] = []
    for item in " ".join(columns_part.split()).split(" | "):
        header, eq, rest = item.strip().partition("=")
        if not eq or not header.strip() or not rest.strip():
            raise FigureError(f"line {line}: column {item.strip()!r} is not header=path[:format]")
        path, _, fmt = rest.strip().partition(":")
        columns.append(Column(header.strip(), tuple(path.strip().split(".")), fmt.strip()))
    return sources, tuple(columns)


def find_blocks(text: str) -> list[Block]:
    blocks = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        sources, columns = parse_spec(m.group("spec"), line)
        blocks.append(
            Block(m.start("body"), m.end("body"), line, sources, columns, m.group("body"))
        )
    return blocks


def resolve(sources: tuple[str, ...], root: Path) -> list[Path]:
    """The files a block cites, in its order (globs sorted); a name that matches none fails."""
    files: list[Path] = []
    for source in sources:
        if glob.has_magic(source):
            matches = sorted(Path(p) for p in glob.glob(str(root / source)))
            if not matches:
                raise FigureError(f"no file matches {source}")
        else:
            matches = [root / source]
            if not matches[0].is_file():
                raise FigureError(f"cited file {source} is missing")
        files.extend(p for p in matches if p not in files)
    return files


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path, or None where the file has no such key; `*` maps the rest
    of the path over a list's items."""
    for i, part in enumerate(path):
        if part == "*":
            return (
                [lookup(item, path[i + 1 :]) for item in data] if isinstance(data, list) else None
            )
        if isinstance(data, dict):
            if part not in data:
                return None
            data = data[part]
        elif isinstance(data, list):
            try:
                data = data[int(part)]
            except (ValueError, IndexError):
                return None
        else:
            return None
    return data


def render(value: Any, fmt: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, list):
        text = " / ".join(render(item, fmt) for item in value)
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = format(value, fmt) if fmt else str(value)
    # A cell is one line of a Markdown table: no pipe, no line break.
    return " ".join(text.split()).replace("|", "\\|")


def table(block: Block, root: Path) -> list[list[str]]:
    """The table a block's files give: the header row, then one row per file."""
    rows = [["file", *(c.header for c in block.columns)]]
    for path in resolve(block.sources, root):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FigureError(f"{path.name}: {exc}") from exc
        row = [path.name]
        for column in block.columns:
            try:
                row.append(render(lookup(data, column.path), column.fmt))
            except (ValueError, TypeError) as exc:
                raise FigureError(
                    f"{path.name}, column {column.header!r}: {'.'.join(column.path)} "
                    f"cannot be formatted as {column.fmt!r}: {exc}"
                ) from exc
        rows.append(row)
    return rows


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n" + "\n".join(lines) + "\n"


def cells(body: str) -> list[list[str]]:
    """The rows of a Markdown table as the doc has it (the separator row left out)."""
    rows = []
    for line in body.strip().splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        parts = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        if all(SEPARATOR.match(p) for p in parts):
            continue
        rows.append(parts)
    return rows


def differences(block: Block, expected: list[list[str]]) -> list[str]:
    """What differs between a block's table in the doc and the table its files give."""
    found = cells(block.body)
    problems = []
    if not found or found[0] != expected[0]:
        problems.append(f"header is {found[0] if found else None}, expected {expected[0]}")
        return problems
    header = expected[0]
    found_rows = {row[0]: row for row in found[1:]}
    for row in expected[1:]:
        have = found_rows.pop(row[0], None)
        if have is None:
            problems.append(f"row {row[0]} is missing")
            continue
        for i, want in enumerate(row[1:], start=1):
            got = have[i] if i < len(have) else None
            if got != want:
                problems.append(f"row {row[0]}, column {header[i]!r}: {got!r}, file says {want!r}")
    problems += [f"row {name} cites no file of the block" for name in found_rows]
    if not problems and [r[0] for r in found[1:]] != [r[0] for r in expected[1:]]:
        problems.append("rows are not in the block's order of files")
    return problems


def check_text(text: str, root: Path) -> list[str]:
    problems = []
    try:
        blocks = find_blocks(text)
    except FigureError as exc:
        return [str(exc)]
    figures: set[float] = set()
    for block in blocks:
        try:
            expected = table(block, root)
        except FigureError as exc:
            problems.append(f"{block.name}: {exc}")
            continue
        problems += [f"{block.name}: {p}" for p in differences(block, expected)]
        figures |= {v for row in expected[1:] for cell in row[1:] for v in numbers(cell)}
    return problems + check_prose(text, figures)


# Numbers as prose and cells write them: 1,234, -5, 0.25 (a date or a clock time is not one).
NUMBER = re.compile(
    r"(?<![\w.,])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\w|,\d|\.\d)"  # 1,234 or 1,234.5
    r"|(?<![\w.,])-?\d+(?:\.\d+)?(?!\w|,\d|\.\d)"  # 1234, 0.25, -5
)
DATE_OR_TIME = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}(?::\d{2})?")
# What the prose check does not read: generated blocks, comments, code, table rows, targets.
NOT_PROSE = re.compile(
    r"<!--.*?-->|```.*?```|`[^`\n]*`|^\|.*$|[≤≥<>] ?-?\d[\d,.]*|issue \d+",
    re.DOTALL | re.MULTILINE,
)
PROSE_MARK = re.compile(r"^<!--\s*figures-prose:(?P<spec>.*?)-->", re.DOTALL | re.MULTILINE)


def numbers(text: str) -> list[float]:
    return [float(m.group().replace(",", "")) for m in NUMBER.finditer(text)]


def _blank(m: re.Match[str]) -> str:
    """Spaces for what is not read, so that line numbers stay."""
    return re.sub(r"[^\n]", " ", m.group())


def check_prose(text: str, figures: set[float]) -> list[str]:
    """With a `<!-- figures-prose: not measured: 1,000 16 -->` comment, every number in the
    prose after it is a cell of one of the doc's tables or listed as not measured (a
    setting, a count of the scenario); targets (after ≤, ≥) and dates are not read."""
    mark = PROSE_MARK.search(text)
    if mark is None:
        return []
    _, _, allowed = mark.group("spec").partition("not measured:")
    known = figures | set(numbers(allowed))
    start = mark.end()
    prose = DATE_OR_TIME.sub(_blank, NOT_PROSE.sub(_blank, BLOCK.sub(_blank, text[start:])))
    problems = []
    for m in NUMBER.finditer(prose):
        if float(m.group().replace(",", "")) not in known:
            line = text.count("\n", 0, start + m.start()) + 1
            problems.append(
                f"line {line}: the figure {m.group()} is in none of the doc's tables "
                "(quote a cell, or list it after `not measured:` if it is not a measurement)"
            )
    return problems


def write_text(text: str, root: Path) -> str:
    """The doc with every block's table regenerated from its files."""
    out, pos = [], 0
    for block in find_blocks(text):
        out += [text[pos : block.start], markdown(table(block, root))]
        pos = block.end
    return "".join(out) + text[pos:]


def default_docs(root: Path) -> list[Path]:
    return [*sorted((root / "docs").glob("*.md")), root / "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the blocks in place")
    mode.add_argument("--check", action="store_true", help="fail if a block differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="where cited paths start")
    parser.add_argument("docs", nargs="*", type=Path, help="default: docs/*.md and README.md")
    args = parser.parse_args(argv)
    docs = args.docs or default_docs(args.root)
    failed = False
    for doc in docs:
        text = doc.read_text()
        if args.write:
            try:
                new = write_text(text, args.root)
            except FigureError as exc:
                print(f"{doc}: {exc}", file=sys.stderr)
                failed = True
                continue
            if new != text:
                doc.write_text(new)
                print(f"{doc}: written")
        else:
            for problem in check_text(text, args.root):
                print(f"{doc}: {problem}", file=sys.stderr)
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
