"""The local control plane is the real thing: controllers, scheduler and kwok's fake
kubelets move Deployments, Jobs and pods as a cluster would, and `make cluster-down` leaves
no process behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ROOT, ClusterHandle, localcluster, wait_for

pytestmark = pytest.mark.e2e


def apply(cluster: ClusterHandle, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(obj))


def deployment(name: str, image: str = "registry.example.com/web:1", **resources: str) -> Any:
    container: dict[str, Any] = {"name": "main", "image": image}
    if resources:
        container["resources"] = {"requests": resources}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [container]}}},
    }  # fmt: skip


def job(name: str, image: str) -> Any:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "main", "image": image}]}}},
    }  # fmt: skip


def test_deployment_replicaset_pod_ready(cluster: ClusterHandle, namespace: str) -> None:
    apply(cluster, namespace, deployment("web"))

    def available() -> Any:
        d = cluster.get_json("-n", namespace, "deployment", "web")
        return d.get("status", {}).get("availableReplicas") == 2 and d

    d = wait_for("Deployment web available", available, 60)
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
    rs = cluster.get_json("-n", namespace, "replicasets", "-l", "app=web")["items"]
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    pods = cluster.get_json("-n", namespace, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"]
        assert pod["spec"]["nodeName"].startswith("kwok-node-")  # the real scheduler chose
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"


def test_unschedulable_pod_carries_the_schedulers_message(
    cluster: ClusterHandle, namespace: str
) -> None:
    apply(cluster, namespace, deployment("huge", memory="64Gi"))

    def unschedulable() -> Any:
        for pod in cluster.get_json("-n", namespace, "pods", "-l", "app=huge").get("items", []):
            for c in pod.get("status", {}).get("conditions", []):
                if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                    return c
        return None

    condition = wait_for("an Unschedulable pod", unschedulable, 60)
    assert condition["status"] == "False"
    assert "0/3 nodes are available" in condition["message"]
    assert "Insufficient memory" in condition["message"]


@pytest.mark.parametrize(
    ("image", "phase", "exit_code", "reason"),
    [
        ("registry.example.com/task:1", "Succeeded", 0, "Completed"),
        ("kwok.flowops.test/fail", "Failed", 1, "Error"),
        ("kwok.flowops.test/oomkill", "Failed", 137, "OOMKilled"),
    ],
)
def test_job_pods_follow_the_kwok_stages(
    cluster: ClusterHandle, namespace: str, image: str, phase: str, exit_code: int, reason: str
) -> None:
    apply(cluster, namespace, job("task", image))

    def finished() -> Any:
        pods = cluster.get_json("-n", namespace, "pods", "-l", "job-name=task").get("items", [])
        done = [p for p in pods if p.get("status", {}).get("phase") in ("Succeeded", "Failed")]
        return done[0] if done else None

    pod = wait_for(f"the Job's pod to finish ({image})", finished, 60)
    assert pod["status"]["phase"] == phase
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (exit_code, reason)
    # Logs come through the API server's pods/log, served by kwok as a kubelet would.
    logs = cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"]).stdout
    assert "working" in logs and "done" in logs
    condition = "Complete" if phase == "Succeeded" else "Failed"

    def job_condition() -> Any:
        j = cluster.get_json("-n", namespace, "job", "task")
        return any(
            c["type"] == condition and c["status"] == "True"
            for c in j.get("status", {}).get("conditions", [])
        )

    wait_for(f"Job condition {condition}", job_condition, 60)


def test_crashloop_image_is_running_but_never_ready(cluster: ClusterHandle, namespace: str) -> None:
    apply(cluster, namespace, deployment("crashy", image="kwok.flowops.test/crashloop"))

    def waiting() -> Any:
        for pod in cluster.get_json("-n", namespace, "pods", "-l", "app=crashy").get("items", []):
            for status in pod.get("status", {}).get("containerStatuses", []):
                if status.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
                    return pod
        return None

    pod = wait_for("a CrashLoopBackOff pod", waiting, 60)
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["restartCount"] > 0


def test_make_cluster_up_and_down_leave_no_process_behind(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    env = {**os.environ, "FLOW_NODES": "1"}

    def make(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", target, f"CLUSTER_DIR={state}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    up = make("cluster-up")
    assert up.returncode == 0, up.stdout + up.stderr
    local = localcluster.Cluster(state)
    try:
        assert local.api_ready()
        pids = local.pids()
        assert set(pids) == set(localcluster.COMPONENTS)
        again = make("cluster-up")  # idempotent: the same processes keep running
        assert again.returncode == 0 and "already running" in again.stdout
        assert local.pids() == pids
    finally:
        down = make("cluster-down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert local.stray_processes() == []
    assert not any(localcluster._alive(pid) for pid in pids.values())
    twice = make("cluster-down")  # idempotent too
    assert twice.returncode == 0 and "not running" in twice.stdout
