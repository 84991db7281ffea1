"""Identity and RBAC on the real API server (issue 18, docs/security.md): the operator runs
with `--auth-mode kubernetes`, so each request's bearer token is a ServiceAccount token
(`kubectl create token`) that the API server reviews (TokenReview), and each request is
authorized as its caller (SubjectAccessReview) by the real RBAC:

- alice, `edit` in ns-a: lists only ns-a's runs, cancels there (the Event names her),
  is refused in ns-b, and `me` lists ns-a with her actions;
- bob, `view` in ns-b: lists ns-b's runs, his cancel is refused; he may read the logs
  (the built-in view role grants `pods/log`); carol, bound to only the flowops.io reads
  (no pods/log), is refused the logs naming that permission;
- mallory, no rights: her lists are empty (the API filters lists to the namespaces the
  caller may list) and everything else is 403;
- a garbage token is 401; a deleted ServiceAccount's token is refused within 60 s;
- ops, bound to `admin` cluster-wide, reads alice's and bob's actions in GET
  /api/v1/audit; alice and mallory are refused it;
- in a browser, bob sees ns-b's runs and his Cancel is disabled.

The built-in roles know the flowops.io kinds through cluster/flow-roles.yaml (aggregation).
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    FOREVER,
    OK,
    ROOT,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    wait_for,
)
from tests.e2e.test_dashboard import page, sign_in  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.e2e
OPERATOR_ARGS = ["--all-namespaces", "--auth-mode", "kubernetes"]
SUFFIX = secrets.token_hex(3)
NS_A, NS_B = f"ns-a-{SUFFIX}", f"ns-b-{SUFFIX}"


def http(
    operator: OperatorProcess, path: str, token: str | None, method: str = "GET"
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(operator.url(path), headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            body, status = resp.read().decode(), resp.status
    except urllib.error.HTTPError as e:
        body, status = e.read().decode(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def sa(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def binding(name: str, account: str, role: str, kind: str = "ClusterRole") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ""}],
    }


def token_of(cluster: ClusterHandle, namespace: str, name: str) -> str:
    made = cluster.kubectl("-n", namespace, "create", "token", name, "--duration=1h")
    return made.stdout.strip()


@dataclass
class Teams:
    alice: str
    bob: str
    carol: str
    mallory: str


def _namespace(cluster: ClusterHandle, name: str) -> None:
    cluster.kubectl("create", "namespace", name)
    wait_for(
        f"ServiceAccount default in {name}",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        30,
    )


def _apply(cluster: ClusterHandle, namespace: str, *objects: dict[str, Any]) -> None:
    for obj in objects:
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(objects))


def phase(cluster: ClusterHandle, namespace: str, name: str) -> str | None:
    status = cluster.get_json("-n", namespace, "flowrun", name).get("status") or {}
    return status.get("phase")


def flow() -> dict[str, Any]:
    """A Flow in each namespace, never run: its Run button is what `me` may grey."""
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "Flow", "metadata": {"name": "nightly"},
            "spec": {"tasks": [{"name": "only", "image": OK}]}}  # fmt: skip


@pytest.fixture(scope="module")
def teams(cluster: ClusterHandle, operator: OperatorProcess) -> Iterator[Teams]:
    """ns-a and ns-b, each with a run that never ends and one done; the four accounts."""
    cluster.kubectl("apply", "-f", str(ROOT / "cluster" / "flow-roles.yaml"))
    for ns in (NS_A, NS_B):
        _namespace(cluster, ns)
    _apply(cluster, NS_A, account("alice"), account("mallory"),
           binding("alice-edit", "alice", "edit"))  # fmt: skip
    _apply(cluster, NS_B, account("bob"), account("carol"),
           binding("bob-view", "bob", "view"),
           binding("carol-reads", "carol", "flowops-io-view"))  # fmt: skip
    for ns, prefix in ((NS_A, "a"), (NS_B, "b")):
        runs = [flowrun(f"{prefix}-forever", [task("spin", FOREVER)]),
                flowrun(f"{prefix}-done", [task("only", OK)])]  # fmt: skip
        cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all([*runs, flow()]))
    for ns, run, wanted in ((NS_A, "a-done", "Completed"), (NS_A, "a-forever", "Deployed"),
                            (NS_B, "b-done", "Completed"), (NS_B, "b-forever", "Deployed")):  # fmt: skip
        wait_for(f"{ns}/{run} {wanted}", lambda: phase(cluster, ns, run) == wanted, 90)  # noqa: B023
    yield Teams(
        alice=token_of(cluster, NS_A, "alice"),
        bob=token_of(cluster, NS_B, "bob"),
        carol=token_of(cluster, NS_B, "carol"),
        mallory=token_of(cluster, NS_A, "mallory"),
    )
    for ns in (NS_A, NS_B):
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def listed(operator: OperatorProcess, token: str, path: str = "/api/v1/flowruns") -> set[str]:
    code, body = http(operator, path, token)
    assert code == 200, body
    return {f"{r['namespace']}/{r['name']}" for r in body["items"]}


def refused(answer: tuple[int, Any], message: str) -> None:
    code, body = answer
    assert (code, body.get("error"), body.get("message")) == (403, "Forbidden", message), body


def test_alice_sees_and_acts_in_ns_a_only(
    cluster: ClusterHandle, operator: OperatorProcess, teams: Teams
) -> None:
    alice = sa(NS_A, "alice")
    assert listed(operator, teams.alice) == {f"{NS_A}/a-forever", f"{NS_A}/a-done"}
    assert listed(operator, teams.alice, f"/api/v1/flowruns?namespace={NS_B}") == set()
    assert http(operator, f"/api/v1/flowruns/{NS_A}/a-done", teams.alice)[0] == 200
    refused(http(operator, f"/api/v1/flowruns/{NS_B}/b-done", teams.alice),
            f"{alice} cannot get flowruns in {NS_B}")  # fmt: skip
    refused(http(operator, f"/api/v1/flowruns/{NS_B}/b-forever/cancel", teams.alice, "POST"),
            f"{alice} cannot get flowruns in {NS_B}")  # fmt: skip
    assert phase(cluster, NS_B, "b-forever") == "Deployed"

    code, body = http(operator, f"/api/v1/flowruns/{NS_A}/a-forever/cancel", teams.alice, "POST")
    assert code == 200, body
    wait_for("a-forever Cancelled", lambda: phase(cluster, NS_A, "a-forever") == "Cancelled", 60)

    def event() -> list[str]:
        items = cluster.get_json("-n", NS_A, "events").get("items", [])
        return [e.get("message") or e.get("note") or "" for e in items
                if e.get("reason") == "CancelRequested"
                and (e.get("involvedObject") or e.get("regarding") or {}).get("name") == "a-forever"]  # fmt: skip

    # the audit's Event, beside the reconciler's own ("cancelled on request (spec.cancel)")
    wait_for("the Event naming alice", lambda: f"cancelled by {alice}" in event(), 30)
    audit = [line for line in operator.text().splitlines() if "audit {" in line]
    assert any(f'"user": "{alice}"' in line and '"action": "cancel"' in line
               and f'"target": "{NS_A}/a-forever"' in line for line in audit), audit  # fmt: skip


def test_me_lists_alices_namespace_and_actions(operator: OperatorProcess, teams: Teams) -> None:
    code, me = http(operator, "/api/v1/me", teams.alice)
    assert code == 200, me
    assert (me["user"], me["authMode"], me["readOnly"]) == (sa(NS_A, "alice"), "kubernetes", False)
    assert "system:serviceaccounts" in me["groups"]
    assert f"system:serviceaccounts:{NS_A}" in me["groups"]
    assert me["clusterWide"] == []
    assert me["namespaces"] == [{"namespace": NS_A, "actions": [
        "flowruns", "workflows", "flows", "logs", "cancel", "rerun", "run"]}]  # fmt: skip
    code, bob = http(operator, "/api/v1/me", teams.bob)
    assert code == 200 and [n["namespace"] for n in bob["namespaces"]] == [NS_B], bob
    assert {"flowruns", "workflows", "flows"} <= set(bob["namespaces"][0]["actions"])
    assert not {"cancel", "rerun", "run"} & set(bob["namespaces"][0]["actions"])


def test_bob_reads_ns_b_and_may_not_cancel(
    cluster: ClusterHandle, operator: OperatorProcess, teams: Teams
) -> None:
    bob = sa(NS_B, "bob")
    assert {f"{NS_B}/b-done", f"{NS_B}/b-forever"} <= listed(operator, teams.bob)
    assert {r.split("/")[0] for r in listed(operator, teams.bob)} == {NS_B}
    refused(http(operator, f"/api/v1/flowruns/{NS_B}/b-forever/cancel", teams.bob, "POST"),
            f"{bob} cannot patch flowruns in {NS_B}")  # fmt: skip
    refused(http(operator, f"/api/v1/flowruns/{NS_B}/b-done/rerun", teams.bob, "POST"),
            f"{bob} cannot create flowruns in {NS_B}")  # fmt: skip
    assert phase(cluster, NS_B, "b-forever") == "Deployed"
    audit = [line for line in operator.text().splitlines() if "audit {" in line]
    assert any(f'"user": "{bob}"' in line and '"result": "refused"' in line for line in audit)


def test_logs_follow_whether_the_role_grants_pods_log(
    cluster: ClusterHandle, operator: OperatorProcess, teams: Teams
) -> None:
    logs = f"/api/v1/flowruns/{NS_B}/b-done/tasks/only/logs"
    # Kubernetes' built-in view role grants pods/log (its bootstrap policy), so bob may.
    can = cluster.kubectl("auth", "can-i", "get", "pods", "--subresource=log", "-n", NS_B,
                          "--as", sa(NS_B, "bob"), check=False).stdout.strip()  # fmt: skip
    code, body = http(operator, logs, teams.bob)
    assert (can, code) == ("yes", 200) and "attempt 1" in body, body
    # carol may read the runs, not the pods' logs
    assert http(operator, f"/api/v1/flowruns/{NS_B}/b-done", teams.carol)[0] == 200
    refused(http(operator, logs, teams.carol), f"{sa(NS_B, 'carol')} cannot get pods/log in {NS_B}")


def test_mallory_is_refused_everywhere(operator: OperatorProcess, teams: Teams) -> None:
    mallory = sa(NS_A, "mallory")
    for path in ("/api/v1/flowruns", "/api/v1/workflows", "/api/v1/flows"):
        assert listed(operator, teams.mallory, path) == set(), path
    for ns, prefix in ((NS_A, "a"), (NS_B, "b")):
        run = f"/api/v1/flowruns/{ns}/{prefix}-done"
        for path, method in ((run, "GET"), (f"{run}/tasks/only/logs", "GET"),
                             (f"{run}/rerun", "POST"), (f"{run}/cancel", "POST")):  # fmt: skip
            refused(http(operator, path, teams.mallory, method),
                    f"{mallory} cannot get flowruns in {ns}")  # fmt: skip
    code, me = http(operator, "/api/v1/me", teams.mallory)
    assert code == 200 and me["namespaces"] == [] and me["clusterWide"] == [], me


def test_a_garbage_token_is_401(operator: OperatorProcess, teams: Teams) -> None:
    for token in ("garbage", teams.alice[:-4] + "AAAA", None):
        for path in ("/api/v1/me", "/api/v1/flowruns", f"/api/v1/flowruns/{NS_A}/a-done"):
            code, body = http(operator, path, token)
            assert (code, body["error"]) == (401, "Unauthorized"), (token, path, body)
    assert "garbage" not in operator.text() and teams.alice not in operator.text()


def test_a_deleted_accounts_token_is_refused_within_a_minute(
    cluster: ClusterHandle, operator: OperatorProcess, teams: Teams
) -> None:
    _apply(cluster, NS_A, account("temp"), binding("temp-edit", "temp", "edit"))
    token = token_of(cluster, NS_A, "temp")
    assert http(operator, "/api/v1/me", token)[0] == 200
    cluster.kubectl("-n", NS_A, "delete", "serviceaccount", "temp")
    wait_for("the token refused", lambda: http(operator, "/api/v1/me", token)[0] == 401, 75, 2)


async def test_in_the_browser_alice_sees_ns_a_and_bobs_cancel_is_disabled(
    page: Any,  # noqa: F811 (test_dashboard's browser fixture)
    operator: OperatorProcess,
    teams: Teams,
) -> None:
    from playwright.async_api import expect

    await sign_in(page, operator.url("/#/runs"), teams.alice)
    rows = page.locator("tr.run")
    await expect(rows).to_have_count(2)
    assert {await r.get_attribute("data-run") for r in await rows.all()} == {
        f"{NS_A}/a-forever", f"{NS_A}/a-done"}  # fmt: skip
    await expect(page.locator("#whoami")).to_have_text("signed in as alice")
    await page.goto(operator.url("/#/flows"))
    alices_run = page.locator(f'tr.flow[data-flow="{NS_A}/nightly"] button.run')
    await expect(alices_run).to_be_enabled()
    await page.goto(operator.url("/#/runs"))
    await page.click("#logout")  # the sign-in box again, in the same tab

    await page.fill("#token", teams.bob)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#whoami")).to_have_text("signed in as bob")
    forever = page.locator(f'tr.run[data-run="{NS_B}/b-forever"]')
    await expect(forever.locator("button.cancel")).to_be_disabled()
    assert await forever.locator("button.cancel").get_attribute("title") == (
        f"You (bob) cannot cancel runs in {NS_B}."
    )
    assert {(await r.get_attribute("data-run") or "").split("/")[0] for r in await rows.all()} == {
        NS_B
    }
    # The Flows page: bob (view) may not create flowruns, so Run is greyed with the reason.
    await page.goto(operator.url("/#/flows"))
    bobs_run = page.locator(f'tr.flow[data-flow="{NS_B}/nightly"] button.run')
    await expect(bobs_run).to_be_disabled()
    assert await bobs_run.get_attribute("title") == f"You (bob) cannot run flows in {NS_B}."


def test_the_audit_is_read_by_an_admin_and_refused_to_others(
    cluster: ClusterHandle, operator: OperatorProcess, teams: Teams
) -> None:
    """Actions by alice (a rerun, done) and bob (a cancel, refused) appear in
    GET /api/v1/audit for ops, bound to `admin` cluster-wide (the flowops-io-admin role
    aggregates `list audits` into it); alice and mallory are refused it."""
    _apply(cluster, NS_A, account("ops"))
    crb = f"ops-admin-{SUFFIX}"
    cluster.kubectl("create", "clusterrolebinding", crb, "--clusterrole=admin",
                    f"--serviceaccount={NS_A}:ops")  # fmt: skip
    try:
        ops = token_of(cluster, NS_A, "ops")
        code, body = http(operator, f"/api/v1/flowruns/{NS_A}/a-done/rerun", teams.alice, "POST")
        assert code == 201, body
        code, _ = http(operator, f"/api/v1/flowruns/{NS_B}/b-forever/cancel", teams.bob, "POST")
        assert code == 403

        def entries(**query: str) -> list[dict[str, Any]]:
            path = "/api/v1/audit?" + "&".join(f"{k}={v}" for k, v in query.items())
            code, body = http(operator, path, ops)
            assert code == 200, body
            return list(body["items"])

        alice, bob = sa(NS_A, "alice"), sa(NS_B, "bob")
        wait_for("both actions in the audit table", lambda: (
            any(e["action"] == "rerun" and e["name"] == "a-done" for e in entries(user=alice))
            and any(e["name"] == "b-forever" for e in entries(user=bob))), 30)  # fmt: skip
        # Newest first: the module's earlier tests audited actions of these users too
        # (bob's refused cancel of b-forever among them), so this test's are the first.
        rerun = next(e for e in entries(user=alice) if e["action"] == "rerun")
        assert (rerun["namespace"], rerun["kind"], rerun["result"]) == (NS_A, "FlowRun", "done")
        assert rerun["created"] and f"system:serviceaccounts:{NS_A}" in rerun["groups"]
        cancel = next(e for e in entries(user=bob, namespace=NS_B) if e["name"] == "b-forever")
        assert cancel["result"] == "refused" and cancel["status"] == 403
        assert f"cannot patch flowruns in {NS_B}" in cancel["detail"]
        newest = entries(limit="1")
        assert len(newest) == 1
        for token, who in ((teams.alice, alice), (teams.mallory, sa(NS_A, "mallory"))):
            refused(http(operator, "/api/v1/audit", token),
                    f"{who} cannot list audits cluster-wide (the audit is for admins: "
                    "docs/security.md)")  # fmt: skip
    finally:
        cluster.kubectl("delete", "clusterrolebinding", crb, check=False)
