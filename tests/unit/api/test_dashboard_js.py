"""The dashboard's age humanizer (api/static/age.js), run by node: Go durations from the API
(`1m26.374975s`) shown as kubectl shows ages (`86s`, `5m`, `2h`); the cases are those of
k8s.io/apimachinery's HumanDuration, plus Go's duration spellings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

AGE_JS = Path(__file__).parents[3] / "operator" / "flow_operator" / "api" / "static" / "age.js"
NODE = shutil.which("node")

CASES = {
    # the defect: nanosecond digits in the page
    "1m26.374975s": "86s",
    "512.17ms": "0s",
    "0s": "0s",
    "750µs": "0s",
    "3ns": "0s",
    "1.999s": "1s",
    "59s": "59s",
    "119.9s": "119s",
    "2m": "2m",
    "2m0.5s": "2m",
    "5m2s": "5m2s",
    "9m59s": "9m59s",
    "10m": "10m",
    "14m5s": "14m",
    "2h59m59s": "179m",
    "3h": "3h",
    "3h10m": "3h10m",
    "7h59m": "7h59m",
    "8h": "8h",
    "47h59m": "47h",
    "48h": "2d",
    "50h": "2d2h",
    "191h": "7d23h",
    "192h": "8d",
    "17519h": "729d",
    "17520h": "2y",
    "17544h": "2y1d",
    "70079h": "7y364d",
    "70080h": "8y",
    "-1.5s": "0s",  # clock skew of a second is "now"
    "-3s": "<invalid>",
    # not a Go duration: shown as it came
    "soon": "soon",
    "": "",
    "12": "12",
}


def run_node(script: str) -> str:
    if NODE is None:
        if os.environ.get("CI"):
            pytest.fail("node missing: run tests/e2e/browser_deps.sh")
        pytest.skip("node missing (tests/e2e/browser_deps.sh installs it)")
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ages_are_shown_as_kubectl_shows_them() -> None:
    script = (
        f"const a = require({json.dumps(str(AGE_JS))});"
        f"const cases = {json.dumps(list(CASES))};"
        "console.log(JSON.stringify(cases.map(a.humanDuration)));"
    )
    shown = json.loads(run_node(script))
    assert dict(zip(CASES, shown, strict=True)) == CASES


def test_null_and_undefined_show_nothing() -> None:
    script = (
        f"const a = require({json.dumps(str(AGE_JS))});"
        "console.log(JSON.stringify([a.humanDuration(null), a.humanDuration(undefined)]));"
    )
    assert json.loads(run_node(script)) == ["", ""]
