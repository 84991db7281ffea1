"""The Workflow page's and the namespace selector's pure parts, run by node: a colors
answer cut into periods of one color (api/static/workflow.js), the namespaces `me` lets
the selector offer and the URL a choice leads to (api/static/namespaces.js)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.api.test_dashboard_js import run_node

STATIC = Path(__file__).parents[3] / "operator" / "flow_operator" / "api" / "static"


def call(script: str, fn: str, *args: Any) -> Any:
    code = (f"const m = require({json.dumps(str(STATIC / script))});"
            f"console.log(JSON.stringify(m.{fn}(...{json.dumps(list(args))})));")  # fmt: skip
    return json.loads(run_node(code))


H = 3600_000
T0 = 1704067200000  # 2024-01-01T00:00:00Z


def test_a_window_becomes_periods_of_one_color() -> None:
    doc = {"since": "2024-01-01T00:00:00Z", "until": "2024-01-02T00:00:00Z", "colorAtStart": None,
           "transitions": [{"time": "2024-01-01T10:00:00Z", "toColor": "GREEN"},
                           {"time": "2024-01-01T12:00:00Z", "toColor": "ORANGE"},
                           {"time": "2024-01-01T12:05:00Z", "toColor": "GREEN"}]}  # fmt: skip
    assert call("workflow.js", "colorPeriods", doc) == [
        {"color": "unknown", "from": T0, "to": T0 + 10 * H},
        {"color": "GREEN", "from": T0 + 10 * H, "to": T0 + 12 * H},
        {"color": "ORANGE", "from": T0 + 12 * H, "to": T0 + 12 * H + 300_000},
        {"color": "GREEN", "from": T0 + 12 * H + 300_000, "to": T0 + 24 * H},
    ]
    # the color it starts in, and no change: one period over the whole window
    held = {**doc, "colorAtStart": "RED", "transitions": []}
    assert call("workflow.js", "colorPeriods", held) == [
        {"color": "RED", "from": T0, "to": T0 + 24 * H}
    ]


def test_the_selector_offers_only_what_me_lets_the_caller_list() -> None:
    alice = {"namespaces": [{"namespace": "ns-a", "actions": ["flowruns", "workflows", "cancel"]}],
             "clusterWide": []}  # fmt: skip
    assert call("namespaces.js", "namespaceChoices", alice) == {
        "all": False,
        "namespaces": ["ns-a"],
    }
    two = {"namespaces": [{"namespace": "b", "actions": ["workflows"]},
                          {"namespace": "a", "actions": ["flowruns"]},
                          {"namespace": "c", "actions": ["flows"]}], "clusterWide": []}  # fmt: skip
    assert call("namespaces.js", "namespaceChoices", two) == {"all": True, "namespaces": ["a", "b"]}
    admin = {"namespaces": [{"namespace": "a", "actions": ["workflows"]}],
             "clusterWide": ["flowruns", "workflows", "flows"]}  # fmt: skip
    assert call("namespaces.js", "namespaceChoices", admin)["all"] is True
    assert call("namespaces.js", "namespaceChoices", None) == {"all": False, "namespaces": []}


def test_a_choice_keeps_the_list_page_and_goes_in_the_url() -> None:
    cases = [("#/runs", "ns-a", "#/runs?ns=ns-a"), ("#/workflows?ns=x", "", "#/workflows"),
             ("#/runs/ns/r1?task=t", "ns-a", "#/workflows?ns=ns-a"),
             ("#/workflows/ns/shop", "b c", "#/workflows?ns=b%20c"), ("", "a", "#/workflows?ns=a")]  # fmt: skip
    for hash_, ns, wanted in cases:
        assert call("namespaces.js", "scopedHash", hash_, ns) == wanted, (hash_, ns)
