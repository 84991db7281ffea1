"""Prune and the color and audit tables, on both backends: `maxAge` deletes the color
transitions and audit records older than it, in batches, keeping each Workflow's newest
transition however old (by namespace and name, so time in color stays computable); a dry
run counts the same and deletes nothing; no `maxAge` keeps them all."""

from __future__ import annotations

from datetime import datetime, timedelta

from flow_operator.history.sql import SqlRunStore
from flow_operator.history.store import AuditQuery, AuditRecord, ColorTransition, PrunePolicy
from tests.unit.history.conftest import T0, Clock


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def move(when: float, to: str, *, name: str = "shop", uid: str = "u1") -> ColorTransition:
    return ColorTransition(
        uid=uid, namespace="ml", name=name, time=day(when), to_color=to, reason="Published"
    )


def entry(n: int, when: float) -> AuditRecord:
    return AuditRecord(
        id=f"a{n:03d}",
        time=day(when),
        user="alice",
        action="cancel",
        namespace="ml",
        kind="FlowRun",
        name=f"run-{n}",
        result="done",
        status=200,
    )


async def seed(store: SqlRunStore) -> None:
    await store.record_colors(
        [
            *(move(d, c) for d, c in ((0, "GREEN"), (1, "YELLOW"), (2, "GREEN"), (18, "RED"))),
            move(0, "GREEN", name="cart", uid="c1"),  # old, but cart's newest
            move(1, "RED", name="gone", uid="g1"),  # deleted and created again: g2
            move(2, "GREEN", name="gone", uid="g2"),
        ]
    )
    await store.record_audit([entry(i, d) for i, d in enumerate((0, 3, 10, 16, 19))])


async def test_prune_deletes_old_transitions_but_each_newest_and_old_audit(
    store: SqlRunStore, clock: Clock
) -> None:
    await seed(store)
    clock.now = day(20)
    policy = PrunePolicy(max_age=timedelta(days=5), batch_size=2)  # before day 15
    dry = await store.prune(policy, dry_run=True)
    assert (dry.color_transitions, dry.audit_records, dry.batches, dry.total) == (4, 3, 0, 0)
    assert dry.dump()["colorTransitions"] == 4 and dry.dump()["auditRecords"] == 3
    assert len((await store.color_history("ml", "shop", day(-1), day(30))).transitions) == 4
    assert len((await store.list_audit(AuditQuery())).items) == 5  # a dry run deletes nothing

    report = await store.prune(policy)
    assert (report.color_transitions, report.audit_records) == (4, 3)
    assert report.batches == 4  # colors 2 + 2, audit 2 + 1
    shop = await store.color_history("ml", "shop", day(-1), day(30))
    assert [t.to_color for t in shop.transitions] == ["RED"] and shop.before is None
    cart = await store.color_history("ml", "cart", day(19), day(20))
    assert cart.before == move(0, "GREEN", name="cart", uid="c1")  # the color it is in
    gone = await store.color_history("ml", "gone", day(-1), day(30))
    assert [t.uid for t in gone.transitions] == ["g2"]
    assert [r.id for r in (await store.list_audit(AuditQuery())).items] == ["a004", "a003"]
    again = await store.prune(policy)
    assert (again.color_transitions, again.audit_records, again.batches) == (0, 0, 0)


async def test_without_max_age_colors_and_audit_stay(store: SqlRunStore, clock: Clock) -> None:
    await seed(store)
    clock.now = day(400)
    report = await store.prune(PrunePolicy(keep_per_flow_status=0))
    assert (report.color_transitions, report.audit_records) == (0, 0)
    assert len((await store.list_audit(AuditQuery())).items) == 5
    dry = await store.prune(PrunePolicy(max_age=timedelta(days=1)), dry_run=True)
    assert (dry.color_transitions, dry.audit_records) == (4, 5)
