"""Admission of a run the flow's concurrency made wait (Queue or Replace): may it deploy now?

The Flow reconciler creates a run under Queue or Replace at once (its name is its tick's),
marked with the decision (`flowops.io/concurrency`); it holds no slot yet. The FlowRun
reconciler asks `admission` at each admission attempt, with the flow's other runs: the
same `concurrency.decide` the Flow reconciler made, now with this run as the candidate.
Start: it deploys. Otherwise it stays Queued with the decision's reason and message
(WaitingForFlowConcurrency, or ReplacingRuns until the replaced runs have finished), and
its queue timeout applies. A run of no flow, or made under Start, is never held here.
The reconciler asks `admission_counted`, with the counts flowrun/slots.py keeps (the flow's
runs holding a slot, the runs waiting ahead), so admission never reads every run of the flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flow_operator.flows.concurrency import Action, RunSlot, decide, decide_counted
from flow_operator.flows.runs import FlowRunRecord
from flow_operator.models.flow import Concurrency


@dataclass(frozen=True)
class Hold:
    """Why the run waits for its flow: the Queued status's reason and message."""

    reason: str
    message: str


def admission(
    concurrency: Concurrency | None,
    run: Mapping[str, Any],
    others: Iterable[Mapping[str, Any]],
) -> Hold | None:
    """None when `run` may deploy as far as its flow is concerned, else why it waits.
    `concurrency`: the flow's (None: the flow is gone, nothing to keep); `others`: the
    flow's runs (this one among them or not)."""
    me = FlowRunRecord.from_body(run)
    if concurrency is None or me is None or me.decision not in (Action.QUEUE, Action.REPLACE):
        return None
    rest = [FlowRunRecord.from_body(b) for b in others]
    slots = [r.slot() for r in rest if r is not None and not r.finished and r.name != me.name]
    decision = decide(concurrency, RunSlot(me.name, me.created, holding=False), slots)
    if decision.action is Action.START:
        return None
    return Hold(decision.reason, decision.message)


def admission_counted(
    concurrency: Concurrency | None,
    run: Mapping[str, Any],
    holding: Sequence[RunSlot],
    ahead: int,
) -> Hold | None:
    """`admission` from the counts: the flow's other runs holding a slot, and how many of
    its runs wait ahead of `run`."""
    me = FlowRunRecord.from_body(run)
    if concurrency is None or me is None or me.decision not in (Action.QUEUE, Action.REPLACE):
        return None
    decision = decide_counted(concurrency, [r for r in holding if r.name != me.name], ahead)
    if decision.action is Action.START:
        return None
    return Hold(decision.reason, decision.message)
