"""Flow versions: the run-relevant part of a spec, its revision hash, numbering, pruning.

A version is what a run needs to be reproduced: tasks, parameters, configurations, level,
flowType, workflowRef and the two deadlines. Schedules, suspend, concurrency and
revisionHistoryLimit are not in it: they decide when and whether runs start, not what a
run does, so changing them makes no new version (a run of v3 is the same whether it was
started by hand or by a schedule, one at a time or ten at once).

The hash is taken over the canonical form (camelCase, defaults and empty fields left out,
keys sorted), so writing a default out (`retries: 0`) or a new optional field in a later
model changes nothing; the snapshot kept in the ControllerRevision is the full form, with
defaults, so the run stays what it was even if a default changes. Any other change, a
reordering of tasks or parameters included, is a new version.

Versions are numbered 1, 2, 3... and never reused: going back to the text of v1 makes a
new version with v1's hash. `revisionHistoryLimit` versions are kept, the current one
included, and on top of them every version an unfinished run uses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from flow_operator.models.flow import Flow, FlowSpec, FlowVersion

# The run-relevant fields, in the spelling of the manifest.
RUN_RELEVANT = (
    "tasks",
    "parameters",
    "configurations",
    "level",
    "flowType",
    "workflowRef",
    "activeDeadlineSeconds",
    "queueTimeoutSeconds",
)
HASH_LENGTH = 16


class VersionNotKept(LookupError):
    """A run asked for a version the flow no longer (or never) had."""


def snapshot(spec: FlowSpec) -> dict[str, Any]:
    """The run-relevant part as the ControllerRevision keeps it: with its defaults."""
    full = spec.dump()
    return {k: full[k] for k in RUN_RELEVANT if k in full}


def revision_to_read(flow: Flow, wanted: int | None) -> str | None:
    """The ControllerRevision to read for a run of version `wanted`: None when that is the
    current version (the Flow's own spec) or not a kept one (the Run action names the kept
    versions in its answer)."""
    status = flow.status
    if wanted is None or status is None or wanted == status.version:
        return None
    kept = next((v for v in status.versions if v.version == wanted), None)
    return kept.revision_name if kept is not None and kept.revision_name else None


def spec_of_revision(revision: Mapping[str, Any]) -> FlowSpec:
    """The version's spec a ControllerRevision keeps (its `data`: `snapshot`); pydantic's
    ValidationError when it is not one."""
    return FlowSpec.model_validate(revision.get("data") or {})


def canonical(spec: FlowSpec) -> dict[str, Any]:
    """The run-relevant part as written, defaults left out: what the hash is taken over."""
    written = spec.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")
    return {k: written[k] for k in RUN_RELEVANT if k in written}


def revision_hash(spec: FlowSpec) -> str:
    """A stable hash of the run-relevant part (hex, HASH_LENGTH characters)."""
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def revision_name(flow: str, version: int, revision: str) -> str:
    """The ControllerRevision of a version: `<flow>-v<n>-<hash prefix>`. The hash keeps a
    Flow deleted and made again with other tasks from meeting its predecessor's revisions
    while the garbage collector removes them."""
    return f"{flow}-v{version}-{revision[:8]}"


def next_version(kept: Sequence[FlowVersion], current: int | None, revision: str) -> int | None:
    """The number of the version to make for a spec whose hash is `revision`; None when it
    is the current version's (nothing changed). `current` is status.version, which also
    covers the case where every revision object was lost."""
    by_number = {v.version: v for v in kept}
    if current is not None and current in by_number and by_number[current].revision == revision:
        return None
    return max([*by_number, current or 0]) + 1


def to_prune(
    kept: Sequence[FlowVersion], current: int, limit: int, in_use: Collection[int]
) -> list[FlowVersion]:
    """The versions to delete, oldest first: all but the newest `limit` (the current one
    counted among them, and always kept) and those an unfinished run uses."""
    newest = sorted({v.version for v in kept}, reverse=True)
    keep = {*newest[:limit], current, *in_use}
    return sorted((v for v in kept if v.version not in keep), key=lambda v: v.version)


def select(kept: Sequence[FlowVersion], current: int | None, wanted: int | None) -> FlowVersion:
    """The version a run uses: `wanted`, or the current one when it names none."""
    number = current if wanted is None else wanted
    for v in kept:
        if v.version == number:
            return v
    have = ", ".join(str(v.version) for v in sorted(kept, key=lambda v: v.version)) or "none"
    if wanted is None:
        raise VersionNotKept("the flow has no version yet: the operator has not recorded one")
    raise VersionNotKept(f"version {wanted} is not kept (kept: {have}); name one of those")
