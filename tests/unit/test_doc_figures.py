"""The docs' figure tables match the committed JSON they cite (bench/docfigures.py), and the
checker itself catches a changed figure, a missing file and a bad spec."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "bench" / "docfigures.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docfigures", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


docfigures = load_tool()


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, check=False
    )


def test_the_repository_docs_match_their_files() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr


def test_the_repository_docs_have_blocks_and_every_one_cites_a_file() -> None:
    # The check above passes vacuously if no doc has a block: performance.md must have some.
    blocks = docfigures.find_blocks((ROOT / "docs" / "performance.md").read_text())
    assert len(blocks) >= 3
    for block in blocks:
        assert docfigures.resolve(block.sources, ROOT)


SPEC = """\
<!-- figures: results/b.json results/a.json
     columns: commit=commit | ratio=s1.ratio:.3f | lag p99 (ms)=s1.lag_ms.p99:,.0f |
     first stage=stages.pod.0 | note=note -->
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "results").mkdir()
    write_json(tmp_path / "results" / "a.json", ratio=1.0004, p99=1234.5, note="as committed")
    write_json(tmp_path / "results" / "b.json", ratio=2.5, p99=668.4, note="a | b")
    (tmp_path / "doc.md").write_text(
        "# Doc\n\nProse before.\n\n" + SPEC + "stale\n<!-- /figures -->\n\nProse after.\n"
    )
    return tmp_path


def write_json(path: Path, *, ratio: float, p99: float, note: str | None) -> None:
    data = {"commit": path.stem * 7, "s1": {"ratio": ratio, "lag_ms": {"p99": p99}}}
    data["stages"] = {"pod": [12.5, 99.0]}
    if note is not None:
        data["note"] = note
    path.write_text(json.dumps(data))


def test_write_renders_one_row_per_file_in_the_docs_order_with_formats(repo: Path) -> None:
    assert run("--write", "--root", repo, repo / "doc.md").returncode == 0
    text = (repo / "doc.md").read_text()
    assert text == (
        "# Doc\n\nProse before.\n\n"
        + SPEC
        + "| file | commit | ratio | lag p99 (ms) | first stage | note |\n"
        "|---|---|---|---|---|---|\n"
        "| b.json | bbbbbbb | 2.500 | 668 | 12.5 | a \\| b |\n"
        "| a.json | aaaaaaa | 1.000 | 1,234 | 12.5 | as committed |\n"
        "<!-- /figures -->\n\nProse after.\n"
    )
    assert run("--check", "--root", repo, repo / "doc.md").returncode == 0


def test_rounding_follows_the_format(repo: Path) -> None:
    write_json(repo / "results" / "a.json", ratio=1.0005, p99=1235.5, note="x")
    docfigures.main(["--write", "--root", str(repo), str(repo / "doc.md")])
    row = next(r for r in docfigures.cells((repo / "doc.md").read_text()) if r[0] == "a.json")
    # Python's format rounds half to even on the binary value: 1.0005 is 1.000499..., 1235.5 → 1,236
    assert row[2:4] == ["1.000", "1,236"]


def test_a_changed_figure_fails_the_check_naming_doc_block_and_cell(repo: Path) -> None:
    run("--write", "--root", repo, repo / "doc.md")
    write_json(repo / "results" / "a.json", ratio=1.07, p99=1234.5, note="as committed")
    result = run("--check", "--root", repo, repo / "doc.md")
    assert result.returncode == 1
    assert "doc.md" in result.stderr
    assert "block at line 5" in result.stderr
    assert "row a.json, column 'ratio': '1.000', file says '1.070'" in result.stderr
    # only the changed cell is named
    assert result.stderr.count("row ") == 1
    # --write fixes it
    assert run("--write", "--root", repo, repo / "doc.md").returncode == 0
    assert run("--check", "--root", repo, repo / "doc.md").returncode == 0


def test_a_hand_edited_cell_fails_the_check(repo: Path) -> None:
    run("--write", "--root", repo, repo / "doc.md")
    doc = repo / "doc.md"
    doc.write_text(doc.read_text().replace("| 668 |", "| 600 |"))
    problems = docfigures.check_text(doc.read_text(), repo)
    assert problems == [
        "block at line 5 (results/b.json results/a.json): "
        "row b.json, column 'lag p99 (ms)': '600', file says '668'"
    ]


def test_a_missing_file_fails_the_check_and_the_write(repo: Path) -> None:
    run("--write", "--root", repo, repo / "doc.md")
    (repo / "results" / "b.json").unlink()
    result = run("--check", "--root", repo, repo / "doc.md")
    assert result.returncode == 1
    assert "cited file results/b.json is missing" in result.stderr
    before = (repo / "doc.md").read_text()
    assert run("--write", "--root", repo, repo / "doc.md").returncode == 1
    assert (repo / "doc.md").read_text() == before


def test_a_glob_that_matches_nothing_fails(repo: Path) -> None:
    text = "<!-- figures: results/none-*.json\n     columns: c=commit -->\n<!-- /figures -->\n"
    assert docfigures.check_text(text, repo) == [
        "block at line 1 (results/none-*.json): no file matches results/none-*.json"
    ]


def test_a_glob_is_sorted_and_a_missing_key_shows_as_a_dash(repo: Path) -> None:
    write_json(repo / "results" / "c.json", ratio=1.5, p99=1.0, note=None)
    text = "<!-- figures: results/*.json\n     columns: note=note | deep=s1.nope.x -->\n<!-- /figures -->\n"
    rows = docfigures.cells(docfigures.write_text(text, repo))
    assert rows == [
        ["file", "note", "deep"],
        ["a.json", "as committed", "-"],
        ["b.json", "a \\| b", "-"],
        ["c.json", "-", "-"],
    ]


def test_a_missing_or_extra_row_fails(repo: Path) -> None:
    run("--write", "--root", repo, repo / "doc.md")
    doc = repo / "doc.md"
    lines = doc.read_text().splitlines(keepends=True)
    without_a = "".join(line for line in lines if not line.startswith("| a.json"))
    assert any("row a.json is missing" in p for p in docfigures.check_text(without_a, repo))
    extra = doc.read_text().replace(
        "<!-- /figures -->", "| z.json | x | 1 | 2 | 3 | 4 |\n<!-- /figures -->"
    )
    assert any("row z.json cites no file" in p for p in docfigures.check_text(extra, repo))


def test_a_value_that_does_not_fit_its_format_is_an_error(repo: Path) -> None:
    text = "<!-- figures: results/a.json\n     columns: c=note:.2f -->\n<!-- /figures -->\n"
    (problem,) = docfigures.check_text(text, repo)
    assert "a.json, column 'c': note cannot be formatted as '.2f'" in problem


def test_a_block_without_columns_is_an_error() -> None:
    text = "<!-- figures: results/a.json -->\n<!-- /figures -->\n"
    assert docfigures.check_text(text, Path(".")) == ["line 1: a figures block without `columns:`"]


def test_the_syntax_quoted_mid_line_is_not_a_block(repo: Path) -> None:
    text = "Write `<!-- figures: x.json columns: a=b -->` then `<!-- /figures -->`.\n"
    assert docfigures.find_blocks(text) == []


def test_a_list_shows_its_items_each_formatted_and_a_star_maps_over_a_list(repo: Path) -> None:
    data = {"stages": {"pod": [1435.96, 5521.4]}, "tail": [{"ms": 1.26}, {"ms": 2.5}, {}]}
    (repo / "results" / "t.json").write_text(json.dumps(data))
    text = (
        "<!-- figures: results/t.json\n"
        "     columns: pod=stages.pod:,.0f | tail=tail.*.ms:.1f | last=tail.-2.ms | no list=stages.*.x -->\n"
        "<!-- /figures -->\n"
    )
    assert docfigures.cells(docfigures.write_text(text, repo))[1] == [
        "t.json",
        "1,436 / 5,521",
        "1.3 / 2.5 / -",
        "2.5",
        "-",
    ]


PROSE_DOC = """\
Before the mark nothing is read: 12.5 s.

<!-- figures-prose: checked; not measured: 1,000 (N) -->

With N = 1,000 the ratio was 2.500 on 2026-11-24 at 03:58 (issue 7's target: ≤ 1.10),
lag p99 668-1,234 ms, and `99.9 in code` is not prose.

| a table row's 77 is not prose either |
"""


def prose_doc(repo: Path, prose: str) -> str:
    run("--write", "--root", repo, repo / "doc.md")
    return (repo / "doc.md").read_text() + "\n" + prose


def test_prose_quoting_only_cells_and_listed_numbers_passes(repo: Path) -> None:
    assert docfigures.check_text(prose_doc(repo, PROSE_DOC), repo) == []


def test_a_prose_figure_in_no_table_fails_naming_its_line(repo: Path) -> None:
    text = prose_doc(repo, PROSE_DOC.replace("668-1,234 ms", "668-1,250 ms"))
    (problem,) = docfigures.check_text(text, repo)
    line = next(i for i, text_line in enumerate(text.splitlines(), 1) if "1,250" in text_line)
    assert problem.startswith(f"line {line}: the figure 1,250 is in none of the doc's tables")


def test_a_number_not_listed_as_not_measured_fails(repo: Path) -> None:
    text = prose_doc(repo, PROSE_DOC.replace("not measured: 1,000 (N)", "not measured:"))
    assert [p.split(": ", 1)[1][:22] for p in docfigures.check_text(text, repo)] == [
        "the figure 1,000 is in"
    ]


def test_without_the_mark_prose_is_not_read(repo: Path) -> None:
    text = prose_doc(repo, "Any figure: 12,345 ms.\n")
    assert docfigures.check_text(text, repo) == []


def test_numbers_are_read_as_prose_writes_them() -> None:
    assert docfigures.numbers("2,707, 1,103 and -1,063 ms; 0.25%; 152-204; 1.000-1.002") == [
        2707.0, 1103.0, -1063.0, 0.25, 152.0, 204.0, 1.0, 1.002
    ]  # fmt: skip
    # commit hashes, percentiles, versions and a malformed grouping are not figures
    assert docfigures.numbers("9638e25 p99 S2 v1.36.x 1,2345") == []
