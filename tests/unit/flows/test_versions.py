"""Versions: what is run-relevant, a stable hash, numbering and pruning under the limit."""

from __future__ import annotations

from typing import Any

import pytest

from flow_operator.flows.versions import (
    RUN_RELEVANT,
    VersionNotKept,
    canonical,
    next_version,
    revision_hash,
    revision_name,
    select,
    snapshot,
    to_prune,
)
from flow_operator.models.flow import FlowSpec, FlowVersion
from tests.unit.flows.conftest import flow_spec, task


def spec(**fields: Any) -> FlowSpec:
    return FlowSpec.model_validate(flow_spec(**fields))


def v(n: int, revision: str = "") -> FlowVersion:
    return FlowVersion(
        version=n, revision=revision or f"h{n}", creation_time=f"2026-11-{n:02}T00:00:00Z"
    )


def test_revision_hash_golden() -> None:
    # Frozen: a change would make a new version of every Flow on the next operator start.
    assert revision_hash(spec()) == "1d0b712bf5e2f57a"


SCHEDULE = [{"name": "nightly", "cron": "@daily"}]


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ("schedules", {"schedules": SCHEDULE}),
        ("suspend", {"suspend": True}),
        ("concurrency", {"concurrency": {"policy": "Queue", "maxRunning": 3}}),
        ("history limit", {"revisionHistoryLimit": 3}),
        ("a default written out", {"level": "user", "flowType": "standalone"}),
        (
            "a task default written out",
            {"tasks": [task("extract", retries=0), task("load", dependsOn=["extract"])]},
        ),
    ],
)
def test_what_is_not_run_relevant_keeps_the_version(change: str, fields: dict[str, Any]) -> None:
    assert revision_hash(spec(**fields)) == revision_hash(spec()), change


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        (
            "a task's image",
            {"tasks": [task("extract", image="busybox:1.37"), task("load", dependsOn=["extract"])]},
        ),
        ("task order", {"tasks": [task("load"), task("extract")]}),
        ("parameters", {"parameters": [{"name": "REGION", "default": "eu"}]}),
        (
            "configurations",
            {
                "parameters": [{"name": "R"}],
                "configurations": [{"name": "c", "parameters": {"R": "x"}}],
            },
        ),
        ("level", {"level": "platform"}),
        ("workflowRef", {"workflowRef": {"name": "shop"}}),
        ("run deadline", {"activeDeadlineSeconds": 600}),
        ("queue timeout", {"queueTimeoutSeconds": 60}),
    ],
)
def test_each_run_relevant_change_is_a_new_revision(change: str, fields: dict[str, Any]) -> None:
    assert revision_hash(spec(**fields)) != revision_hash(spec()), change


def test_the_snapshot_keeps_defaults_and_only_the_run_relevant_fields() -> None:
    s = spec(schedules=SCHEDULE, suspend=True)
    snap = snapshot(s)
    assert set(snap) <= set(RUN_RELEVANT)
    assert "schedules" not in snap and "suspend" not in snap
    assert snap["level"] == "user" and snap["tasks"][0]["retries"] == 0
    assert "level" not in canonical(s)
    # The snapshot reads back as the spec it came from: a run is reproducible from it.
    assert FlowSpec.model_validate(snap).tasks == s.tasks


def test_numbering() -> None:
    assert next_version([], None, "a") == 1  # a new Flow
    assert next_version([v(1, "a")], 1, "a") is None  # nothing changed
    assert next_version([v(1, "a")], 1, "b") == 2
    # Back to v1's text: a new number, never v1 again (versions are immutable).
    assert next_version([v(1, "a"), v(2, "b")], 2, "a") == 3
    # Old versions pruned: the numbers go on.
    assert next_version([v(7, "g"), v(8, "h")], 8, "i") == 9
    # Every revision lost: status.version still knows where the count was.
    assert next_version([], 8, "i") == 9


def test_revision_name() -> None:
    assert revision_name("etl", 3, "ac8e3f9c8ea4e6c5") == "etl-v3-ac8e3f9c"


def test_pruning_keeps_the_limit_the_current_and_every_version_in_use() -> None:
    kept = [v(n) for n in range(1, 13)]  # 1 ... 12, current 12
    pruned = [x.version for x in to_prune(kept, current=12, limit=10, in_use=set())]
    assert pruned == [1, 2]
    pruned = [x.version for x in to_prune(kept, current=12, limit=10, in_use={1})]
    assert pruned == [2]  # v1 is still used by an unfinished run
    pruned = [x.version for x in to_prune(kept, current=12, limit=1, in_use={5, 9})]
    assert pruned == [1, 2, 3, 4, 6, 7, 8, 10, 11]
    assert to_prune(kept[:3], current=3, limit=10, in_use=()) == []


def test_select_the_version_a_run_uses() -> None:
    kept = [v(2), v(3)]
    assert select(kept, current=3, wanted=None).version == 3
    assert select(kept, current=3, wanted=2).version == 2
    with pytest.raises(VersionNotKept, match=r"version 1 is not kept \(kept: 2, 3\)"):
        select(kept, current=3, wanted=1)
    with pytest.raises(VersionNotKept, match="no version yet"):
        select([], current=None, wanted=None)
