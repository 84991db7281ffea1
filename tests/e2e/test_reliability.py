"""Reliability under faults, end to end on the local control plane (docs/reliability.md).

- conflicts: spec edits racing the operator's status writes, and a foreign writer
  clobbering the status, end with the status matching the final spec;
- API server outage: kube-apiserver really stopped (its process gone, port closed) for
  ~20 s in the middle of a rollout; the operator lives through it (same pid) and catches up;
- chaos: publish/unpublish cycles and FlowRuns while the operator is killed with SIGKILL at
  random moments and restarted; afterwards every Workflow's status matches the cluster,
  every FlowRun Completed once with its whole history, no Job twice, no orphan.

The short versions run in `make test`; `make chaos` runs the long ones
(FLOW_CHAOS_N=50 cycles, FLOW_OUTAGE_SECONDS, FLOW_CHAOS_SEED to replay a run) and keeps
what they measured (tests/e2e/results.py).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.e2e import results
from tests.e2e.conftest import ClusterHandle, OperatorProcess, localcluster, wait_for

pytestmark = pytest.mark.e2e

CHAOS_N = int(os.environ.get("FLOW_CHAOS_N", "8"))
OUTAGE_SECONDS = float(os.environ.get("FLOW_OUTAGE_SECONDS", "20"))
IMAGE = "registry.example.com/flows/app:1"
DAG = ("extract", "train", "publish")
# After the API returns, the operator retries what failed at most this far apart: kopf's
# watches (main.py, RetryForever: 0.5, 1, 2, then every 5 s) and the work queue's backoff
# for "unreachable or busy" (workqueue.py). Each reaction is promised within that, plus
# a margin for one reconcile and this test's poll (a kubectl list) on a busy machine.
RETRY_CAP_S = 5.0
REACTION_BOUND_S = RETRY_CAP_S + 5.0
# The chaos test's budget, sized to its cycles: each cycle is two applies, a Job listing
# and at most 1.5 s of pacing (50 cycles took 100-124 s: ~2.2 s each); settling after the
# last kill is a few reconciles of everything (10-18 s at 50 cycles). Its pytest timeout
# covers both and the fixtures, so a slow run fails with its own message, not the suite's
# 300 s timeout (pyproject).
CYCLE_BUDGET_S = 4.0
SETTLE_BUDGET_S = 60.0 + 2.0 * CHAOS_N
CHAOS_TIMEOUT_S = 90 + CYCLE_BUDGET_S * CHAOS_N + SETTLE_BUDGET_S


def workflow(name: str, desired: str = "PUBLISHED", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "desiredStatus": desired,
            "publishingMode": "ASYNC",
            "services": [
                {"id": "api", "image": IMAGE, "replicas": replicas},
                {"id": "worker", "image": IMAGE, "replicas": 1},
            ],
        },
    }


def dag_run(name: str) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    for i, task in enumerate(DAG):
        line: dict[str, Any] = {"name": task, "version": "1", "image": IMAGE}
        if i:
            line["dependsOn"] = [DAG[i - 1]]
        tasks.append(line)
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name},
        "spec": {"flowName": "chaos", "version": "1", "tasks": tasks},
    }


class Ns:
    """kubectl in one namespace, and the checks the tests share."""

    def __init__(self, cluster: ClusterHandle, namespace: str) -> None:
        self.cluster, self.ns = cluster, namespace

    def apply(self, *objs: dict[str, Any]) -> None:
        docs = yaml.safe_dump_all(list(objs))
        self.cluster.kubectl("-n", self.ns, "apply", "-f", "-", input=docs)

    def items(self, kind: str, *args: str) -> list[dict[str, Any]]:
        return list(self.cluster.get_json("-n", self.ns, kind, *args).get("items", []))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get_json("-n", self.ns, kind, name)

    def workflow_matches_cluster(self, wf: dict[str, Any]) -> str | None:
        """None when the Workflow's status tells the truth about its Deployments, else why not."""
        name, spec = wf["metadata"]["name"], wf["spec"]
        status = wf.get("status") or {}
        if status.get("observedGeneration") != wf["metadata"]["generation"]:
            return f"{name}: observedGeneration {status.get('observedGeneration')} != generation"
        if status.get("desiredStatus") != spec["desiredStatus"]:
            return f"{name}: status says {status.get('desiredStatus')}"
        deployments = self.items("deployments", "-l", f"flowops.io/workflow={name}")
        if spec["desiredStatus"] == "UNPUBLISHED":
            if deployments:
                return f"{name}: unpublished, yet {len(deployments)} Deployments"
            if status.get("details") != {} or status.get("actualStatus") != "GREEN":
                return f"{name}: unpublished, status {status.get('actualStatus')}"
            return None
        wanted = {s["id"]: s.get("replicas", 1) for s in spec["services"]}
        found = {
            d["metadata"]["labels"]["flowops.io/component"]: d for d in deployments
        }  # fmt: skip
        if set(found) != set(wanted) or len(deployments) != len(wanted):
            return f"{name}: Deployments {sorted(found)} for services {sorted(wanted)}"
        for cid, dep in found.items():
            ready = (dep.get("status") or {}).get("readyReplicas", 0)
            if dep["spec"]["replicas"] != wanted[cid] or ready != wanted[cid]:
                return f"{name}/{cid}: Deployment {ready}/{dep['spec']['replicas']} ready"
        if status.get("actualStatus") != "GREEN":
            return f"{name}: {status.get('actualStatus')} with every Deployment ready"
        shown = {s["id"]: (s["desired"], s["actual"]) for s in status["details"]["services"]}
        if shown != {cid: (n, n) for cid, n in wanted.items()}:
            return f"{name}: status shows {shown}, spec wants {wanted}"
        return None

    def stalled_steps(self, seen: dict[str, float], since: float) -> str:
        """What stands between now and the end, step by step, when a wait timed out: the
        operator's steps (seen, with their time) and the cluster's (ReplicaSets and Jobs
        made pods? the scheduler bound them? kwok ran them?), so that a stall of the
        cluster's controllers is told apart from the operator's."""
        lines = ["operator's steps seen (s after the API returned): " + ", ".join(
            f"{fact} {when - since:.1f}" for fact, when in sorted(seen.items(), key=lambda i: i[1]))]  # fmt: skip
        for dep in self.items("deployments"):
            st = dep.get("status") or {}
            lines.append(f"Deployment {dep['metadata']['name']}: spec {dep['spec']['replicas']}, "
                         f"replicas {st.get('replicas', 0)}, ready {st.get('readyReplicas', 0)}")  # fmt: skip
        for job in self.items("jobs"):
            st = job.get("status") or {}
            lines.append(f"Job {job['metadata']['name']}: active {st.get('active', 0)}, "
                         f"succeeded {st.get('succeeded', 0)}")  # fmt: skip
        owners: dict[str, Counter[str]] = {}
        for pod in self.items("pods"):
            owner = next(iter(pod["metadata"].get("ownerReferences") or []), {})
            key = f"{owner.get('kind', '-')} {owner.get('name', '-')}"
            phase = (pod.get("status") or {}).get("phase", "-")
            bound = "bound" if pod["spec"].get("nodeName") else "unbound (scheduler)"
            owners.setdefault(key, Counter())[f"{phase} {bound}"] += 1
        lines += [f"pods of {key}: {dict(c)}" for key, c in sorted(owners.items())]
        if not owners:
            lines.append("no pods (ReplicaSet / Job controllers made none)")
        return "\n".join(lines)

    def orphans(self) -> list[str]:
        """Deployments and Services no PUBLISHED Workflow of this namespace wants."""
        published = {
            w["metadata"]["name"]: {s["id"] for s in w["spec"]["services"]}
            for w in self.items("workflows")
            if w["spec"]["desiredStatus"] == "PUBLISHED"
        }
        out = []
        for kind in ("deployments", "services"):
            for obj in self.items(kind, "-l", "app.kubernetes.io/managed-by"):
                labels = obj["metadata"]["labels"]
                owner = labels.get("flowops.io/workflow")
                if labels.get("flowops.io/component") not in published.get(owner, set()):
                    out.append(f"{kind}/{obj['metadata']['name']}")
        return out


@pytest.fixture
def ns(cluster: ClusterHandle, namespace: str, operator: OperatorProcess) -> Ns:
    return Ns(cluster, namespace)


# --- conflicts ---------------------------------------------------------------------------


def test_spec_edits_racing_status_writes_end_consistent(ns: Ns) -> None:
    """Many quick replica edits while the operator reconciles and writes status, and a
    foreign writer overwriting the status: the end state is the last spec, told truly."""
    began = time.monotonic()
    ns.apply(workflow("racing"))
    rng = random.Random(7)
    counts = [rng.randint(1, 6) for _ in range(15)]
    for n in counts:  # as fast as kubectl goes: each edit lands mid-reconcile
        patch = [{"op": "replace", "path": "/spec/services/0/replicas", "value": n}]
        ns.cluster.kubectl("-n", ns.ns, "patch", "workflow", "racing", "--type=json",
                           "-p", json.dumps(patch))  # fmt: skip
    final = counts[-1]

    def consistent() -> bool:
        wf = ns.get("workflow", "racing")
        return wf["spec"]["services"][0]["replicas"] == final and (
            ns.workflow_matches_cluster(wf) is None
        )

    wait_for(f"status consistent with replicas={final}", consistent, 90)
    wf = ns.get("workflow", "racing")
    assert wf["metadata"]["generation"] >= 2
    assert wf["status"]["observedGeneration"] == wf["metadata"]["generation"]

    # A foreign writer (say, an old replica that missed its demotion) overwrites the status
    # with a stale, wrong one: the operator notices through the watch and puts it right.
    stale = {"status": {"desiredStatus": "PUBLISHED", "actualStatus": "RED",
                        "publishingMode": "ASYNC", "details": {}}}  # fmt: skip
    ns.cluster.kubectl("-n", ns.ns, "patch", "workflow", "racing", "--subresource=status",
                       "--type=merge", "-p", json.dumps(stale))  # fmt: skip
    wait_for(
        "the status written right again",
        lambda: ns.workflow_matches_cluster(ns.get("workflow", "racing")) is None,
        30,
    )
    results.record(
        "conflicts", {"edits": len(counts), "test_s": round(time.monotonic() - began, 1)}
    )


# --- API server outage -------------------------------------------------------------------


@pytest.fixture
def local(cluster: ClusterHandle) -> Any:
    if cluster.root is None:
        pytest.skip("needs the local control plane (not FLOW_E2E_KUBECONFIG): it stops its API")
    return localcluster.Cluster(cluster.root)


def test_api_server_outage_mid_rollout(ns: Ns, operator: OperatorProcess, local: Any) -> None:
    """kube-apiserver stopped for OUTAGE_SECONDS while a Workflow rolls out and a FlowRun
    runs. Afterwards the cluster's own controllers (and kwok) need a while to recover, so
    besides the time to GREEN/Completed from the API's return, each of the operator's
    reactions is timed from the later of the API's return and its trigger."""
    assert operator.proc is not None
    pid = operator.proc.pid
    ns.apply(dag_run("through-outage"))
    wait_for("the run Deployed", lambda: ns.items("jobs"), 60)
    # The Workflow is applied with the operator frozen, and the API stops before it thaws:
    # its whole rollout is left to do when the API returns (nothing exists yet).
    os.kill(pid, signal.SIGSTOP)
    try:
        ns.apply(workflow("rollout", replicas=3))
        stopped = time.monotonic()
        local.stop_component("kube-apiserver", timeout=5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not local.api_ready(timeout=1), "the API still answers"
    # The outage itself (not an assertion): check on the operator while the API is gone.
    while time.monotonic() - stopped < OUTAGE_SECONDS:
        assert operator.proc.poll() is None, "the operator died during the outage"
        time.sleep(0.5)
    local.start_component("kube-apiserver")
    back = time.monotonic()
    print(f"\nAPI server down for {back - stopped:.1f} s")

    seen: dict[str, float] = {}  # fact -> when this test first saw it (monotonic)

    def note(fact: str, true: bool) -> None:
        if true:
            seen.setdefault(fact, time.monotonic())

    def caught_up() -> bool:
        items = ns.items("deployments,jobs,workflows,flowruns")
        kinds: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            kinds.setdefault(item["kind"], []).append(item)
        deps = kinds.get("Deployment", [])
        note("deployments exist", len(deps) == 2)
        note("deployments ready", len(deps) == 2 and all(
            (d.get("status") or {}).get("readyReplicas") == d["spec"]["replicas"] for d in deps))  # fmt: skip
        jobs = {j["metadata"]["labels"]["flowops.io/task"]: j for j in kinds.get("Job", [])}
        for task, job in jobs.items():
            note(f"job {task} created", True)
            conditions = (job.get("status") or {}).get("conditions") or []
            note(f"job {task} complete", any(
                c["type"] == "Complete" and c["status"] == "True" for c in conditions))  # fmt: skip
        wf = next(iter(kinds.get("Workflow", [])), {})
        note("workflow GREEN", bool(wf) and ns.workflow_matches_cluster(wf) is None)
        run = next(iter(kinds.get("FlowRun", [])), {})
        note("run Completed", (run.get("status") or {}).get("phase") == "Completed")
        return "workflow GREEN" in seen and "run Completed" in seen

    try:
        wait_for("Workflow GREEN and FlowRun Completed after the outage", caught_up, 240, every=0.1)
    except AssertionError as e:  # say whose step stalled: the operator's or the cluster's
        raise AssertionError(f"{e}\n{ns.stalled_steps(seen, back)}") from None
    green, completed = seen["workflow GREEN"] - back, seen["run Completed"] - back
    # The operator's reactions, each timed from the later of the API's return and its trigger
    # (the Deployments: from the API's return, as none existed when it stopped).
    reactions = {
        "deployments exist": "",
        "workflow GREEN": "deployments ready",
        "job train created": "job extract complete",
        "job publish created": "job train complete",
        "run Completed": "job publish complete",
    }
    lags = {
        reaction: max(0.0, seen[reaction] - max(back, seen.get(trigger, back)))
        for reaction, trigger in reactions.items()
        if reaction in seen
    }
    print(f"after the API server returned: Workflow GREEN at {green:.1f} s, FlowRun Completed "
          f"at {completed:.1f} s; the operator's reactions took "
          + ", ".join(f"{k}: {v:.1f} s" for k, v in lags.items()))  # fmt: skip
    assert operator.proc.poll() is None and operator.proc.pid == pid, "the operator restarted"
    slow = {k: v for k, v in lags.items() if v > REACTION_BOUND_S}
    assert not slow, f"the operator took more than {REACTION_BOUND_S} s: {slow}"
    status = ns.get("flowrun", "through-outage")["status"]
    assert [h["phase"] for h in status["history"]] == [
        "Submitted", "Queued", "Deployed", "Completed"]  # fmt: skip
    assert sorted(j["metadata"]["name"] for j in ns.items("jobs")) == sorted(
        f"through-outage-{t}" for t in DAG
    )
    assert ns.orphans() == []
    results.record("outage", {
        "outage_asked_s": OUTAGE_SECONDS,
        "outage_s": round(back - stopped, 1),
        "reaction_bound_s": REACTION_BOUND_S,
        "reaction_s": {k: round(v, 2) for k, v in lags.items()},
        "reaction_max_s": round(max(lags.values()), 2),
        "workflow_green_s": round(green, 1),
        "run_completed_s": round(completed, 1),
    })  # fmt: skip


# --- chaos -------------------------------------------------------------------------------


class Killer(threading.Thread):
    """Kills the operator with SIGKILL at random moments and starts it again, until told
    to stop (and it has killed at least `minimum` times); leaves it running."""

    def __init__(self, operator: OperatorProcess, rng: random.Random, minimum: int) -> None:
        super().__init__(daemon=True)
        self.operator, self.rng, self.minimum = operator, rng, minimum
        self.kills = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not (self.done.is_set() and self.kills >= self.minimum):
                time.sleep(self.rng.uniform(0.3, 3.0))  # a random moment of its work
                proc = self.operator.proc
                assert proc is not None and proc.poll() is None, "the operator exited"
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                self.kills += 1
                self.operator.start()
        except BaseException as e:  # reported by the test
            self.error = e


@pytest.mark.timeout(CHAOS_TIMEOUT_S)
def test_chaos_operator_killed_at_random(ns: Ns, operator: OperatorProcess) -> None:
    seed = int(os.environ.get("FLOW_CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    names = [f"wf-{i}" for i in range(3)]
    print(f"\nchaos: seed {seed}, {CHAOS_N} cycles of {len(names)} Workflows, {CHAOS_N} runs")
    uids: dict[str, str] = {}
    recreated: list[str] = []

    def sample_jobs() -> None:
        for job in ns.items("jobs"):
            name, uid = job["metadata"]["name"], job["metadata"]["uid"]
            if uids.setdefault(name, uid) != uid:
                recreated.append(name)

    killer = Killer(operator, rng, minimum=max(3, CHAOS_N // 2))
    killer.start()
    started = time.monotonic()
    try:
        for cycle in range(CHAOS_N):
            desired = ["PUBLISHED" if (cycle + i) % 2 == 0 else "UNPUBLISHED"
                       for i in range(len(names))]  # fmt: skip
            ns.apply(*(workflow(n, d) for n, d in zip(names, desired, strict=True)))
            ns.apply(dag_run(f"run-{cycle}"))
            sample_jobs()
            time.sleep(rng.uniform(0.2, 1.5))  # pacing, so kills land between and amid writes
    finally:
        killer.done.set()
        killer.join(timeout=60)  # its last kill and restart, or the kills it still owes
    assert not killer.is_alive(), "the killer did not stop"
    assert killer.error is None, f"killer: {killer.error!r}"
    chaos_for = time.monotonic() - started
    print(f"chaos: {killer.kills} kills in {chaos_for:.0f} s")
    assert chaos_for <= CYCLE_BUDGET_S * CHAOS_N + 60, f"{CHAOS_N} cycles took {chaos_for:.0f} s"

    runs = [f"run-{i}" for i in range(CHAOS_N)]

    def settled() -> list[str]:
        sample_jobs()
        problems = [
            p
            for w in ns.items("workflows")
            if (p := ns.workflow_matches_cluster(w)) is not None
        ]  # fmt: skip
        phases = {r["metadata"]["name"]: (r.get("status") or {}).get("phase")
                  for r in ns.items("flowruns")}  # fmt: skip
        problems += [f"{r}: {phases.get(r)}" for r in runs if phases.get(r) != "Completed"]
        return problems

    settle_from = time.monotonic()
    wait_for("everything settled", lambda: not settled(), SETTLE_BUDGET_S, every=1.0)
    settled_s = time.monotonic() - settle_from
    print(f"chaos: settled {settled_s:.0f} s after the last kill")

    # Every run: Completed once, its whole history, each task Succeeded, one Job per task.
    jobs = ns.items("jobs")
    per_run = Counter(j["metadata"]["labels"]["flowops.io/flowrun"] for j in jobs)
    for run in ns.items("flowruns"):
        name, status = run["metadata"]["name"], run["status"]
        assert [h["phase"] for h in status["history"]] == [
            "Submitted", "Queued", "Deployed", "Completed"], (name, status["history"])  # fmt: skip
        assert {t["name"]: t["status"] for t in status["tasks"]} == dict.fromkeys(
            DAG, "Succeeded"
        ), name
        assert per_run[name] == len(DAG), (name, per_run[name])
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(
        f"{r}-{t}" for r in runs for t in DAG
    )
    sample_jobs()
    assert recreated == [], f"Jobs deleted and made again: {recreated}"
    assert {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs} == {
        n: uids[n] for n in (j["metadata"]["name"] for j in jobs)
    }
    # Workflows: checked by settled(); and nothing left behind by unpublishing.
    assert ns.orphans() == []
    print(
        f"chaos: {killer.kills} SIGKILLs, {CHAOS_N * len(names)} publish/unpublish applies, "
        f"{len(runs)} runs Completed, {len(jobs)} Jobs (0 duplicates), 0 orphans"
    )
    completed = sum(
        (r.get("status") or {}).get("phase") == "Completed" for r in ns.items("flowruns")
    )  # fmt: skip
    results.record("chaos", {
        "seed": seed,
        "cycles": CHAOS_N,
        "kills": killer.kills,
        "chaos_s": round(chaos_for, 1),
        "applies": CHAOS_N * len(names),
        "runs_completed": completed,
        "jobs": len(jobs),
        "jobs_recreated": len(recreated),
        "orphans": len(ns.orphans()),
        "settled_s": round(settled_s, 1),
        "settle_budget_s": SETTLE_BUDGET_S,
        "timeout_s": CHAOS_TIMEOUT_S,
    })  # fmt: skip
