"""What the benchmark scenarios share (bench/run.py runs them): the local cluster, the
operator as a subprocess, independent watches, percentiles, /proc accounting, results."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION = "flowops.io", "v1alpha1"
LOCALCLUSTER = ROOT / "cluster" / "localcluster.py"
# The processes of the local control plane, as cluster/localcluster.py names them.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


# What every pod of the benchmarks asks for: small, so that scheduling never fails.
REQUESTS = {"requests": {"cpu": "10m", "memory": "16Mi"}}


def custom_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A manifest of one of the operator's kinds."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class Cluster:
    """A local control plane of the benchmark's own (`--dir`), with kubectl and a client."""

    dir: Path
    kubeconfig: str
    kubectl_path: str

    @classmethod
    def up(cls, state_dir: str, nodes: int) -> Cluster:
        log(f"starting a {nodes}-node local cluster in {state_dir}")
        subprocess.run(
            [sys.executable, str(LOCALCLUSTER), "up", "--dir", state_dir, "--nodes", str(nodes),
             "--node-pods", "1000", "--api-qps", "1000", "--no-pod-logs"],
            check=True,
        )  # fmt: skip
        kubectl = subprocess.run(
            [sys.executable, str(LOCALCLUSTER), "kubectl-path"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        cluster = cls(Path(state_dir), str(Path(state_dir) / "kubeconfig"), kubectl)
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all")
        config.load_kube_config(cluster.kubeconfig)
        cfg = client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = 32
        client.Configuration.set_default(cfg)
        cluster.wait_for_storage()
        return cluster

    def wait_for_storage(self, timeout: float = 60) -> None:
        """Established CRDs still answer 429 `storage is (re)initializing` for a moment; an
        operator started then backs its watches off, and the first objects would wait."""
        custom, deadline = client.CustomObjectsApi(), time.time() + timeout
        for plural in ("workflows", "flowruns"):
            while True:
                try:
                    custom.list_cluster_custom_object(GROUP, VERSION, plural, limit=1)
                    break
                except client.ApiException as e:
                    if e.status != 429 or time.time() > deadline:
                        raise
                    time.sleep(0.2)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(
            [self.kubectl_path, *args], input=input, text=True, check=True,
            capture_output=True, env={**os.environ, "KUBECONFIG": self.kubeconfig},
        ).stdout  # fmt: skip

    def namespace(self, name: str) -> str:
        try:
            client.CoreV1Api().create_namespace({"metadata": {"name": name}})
        except client.ApiException as e:
            if e.status != 409:
                raise
        return name

    def log(self, name: str) -> Path:
        """An empty log file next to the control plane's (<dir>/logs/<name>.log)."""
        path = self.dir / "logs" / f"{name}.log"
        path.write_text("")
        return path

    def pids(self) -> dict[str, int]:
        state = json.loads((self.dir / "state.json").read_text())
        return {k: int(v) for k, v in state["pids"].items() if k in COMPONENTS}

    @staticmethod
    def down(state_dir: str) -> None:
        subprocess.run([sys.executable, str(LOCALCLUSTER), "down", "--dir", state_dir])


class CpuMeter:
    """CPU used by the control plane's processes, the operator, this process ("bench"),
    the machine as a whole and the rest of it ("others") between start() and stop(), in %
    of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.cpu0: dict[str, float] = {}
        self.machine0 = 0.0

    def _read(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            try:
                out[name] = proc_cpu_seconds(pid)
            except OSError:
                out[name] = float("nan")
        out["bench"] = sum(os.times()[:2])
        return out

    def start(self) -> None:
        self.t0, self.cpu0, self.machine0 = time.time(), self._read(), machine_busy_seconds()[0]

    def stop(self) -> dict[str, float]:
        wall = max(time.time() - self.t0, 1e-9)
        cpu1 = self._read()
        out = {k: round((cpu1[k] - self.cpu0[k]) / wall * 100, 1) for k in cpu1}
        out["machine"] = round((machine_busy_seconds()[0] - self.machine0) / wall * 100, 1)
        # whatever else ran on the machine meanwhile (it is shared: other tests, builds)
        out["others"] = round(max(0.0, out["machine"] - sum(out[k] for k in cpu1)), 1)
        return out


class Operator:
    """`python -m flow_operator run` against the benchmark's cluster, its log in a file."""

    started: list[Operator] = []  # every one ever started, for kill_all

    def __init__(self, kubeconfig: str, logfile: Path, *args: str) -> None:
        self.kubeconfig, self.logfile, self.args = kubeconfig, logfile, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self) -> float:
        """Start; returns seconds until it logged `operator ready`."""
        t0 = time.time()
        out = self.logfile.open("ab")
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        with socket.socket() as s:  # a free port for /metrics: the operator's own histograms
            s.bind(("127.0.0.1", 0))
            self.metrics_port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flow_operator", "run", "--all-namespaces",
             # the HTTP API and metrics on free ports: never in the way of another operator
             "--http-host", "127.0.0.1", "--http-port", "0",
             "--metrics-port", str(self.metrics_port), *self.args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        Operator.started.append(self)
        mark = self.logfile.stat().st_size
        while time.time() - t0 < 60:
            with self.logfile.open("rb") as f:
                f.seek(max(0, mark - 4096))
                if b"operator ready" in f.read():
                    return time.time() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited ({self.proc.returncode}): {self.logfile}")
            time.sleep(0.05)
        raise RuntimeError("operator did not become ready in 60 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def histograms(self, queue: str, resource: str) -> dict[str, float | None]:
        """The operator's own view of its work, from its /metrics, p50 and p99 in ms
        (interpolated within the histogram's buckets, as Prometheus' histogram_quantile):
        how long a change of `queue` waited for its reconcile (urgent: a child changed;
        normal: a spec change or a timer), how long a reconcile took,
        how long one status write of `resource` took (the API server's part), and how late
        the operator's event loop ran (`loop_lag`: the process's own delay, since start)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
                text = r.read().decode()
        except OSError as e:
            log(f"could not scrape the operator's metrics: {e!r}")
            return {}
        out: dict[str, float | None] = {}
        for short, name, label in (
            ("wait_urgent", "flowops_workqueue_wait_seconds", f'level="urgent",queue="{queue}"'),
            ("wait_normal", "flowops_workqueue_wait_seconds", f'level="normal",queue="{queue}"'),
            ("reconcile", "flowops_reconcile_duration_seconds", f'queue="{queue}"'),
            ("status_write", "flowops_status_write_seconds", f'resource="{resource}"'),
            ("loop_lag", "flowops_event_loop_lag_seconds", "_bucket{"),
            ("gc_full", "flowops_gc_pause_seconds", 'generation="2"'),
        ):
            buckets = histogram(text, name, label)
            out[f"{short}_count"] = buckets[-1][1] if buckets else 0
            for q in (0.5, 0.99):
                value = bucket_quantile(q, buckets)
                out[f"{short}_p{int(q * 100)}_ms"] = (
                    None if value is None else round(value * 1000, 1)
                )
        return out

    def profile(self, py_spy: str, out: Path) -> subprocess.Popen[bytes]:
        """Sample the operator's Python stacks with py-spy (collapsed stacks, one line a
        stack with its count, to `out`) until the returned process gets SIGINT."""
        return subprocess.Popen(
            [py_spy, "record", "--pid", str(self.pid), "--format", "raw", "--nonblocking",
             "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    @classmethod
    def kill_all(cls) -> None:
        """Kill every operator this process started that still runs (a scenario that
        failed half-way must not leave one retrying against a stopped cluster)."""
        for op in cls.started:
            op.kill()


def histogram(text: str, name: str, label: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of one histogram in Prometheus text, the series
    with `label` (e.g. 'queue="workflow"')."""
    out = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{") and label in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return sorted(out)


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """histogram_quantile: linear within the bucket the rank falls in."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower  # beyond the largest bound: the bound is all that is known
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def items_of(list_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The items of a list call as plain dicts (no model classes: less CPU)."""
    response = list_fn(*args, _preload_content=False, **kwargs)
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


def watch_loop(
    stop: threading.Event,
    on_event: Callable[[dict[str, Any]], None],
    list_fn: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> None:
    """Call `on_event` with every event ({type, object}, the object a plain dict) of a
    watch on `list_fn(*args, **kwargs)` until `stop` is set. The watch resumes from its
    last resourceVersion (no relist every 30 s), and relists (ADDED for every object) only
    when that version has expired. Objects are not turned into the client's model classes:
    that costs CPU the machine's two cores would take from the cluster."""
    w = watch.Watch()
    version: str | None = None
    while not stop.is_set():
        extra = {"resource_version": version} if version else {}
        try:
            for ev in w.stream(
                list_fn, *args, timeout_seconds=30, allow_watch_bookmarks=True,
                deserialize=False, **kwargs, **extra,
            ):  # fmt: skip
                version = ev["object"]["metadata"].get("resourceVersion") or version
                if ev["type"] != "BOOKMARK":
                    on_event(ev)
                if stop.is_set():
                    break
        except Exception as e:  # a watch outlives the errors of its requests
            if stop.is_set():
                return  # the cluster may be going down already
            if isinstance(e, client.ApiException) and e.status == 410:
                version = None  # expired: relist
                continue
            log(f"watch {list_fn.__name__}: {e!r}; again in 1 s")
            time.sleep(1)


def start_watch(
    stop: threading.Event,
    on_event: Callable[[dict[str, Any]], None],
    list_fn: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> threading.Thread:
    thread = threading.Thread(
        target=watch_loop, args=(stop, on_event, list_fn, *args), kwargs=kwargs, daemon=True
    )
    thread.start()
    return thread


class RoundTrip:
    """The API server's own write -> watch latency while a scenario runs: the floor under
    any status lag, since an operator's status change is one such write, seen by one such
    watch. Every `interval` s an object is written with a sequence number; the write's
    send time, its answer and the moment a watch in this process delivers it are kept
    (the same process, and the same kind of watch, as the scenario's figures). Two kinds:
    a ConfigMap's annotation (`RoundTrip`: the API server's cheapest write) and a
    Workflow-shaped custom resource's status (`StatusRoundTrip`: the write the operator
    makes)."""

    NAME = "bench-roundtrip"

    def __init__(self, namespace: str, stop: threading.Event, interval: float = 0.25) -> None:
        self.ns, self.stop, self.interval = namespace, stop, interval
        self.core = client.CoreV1Api()
        self.sent: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def start(self) -> None:
        self.core.create_namespaced_config_map(
            self.ns, {"metadata": {"name": self.NAME, "annotations": {"seq": "0"}}}
        )
        start_watch(
            self.stop, self._event, self.core.list_namespaced_config_map, self.ns,
            field_selector=f"metadata.name={self.NAME}",
        )  # fmt: skip
        threading.Thread(target=self._write, daemon=True).start()

    def seq_of(self, obj: dict[str, Any]) -> str | None:
        return ((obj["metadata"].get("annotations")) or {}).get("seq")

    def write(self, seq: str) -> bool:
        """Write `seq`; False when there is nothing to write yet."""
        self.core.patch_namespaced_config_map(
            self.NAME, self.ns, {"metadata": {"annotations": {"seq": seq}}},
            _preload_content=False,
        )  # fmt: skip
        return True

    def _event(self, ev: dict[str, Any]) -> None:
        seq = self.seq_of(ev["object"])
        with self.lock:
            if seq is not None:
                self.seen.setdefault(seq, time.time())

    def _write(self) -> None:
        n = 0
        while not self.stop.wait(self.interval):
            seq, sent = str(n + 1), time.time()
            try:
                if not self.write(seq):
                    continue  # nothing to write yet
            except Exception as e:  # a probe write that fails is not a figure; go on
                log(f"round-trip probe: {e!r}")
                continue
            finally:
                n += 1  # never the same number twice, whatever became of the write
            with self.lock:
                self.sent[seq], self.answered[seq] = sent, time.time()

    def figures(self, start: float, end: float, prefix: str) -> dict[str, Any]:
        """p50/p99 in ms of the writes sent within [start, end]: the write's answer
        (`<prefix>_write_*`) and write -> watch (`<prefix>_roundtrip_*`)."""
        with self.lock:
            seqs = [s for s, t in self.sent.items() if start <= t <= end]
            writes = [self.answered[s] - self.sent[s] for s in seqs if s in self.answered]
            trips = [self.seen[s] - self.sent[s] for s in seqs if s in self.seen]
        out: dict[str, Any] = {f"{prefix}_samples": len(trips)}
        for name, values in (("write", writes), ("roundtrip", trips)):
            for q in (0.5, 0.99):
                out[f"{prefix}_{name}_p{int(q * 100)}_ms"] = (
                    round(pct(values, q) * 1000, 1) if values else None
                )
        return out


class StatusRoundTrip(RoundTrip):
    """The same, with the write the operator makes: JSON patch `add /status` of a custom
    resource whose schema is the Workflow CRD's (crds/, under the group PROBE_GROUP, which
    the operator does not watch), the status a real Workflow's (`template`, set by the
    scenario from the first GREEN one it sees; no write before), the sequence number in its
    Ready condition's message. Same size, same validation, same managed fields."""

    GROUP = "probe.flowops.io"

    def __init__(self, cluster: Cluster, namespace: str, stop: threading.Event) -> None:
        super().__init__(namespace, stop)
        self.cluster = cluster
        self.custom = client.CustomObjectsApi()
        self.template: dict[str, Any] | None = None

    def start(self) -> None:
        crd = yaml.safe_load((ROOT / "crds" / "workflows.flowops.io.yaml").read_text())
        crd["metadata"]["name"] = f"workflows.{self.GROUP}"
        crd["spec"]["group"] = self.GROUP
        crd["spec"]["names"].pop("shortNames", None)
        crd["spec"]["names"].pop("categories", None)
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(crd))
        spec = {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC", "services": [
            {"id": f"s{i}", "image": "registry.local/bench:1", "replicas": 1} for i in range(3)
        ]}  # fmt: skip
        body = {"apiVersion": f"{self.GROUP}/{VERSION}", "kind": "Workflow",
                "metadata": {"name": self.NAME}, "spec": spec}  # fmt: skip
        deadline = time.time() + 60
        while True:  # a just-Established CRD answers 404 or 429 for a moment
            try:
                self.custom.create_namespaced_custom_object(
                    self.GROUP, VERSION, self.ns, "workflows", body
                )
                break
            except client.ApiException as e:
                if e.status not in (404, 429) or time.time() > deadline:
                    raise
                time.sleep(0.2)
        start_watch(
            self.stop, self._event, self.custom.list_namespaced_custom_object, self.GROUP,
            VERSION, self.ns, "workflows", field_selector=f"metadata.name={self.NAME}",
        )  # fmt: skip
        threading.Thread(target=self._write, daemon=True).start()

    def seq_of(self, obj: dict[str, Any]) -> str | None:
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready" and str(c.get("message", "")).startswith("probe "):
                return str(c["message"]).split()[1]
        return None

    def write(self, seq: str) -> bool:
        if self.template is None:
            return False
        status = json.loads(json.dumps(self.template))
        for c in status.get("conditions") or []:
            if c.get("type") == "Ready":
                c["message"] = f"probe {seq}"
        self.custom.patch_namespaced_custom_object_status(
            self.GROUP, VERSION, self.ns, "workflows", self.NAME,
            [{"op": "add", "path": "/status", "value": status}],
            _content_type="application/json-patch+json", _preload_content=False,
        )  # fmt: skip
        return True


def apiserver_requests() -> dict[str, float]:
    """The API server's own count of the requests it answered since it started
    (`apiserver_request_total` in its /metrics), summed by "VERB resource[/subresource]"
    over codes, groups and scopes. The difference of two readings is what every client
    asked of it meanwhile: the operator, the controllers, the scheduler, kwok and this
    process's own watches alike (the series has no client label)."""
    api = client.ApiClient()
    cfg = api.configuration
    headers = {
        auth["key"]: auth["value"]
        for auth in cfg.auth_settings().values()
        if auth.get("in") == "header" and auth.get("value")
    }
    answer = api.call_api("GET", f"{cfg.host}/metrics", header_params=headers)
    answer.read()
    counts: dict[str, float] = {}
    for line in answer.data.decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(
            part.split("=", 1) for part in labels_text.replace('"', "").split(",") if "=" in part
        )
        sub = labels.get("subresource") or ""
        key = f"{labels.get('verb')} {labels.get('resource')}" + (f"/{sub}" if sub else "")
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def requests_per(
    before: dict[str, float], after: dict[str, float], per: int, least: float = 0.05
) -> dict[str, float]:
    """Requests between two readings of apiserver_requests(), divided by `per` (runs),
    the largest first; those under `least` per run left out, their sum under "other"."""
    out: dict[str, float] = {}
    other = 0.0
    for key in sorted(after, key=lambda k: before.get(k, 0.0) - after[k]):
        n = (after[key] - before.get(key, 0.0)) / max(per, 1)
        if n >= least:
            out[key] = round(n, 2)
        elif n > 0:
            other += n
    out["other"] = round(other, 2)
    out["total"] = round(sum(out.values()), 2)
    return out


def provenance() -> dict[str, Any]:
    """What was measured, where, when: the commit (and whether the operator's code differs
    from it: the tree is shared), the date, the machine."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = [line.split()[-1] for line in git("status", "--porcelain", "operator").splitlines()]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "operator_code": f"modified: {', '.join(changed)}" if changed else "as committed",
        "cores": os.cpu_count(),
        "uname": " ".join(platform.uname()[:3] + platform.uname()[4:5]),
        "python": platform.python_version(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def report(results: dict[str, Any], results_dir: Path, name: str) -> Path:
    """Print the figures as a table and write them to results_dir/<name>-<stamp>.json."""
    width = max(len(k) for k in results)
    print("\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in results.items()), flush=True)
    out = results_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")
    return out
