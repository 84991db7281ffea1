"""High availability: operator replicas with --leader-election (a Lease, flow_operator/leader.py).

Exactly one replica acts: the other says it stands by, reconciles nothing (its metrics
count no reconcile) and writes nothing (its log has no Job, Deployment or Lease of its
own). Killed with SIGKILL, the leader is replaced no sooner than its Lease could have
lapsed and no later than the Lease plus two retries (bounds from leader.py's timings), and
a FlowRun started just before the failover gets each Job exactly once. Stopped
gracefully, the leader releases the Lease and a standby takes over at its next try.
Frozen (SIGSTOP) for longer than the Lease, an old leader wakes up to find it lost and
acts no more: the API server's audit log (the replica runs as the local cluster's audited
WITNESS user) shows no write of it after it woke.

These replicas are this module's own processes, confined to the test's namespace (and
their Lease in it); the module uses no `operator` fixture, so nothing else acts there.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from flow_operator.kube.leader import LeaderElector
from tests.e2e import results
from tests.e2e.conftest import _OPERATORS, ClusterHandle, OperatorProcess, localcluster, wait_for

pytestmark = pytest.mark.e2e
IMAGE = "registry.example.com/flows/app:1"
DAG = ("extract", "train", "publish")
WRITES = re.compile(r"created Job|applied (Deployment|Service)|deleted (Deployment|Service|Job)")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
# What the operator runs with (leader.py's defaults): the bounds below follow from them.
_ELECTOR = inspect.signature(LeaderElector).parameters
LEASE_S, RETRY_S = float(_ELECTOR["duration"].default), float(_ELECTOR["retry"].default)
# A standby takes over once it has seen no renewal for LEASE_S on its own clock, looking
# every RETRY_S: the leader's last renewal was at most RETRY_S before the kill, and the
# standby saw it at most RETRY_S after it was written. So a takeover comes no sooner than
# LEASE_S - RETRY_S after a kill (else two could act), and no later than LEASE_S +
# 2 RETRY_S; the margin is for a round trip and this test's log poll on a busy machine.
MARGIN_S = 2.0
TAKEOVER_MIN_S = LEASE_S - RETRY_S - 1.0
TAKEOVER_MAX_S = LEASE_S + 2 * RETRY_S + MARGIN_S
# A graceful stop releases the Lease after stopping its queues; the standby takes it at
# its next try (at most RETRY_S later).
HANDOVER_MAX_S = RETRY_S + MARGIN_S + 1.0


def dag_run(name: str) -> dict[str, Any]:
    tasks = [{"name": t, "version": "1", "image": IMAGE} for t in DAG]
    for i in range(1, len(tasks)):
        tasks[i]["dependsOn"] = [DAG[i - 1]]
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
            "spec": {"flowName": "ha", "version": "1", "tasks": tasks}}  # fmt: skip


def workflow(name: str) -> dict[str, Any]:
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC",
                     "services": [{"id": "api", "image": IMAGE, "replicas": 2}]}}  # fmt: skip


class Replicas:
    def __init__(self, cluster: ClusterHandle, namespace: str, tmp: Path) -> None:
        self.cluster, self.ns, self.tmp = cluster, namespace, tmp
        self.procs: list[OperatorProcess] = []

    def start(self, kubeconfig: Path | None = None) -> OperatorProcess:
        proc = OperatorProcess(
            kubeconfig or self.cluster.kubeconfig,
            self.tmp / f"replica-{len(self.procs)}.log",
            ["--namespace", self.ns, "--leader-election", "--leader-election-namespace", self.ns],
        )
        self.procs.append(proc)
        _OPERATORS.append(proc)  # its log goes into a failing test's report
        proc.start()
        return proc

    def holder(self) -> str | None:
        lease = self.cluster.get_json("-n", self.ns, "lease", "flow-operator")
        return (lease.get("spec") or {}).get("holderIdentity") or None

    def leader(self) -> OperatorProcess:
        """The replica the Lease names (identity: <hostname>-<pid>)."""

        def named() -> OperatorProcess | None:
            holder = self.holder()
            for p in self.procs:
                alive = p.proc is not None and p.proc.poll() is None
                if alive and holder == identity(p) and "became the leader" in p.text():
                    return p
            return None

        found: OperatorProcess = wait_for("a leader", named, 60)
        return found

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("-n", self.ns, "apply", "-f", "-", input=yaml.safe_dump(obj))

    def phase(self, run: str) -> str | None:
        status = self.cluster.get_json("-n", self.ns, "flowrun", run).get("status") or {}
        return status.get("phase")

    def jobs(self) -> dict[str, str]:
        items = self.cluster.get_json("-n", self.ns, "jobs").get("items", [])
        return {j["metadata"]["name"]: j["metadata"]["uid"] for j in items}


def identity(p: OperatorProcess) -> str:
    assert p.proc is not None
    return f"{socket.gethostname()}-{p.proc.pid}"


def reconciles(p: OperatorProcess) -> float:
    """How many reconciles this replica ran (its reconcile-duration histogram's count)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(p.metrics_text())
        for s in family.samples
        if s.name == "flowops_reconcile_duration_seconds_count"
    )


@pytest.fixture
def replicas(cluster: ClusterHandle, namespace: str, tmp_path: Path) -> Iterator[Replicas]:
    if os.environ.get("POD_NAME"):
        pytest.skip("POD_NAME is set: every replica would have the same identity")
    r = Replicas(cluster, namespace, tmp_path)
    try:
        yield r
    finally:
        for p in r.procs:
            p.stop()
            _OPERATORS.remove(p)


def test_one_replica_acts_and_a_standby_takes_over_after_kill_9(replicas: Replicas) -> None:
    a, b = replicas.start(), replicas.start()
    leader = replicas.leader()
    standby = b if leader is a else a
    wait_for("the standby to say it stands by",
             lambda: f"is held by {identity(leader)}" in standby.text(), 30)  # fmt: skip

    replicas.apply(workflow("served"))
    replicas.apply(dag_run("before"))
    wait_for("run Completed", lambda: replicas.phase("before") == "Completed", 90)
    wait_for("Workflow GREEN", lambda: (replicas.cluster.get_json(
        "-n", replicas.ns, "workflow", "served").get("status") or {}).get("actualStatus") == "GREEN",
        60)  # fmt: skip
    # Only the leader acted: its log has the writes, its metrics the reconciles.
    assert len(re.findall(r"created Job", leader.text())) == len(DAG)
    assert "applied Deployment" in leader.text()
    assert not WRITES.search(standby.text()), standby.text()[-3000:]
    assert reconciles(leader) > 0 and reconciles(standby) == 0

    # A run whose first Job exists when the leader dies without a word.
    replicas.apply(dag_run("failover"))
    first = wait_for("the first Job", lambda: replicas.jobs().get("failover-extract"), 60)
    assert leader.proc is not None
    os.kill(leader.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    leader.proc.wait(timeout=10)
    wait_for("the standby to take over", lambda: "became the leader" in standby.text(), 60,
             every=0.1)  # fmt: skip
    takeover = time.monotonic() - killed
    print(f"\nHA: the standby took over {takeover:.1f} s after the leader was killed")
    assert TAKEOVER_MIN_S <= takeover <= TAKEOVER_MAX_S, (
        f"takeover took {takeover:.1f} s; promised {TAKEOVER_MIN_S}-{TAKEOVER_MAX_S} s"
    )
    assert replicas.holder() == identity(standby)
    wait_for("the run Completed", lambda: replicas.phase("failover") == "Completed", 90)
    jobs = replicas.jobs()
    assert sorted(n for n in jobs if n.startswith("failover-")) == sorted(
        f"failover-{t}" for t in DAG
    )
    assert jobs["failover-extract"] == first, "the first Job was made again"
    status = replicas.cluster.get_json("-n", replicas.ns, "flowrun", "failover")["status"]
    assert [h["phase"] for h in status["history"]] == [
        "Submitted", "Queued", "Deployed", "Completed"]  # fmt: skip
    # Between them the two replicas created each Job of the run exactly once.
    created = Counter(m.group(1) for p in (leader, standby)
                      for m in re.finditer(r"created Job [^/\s]+/(failover-\S+)", p.text()))  # fmt: skip
    assert created == Counter(f"failover-{t}" for t in DAG), created
    results.record("ha_kill", {
        "lease_s": LEASE_S, "retry_s": RETRY_S,
        "takeover_s": round(takeover, 1),
        "takeover_bounds_s": [TAKEOVER_MIN_S, TAKEOVER_MAX_S],
        "jobs_created_per_task": sorted(set(created.values())),
    })  # fmt: skip


def test_a_gracefully_stopped_leader_hands_over_at_once(replicas: Replicas) -> None:
    a, b = replicas.start(), replicas.start()
    leader = replicas.leader()
    standby = b if leader is a else a
    wait_for("the standby to stand by", lambda: "standing by" in standby.text(), 30)
    stopping = time.monotonic()
    leader.stop()  # SIGTERM: queues stopped, then the Lease released
    assert "released the leader Lease" in leader.text()
    wait_for("the standby to take over", lambda: "became the leader" in standby.text(), 30,
             every=0.1)  # fmt: skip
    handover = time.monotonic() - stopping
    print(f"\nHA: graceful handover in {handover:.1f} s (SIGTERM to the new leader)")
    assert handover <= HANDOVER_MAX_S, f"handover took {handover:.1f} s"
    replicas.apply(dag_run("after"))
    wait_for("run Completed", lambda: replicas.phase("after") == "Completed", 90)
    results.record("ha_handover", {"handover_s": round(handover, 1),
                                   "handover_bound_s": HANDOVER_MAX_S})  # fmt: skip


def witness_kubeconfig(cluster: ClusterHandle, tmp: Path) -> Path:
    """A kubeconfig for the local cluster's audited user (localcluster.WITNESS, a
    ServiceAccount bound to cluster-admin): every request made with it is in the audit log."""
    _, _, namespace, name = localcluster.WITNESS.split(":")  # system:serviceaccount:<ns>:<name>
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    token = cluster.kubectl("-n", namespace, "create", "token", name, "--duration=1h").stdout
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token.strip()}
    path = tmp / "witness.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def witnessed(cluster: ClusterHandle, since: datetime) -> list[dict[str, Any]]:
    """The audit log's entries of the WITNESS user's requests received since `since`."""
    assert cluster.root is not None
    out = []
    for line in (
        localcluster.Cluster(cluster.root).audit_log.read_text(errors="replace").splitlines()
    ):
        entry = json.loads(line)
        when = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if (entry.get("user") or {}).get("username") == localcluster.WITNESS and when >= since:
            out.append(entry)
    return out


def test_a_frozen_leader_wakes_up_to_a_lost_lease_and_acts_no_more(
    replicas: Replicas, tmp_path: Path
) -> None:
    """SIGSTOP the leader past its Lease: the standby takes over and runs a new FlowRun.
    SIGCONT: the old leader's watches deliver that run's events at once, but its Lease is
    past the renew deadline, so its queues act on none of them; it stops itself. The
    leader runs as the audited WITNESS user: the API server's audit log, not only its own
    log, shows that after waking it read the Lease and wrote nothing at all."""
    if replicas.cluster.root is None:
        pytest.skip("needs the local control plane's audit log (not FLOW_E2E_KUBECONFIG)")
    began = datetime.now(UTC)
    leader = replicas.start(witness_kubeconfig(replicas.cluster, tmp_path))
    assert replicas.leader() is leader
    standby = replicas.start()
    wait_for("the standby to stand by", lambda: "standing by" in standby.text(), 30)
    # The audit log sees the witness: its Lease renewals as the leader (every RETRY_S).
    renewals = wait_for("the leader's Lease renewals in the audit log", lambda: [
        e for e in witnessed(replicas.cluster, began)
        if e["verb"] == "update" and e["objectRef"].get("resource") == "leases"], 10)  # fmt: skip
    assert leader.proc is not None
    os.kill(leader.proc.pid, signal.SIGSTOP)
    try:
        wait_for("the standby to take over", lambda: "became the leader" in standby.text(),
                 60, every=0.2)  # fmt: skip
        replicas.apply(dag_run("while-frozen"))
        wait_for("run Completed", lambda: replicas.phase("while-frozen") == "Completed", 90)
        mark = len(leader.text())
        # Whatever the audit log holds from now on, the frozen process sent after waking
        # (a request sent before its freeze was received long before).
        woke = datetime.now(UTC)
    finally:
        os.kill(leader.proc.pid, signal.SIGCONT)
    wait_for("the old leader to exit", lambda: leader.proc is not None and
             leader.proc.poll() is not None, 60)  # fmt: skip
    woke_log = leader.text()[mark:]
    assert "lost the leader Lease" in woke_log or "is held by" in woke_log, woke_log
    assert not WRITES.search(woke_log), woke_log

    # The API server's record: after waking it read the Lease (so the audit log does see
    # it), and wrote nothing: no status, no Job, no Event, not even the Lease.
    def since_waking() -> list[dict[str, Any]]:
        entries = witnessed(replicas.cluster, woke)
        lease_read = any(e["verb"] == "get" and e["objectRef"].get("resource") == "leases"
                         for e in entries)  # fmt: skip
        return entries if lease_read else []

    after = wait_for("the woken leader's Lease read in the audit log", since_waking, 10)
    writes = [(e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("subresource"),
               e["objectRef"].get("name"), (e.get("responseStatus") or {}).get("code"))
              for e in after if e["verb"] in WRITE_VERBS]  # fmt: skip
    assert writes == [], f"the woken ex-leader wrote: {writes}"
    assert replicas.holder() == identity(standby)
    assert sorted(n for n in replicas.jobs() if n.startswith("while-frozen-")) == sorted(
        f"while-frozen-{t}" for t in DAG
    )
    results.record("ha_frozen", {
        "renewals_audited_before_freeze": len(renewals),
        "requests_after_waking": dict(Counter(
            f"{e['verb']} {e['objectRef'].get('resource')}" for e in after)),
        "writes_after_waking": len(writes),
    })  # fmt: skip
