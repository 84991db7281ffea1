"""The three kstatus conditions (Ready, Reconciling, Stalled) every resource reports.

kstatus, `kubectl wait` and GitOps tools read them: Reconciling while work is under way,
Stalled when it cannot go on, Ready when done. A condition keeps its lastTransitionTime
until its status actually flips, so rewriting the same state changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from flow_operator.models.common import Condition, ConditionStatus


def kstatus(
    *,
    done: bool,
    failed: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
    old: Sequence[Condition] | None,
) -> list[Condition]:
    """Ready when done; Stalled when failed; Reconciling while neither."""
    previous = {c.type: c for c in old or ()}
    wanted = {"Ready": done, "Reconciling": not done and not failed, "Stalled": failed}
    out = []
    for type_, on in wanted.items():
        status = ConditionStatus.TRUE if on else ConditionStatus.FALSE
        before = previous.get(type_)
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=(
                    before.last_transition_time if before and before.status == status else now
                ),
                observed_generation=generation,
            )
        )
    return out
