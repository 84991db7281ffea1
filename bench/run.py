"""Benchmarks of the operator on the local control plane (docs/performance.md).

    make bench                                  # S1 then S2, each on a fresh cluster
    BENCH_SIZE=1000 BENCH_RUNS=500 make bench   # the targets of issue 7
    .venv/bin/python bench/run.py --scenario s2 --runs 100

S1: N Workflows x 3 services, measured against the limit Kubernetes itself sets (when the
Deployments became available). An independent watch in this process timestamps (1) each
Deployment becoming available and (2) each Workflow turning GREEN, so both figures carry
the same watch latency.

S2: M FlowRuns x 5 tasks (bench/s2.py): submit-to-Deployed and submit-to-Completed
latency, completed runs per minute, Jobs created against expected, next to the Job
controller's own throughput on the same cluster (the same Jobs created without the
operator).

Each scenario prints a table and writes bench/results/<s1|s2>-<size>-<stamp>.json. Not part
of `make test` (a smoke run of each is: tests/e2e/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (  # bench/common.py: the script's directory is on sys.path
    GROUP,
    REQUESTS,
    ROOT,
    VERSION,
    Cluster,
    CpuMeter,
    Operator,
    RoundTrip,
    StatusRoundTrip,
    custom_object,
    log,
    ms,
    pct,
    proc_cpu_seconds,
    proc_peak_rss_mib,
    provenance,
    report,
    start_watch,
)
from kubernetes import client

PLURAL = "workflows"


@dataclass
class Observations:
    """What the independent watches saw, with the local clock."""

    deploy_available: dict[str, float] = field(default_factory=dict)  # ns/name -> t
    deploy_workflow: dict[str, str] = field(default_factory=dict)  # ns/deploy -> ns/workflow
    green: dict[str, float] = field(default_factory=dict)  # ns/workflow -> t
    green_status: dict[str, Any] | None = None  # the first GREEN status seen
    workflow_writes: int = 0
    deployment_writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.workflow_writes, self.deployment_writes

    def deployment(self, ev: dict[str, Any]) -> None:
        d = ev["object"]
        meta, spec, st = d["metadata"], d.get("spec") or {}, d.get("status") or {}
        key = f"{meta['namespace']}/{meta['name']}"
        with self.lock:
            if ev["type"] == "MODIFIED":
                self.deployment_writes += 1
            self.deploy_workflow[key] = (
                f"{meta['namespace']}/{meta['labels']['flowops.io/workflow']}"
            )
            want = spec.get("replicas") or 0
            if st.get("availableReplicas", 0) >= want and st.get("updatedReplicas", 0) >= want:
                self.deploy_available.setdefault(key, time.time())

    def workflow(self, ev: dict[str, Any]) -> None:
        o = ev["object"]
        key = f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        with self.lock:
            if ev["type"] == "MODIFIED":
                self.workflow_writes += 1
            if (o.get("status") or {}).get("actualStatus") == "GREEN":
                self.green.setdefault(key, time.time())
                self.green_status = self.green_status or o["status"]


def workflow(name: str, services: int) -> dict[str, Any]:
    services_ = [
        {"id": f"s{i}", "image": "registry.local/bench:1", "replicas": 1, "resources": REQUESTS}
        for i in range(services)
    ]
    spec = {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC", "services": services_}
    return custom_object("Workflow", name, spec)


TRACE = re.compile(
    r"flow_operator\.trace: (start workflow|write workflow) (\S+) t=([\d.]+) "
    r"(?:waited=([\d.]+) urgent=(\d)|took=([\d.]+) color=(\w+))"
)
PAUSE = re.compile(r"flow_operator\.trace: (gc|stall) t=([\d.]+) (?:took|late)=([\d.]+)")


def tail_steps(
    logfile: Path, keys: list[str], available: dict[str, float], green: dict[str, float]
) -> list[dict[str, Any]]:
    """Where each of `keys`' lag went, in ms, from the operator's `--trace` lines: the
    benchmark saw the last Deployment available -> the change reached the operator's work
    queue (`arrive`, may be negative: another change was waiting already) -> its reconcile
    started (`wait`; `behind_write`: the part of it a status write of the same Workflow
    was still running) -> the GREEN write left (`work`) -> it was answered (`write`) -> the
    benchmark's watch saw it (`seen`). Within the whole lag, `gc_ms` is how long the
    operator stood still in full garbage collections, `stall_ms` how late its event loop
    ran (both at once count twice: a collection stalls the loop)."""
    starts: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
    writes: dict[str, list[tuple[float, float, str]]] = {k: [] for k in keys}
    pauses: dict[str, list[tuple[float, float]]] = {"gc": [], "stall": []}  # (from, to)
    with logfile.open(errors="replace") as f:
        for line in f:
            if p := PAUSE.search(line):
                pauses[p[1]].append((float(p[2]) - float(p[3]), float(p[2])))
                continue
            m = TRACE.search(line)
            if m is None or m[2] not in starts:
                continue
            if m[1].startswith("start"):
                starts[m[2]].append((float(m[3]), float(m[4])))
            else:
                writes[m[2]].append((float(m[3]), float(m[6]), m[7]))
    out = []
    for key in keys:
        answered, took, _ = next((w for w in writes[key] if w[2] == "GREEN"), (0, 0, ""))
        sent = answered - took
        started, waited = max((s for s in starts[key] if s[0] <= sent + 0.001), default=(0, 0))
        if not answered or not started:  # no trace of the GREEN write or of its reconcile
            out.append({"workflow": key, "lag_ms": ms(green[key] - available[key])})
            continue
        arrived = started - waited
        before = [w[0] for w in writes[key] if w[0] < sent]
        out.append({
            "workflow": key,
            "lag_ms": ms(green[key] - available[key]),
            "arrive_ms": ms(arrived - available[key]),
            "wait_ms": ms(waited),
            "behind_write_ms": ms(max(0.0, min(before[-1], started) - arrived)) if before else 0,
            "work_ms": ms(sent - started),
            "write_ms": ms(took),
            "seen_ms": ms(green[key] - answered),
            **{
                f"{kind}_ms": ms(sum(
                    max(0.0, min(end, green[key]) - max(begin, available[key]))
                    for begin, end in spans
                ))
                for kind, spans in pauses.items()
            },
        })  # fmt: skip
    return out


def s1(cluster: Cluster, a: argparse.Namespace, results_dir: Path) -> dict[str, Any]:
    """S1: N Workflows x 3 services applied at once; (a)..(e) of docs/performance.md."""
    ns = cluster.namespace("bench")
    results: dict[str, Any] = {**provenance(), "size": a.size, "services": a.services}
    results["nodes"] = a.nodes
    custom = client.CustomObjectsApi()
    op = Operator(cluster.kubeconfig, cluster.log("operator-s1"), *(["--trace"] * a.trace))
    results["startup_s"] = round(op.start(), 2)
    obs, stop = Observations(), threading.Event()
    start_watch(
        stop, obs.deployment, client.AppsV1Api().list_namespaced_deployment, ns,
        label_selector="app.kubernetes.io/managed-by=flow-operator",
    )  # fmt: skip
    start_watch(
        stop, obs.workflow, custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
    )
    # the API server's own write -> watch latency meanwhile: the floor under (b), for its
    # cheapest write and for the write the operator makes (a Workflow-shaped status)
    roundtrip = RoundTrip(cluster.namespace("bench-roundtrip"), stop)
    roundtrip.start()
    status_trip = StatusRoundTrip(cluster, "bench-roundtrip", stop)
    status_trip.start()
    time.sleep(1)

    names = [f"wf-{i:05d}" for i in range(a.size)]
    log(f"S1: applying {a.size} Workflows x {a.services} services")
    meter = CpuMeter({**cluster.pids(), "operator": op.pid})
    meter.start()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    spy = (
        op.profile(a.py_spy, results_dir / f"s1-{a.size}-{stamp}-converge.txt")
        if a.py_spy
        else None
    )
    t0 = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda n: custom.create_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, workflow(n, a.services)
                ),
                names,
            )
        )
    results["apply_s"] = round(time.time() - t0, 2)
    deadline = t0 + max(300, a.size * 1.5)
    while time.time() < deadline and len(obs.green) < a.size:
        time.sleep(0.5)
        available, green = len(obs.deploy_available), len(obs.green)
        status_trip.template = status_trip.template or obs.green_status
        log(f"  {available}/{a.size * a.services} Deployments available, {green}/{a.size} GREEN")
    if len(obs.green) < a.size:
        log("not every Workflow turned GREEN before the deadline")
    cpu = meter.stop()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    with obs.lock:
        last_available: dict[str, float] = {}
        for dep, t in obs.deploy_available.items():
            wf = obs.deploy_workflow[dep]
            last_available[wf] = max(t, last_available.get(wf, 0))
        lags = [obs.green[wf] - t for wf, t in last_available.items() if wf in obs.green]
        bound = max(last_available.values(), default=t0) - t0
        conv = max(obs.green.values(), default=t0) - t0
    results["s1_green"] = len(obs.green)
    results["s1_convergence_s"] = round(conv, 3)
    results["s1_lower_bound_s"] = round(bound, 3)
    results["s1_ratio"] = round(conv / bound, 3) if bound else None
    results["s1_lag_p50_ms"] = round(pct(lags, 0.5) * 1000, 1)
    results["s1_lag_p99_ms"] = round(pct(lags, 0.99) * 1000, 1)
    results["s1_lag_max_ms"] = round(max(lags, default=float("nan")) * 1000, 1)
    results["s1_lag_mean_ms"] = round(statistics.fmean(lags) * 1000, 1) if lags else None
    # a status turning GREEN is one write and one watch event: the lag's floor, measured
    # while the Workflows converged (t0 -> last GREEN)
    results.update(roundtrip.figures(t0, t0 + conv, "s1_apiserver"))
    results.update(status_trip.figures(t0, t0 + conv, "s1_status_floor"))
    results["s1_cpu_pct"] = cpu  # % of one core, per process, until all were GREEN
    # the operator's status writes (it is the only writer of Workflows) until all were GREEN
    results["s1_status_writes_per_workflow"] = round(obs.counts()[0] / a.size, 2)
    # where the lag goes, by the operator's own histograms: waiting in the queue, reconciling
    results["s1_operator_queue"] = op.histograms("workflow", "workflows")
    if a.trace:  # the slowest 1%, step by step, from the operator's trace
        lag_of = {wf: obs.green[wf] - t for wf, t in last_available.items() if wf in obs.green}
        slowest = sorted(lag_of, key=lag_of.__getitem__)[-max(5, a.size // 100) :]
        results["s1_tail"] = tail_steps(op.logfile, slowest, last_available, obs.green)
        for row in results["s1_tail"]:
            log("  tail " + " ".join(f"{k.removesuffix('_ms')}={v}" for k, v in row.items()))

    log(f"steady state: {a.steady:.0f} s with nothing changing")
    time.sleep(3)
    w0, d0 = obs.counts()
    cpu0 = proc_cpu_seconds(op.pid)
    time.sleep(a.steady)
    w1, d1 = obs.counts()
    results["idle_cpu_pct"] = round((proc_cpu_seconds(op.pid) - cpu0) / a.steady * 100, 2)
    results["steady_workflow_writes"] = w1 - w0
    results["steady_deployment_writes"] = d1 - d0
    results["peak_rss_mib"] = round(proc_peak_rss_mib(op.pid), 1)

    log("re-applying every Workflow unchanged")
    w0, d0 = obs.counts()
    manifests = "\n---\n".join(json.dumps(workflow(n, a.services)) for n in names)
    applied = cluster.kubectl("-n", ns, "apply", "-f", "-", input=manifests)
    time.sleep(5)
    w1, d1 = obs.counts()
    results["reapply_objects"] = len(applied.splitlines())  # kubectl's line per object
    results["reapply_workflow_writes"] = w1 - w0
    results["reapply_deployment_writes"] = d1 - d0

    log("restart: kill -9, start again")
    w0, d0 = obs.counts()
    op.kill()
    results["restart_ready_s"] = round(op.start(), 2)
    spy = (
        op.profile(a.py_spy, results_dir / f"s1-{a.size}-{stamp}-restart.txt") if a.py_spy else None
    )
    probe = names[0]
    t_change = time.time()
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        probe,
        {"spec": {"services": workflow(probe, a.services)["spec"]["services"][:-1]}},
    )
    seen = None
    while time.time() - t_change < 60 and seen is None:
        o = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, probe)
        if (
            len(((o.get("status") or {}).get("details") or {}).get("services") or [])
            == a.services - 1
        ):
            seen = time.time() - t_change
        time.sleep(0.05)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    results["restart_serving_s"] = round(results["restart_ready_s"] + (seen or float("nan")), 2)
    time.sleep(3)
    w1, d1 = obs.counts()
    # the probe's own change causes one Workflow write and one Deployment delete (not counted)
    results["restart_spurious_workflow_writes"] = max(0, w1 - w0 - 2)
    results["restart_deployment_writes"] = d1 - d0
    results["peak_rss_mib_after_restart"] = round(proc_peak_rss_mib(op.pid), 1)
    stop.set()
    op.kill()
    report(results, results_dir, f"s1-{a.size}")
    return results


def main() -> int:
    import s2  # bench/s2.py; it imports common, as this module does

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--scenario", choices=("s1", "s2", "all"), default="all",
        help="S1 (Workflows), S2 (FlowRuns) or both, S1 first (default all)",
    )  # fmt: skip
    p.add_argument("--size", type=int, default=int(os.environ.get("BENCH_SIZE", "100")))
    p.add_argument("--services", type=int, default=3)
    p.add_argument("--steady", type=float, default=float(os.environ.get("BENCH_STEADY", "60")))
    s2.add_arguments(p)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument(
        "--trace", action="store_true",
        help="S1: run the operator with --trace and report where the slowest 1%% of the "
        "status lag went (s1_tail)",
    )  # fmt: skip
    p.add_argument("--dir", default=str(ROOT / ".cluster-bench"))
    p.add_argument("--keep", action="store_true", help="leave the last cluster running")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"), help="output directory")
    a = p.parse_args()
    results_dir = Path(a.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    scenarios = {"s1": [s1], "s2": [s2.s2], "all": [s1, s2.s2]}[a.scenario]
    for i, scenario in enumerate(scenarios):
        try:
            # a fresh cluster each time: etcd's data does not outlive `down`
            scenario(Cluster.up(a.dir, a.nodes), a, results_dir)
        finally:
            Operator.kill_all()
            if not (a.keep and i == len(scenarios) - 1):
                Cluster.down(a.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
