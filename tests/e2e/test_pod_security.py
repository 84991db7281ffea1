"""Pod Security "restricted" on the local control plane (docs/security.md, "Hardening the
workloads"): the operator runs with `--default-security-context restricted`, and each test's
namespace enforces `restricted` (the API server's PodSecurity admission, as on any cluster).

- a FlowRun whose tasks set no securityContext runs to Completed there, its Job's pod
  carrying the default;
- a task that asks for `privileged: true` is refused by admission (the Job controller's
  FailedCreate), and the run Fails naming Pod Security and the API server's words;
- a Workflow service there gets its pods (GREEN);
- with an operator on `--default-security-context none` instead, a Workflow service's pods
  are refused, and its status says so (`pods refused by Pod Security: ...`, RED);
- a task's `valueFrom.secretKeyRef` reaches its Job's pod spec as a reference: the
  Secret's value is in neither the Job nor the FlowRun.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    _OPERATORS,
    OK,
    ClusterHandle,
    OperatorProcess,
    flowctl,
    flowrun,
    task,
    wait_for,
)

pytestmark = pytest.mark.e2e
# A refused pod fails its task after 3 s here (60 s by default).
OPERATOR_ARGS = ["--all-namespaces", "--default-security-context", "restricted",
                 "--crash-grace-seconds", "3"]  # fmt: skip
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


class Namespace:
    """The test's namespace, labelled to enforce Pod Security restricted."""

    def __init__(self, cluster: ClusterHandle, name: str) -> None:
        self.cluster, self.name = cluster, name
        cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
                        "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("-n", self.name, "apply", "-f", "-", input=yaml.safe_dump(obj))

    def get(self, *args: str) -> dict[str, Any]:
        return self.cluster.get_json("-n", self.name, *args)

    def run_status(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            status = self.get("flowrun", name).get("status") or {}
            return status if status.get("phase") in phases else None

        return wait_for(f"flow run {name} in {phases}", ended, timeout)

    def job_of(self, run: str, task_name: str) -> dict[str, Any]:
        selector = f"flowops.io/flowrun={run},flowops.io/task={task_name}"
        (job,) = self.get("jobs", "-l", selector).get("items", [])
        return job


@pytest.fixture
def ns(cluster: ClusterHandle, namespace: str, operator: OperatorProcess) -> Namespace:
    return Namespace(cluster, namespace)


def test_the_namespace_refuses_a_pod_without_the_default(ns: Namespace) -> None:
    """The witness: the API server here enforces restricted on a bare pod."""
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
            "spec": {"containers": [{"name": "c", "image": OK}]}}  # fmt: skip
    done = ns.cluster.kubectl("-n", ns.name, "apply", "-f", "-", input=yaml.safe_dump(bare),
                              check=False)  # fmt: skip
    assert done.returncode != 0 and 'violates PodSecurity "restricted:latest"' in done.stderr


def test_a_run_with_the_restricted_default_completes(ns: Namespace) -> None:
    ns.apply(flowrun("hardened", [task("extract"), task("load", dependsOn=["extract"])]))
    status = ns.run_status("hardened", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Completed", status
    pod = ns.job_of("hardened", "load")["spec"]["template"]["spec"]
    assert pod["securityContext"] == RESTRICTED_POD
    assert pod["containers"][0]["securityContext"] == RESTRICTED_CONTAINER


def test_a_privileged_task_is_refused_and_the_run_says_why(ns: Namespace) -> None:
    privileged = task("probe", containerSecurityContext={"privileged": True})
    ns.apply(flowrun("privileged", [privileged]))
    status = ns.run_status("privileged", "Completed", "Failed", "Crashed", timeout=90)
    assert (status["phase"], status["reason"]) == ("Failed", "TaskFailed"), status
    assert status["message"].startswith("task probe failed: pod refused by Pod Security: ")
    assert 'violates PodSecurity "restricted:latest": privileged' in status["message"]
    (line,) = status["tasks"]
    assert (line["status"], line["reason"]) == ("Failed", "PodSecurity")
    # the refusal is the Job controller's: no pod was ever made
    assert not ns.get("pods", "-l", "flowops.io/flowrun=privileged").get("items", [])


def test_a_workflow_service_gets_its_pods(ns: Namespace) -> None:
    wf = {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "serving"},
          "spec": {"desiredStatus": "PUBLISHED", "services": [
              {"id": "api", "image": OK, "replicas": 2,
               "containerSecurityContext": {"readOnlyRootFilesystem": True}}]}}  # fmt: skip
    ns.apply(wf)
    wait_for(
        "the Workflow GREEN",
        lambda: (ns.get("workflow", "serving").get("status") or {}).get("actualStatus") == "GREEN",
        60,
    )
    pods = ns.get("pods", "-l", "flowops.io/workflow=serving").get("items", [])
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["securityContext"] == RESTRICTED_POD
        assert pod["spec"]["containers"][0]["securityContext"] == {
            **RESTRICTED_CONTAINER,
            "readOnlyRootFilesystem": True,
        }


@pytest.fixture
def ns_on_none(ns: Namespace, operator: OperatorProcess, tmp_path: Path) -> Iterator[Namespace]:
    """The namespace with an operator of its own on `--default-security-context none`; the
    module's (restricted, every namespace) is stopped meanwhile so that only this one acts."""
    operator.stop()
    proc = OperatorProcess(ns.cluster.kubeconfig, tmp_path / "operator.log",
                           ["--namespace", ns.name, "--default-security-context", "none"])  # fmt: skip
    _OPERATORS.append(proc)
    try:
        proc.start()
        yield ns
    finally:
        proc.stop()
        _OPERATORS.remove(proc)
        operator.start()


def test_a_workflow_whose_pods_are_refused_says_so(ns_on_none: Namespace) -> None:
    ns = ns_on_none
    wf = {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "bare"},
          "spec": {"desiredStatus": "PUBLISHED", "services": [
              {"id": "api", "image": OK, "replicas": 2}]}}  # fmt: skip
    ns.apply(wf)

    def refused() -> dict[str, Any] | None:
        services = ((ns.get("workflow", "bare").get("status") or {}).get("details") or {}).get(
            "services"
        ) or [{}]
        return services[0] if services[0].get("message") else None

    api = wait_for("the service's message", refused, 60)
    assert api["message"].startswith("pods refused by Pod Security: "), api
    assert 'violates PodSecurity "restricted:latest"' in api["message"]
    assert (api["actual"], api["status"], api["rolloutStatus"]) == (0, "RED", "InProgress")
    # the Deployment's own condition, which the message quotes
    (deployment,) = ns.get("deployments", "-l", "flowops.io/workflow=bare")["items"]
    (failure,) = [c for c in deployment["status"]["conditions"] if c["type"] == "ReplicaFailure"]
    assert failure["reason"] == "FailedCreate"
    assert api["message"] == f"pods refused by Pod Security: {failure['message']}"
    assert not ns.get("pods", "-l", "flowops.io/workflow=bare").get("items", [])
    # flowctl status prints the message under the component table, on the service's line
    out = flowctl(ns.cluster, "status", "bare", "-n", ns.name).stdout
    assert f"  api: {api['message']}" in out.splitlines(), out


def test_a_secret_key_ref_reaches_the_pod_spec_not_its_value(ns: Namespace) -> None:
    value = "s3cr3t-e2e-7b1f"
    ns.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "stringData": {"password": value}})  # fmt: skip
    ref = {"secretKeyRef": {"name": "db", "key": "password"}}
    ns.apply(flowrun("secret-env", [task("load", env=[{"name": "DB_PASSWORD", "valueFrom": ref}])]))
    status = ns.run_status("secret-env", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Completed", status
    job = ns.job_of("secret-env", "load")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "DB_PASSWORD", "valueFrom": ref} in env
    (pod,) = ns.get("pods", "-l", "flowops.io/flowrun=secret-env").get("items", [])
    assert {"name": "DB_PASSWORD", "valueFrom": ref} in pod["spec"]["containers"][0]["env"]
    for obj in (job, ns.get("flowrun", "secret-env")):
        assert value not in json.dumps(obj)


def test_env_with_both_value_and_value_from_is_refused_at_admission(ns: Namespace) -> None:
    both = {"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}
    done = ns.cluster.kubectl("-n", ns.name, "apply", "-f", "-", check=False,
                              input=yaml.safe_dump(flowrun("both", [task("a", env=[both])])))  # fmt: skip
    assert done.returncode != 0
    assert "env[] takes exactly one of value or valueFrom" in done.stderr
