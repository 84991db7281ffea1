"""The operator's RBAC rules: one table, rendered into the Helm chart and drift-checked.

Each rule says which API group, resources and verbs the code calls, and why. The table is
grouped by the role that grants it (the workload rules go to a ClusterRole, or to a Role
in each watched namespace; kopf's observation, the API token and the leader's Lease have
roles of their own, some behind a chart value). `python -m flow_operator.rbac PATH` writes
one Helm template of named rule lists that charts/flow-operator/templates/rbac.yaml (and
user-roles.yaml) includes; `--user-roles PATH` writes cluster/flow-roles.yaml, the users'
aggregated roles for a cluster without the chart; `--check` exits non-zero when the
checked-in file differs from the table.
docs/operations.md#rbac explains each rule to an operator of the cluster.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from flow_operator import GROUP

TARGET = Path("charts/flow-operator/templates/_rbac_rules.tpl")
# The one Lease every replica competes for (app.py's LeaderElector).
LEASE = "flow-operator"


def helm_value(path: str) -> str:
    """A value of the chart, filled in when Helm renders the rule."""
    return "{{ .Values." + path + " }}"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, with the reason the operator needs it."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """The rules one role of the chart grants, as a named template (`flow-operator.<name>`)."""

    name: str
    role: str
    rules: tuple[Rule, ...]


WORKLOAD = RuleSet(
    "rules",
    "The rules on namespaced objects, exactly what the code calls. Granted cluster-wide by a "
    "ClusterRole, or by a Role in each watched namespace.",
    (
        Rule(
            GROUP,
            ("workflows",),
            ("list", "watch"),
            "Workflows: watched into kopf indexes (and listed by the HTTP API for readiness).",
        ),
        Rule(
            GROUP,
            ("flowruns",),
            ("list", "watch", "create", "patch", "delete"),
            "FlowRuns: watched; created (reruns, sub-flow runs, a Flow's ticks and Run action), "
            "patched (cancel requests), deleted past a Flow's history once archived.",
        ),
        Rule(
            GROUP,
            ("flows",),
            ("list", "watch"),
            "Flows: watched into a kopf index (the Flow reconciler, the HTTP API's Run action).",
        ),
        Rule(
            GROUP,
            ("workflows/status", "flowruns/status", "flows/status"),
            ("patch",),
            "Their status is written by the reconcilers (the status subresource).",
        ),
        Rule(
            "apps",
            ("controllerrevisions",),
            ("get", "create", "delete"),
            "A Flow's versions: one ControllerRevision each, created once, read by the Run "
            "action and the FlowRun reconciler (a spec.flowRef run) for an older version, "
            "deleted past revisionHistoryLimit.",
        ),
        Rule(
            "apps",
            ("deployments",),
            ("list", "watch", "create", "patch", "delete"),
            "A Workflow's services: server-side applied (create + patch), deleted on unpublish.",
        ),
        Rule(
            "",
            ("services",),
            ("list", "watch", "create", "patch", "delete"),
            "A service's ClusterIP Service, with the same life cycle as its Deployment.",
        ),
        Rule(
            "apps",
            ("replicasets",),
            ("list", "watch"),
            "Rollout state: which ReplicaSet is the latest.",
        ),
        Rule(
            "",
            ("pods",),
            ("list", "watch"),
            "Rollout state: which pods run the latest spec (replicasDetail), and task pods.",
        ),
        Rule(
            "",
            ("pods/log",),
            ("get",),
            "Task logs: streamed by the HTTP API on request; a failed task's last lines.",
        ),
        Rule(
            "batch",
            ("jobs",),
            ("list", "watch", "create", "delete"),
            "A FlowRun's tasks: created once under a deterministic name, deleted on cancel.",
        ),
        Rule(
            "",
            ("events",),
            ("create", "list", "watch"),
            "Events about Workflows and FlowRuns (phase transitions, invalid specs, Warnings); "
            "the Job controller's Warning FailedCreate Events watched (by field selector), to "
            "see a quota or an admission rule refusing a Job's pods.",
        ),
    ),
)

# Not in WORKLOAD: `get` on Secrets is every Secret's value to whoever knows a name, and
# RBAC cannot narrow it to the flowops.io/api-key type (rules match names, never types or
# fields). So it goes to the watched namespaces' Roles, to the namespaces named in
# rbac.apiKeySecrets.namespaces, or cluster-wide only by rbac.apiKeySecrets.clusterWide.
API_KEY_SECRETS = RuleSet(
    "apiKeySecretRules",
    "API keys (spec.apiKeySecretRef): a Role in each watched namespace (watch.scope="
    "namespaced) or in each of rbac.apiKeySecrets.namespaces; a ClusterRole only with "
    "rbac.apiKeySecrets.clusterWide.",
    (
        Rule(
            "",
            ("secrets",),
            ("get",),
            "API keys: the Secret a Workflow names in spec.apiKeySecretRef (any name: get "
            "only, never list or watch; only type flowops.io/api-key gives keys).",
        ),
    ),
)

CRD_OBSERVATION = RuleSet(
    "crdObservationRules",
    "kopf's observation of CRDs (rbac.crdObservation): cluster-scoped in either scope.",
    (
        Rule(
            "apiextensions.k8s.io",
            ("customresourcedefinitions",),
            ("list", "watch"),
            "kopf: CRDs added or changed while the operator runs.",
        ),
    ),
)

NAMESPACE_OBSERVATION = RuleSet(
    "namespaceObservationRules",
    "kopf's observation of namespaces (rbac.namespaceObservation, namespaced scope only).",
    (
        Rule(
            "",
            ("namespaces",),
            ("list", "watch"),
            "kopf: watched namespaces created after the operator started.",
        ),
    ),
)

API_TOKEN = RuleSet(
    "apiTokenRules",
    "The operator-wide API's token Secret: that one name, in the release namespace.",
    (
        Rule(
            "",
            ("secrets",),
            ("get",),
            "The HTTP API's bearer tokens (api.tokenSecret).",
            resource_names=(helm_value("api.tokenSecret"),),
        ),
    ),
)

AUTH_REVIEWS = RuleSet(
    "authReviewRules",
    "api.authMode=kubernetes: the API asks the API server who a bearer token is and what "
    "its user may do (cluster-scoped, in either watch scope).",
    (
        Rule(
            "authentication.k8s.io",
            ("tokenreviews",),
            ("create",),
            "The HTTP API verifies each caller's bearer token (a TokenReview, cached 60 s).",
        ),
        Rule(
            "authorization.k8s.io",
            ("subjectaccessreviews",),
            ("create",),
            "The HTTP API authorizes each request as its caller (SubjectAccessReview, 10 s).",
        ),
    ),
)

LEADER = RuleSet(
    "leaderRules",
    "Leader election: one Lease, named after the operator, in the release namespace.",
    (
        Rule(
            "coordination.k8s.io",
            ("leases",),
            ("create",),
            "The first replica creates the Lease (create cannot be limited by name).",
        ),
        Rule(
            "coordination.k8s.io",
            ("leases",),
            ("get", "update"),
            "Replicas read it; the leader renews it, a candidate takes it over.",
            resource_names=(LEASE,),
        ),
    ),
)

CLUSTER_PEERING = RuleSet(
    "clusterPeeringRules",
    "kopf peering, cluster scope (rbac.kopfPeering): off unless kopf peering is run.",
    (
        Rule(
            "kopf.dev",
            ("clusterkopfpeerings",),
            ("get", "list", "watch", "patch"),
            "kopf peering: operators announce themselves.",
        ),
    ),
)

PEERING = RuleSet(
    "peeringRules",
    "kopf peering, in each watched namespace (rbac.kopfPeering).",
    (
        Rule(
            "kopf.dev",
            ("kopfpeerings",),
            ("get", "list", "watch", "patch"),
            "kopf peering: operators announce themselves.",
        ),
    ),
)

# The flowops.io kinds in Kubernetes' built-in user-facing roles, by aggregation: not the
# operator's own permissions but its users'. Without them `--auth-mode kubernetes` refuses
# an `edit` user everything (the built-in roles know nothing of CRDs). The chart ships them
# (userRoles.create) and `make run` applies cluster/flow-roles.yaml, both from here.
USER_VIEW = RuleSet(
    "userViewRules",
    "Users' view of the flowops.io kinds, aggregated into view, edit and admin (userRoles).",
    (
        Rule(
            GROUP,
            (
                "flowruns",
                "flowruns/status",
                "flows",
                "flows/status",
                "workflows",
                "workflows/status",
            ),
            ("get", "list", "watch"),
            "read flow runs, Flows and Workflows: the dashboard's lists and GET /api/v1/...",
        ),
    ),
)

USER_EDIT = RuleSet(
    "userEditRules",
    "Users' changes to the flowops.io kinds, aggregated into edit and admin (userRoles).",
    (
        Rule(
            GROUP,
            ("flowruns", "flows", "workflows"),
            ("create", "update", "patch", "delete", "deletecollection"),
            "cancel (patch flowruns), rerun and Run (create flowruns), and edit the kinds.",
        ),
    ),
)

# The API's audit (GET /api/v1/audit) is for admins: `list` on the virtual resource
# `audits.flowops.io`, cluster-wide (no such kind exists; the API asks a
# SubjectAccessReview for it). Aggregated into admin: bound cluster-wide (a
# ClusterRoleBinding to admin, or cluster-admin), it lets one read the audit.
USER_ADMIN = RuleSet(
    "userAdminRules",
    "Admins' reading of the API's audit, aggregated into admin (userRoles).",
    (
        Rule(
            GROUP,
            ("audits",),
            ("list",),
            "GET /api/v1/audit: the audited actions of every user (a virtual resource).",
        ),
    ),
)

USER_ROLES: tuple[tuple[str, RuleSet, tuple[str, ...]], ...] = (
    ("flowops-io-view", USER_VIEW, ("view", "edit", "admin")),
    ("flowops-io-edit", USER_EDIT, ("edit", "admin")),
    ("flowops-io-admin", USER_ADMIN, ("admin",)),
)
USER_ROLES_TARGET = Path("cluster/flow-roles.yaml")

RULE_SETS: tuple[RuleSet, ...] = (
    WORKLOAD,
    API_KEY_SECRETS,
    CRD_OBSERVATION,
    NAMESPACE_OBSERVATION,
    API_TOKEN,
    AUTH_REVIEWS,
    LEADER,
    CLUSTER_PEERING,
    PEERING,
)
# Rendered beside them (templates/user-roles.yaml includes them), not the operator's own.
USER_RULE_SETS: tuple[RuleSet, ...] = (USER_VIEW, USER_EDIT, USER_ADMIN)


def _flow(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(item or '""' for item in items) + "]"


def render_rule(rule: Rule) -> str:
    """One rule as YAML in flow style, its reason as a comment above it."""
    lines = [f"# {line}" for line in textwrap.wrap(rule.why, 88)]
    lines.append(f"- apiGroups: {_flow((rule.api_group,))}")
    lines.append(f"  resources: {_flow(rule.resources)}")
    if rule.resource_names:
        lines.append(f"  resourceNames: {_flow(rule.resource_names)}")
    lines.append(f"  verbs: {_flow(rule.verbs)}")
    return "\n".join(lines)


def render() -> str:
    """The Helm template: one `define` per rule set, included by templates/rbac.yaml."""
    out = [
        "{{/* Generated by `make crds` from operator/flow_operator/rbac.py: do not edit. */}}",
    ]
    for s in (*RULE_SETS, *USER_RULE_SETS):
        role = "\n".join(textwrap.wrap(s.role, 88))
        out.append(f"\n{{{{/*\n{role}\n*/}}}}")
        out.append(f'{{{{- define "flow-operator.{s.name}" -}}}}')
        out.extend(render_rule(r) for r in s.rules)
        out.append("{{- end -}}")
    return "\n".join(out) + "\n"


def render_user_roles() -> str:
    """cluster/flow-roles.yaml: the aggregated user roles as plain manifests, for a cluster
    without the chart (make run, the identity e2e test)."""
    out = [
        "# Generated by `make crds` from operator/flow_operator/rbac.py (USER_ROLES): do not",
        "# edit. The flowops.io kinds in Kubernetes' built-in roles, by aggregation: whoever",
        "# is bound to `view` may read flow runs, Flows and Workflows, `edit` (and `admin`)",
        "# may also cancel (patch), rerun and Run (create), `admin` bound cluster-wide may",
        "# read the API's audit (list audits). The chart ships the same roles",
        "# (userRoles.create). Applied by `make run` (cluster/run.sh) and the identity e2e",
        "# test (docs/security.md).",
    ]
    for i, (name, rules, into) in enumerate(USER_ROLES):
        if i:
            out.append("---")
        out += ["apiVersion: rbac.authorization.k8s.io/v1", "kind: ClusterRole", "metadata:",
                f"  name: {name}", "  labels:"]  # fmt: skip
        out += [f'    rbac.authorization.k8s.io/aggregate-to-{r}: "true"' for r in into]
        out.append("rules:")
        out += [textwrap.indent(render_rule(r), "  ") for r in rules.rules]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    users = "--user-roles" in argv
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else (USER_ROLES_TARGET if users else TARGET)
    text = render_user_roles() if users else render()
    if check:
        if not path.exists() or path.read_text() != text:
            print(
                f"RBAC rules drifted from flow_operator/rbac.py (run `make crds`): {path}",
                file=sys.stderr,
            )
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
