"""The HTTP API and flowctl against the real local cluster and a running operator.

Workflow status: the six reference examples, produced by real Deployments and pods (kwok
images choose Running, ContainerCreating; a huge request is Unschedulable), served by
the operator's API and compared with the golden documents field for field (pod names,
ages, times and the scheduler's wording normalised). Then the key checks, and the
flow-run endpoints and flowctl on real runs: list, search, tasks, logs through pods/log,
cancel and rerun.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ROOT, ClusterHandle, OperatorProcess, flowctl, wait_for
from tests.unit.api_contract import Subject, check_flow_run_contract

pytestmark = pytest.mark.e2e
GOLDEN = ROOT / "tests" / "golden" / "workflow"
KEY, OTHER_KEY, TOKEN = "key-for-this-workflow-0123", "key-of-another-one-4567", "op-token-89ab"
OK, CREATING = "registry.example.com/flows/svc:1", "kwok.flowops.test/creating"
HUGE = {"requests": {"memory": "64Gi"}}
# The operator's token Secret: flow-operator-api in its namespace ($POD_NAMESPACE unset).
TOKEN_SECRET = ("default", "flow-operator-api")


def http(
    operator: OperatorProcess, path: str, headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[int, Any]:  # fmt: skip
    req = urllib.request.Request(operator.url(path), headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as e:
        body, status = e.read().decode(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def secret(name: str, **values: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "flowops.io/api-key", "data": data}  # fmt: skip


def svc(id_: str, image: str = OK, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "image": image, "replicas": 1, **fields}


def workflow(name: str, mode: str, services: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "desiredStatus": "PUBLISHED", "publishingMode": mode, "services": services,
        "apiKeySecretRef": {"name": "keys"}, **spec,
    }  # fmt: skip
    if mode == "SYNC":
        body.setdefault("stream", svc("benthos"))
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name}, "spec": body}  # fmt: skip


SEED = "knowledge-m-f252bb2b"
# The six reference examples, and the Workflow that produces each on the local cluster.
SCENARIOS: dict[str, dict[str, Any]] = {
    "sync-published-green": workflow("sync-green", "SYNC", [svc(SEED)]),
    "sync-publishing-container-creating": workflow("sync-creating", "SYNC", [svc(SEED, CREATING)]),
    "sync-publishing-unschedulable": workflow("sync-unsched", "SYNC", [svc(SEED, resources=HUGE)]),
    "async-published-green": workflow("async-green", "ASYNC",
                                      [svc(SEED), svc("outprod-4b54ca80")]),
    "async-publishing-orange": workflow("async-orange", "ASYNC",
                                        [svc(SEED, CREATING), svc("outprod-4b54ca80", CREATING)]),
    "unpublished-after-publish": workflow("unpublished", "ASYNC", [svc(SEED)]),
}  # fmt: skip


def normalised(doc: Any) -> Any:
    """Pod names, ages, start times and the scheduler's wording vary; the rest must not."""
    if isinstance(doc, list):
        return [normalised(d) for d in doc]
    if not isinstance(doc, dict):
        return doc
    out = {k: normalised(v) for k, v in doc.items()}
    for key, placeholder in (("name", "<pod>"), ("age", "<age>"), ("startedAt", "<time>")):
        if key in out and "ready" in out:  # a replicasDetail entry
            out[key] = placeholder
    if "statusMessage" in out:
        out["statusMessage"] = "Insufficient memory" in out["statusMessage"]
    return out


@pytest.fixture(scope="module")
def token(cluster: ClusterHandle) -> Iterator[str]:
    ns, name = TOKEN_SECRET
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump(secret(name, token=TOKEN)))
    yield TOKEN
    cluster.kubectl("-n", ns, "delete", "secret", name, "--ignore-not-found", check=False)


def apply(cluster: ClusterHandle, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(obj))


def test_the_six_reference_examples_through_http(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, secret("keys", primary=KEY))
    for body in SCENARIOS.values():
        apply(cluster, namespace, body)
    unpublish = SCENARIOS["unpublished-after-publish"]["metadata"]["name"]
    key = {"X-API-KEY": KEY}

    def served(name: str, color: str) -> Any:
        code, doc = http(operator, f"/api/v1/runtime/workflow/{namespace}.{name}/action/status",
                         key)  # fmt: skip
        return doc if code == 200 and doc.get("actualStatus") == color else None

    wait_for("unpublished-after-publish GREEN first", lambda: served(unpublish, "GREEN"), 60)
    cluster.kubectl("-n", namespace, "patch", "workflow", unpublish, "--type=merge",
                    "-p", '{"spec": {"desiredStatus": "UNPUBLISHED"}}')  # fmt: skip
    for scenario, body in SCENARIOS.items():
        expected = json.loads((GOLDEN / f"{scenario}.json").read_text())
        name = body["metadata"]["name"]

        def matches(name: str = name, expected: Any = expected) -> Any:
            doc = served(name, expected["actualStatus"])
            return doc is not None and normalised(doc) == normalised(expected) and doc

        try:
            wait_for(f"{scenario} served as in the reference", matches, 60)
        except AssertionError:
            code, doc = http(operator, f"/api/v1/runtime/workflow/{namespace}.{name}/action/status",
                             key)  # fmt: skip
            assert normalised(doc) == normalised(expected), f"{scenario}: HTTP {code}"
            raise


def test_keys_are_checked_before_anything_is_revealed(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, secret("keys", primary=KEY))
    apply(cluster, namespace, secret("other-keys", primary=OTHER_KEY))
    apply(cluster, namespace, workflow("mine", "ASYNC", [svc("web")]))
    other = workflow("theirs", "ASYNC", [svc("web")], apiKeySecretRef={"name": "other-keys"})
    apply(cluster, namespace, other)
    never = workflow("never", "ASYNC", [svc("web")], desiredStatus="UNPUBLISHED")
    apply(cluster, namespace, never)
    path = f"/api/v1/runtime/workflow/{namespace}.mine/action/status"
    wait_for("mine served", lambda: http(operator, path, {"X-API-KEY": KEY})[0] == 200, 60)
    cases = {
        "no key": ({}, path, 401),
        "wrong key": ({"X-API-KEY": "nope"}, path, 401),
        "another workflow's key": ({"X-API-KEY": OTHER_KEY}, path, 401),
        "unknown workflow": ({"X-API-KEY": KEY}, f"/api/v1/runtime/workflow/{namespace}.ghost/action/status", 401),
        "never published": ({"X-API-KEY": KEY}, f"/api/v1/runtime/workflow/{namespace}.never/action/status", 404),
        "the right key, plain name": ({"X-API-KEY": KEY}, "/api/v1/runtime/workflow/mine/action/status", 200),
    }  # fmt: skip
    refusals = set()
    for what, (headers, url, expected) in cases.items():
        code, body = http(operator, url, headers)
        assert code == expected, (what, code, body)
        if code == 401 and headers:
            refusals.add(json.dumps(body, sort_keys=True))
    # A wrong key gets one answer, whether the workflow exists or is another's.
    assert len(refusals) == 1, refusals
    theirs = f"/api/v1/runtime/workflow/{namespace}.theirs/action/status"
    assert http(operator, theirs, {"X-API-KEY": OTHER_KEY})[0] == 200
    assert KEY not in operator.text() and OTHER_KEY not in operator.text()


def flowrun(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
            "spec": {"flowName": name, "version": "2", "runType": "API",
                     "configuration": {"name": "nightly"}, "tasks": tasks}}  # fmt: skip


def test_flow_runs_through_http(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess, token: str
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    apply(
        cluster,
        namespace,
        flowrun(
            "etl",
            [
                {"name": "extract", "image": OK},
                {"name": "load", "image": OK, "dependsOn": ["extract"]},
            ],
        ),
    )
    apply(cluster, namespace, flowrun("stuck", [{"name": "spin", "image": "kwok.flowops.test/crashloop"}]))  # fmt: skip
    run = f"/api/v1/flowruns/{namespace}"

    def status_of(name: str) -> str | None:
        code, body = http(operator, f"{run}/{name}", auth)
        return body.get("status") if code == 200 else None

    wait_for("etl Completed", lambda: status_of("etl") == "Completed", 60)
    wait_for("stuck Deployed", lambda: status_of("stuck") == "Deployed", 60)
    assert http(operator, f"{run}/etl")[0] == 401  # the operator token is required
    code, listed = http(operator, f"/api/v1/flowruns?namespace={namespace}", auth)
    rows = listed["items"]
    assert code == 200 and {r["name"] for r in rows} == {"etl", "stuck"}
    etl = next(r for r in rows if r["name"] == "etl")
    assert (etl["runType"], etl["configuration"], etl["version"]) == ("API", "nightly", "2")
    code, found = http(operator, f"/api/v1/flowruns?namespace={namespace}&search=complet", auth)
    assert [r["name"] for r in found["items"]] == ["etl"]
    code, one = http(operator, f"{run}/etl", auth)
    assert [(t["name"], t["status"]) for t in one["tasks"]] == [
        ("extract", "Succeeded"), ("load", "Succeeded")]  # fmt: skip
    code, text = http(operator, f"{run}/etl/tasks/load/logs", auth)
    # kwok's log of that very pod (the local cluster's pod-logs), through pods/log
    pod = one["tasks"][1]["pod"]
    assert code == 200 and text.startswith(f"pod {namespace}/{pod}: attempt 1 of Job etl-load ")
    assert text.splitlines()[-1] == f"done: {pod}, attempt 1", text
    code, answer = http(operator, f"{run}/stuck/cancel", auth, method="POST")
    assert code == 200, answer
    wait_for("stuck Cancelled", lambda: status_of("stuck") == "Cancelled", 60)
    assert http(operator, f"{run}/stuck/cancel", auth, method="POST")[0] == 409
    code, created = http(operator, f"{run}/etl/rerun", auth, method="POST")
    assert code == 201 and created["name"].startswith("etl-") and created["runType"] == "Manual"
    wait_for("the rerun Completed", lambda: status_of(created["name"]) == "Completed", 60)


def test_healthz_and_readyz(cluster: ClusterHandle, operator: OperatorProcess) -> None:
    """No credential needed; readiness in one word once the index holds every Workflow."""
    assert http(operator, "/healthz") == (200, {"status": "ok"})
    wait_for("ready", lambda: http(operator, "/readyz")[0] == 200, 30)
    assert http(operator, "/readyz") == (200, {"status": "ready", "reason": "indexed"})
    assert "ready: " in operator.text() and " workflows indexed" in operator.text()
    code, _ = http(operator, "/readyz", method="POST")
    assert code == 405


def test_readyz_says_forbidden_when_workflows_cannot_be_listed(
    cluster: ClusterHandle, namespace: str, tmp_path: Path
) -> None:
    """An operator whose ServiceAccount may do everything in its namespace but list
    Workflows: it starts and serves, /readyz says `not ready` and `forbidden`, no more;
    the API server's answer is in the log."""
    from tests.e2e.test_rbac import token_kubeconfig

    rules = [
        {"apiGroups": ["", "apps", "batch", "coordination.k8s.io", "events.k8s.io"],
         "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": ["flowops.io"], "resources": ["flowruns", "flowruns/status", "flows"],
         "verbs": ["*"]},
        {"apiGroups": ["flowops.io"], "resources": ["workflows"], "verbs": ["get", "watch"]},
    ]  # fmt: skip
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "no-list"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "no-list"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "no-list"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-list"},
         "subjects": [{"kind": "ServiceAccount", "name": "no-list", "namespace": namespace}]},
    ]  # fmt: skip
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(objects))
    kubeconfig = token_kubeconfig(cluster, namespace, "no-list", tmp_path / "no-list.kubeconfig")
    proc = OperatorProcess(kubeconfig, tmp_path / "operator.log", ["--namespace", namespace])
    proc.start()
    try:
        assert http(proc, "/healthz") == (200, {"status": "ok"})
        wait_for("readyz forbidden", lambda: http(proc, "/readyz")[1] == {
            "status": "not ready", "reason": "forbidden"}, 30)  # fmt: skip
        assert http(proc, "/readyz")[0] == 503
        wait_for("the reason in the log", lambda: "not ready: cannot list Workflows" in proc.text())
        assert "403" in proc.text() or "Forbidden" in proc.text()
    finally:
        proc.stop()


async def test_the_flow_run_contract_on_the_real_operator(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess, token: str
) -> None:
    """The contract the fake backend of the unit tests keeps (tests/unit/api_contract.py),
    here kept by the operator's own backend on real runs."""
    apply(cluster, namespace, flowrun("done", [{"name": "only", "image": OK}]))
    apply(cluster, namespace, flowrun("forever", [{"name": "spin", "image": "kwok.flowops.test/crashloop"}]))  # fmt: skip

    def phase(name: str) -> Any:
        return (cluster.get_json("-n", namespace, "flowrun", name).get("status") or {}).get("phase")

    wait_for("done Completed", lambda: phase("done") == "Completed", 60)
    wait_for("forever Deployed, its task Running", lambda: phase("forever") == "Deployed" and any(
        t.get("status") == "Running" and t.get("podName") for t in
        (cluster.get_json("-n", namespace, "flowrun", "forever").get("status") or {}).get("tasks", [])
    ), 60)  # fmt: skip

    async def settle() -> None:
        await asyncio.sleep(0.2)  # the operator acts by itself

    base = operator.url("")
    run = await check_flow_run_contract(Subject(base, token, namespace, settle, timeout=30))
    server = cluster.get_json("-n", namespace, "flowrun", "forever")["status"]
    assert (server["phase"], run["status"]) == ("Cancelled", "Cancelled")

    def forever_jobs() -> list[str]:
        jobs = cluster.get_json("-n", namespace, "jobs").get("items", [])
        return [j["metadata"]["name"] for j in jobs if j["metadata"]["name"].startswith("forever")]

    wait_for("the cancelled run's Jobs deleted", lambda: forever_jobs() == [], 30)


def test_flowctl_against_the_cluster(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    apply(cluster, namespace, flowrun("cli-run", [{"name": "only", "image": OK}]))
    ns = ["-n", namespace]

    def phase() -> str | None:
        done = flowctl(cluster, "run", "cli-run", *ns, "-o", "json")
        return json.loads(done.stdout)["status"] if done.returncode == 0 else None

    wait_for("cli-run Completed", lambda: phase() == "Completed", 60)
    table = flowctl(cluster, "runs", *ns)
    assert table.returncode == 0 and "cli-run" in table.stdout and "RUN TYPE" in table.stdout
    logs = flowctl(cluster, "logs", "cli-run", *ns)
    pod = json.loads(flowctl(cluster, "run", "cli-run", *ns, "-o", "json").stdout)["tasks"][0]
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[-1] == f"done: {pod['pod']}, attempt 1", logs.stdout
    rerun = flowctl(cluster, "rerun", "cli-run", *ns)
    assert rerun.returncode == 0 and "rerun of cli-run" in rerun.stdout
    done = flowctl(cluster, "cancel", "cli-run", *ns)
    assert done.returncode == 1 and "already finished (Completed)" in done.stderr
