"""The shared read models (views/): the seed's status document in and out, the list rows
both the API and flowctl render, and paging (cursor round trip, limits, a bad cursor)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flow_operator.models.workflow import WorkflowStatus
from flow_operator.views.paging import BadCursor, Page, decode_cursor, encode_cursor, paginate
from flow_operator.views.runs import list_runs, page_of, run_key, select
from flow_operator.views.workflows import live_document, parse_status, workflow_row
from tests.unit.api_support import NOW, sample_runs

GOLDEN = Path(__file__).parents[2] / "golden" / "workflow"
SEEDS = sorted(p.stem for p in GOLDEN.glob("*.json"))


def seed(name: str) -> dict[str, Any]:
    return dict(json.loads((GOLDEN / f"{name}.json").read_text()))


@pytest.mark.parametrize("name", SEEDS)
def test_the_seed_document_comes_back_field_for_field(name: str) -> None:
    status = WorkflowStatus.model_validate(seed(name))
    assert live_document(status, [], NOW) == seed(name)  # no pods seen: ages as stored


@pytest.mark.parametrize("name", SEEDS)
def test_ages_are_recomputed_from_the_pods(name: str) -> None:
    doc = seed(name)
    replicas = [r for s in doc.get("details", {}).get("services", []) for r in s["replicasDetail"]]
    born = (NOW - timedelta(seconds=86)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pods = [{"metadata": {"name": r["name"], "creationTimestamp": born}} for r in replicas]
    pods.append({"metadata": {"name": "someone-else", "creationTimestamp": born}})
    for r in replicas:
        r["age"] = "1m26s"
    assert live_document(WorkflowStatus.model_validate(seed(name)), pods, NOW) == doc


def test_a_status_that_is_not_one_parses_to_none() -> None:
    assert parse_status(None) is None and parse_status({}) is None
    assert parse_status({"actualStatus": "PURPLE"}) is None
    assert parse_status(seed("async-published-green")) is not None


def test_the_workflow_row() -> None:
    status = {**seed("sync-published-green"), "servicesReady": "2/2",
              "firstPublishedAt": "2024-02-12T09:00:00Z",
              "conditions": [{"type": "Ready", "status": "True", "message": "all ready"}]}  # fmt: skip
    body = {"metadata": {"namespace": "shop", "name": "live"},
            "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "SYNC"}}  # fmt: skip
    row = workflow_row(("shop", "live"), body, status, {"the": "document"}).dump()
    assert row == {
        "id": "shop.live", "namespace": "shop", "name": "live", "desiredStatus": "PUBLISHED",
        "publishingMode": "SYNC", "actualStatus": "GREEN", "servicesReady": "2/2",
        "published": True, "message": "all ready", "status": {"the": "document"},
    }  # fmt: skip
    bare = workflow_row(("ns", "new"), {"metadata": {}}, None).dump()
    assert (bare["actualStatus"], bare["published"], bare["status"]) == (None, False, None)
    assert (bare["desiredStatus"], bare["publishingMode"]) == ("PUBLISHED", "ASYNC")


NAMES = ["nightly-etl-q1w2", "sales-forecast-x2p9", "churn-weekly-7f3k", "nlp-tagging-k8d1"]


def test_the_list_is_newest_first_and_unpaged_by_default() -> None:
    page = list_runs(sample_runs(), {})
    assert [r["name"] for r in page.items] == NAMES and page.next is None
    assert page.total == 4
    assert page.counts == {"Completed": 1, "Deployed": 1, "Failed": 1, "Queued": 1}
    assert page.dump(dict) == {"items": page.items, "total": 4, "counts": page.counts}


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5])
def test_pages_walk_the_whole_list_once(limit: int) -> None:
    listed = select(sample_runs(), {})
    seen, cursor, pages = [], None, 0
    while True:
        page = page_of(listed, limit=limit, cursor=cursor)
        assert len(page.items) <= limit and page.total == 4
        seen += [r["name"] for r in page.items]
        pages += 1
        if page.next is None:
            break
        assert "continue" in page.dump(dict)
        cursor = page.next
    assert seen == NAMES
    assert pages == max(1, -(-4 // limit))


def test_a_page_continues_after_its_key_when_rows_change_meanwhile() -> None:
    listed = select(sample_runs(), {})
    first = page_of(listed, limit=2)
    assert first.next is not None
    without_the_last_seen = [r for r in listed if r["name"] != "sales-forecast-x2p9"]
    rest = page_of(without_the_last_seen, limit=2, cursor=first.next)
    assert [r["name"] for r in rest.items] == NAMES[2:]


def test_the_cursor_round_trips_and_is_base64url_json() -> None:
    key = run_key({"startTime": "2024-02-12T10:01:00Z", "namespace": "a", "name": "b/ü?"})
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    padded = cursor + "=" * (-len(cursor) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded))["after"] == list(key)


def _b64(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    ["%%%", "bm90IGpzb24", _b64([1, 2]), _b64({"v": 2, "after": ["a"]}), _b64({"v": 1}),
     _b64({"v": 1, "after": []}), _b64({"v": 1, "after": [1, 2, 3]}),
     _b64({"v": 1, "after": ["only-one"]}), "A" * 5000, "//8"],
)  # fmt: skip
def test_a_bad_cursor_is_an_error_naming_continue(cursor: str) -> None:
    with pytest.raises(BadCursor, match=r"^continue "):
        page_of(select(sample_runs(), {}), limit=2, cursor=cursor)


def test_a_bad_cursor_is_refused_on_an_empty_list_too() -> None:
    with pytest.raises(BadCursor):
        page_of([], cursor="%%%")
    assert page_of([], cursor=encode_cursor(("a", "b", "c"))).items == []


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        paginate([1, 2], lambda i: (str(i),), limit=limit)


def test_ascending_pages_and_no_counts_without_a_status() -> None:
    items = ["a", "b", "c"]
    first: Page[str] = paginate(items, lambda i: (i,), limit=2, descending=False)
    assert (first.items, first.counts) == (["a", "b"], None)
    assert paginate(items, lambda i: (i,), limit=2, cursor=first.next, descending=False).items == [
        "c"
    ]


def test_a_run_row_names_its_flow_by_label_or_reference_and_an_inline_run_none() -> None:
    from flow_operator.views.runs import row_of

    def body(labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "r", "namespace": "ns", "labels": labels}, "spec": spec}

    ticked = body({"flowops.io/flow": "nightly"}, {"flowName": "nightly", "tasks": []})
    by_hand = body({}, {"flowRef": {"name": "weekly"}})
    inline = body({}, {"flowName": "adhoc", "tasks": []})
    assert [row_of(b).flow for b in (ticked, by_hand, inline)] == ["nightly", "weekly", None]
    assert "flow" not in row_of(inline).dump()
