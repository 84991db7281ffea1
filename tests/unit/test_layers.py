"""The import contracts fail on a layer break: lint-imports on a copy of the package with
one bad import (flowctl importing the HTTP API, a reconciler importing the handlers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tmp_path: Path, breaks: dict[str, str]) -> subprocess.CompletedProcess[str]:
    package = tmp_path / "operator" / "flow_operator"
    shutil.copytree(ROOT / "operator" / "flow_operator", package,
                    ignore=shutil.ignore_patterns("__pycache__", "static"))  # fmt: skip
    for module, line in breaks.items():
        with (package / module).open("a") as f:
            f.write(f"\n{line}  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "operator")}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")
@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "cli/render.py",
            "import flow_operator.api.server",
            ("flowctl are independent", "Layers:"),
        ),
        ("reconcile/writes.py", "import flow_operator.handlers", ("Layers:",)),
        ("views/paging.py", "import click", ("views/) are pure",)),
    ],
)
def test_a_bad_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: tuple[str, ...]
) -> None:
    result = _lint(tmp_path, {module: line})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for name in broken:
        assert any(name in ln and "BROKEN" in ln for ln in _joined(out)), (name, out)
    assert line.split()[-1] in out  # the import is named


def _joined(out: str) -> list[str]:
    """The contract lines, each whole: a long name wraps before its KEPT or BROKEN."""
    joined, pending = [], ""
    for ln in out.splitlines():
        pending = f"{pending} {ln.strip()}".strip()
        if not ln.strip() or ln.rstrip().endswith(("KEPT", "BROKEN", ")")):
            joined.append(pending)
            pending = ""
    return joined
