"""Benchmark S1: N Workflows x 3 services on the local control plane, measured against the
limit Kubernetes itself sets (when the Deployments became available).

    make bench                 # BENCH_SIZE=100 by default
    BENCH_SIZE=1000 make bench

An independent watch in this process timestamps (1) each Deployment becoming available and
(2) each Workflow turning GREEN, so both figures carry the same watch latency. Prints a
table and writes bench/results/s1-<size>-<stamp>.json. Not part of `make test` (a smoke
run with a few Workflows is: tests/e2e/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "flowops.io", "v1alpha1", "workflows"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Observations:
    """What the independent watches saw, with the local clock."""

    deploy_available: dict[str, float] = field(default_factory=dict)  # ns/name -> t
    deploy_workflow: dict[str, str] = field(default_factory=dict)  # ns/deploy -> ns/workflow
    green: dict[str, float] = field(default_factory=dict)  # ns/workflow -> t
    workflow_writes: int = 0
    deployment_writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.workflow_writes, self.deployment_writes


def _watch_deployments(obs: Observations, ns: str, stop: threading.Event) -> None:
    apps = client.AppsV1Api()
    w = watch.Watch()
    while not stop.is_set():
        for ev in w.stream(
            apps.list_namespaced_deployment,
            ns,
            timeout_seconds=30,
            label_selector="app.kubernetes.io/managed-by=flow-operator",
        ):
            d = ev["object"]
            key = f"{d.metadata.namespace}/{d.metadata.name}"
            with obs.lock:
                if ev["type"] == "MODIFIED":
                    obs.deployment_writes += 1
                obs.deploy_workflow[key] = (
                    f"{d.metadata.namespace}/{d.metadata.labels['flowops.io/workflow']}"
                )
                want = d.spec.replicas or 0
                st = d.status
                if (st.available_replicas or 0) >= want and (st.updated_replicas or 0) >= want:
                    obs.deploy_available.setdefault(key, time.time())
            if stop.is_set():
                break


def _watch_workflows(obs: Observations, ns: str, stop: threading.Event) -> None:
    api = client.CustomObjectsApi()
    w = watch.Watch()
    while not stop.is_set():
        for ev in w.stream(
            api.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, timeout_seconds=30
        ):
            o = ev["object"]
            key = f"{o['metadata']['namespace']}/{o['metadata']['name']}"
            with obs.lock:
                if ev["type"] == "MODIFIED":
                    obs.workflow_writes += 1
                if (o.get("status") or {}).get("actualStatus") == "GREEN":
                    obs.green.setdefault(key, time.time())
            if stop.is_set():
                break


def workflow(name: str, services: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "desiredStatus": "PUBLISHED",
            "publishingMode": "ASYNC",
            "services": [
                {
                    "id": f"s{i}",
                    "image": "registry.local/bench:1",
                    "replicas": 1,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
                for i in range(services)
            ],
        },
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Operator:
    def __init__(self, kubeconfig: str, logfile: Path) -> None:
        self.kubeconfig, self.logfile = kubeconfig, logfile
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start; returns seconds until it logged `operator ready`."""
        t0 = time.time()
        out = self.logfile.open("ab")
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flow_operator", "run", "--all-namespaces"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        mark = self.logfile.stat().st_size
        while time.time() - t0 < 60:
            with self.logfile.open("rb") as f:
                f.seek(max(0, mark - 4096))
                if b"operator ready" in f.read():
                    return time.time() - t0
            time.sleep(0.05)
        raise RuntimeError("operator did not become ready in 60 s")

    def kill(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=int(os.environ.get("BENCH_SIZE", "100")))
    p.add_argument("--services", type=int, default=3)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--steady", type=float, default=float(os.environ.get("BENCH_STEADY", "60")))
    p.add_argument("--dir", default=str(ROOT / ".cluster-bench"))
    p.add_argument("--keep", action="store_true", help="leave the cluster running")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"), help="output directory")
    a = p.parse_args()
    ns = "bench"
    results: dict[str, Any] = {"size": a.size, "services": a.services, "nodes": a.nodes}

    log(f"starting a {a.nodes}-node local cluster in {a.dir}")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "cluster/localcluster.py"),
            "up",
            "--dir",
            a.dir,
            "--nodes",
            str(a.nodes),
            "--node-pods",
            "1000",
            "--api-qps",
            "1000",
        ],
        check=True,
    )
    kubeconfig = str(Path(a.dir) / "kubeconfig")
    kubectl = subprocess.run(
        [sys.executable, str(ROOT / "cluster/localcluster.py"), "kubectl-path"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    subprocess.run(
        [kubectl, "apply", "--server-side", "-f", str(ROOT / "crds")], check=True, env=env
    )
    subprocess.run(
        [kubectl, "wait", "--for=condition=Established", "crd/workflows.flowops.io"],
        check=True,
        env=env,
    )
    config.load_kube_config(kubeconfig)
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 32
    client.Configuration.set_default(cfg)
    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    try:
        core.create_namespace({"metadata": {"name": ns}})
    except client.ApiException as e:
        if e.status != 409:
            raise

    results_dir = Path(a.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    logfile = results_dir / "operator.log"
    logfile.write_text("")
    op = Operator(kubeconfig, logfile)
    results["startup_s"] = round(op.start(), 2)
    obs, stop = Observations(), threading.Event()
    for target in (_watch_deployments, _watch_workflows):
        threading.Thread(target=target, args=(obs, ns, stop), daemon=True).start()
    time.sleep(1)

    names = [f"wf-{i:05d}" for i in range(a.size)]
    log(f"S1: applying {a.size} Workflows x {a.services} services")
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
        log(f"  {available}/{a.size * a.services} Deployments available, {green}/{a.size} GREEN")
    if len(obs.green) < a.size:
        log("not every Workflow turned GREEN before the deadline")
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

    assert op.proc is not None
    log(f"steady state: {a.steady:.0f} s with nothing changing")
    time.sleep(3)
    w0, d0 = obs.counts()
    cpu0 = proc_cpu_seconds(op.proc.pid)
    time.sleep(a.steady)
    w1, d1 = obs.counts()
    results["idle_cpu_pct"] = round((proc_cpu_seconds(op.proc.pid) - cpu0) / a.steady * 100, 2)
    results["steady_workflow_writes"] = w1 - w0
    results["steady_deployment_writes"] = d1 - d0
    results["peak_rss_mib"] = round(proc_peak_rss_mib(op.proc.pid), 1)

    log("re-applying every Workflow unchanged")
    w0, d0 = obs.counts()
    manifests = "---\n".join(json.dumps(workflow(n, a.services)) for n in names)
    subprocess.run(
        [kubectl, "-n", ns, "apply", "-f", "-"],
        input=manifests,
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    time.sleep(5)
    w1, d1 = obs.counts()
    results["reapply_workflow_writes"] = w1 - w0
    results["reapply_deployment_writes"] = d1 - d0

    log("restart: kill -9, start again")
    w0, d0 = obs.counts()
    op.kill()
    results["restart_ready_s"] = round(op.start(), 2)
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
    results["restart_serving_s"] = round(results["restart_ready_s"] + (seen or float("nan")), 2)
    time.sleep(3)
    w1, d1 = obs.counts()
    # the probe's own change causes one Workflow write and one Deployment delete (not counted)
    results["restart_spurious_workflow_writes"] = max(0, w1 - w0 - 2)
    results["restart_deployment_writes"] = d1 - d0
    results["peak_rss_mib_after_restart"] = round(proc_peak_rss_mib(op.proc.pid), 1)  # type: ignore[union-attr]
    stop.set()
    op.kill()

    width = max(len(k) for k in results)
    print("\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in results.items()))
    out = results_dir / f"s1-{a.size}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")
    if not a.keep:
        subprocess.run(
            [sys.executable, str(ROOT / "cluster/localcluster.py"), "down", "--dir", a.dir],
            check=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
