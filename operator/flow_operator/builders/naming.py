"""Names and labels of owned objects: deterministic, so a restarted operator finds its own."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flow_operator import API_VERSION, MANAGER

MANAGED_BY = "app.kubernetes.io/managed-by"
WORKFLOW_LABEL = "flowops.io/workflow"
COMPONENT_LABEL = "flowops.io/component"
ROLE_LABEL = "flowops.io/role"
FLOWRUN_LABEL = "flowops.io/flowrun"
TASK_LABEL = "flowops.io/task"
SPEC_HASH = "flowops.io/spec-hash"
# Deployment names stay short enough that pod names (+17 chars) fit a DNS label.
MAX_DEPLOYMENT_NAME = 46
# Job names likewise for their pods (+6 chars); child FlowRuns use the same limit.
MAX_JOB_NAME = 57


def short_hash(value: Any, length: int = 8) -> str:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:length]


def child_name(owner: str, part: str, limit: int = MAX_DEPLOYMENT_NAME) -> str:
    """`<owner>-<part>`; too long, or not starting with a letter (Service names must),
    it becomes a truncated prefix plus a hash of the full name, still unique."""
    name = f"{owner}-{part}"
    if len(name) <= limit and name[0].isalpha():
        return name
    base = name if name[0].isalpha() else "x" + name
    return f"{base[: limit - 9].rstrip('-')}-{short_hash(name)}"


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def managed_labels(**extra: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, **extra}
