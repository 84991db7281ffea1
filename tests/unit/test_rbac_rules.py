"""The chart's RBAC rules are generated from flow_operator/rbac.py's table: the checked-in
template is what the table renders, the drift check catches an edited one, the chart grants
exactly the table's rules, and docs/operations.md lists each of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_operator import rbac
from tests.unit.test_chart import helm_template

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / rbac.TARGET
Grants = dict[tuple[str, str], set[str]]


def as_dict(rule: rbac.Rule, token_secret: str = "flow-operator-api") -> dict[str, Any]:
    """The rule as the chart renders it (with the chart's default API token Secret)."""
    out: dict[str, Any] = {"apiGroups": [rule.api_group], "resources": list(rule.resources)}
    if rule.resource_names:
        names = [n.replace(rbac.helm_value("api.tokenSecret"), token_secret)
                 for n in rule.resource_names]  # fmt: skip
        out["resourceNames"] = names
    out["verbs"] = list(rule.verbs)
    return out


def table_grants() -> Grants:
    out: Grants = {}
    for s in rbac.RULE_SETS:
        for rule in s.rules:
            for resource in rule.resources:
                out.setdefault((rule.api_group, resource), set()).update(rule.verbs)
    return out


def test_the_checked_in_template_is_the_tables() -> None:
    assert TEMPLATE.read_text() == rbac.render(), "run `make crds`"
    assert rbac.main(["--check", str(TEMPLATE)]) == 0


def test_the_drift_check_fails_on_an_edited_or_missing_file(tmp_path: Path) -> None:
    drifted = tmp_path / "_rbac_rules.tpl"
    drifted.write_text(rbac.render().replace("verbs: [list, watch]", "verbs: ['*']"))
    assert rbac.main(["--check", str(drifted)]) == 1
    assert rbac.main(["--check", str(tmp_path / "absent.tpl")]) == 1
    assert rbac.main([str(drifted)]) == 0  # regenerating repairs it
    assert rbac.main(["--check", str(drifted)]) == 0


def test_rules_are_narrow() -> None:
    for s in rbac.RULE_SETS:
        for rule in s.rules:
            assert "*" not in (rule.api_group, *rule.resources, *rule.verbs), rule
            assert rule.why, rule
            if "secrets" in rule.resources:
                assert rule.verbs == ("get",), rule
            if "update" in rule.verbs:  # every write is a patch or an apply, but the Lease's
                assert rule.resource_names == (rbac.LEASE,), rule


# Value sets that, together, switch every rule set on.
RENDERINGS = {
    # leader election needs the history on PostgreSQL (the chart refuses SQLite then)
    "cluster": ["--set", "rbac.kopfPeering=true", "--set", "leaderElection.enabled=true",
                "--set", "history.postgresql.existingSecret=flow-history"],
    "namespaced": [
        "--set", "watch.scope=namespaced", "--set", "watch.namespaces={team-a}",
        "--set", "rbac.namespaceObservation=true", "--set", "rbac.kopfPeering=true",
    ],
}  # fmt: skip


def test_the_chart_grants_exactly_the_tables_rules() -> None:
    table = [as_dict(r) for s in rbac.RULE_SETS for r in s.rules]
    seen: list[dict[str, Any]] = []
    for values in RENDERINGS.values():
        for doc in yaml.safe_load_all(helm_template(*values)):
            if doc and doc["kind"] in ("Role", "ClusterRole"):
                if doc["metadata"]["name"].endswith(("-user-view", "-user-edit", "-user-admin")):
                    continue  # the users' roles, not the operator's (below)
                for rule in doc["rules"]:
                    assert rule in table, f"{doc['metadata']['name']}: {rule} is not in rbac.py"
                    seen.append(rule)
    assert [r for r in table if r not in seen] == []


def test_the_docs_list_every_rule() -> None:
    """docs/operations.md has one row per (group, resource) with its verbs: the table's."""
    rows: Grants = {}
    section = (ROOT / "docs" / "operations.md").read_text().split("<!-- rbac-table -->")[1]
    for line in section.split("\n\n")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] == "API group" or set(cells[0]) <= {"-"}:
            continue
        group = "" if cells[0] == "`core`" else cells[0].strip("`")
        for resource in cells[1].split(" / "):
            rows[(group, resource.strip().strip("`"))] = {v.strip() for v in cells[2].split(",")}
    assert rows == table_grants()


@pytest.mark.parametrize("rule_set", rbac.RULE_SETS, ids=lambda s: s.name)
def test_every_rule_set_is_included_by_the_chart(rule_set: rbac.RuleSet) -> None:
    templates = (ROOT / "charts" / "flow-operator" / "templates" / "rbac.yaml").read_text()
    assert f'include "flow-operator.{rule_set.name}"' in templates


def test_the_users_roles_file_is_the_tables_and_drift_is_caught(tmp_path: Path) -> None:
    """cluster/flow-roles.yaml (make run's users' roles) is rendered from USER_ROLES, and
    the chart's user-roles.yaml includes the same rule sets."""
    plain = ROOT / rbac.USER_ROLES_TARGET
    assert plain.read_text() == rbac.render_user_roles(), "run `make crds`"
    assert rbac.main(["--check", "--user-roles", str(plain)]) == 0
    edited = tmp_path / "flow-roles.yaml"
    edited.write_text(rbac.render_user_roles().replace("deletecollection", "escalate"))
    assert rbac.main(["--check", "--user-roles", str(edited)]) == 1
    roles = {d["metadata"]["name"]: d for d in yaml.safe_load_all(plain.read_text()) if d}
    assert roles["flowops-io-edit"]["rules"] == [as_dict(r) for r in rbac.USER_EDIT.rules]
    templates = (ROOT / "charts" / "flow-operator" / "templates" / "user-roles.yaml").read_text()
    for rule_set in rbac.USER_RULE_SETS:
        assert f'include "flow-operator.{rule_set.name}"' in templates
