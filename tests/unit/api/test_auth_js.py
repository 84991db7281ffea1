"""The dashboard's sign-in helpers (api/static/auth.js), run by node: a 403 from the API in
plain words, and the buttons `me` allows (disabled otherwise)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.api.test_dashboard_js import run_node

AUTH_JS = Path(__file__).parents[3] / "operator" / "flow_operator" / "api" / "static" / "auth.js"


def call(function: str, *args: Any) -> Any:
    script = (
        f"const a = require({json.dumps(str(AUTH_JS))});"
        f"console.log(JSON.stringify(a.{function}(...{json.dumps(list(args))})));"
    )
    return json.loads(run_node(script))


def test_a_403_in_plain_words() -> None:
    cases = {
        "system:serviceaccount:team-a:alice cannot patch flowruns in team-b":
            "You (alice) cannot cancel runs in team-b.",
        "system:serviceaccount:team-b:bob cannot get pods/log in team-b":
            "You (bob) cannot read task logs in team-b.",
        "system:serviceaccount:team-b:bob cannot create flowruns in team-b":
            "You (bob) cannot start runs (rerun, Run) in team-b.",
        "jane@example.com cannot deletecollection flowruns cluster-wide":
            "You (jane@example.com) cannot prune the history in every namespace.",
        "token:ops cannot watch widgets in x": "You (ops) cannot watch widgets in x.",
        "the API is read-only (--read-only): cancel is refused":
            "The dashboard is read-only: no actions can be done.",
        "something else": "something else",
    }  # fmt: skip
    assert {m: call("forbiddenInWords", m) for m in cases} == cases


ME = {
    "user": "system:serviceaccount:ns-b:bob",
    "readOnly": False,
    "namespaces": [{"namespace": "ns-b", "actions": ["flowruns", "workflows", "flows"]},
                   {"namespace": "ns-a", "actions": ["flowruns", "logs", "cancel"]}],
}  # fmt: skip


def test_the_actions_me_allows() -> None:
    assert call("mayDo", ME, "ns-b", "cancel") is False
    assert call("mayDo", ME, "ns-b", "logs") is False
    assert call("mayDo", ME, "ns-a", "cancel") is True
    assert call("mayDo", ME, "ns-a", "rerun") is False
    assert call("mayDo", None, "ns-b", "cancel") is True  # no answer yet: the API decides
    assert call("mayDo", ME, "elsewhere", "cancel") is True  # not in the answer: likewise
    read_only = {**ME, "readOnly": True}
    assert call("mayDo", read_only, "ns-a", "cancel") is False
    assert call("mayDo", read_only, "ns-a", "logs") is True
    assert call("whyNot", ME, "ns-b", "cancel") == "You (bob) cannot cancel runs in ns-b."
    assert call("whyNot", read_only, "ns-b", "cancel") == "The dashboard is read-only."


def test_every_script_of_the_page_is_served_and_none_is_inline() -> None:
    """The strict CSP (script-src 'self') runs no inline script; the static route serves
    only its allow-list, so each script the page names must be on it."""
    import re

    from flow_operator.api.server import STATIC_FILES

    page = (AUTH_JS.parent / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>", page)
    sources = [re.search(r'src="/static/([^"]+)"', attrs) for attrs in scripts]
    assert all(sources), scripts  # no inline <script>
    names = [s.group(1) for s in sources if s]
    assert "auth.js" in names and set(names) <= set(STATIC_FILES), names
