"""The flow-level concurrency decision for a run: start, skip, replace or queue.

The same decision holds whether the run comes from a schedule's tick or from Run. It
looks at the flow's other unfinished runs that hold a slot (they passed this decision and
have not finished; a run waiting in Queued for the operator's capacity holds its slot):
- Allow: start, whatever runs.
- Forbid: when `maxRunning` runs hold a slot, skip the new run (reason ConcurrencyForbid).
- Replace: when they do, cancel the oldest ones so that the new run fits; it starts once
  they have finished (until then the decision is Replace again, with nothing left to
  cancel, as their cancel requests are already out).
- Queue: when they do, the new run waits in Queued with reason WaitingForFlowConcurrency;
  the waiting runs start in the order they were created, as slots come free, and the
  run's queue timeout applies.
`maxRunning` is 1 when absent for Forbid, Replace and Queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from flow_operator.models.flow import Concurrency, ConcurrencyPolicy

WAITING = "WaitingForFlowConcurrency"
FORBIDDEN = "ConcurrencyForbid"
REPLACING = "ReplacingRuns"


class Action(StrEnum):
    START = "Start"
    SKIP = "Skip"
    REPLACE = "Replace"
    QUEUE = "Queue"


@dataclass(frozen=True)
class RunSlot:
    """One of the flow's unfinished runs, as the decision sees it."""

    name: str
    created: datetime
    holding: bool = True  # it passed this decision; False: it waits for a slot (Queue)
    cancelling: bool = False  # its cancel request is out


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    message: str = ""
    cancel: tuple[str, ...] = ()  # Replace: the runs to cancel now, oldest first


def _order(r: RunSlot) -> tuple[datetime, str]:
    return (r.created, r.name)


def decide(concurrency: Concurrency, candidate: RunSlot, others: Sequence[RunSlot]) -> Decision:
    """What the candidate run does, given the flow's other unfinished runs."""
    holding = [r for r in others if r.holding and r.name != candidate.name]
    ahead = sum(
        1
        for r in others
        if not r.holding and r.name != candidate.name and _order(r) < _order(candidate)
    )
    return decide_counted(concurrency, holding, ahead)


def decide_counted(concurrency: Concurrency, holding: Sequence[RunSlot], ahead: int) -> Decision:
    """The same decision from what it depends on: the other runs holding a slot, and how
    many runs wait for one ahead of the candidate (Queue's order). flowrun/slots.py keeps
    both as the watch reports runs, so that admission never reads every run of the flow."""
    limit = concurrency.limit()
    policy = concurrency.policy
    if limit is None:
        return Decision(Action.START)
    holding = sorted(holding, key=_order)
    plural = "run" if limit == 1 else "runs"
    if policy is ConcurrencyPolicy.FORBID:
        if len(holding) < limit:
            return Decision(Action.START)
        return Decision(
            Action.SKIP,
            FORBIDDEN,
            f"skipped: the flow allows {limit} unfinished {plural} (concurrency Forbid) and "
            f"has {', '.join(r.name for r in holding)}",
        )
    if policy is ConcurrencyPolicy.REPLACE:
        excess = len(holding) - limit + 1
        if excess <= 0:
            return Decision(Action.START)
        leaving = [r for r in holding if r.cancelling]
        victims = [r.name for r in holding if not r.cancelling][: max(excess - len(leaving), 0)]
        return Decision(
            Action.REPLACE,
            REPLACING,
            f"waiting for {', '.join(victims + [r.name for r in leaving])} to be cancelled "
            "(concurrency Replace)",
            tuple(victims),
        )
    # Queue: first come, first served among the runs that wait.
    free = limit - len(holding)
    if free > ahead:
        return Decision(Action.START)
    return Decision(
        Action.QUEUE,
        WAITING,
        f"waiting for a slot: the flow allows {limit} unfinished {plural} (concurrency Queue); "
        f"{len(holding)} running, {ahead} waiting ahead",
    )
