"""The figures the reliability tests measure, kept when asked (docs/reliability.md quotes them).

With FLOW_RESULTS_FILE set (`make chaos` sets it to bench/results/reliability-<stamp>.json),
`record(section, figures)` merges one test's figures into that file under `section`, next
to where and when they were measured: the date, the commit, whether the operator's code
differed from it (the tree is shared), the machine. Without it (`make test`) nothing is
written. A test records only after its assertions passed, so a file holds figures of
tests that passed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import provenance

ROOT = Path(__file__).resolve().parents[2]
ENV = "FLOW_RESULTS_FILE"


def wanted() -> Path | None:
    """The results file asked for, or None: then nothing is recorded."""
    name = os.environ.get(ENV)
    return (ROOT / name).resolve() if name else None


def record(section: str, figures: dict[str, Any]) -> None:
    """Merge `figures` into the results file under `section` (a test's own), if one is asked
    for; the provenance is the first test's, and each section has its own date."""
    path = wanted()
    if path is None:
        return
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if not results:
        results = {**provenance(), "argv": sys.argv[1:]}
    results[section] = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def tally(section: str, key: str) -> None:
    """Count one more under section.key (a parametrised test's passing cases), if asked."""
    path = wanted()
    if path is None:
        return
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    counts = results.get(section, {})
    counts[key] = counts.get(key, 0) + 1
    record(section, counts)
