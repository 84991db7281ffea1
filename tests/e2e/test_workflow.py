"""Workflows end to end on the local control plane: real API server, controllers, scheduler;
kwok plays the kubelets. The operator runs as a subprocess (fixture `operator`)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def _workflow(name: str, services: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "desiredStatus": "PUBLISHED",
            "publishingMode": "ASYNC",
            "services": services,
            **spec,
        },
    }


class Api:
    def __init__(self, cluster: Any, namespace: str) -> None:
        self.cluster, self.ns = cluster, namespace

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = self.cluster.kubectl("-n", self.ns, *args, input=input, check=check)
        return str(done.stdout)

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-o", "json", "--ignore-not-found", check=False)
        return json.loads(out) if out.strip() else None

    def status(self, name: str) -> dict[str, Any]:
        return (self.get("workflow", name) or {}).get("status") or {}

    def color(self, name: str) -> str | None:
        return self.status(name).get("actualStatus")

    def deployments(self, workflow: str) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "deployments", "-l", f"flowops.io/workflow={workflow}", "-o", "json"
        )
        return list(json.loads(out)["items"])


@pytest.fixture
def api(cluster: Any, namespace: str, operator: Any) -> Api:
    return Api(cluster, namespace)


def test_publish_goes_green_and_kubectl_shows_the_color(api: Api) -> None:
    api.apply(_workflow("shop", [
        {"id": "web", "image": "nginx:1.27", "replicas": 2, "ports": [{"name": "http", "containerPort": 80}]},
        {"id": "worker", "image": "busybox:1.36", "replicas": 1},
    ]))  # fmt: skip
    wait_for("GREEN", lambda: api.color("shop") == "GREEN", 90)
    status = api.status("shop")
    services = {s["id"]: s for s in status["details"]["services"]}
    assert services["web"]["desired"] == services["web"]["actual"] == 2
    assert services["web"]["rolloutStatus"] == "Complete"
    assert "rolloutStatusReason" not in services["web"]
    assert len(services["web"]["replicasDetail"]) == 2
    assert all(
        r["status"] == "Running" and r["ready"] and r["atLatestSpec"]
        for r in services["web"]["replicasDetail"]
    )
    assert all("startedAt" in r for r in services["web"]["replicasDetail"])
    assert status["observedGeneration"] == api.get("workflow", "shop")["metadata"]["generation"]  # type: ignore[index]
    table = api.kubectl("get", "workflows")
    assert table.split("\n")[0].split() == ["NAME", "DESIRED", "MODE", "COLOR", "SERVICES", "AGE"]
    assert table.split("\n")[1].split()[:5] == ["shop", "PUBLISHED", "ASYNC", "GREEN", "2/2"]
    assert api.get("service", "shop-web") is not None
    # kubectl wait works on the Ready condition (kstatus)
    api.kubectl("wait", "--for=condition=Ready", "workflow/shop", "--timeout=10s")


def test_green_follows_pod_readiness_within_seconds(api: Api) -> None:
    api.apply(_workflow("fast", [{"id": "a", "image": "x:1", "replicas": 1}]))
    wait_for("GREEN", lambda: api.color("fast") == "GREEN", 60)
    deployment = api.deployments("fast")[0]
    available = next(c for c in deployment["status"]["conditions"] if c["type"] == "Available")
    ready = next(c for c in api.status("fast")["conditions"] if c["type"] == "Ready")
    # both are second-precision stamps written by different processes
    lag = _ts(ready["lastTransitionTime"]) - _ts(available["lastTransitionTime"])
    assert lag <= 3, f"status went GREEN {lag}s after the Deployment became available"


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_unschedulable_service_is_orange_with_the_schedulers_message(api: Api) -> None:
    api.apply(_workflow("greedy", [
        {"id": "ok", "image": "x:1", "replicas": 1},
        {"id": "huge", "image": "x:1", "replicas": 1, "resources": {"requests": {"memory": "1000Gi"}}},
    ]))  # fmt: skip

    def unschedulable() -> dict[str, Any] | None:
        st = api.status("greedy")
        if st.get("actualStatus") != "ORANGE":
            return None
        huge = next(s for s in st["details"]["services"] if s["id"] == "huge")
        pods = huge.get("replicasDetail") or []
        return pods[0] if pods and pods[0]["status"] == "Unschedulable" else None

    pod = wait_for("ORANGE with an Unschedulable pod", unschedulable, 90)
    assert "Insufficient memory" in pod["statusMessage"]
    assert pod["ready"] is False and "startedAt" not in pod


def test_sync_workflow_with_stream(api: Api) -> None:
    api.apply(_workflow("live", [{"id": "scorer", "image": "x:1", "replicas": 2}],
                        publishingMode="SYNC", stream={"id": "benthos", "image": "benthos:4", "replicas": 1}))  # fmt: skip
    wait_for("GREEN", lambda: api.color("live") == "GREEN", 90)
    stream = api.status("live")["details"]["stream"]
    assert stream == {"id": "benthos", "desired": 1, "actual": 1, "status": "GREEN"}


def test_unpublish_removes_deployments_and_reads_green(api: Api) -> None:
    wf = _workflow("temp", [{"id": "a", "image": "x:1", "replicas": 1}])
    api.apply(wf)
    wait_for("GREEN", lambda: api.color("temp") == "GREEN", 60)
    wf["spec"]["desiredStatus"] = "UNPUBLISHED"
    api.apply(wf)
    wait_for("Deployments removed", lambda: api.deployments("temp") == [], 60)
    wait_for("UNPUBLISHED and GREEN", lambda: api.status("temp").get("desiredStatus") == "UNPUBLISHED"
          and api.color("temp") == "GREEN" and api.status("temp")["details"] == {}, 30)  # fmt: skip


def test_drift_is_corrected_and_spec_changes_roll_out(api: Api) -> None:
    wf = _workflow("drift", [{"id": "a", "image": "x:1", "replicas": 2}])
    api.apply(wf)
    wait_for("GREEN", lambda: api.color("drift") == "GREEN", 60)
    name = api.deployments("drift")[0]["metadata"]["name"]
    api.kubectl("scale", "deployment", name, "--replicas=5")
    wait_for(
        "replicas put back to 2", lambda: api.get("deployment", name)["spec"]["replicas"] == 2, 30
    )  # type: ignore[index]
    wf["spec"]["services"][0]["image"] = "x:2"
    api.apply(wf)

    def rolled() -> bool:
        d = api.get("deployment", name) or {}
        image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        return (
            image == "x:2"
            and api.color("drift") == "GREEN"
            and all(
                r["atLatestSpec"]
                for r in api.status("drift")["details"]["services"][0]["replicasDetail"]
            )
        )

    wait_for("rolled out to x:2 and GREEN", rolled, 90)


def test_reapplying_unchanged_workflow_writes_nothing(api: Api) -> None:
    wf = _workflow("calm", [{"id": "a", "image": "x:1", "replicas": 1}])
    api.apply(wf)
    wait_for("GREEN", lambda: api.color("calm") == "GREEN", 60)
    time.sleep(2)  # let the last events settle
    before = api.get("workflow", "calm")["metadata"]["resourceVersion"]  # type: ignore[index]
    dep_before = api.deployments("calm")[0]["metadata"]["resourceVersion"]
    api.apply(wf)
    time.sleep(4)
    assert api.get("workflow", "calm")["metadata"]["resourceVersion"] == before  # type: ignore[index]
    assert api.deployments("calm")[0]["metadata"]["resourceVersion"] == dep_before


def test_invalid_workflows_are_refused_with_the_field_named(api: Api) -> None:
    bad = _workflow("bad", [{"id": "a", "image": "x", "replicas": -1}], publishingMode="SYNC")
    out = api.cluster.kubectl(
        "-n", api.ns, "apply", "-f", "-", input=yaml.safe_dump(bad), check=False
    )
    assert out.returncode != 0
    assert "spec.services[0].replicas" in out.stderr and "spec.stream is required" in out.stderr
    assert api.get("workflow", "bad") is None
