#!/usr/bin/env python3
"""A real Kubernetes control plane as local processes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake nodes and pods), on 127.0.0.1.

    python3 cluster/localcluster.py up   [--dir .cluster] [--nodes 3] [--no-pod-logs]
    python3 cluster/localcluster.py down [--dir .cluster]
    python3 cluster/localcluster.py status [--dir .cluster]
    python3 cluster/localcluster.py kubectl-path

Binaries come from cluster/build.sh's cache. Everything lives in --dir: a CA and serving
certificate (openssl), the admin token, etcd's data, logs, the kubeconfig and state.json
(the processes and ports). Every `up` starts with an empty etcd: the cluster is for
trying and testing, not for keeping. The processes run in sessions of their own, so the cluster
outlives this command; `down` stops them all and checks that none is left. Both commands
are idempotent. Standard library only: it runs before any virtualenv exists.

Pod logs: kwok serves a container's log from a file named in a `Logs` object (one pod) or a
`ClusterLogs` object (any pod), and cannot template a file's path or content per pod. So a
sixth process, `pod-logs` (this script), watches the pods of Jobs and gives each one a log
of its own: it numbers the pod's attempt among its Job's pods (annotation
`kwok.flowops.test/attempt`), writes logs/pods/<namespace>/<pod>.log from
stages/job-pod.log (which names the pod, its Job and the attempt) and creates the pod's
`Logs` object (owned by the pod, collected with it). Every other pod gets stages/task.log.
`--no-pod-logs` leaves it out (the benchmarks: no extra API writes per pod).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COMPONENTS = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "pod-logs",
)  # fmt: skip
KWOK_API = "kwok.x-k8s.io/v1alpha1"
ATTEMPT = "kwok.flowops.test/attempt"  # a Job pod's attempt (1, 2, ...), set by pod-logs
# A ServiceAccount a test may create (and bind) to run a process whose every request is
# in the audit log: the API server's own record of what that process did.
WITNESS = "system:serviceaccount:default:audit-witness"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
# Scale tests need the controllers' clients to outrun the operator, not the reverse.
DEFAULT_QPS = 500


def say(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


def versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (HERE / "versions.env").read_text().splitlines())
    return {k.strip(): v.strip() for k, v in (p for p in pairs if len(p) == 2) if k[:1] != "#"}


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    apiserver: Path
    controller_manager: Path
    scheduler: Path
    kwok: Path
    kubectl: Path
    kwok_stages: Path

    @classmethod
    def from_cache(cls) -> Binaries:
        cache = Path(os.environ.get("FLOW_CACHE", Path.home() / ".cache" / "flow-operator"))
        v = versions()
        k8s = cache / "bin" / f"kubernetes-{v['KUBERNETES_VERSION']}"
        kwok = cache / "bin" / f"kwok-{v['KWOK_VERSION']}"
        found = cls(
            etcd=cache / "bin" / f"etcd-{v['ETCD_VERSION']}" / "etcd",
            apiserver=k8s / "kube-apiserver",
            controller_manager=k8s / "kube-controller-manager",
            scheduler=k8s / "kube-scheduler",
            kwok=kwok / "kwok",
            kubectl=k8s / "kubectl",
            kwok_stages=kwok / "stages",
        )
        missing = [str(p) for p in vars(found).values() if not p.exists()]
        if missing:
            sys.exit("missing binaries (run `bash cluster/build.sh cluster`):\n  " +
                     "\n  ".join(missing))  # fmt: skip
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.kubeconfig = self.root / "kubeconfig"
        self.state_file = self.root / "state.json"
        self.audit_log = self.logs / "audit.log"

    # --- state -------------------------------------------------------------------------
    def state(self) -> dict[str, object]:
        try:
            loaded = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def pids(self) -> dict[str, int]:
        raw = self.state().get("pids", {})
        return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def stray_processes(self) -> list[int]:
        """Live control-plane processes (etcd, kube-*, kwok) with a file of this cluster's
        directory as an argument: ours, or left over by an earlier run. (Only files
        directly in it or in its pki/: a cluster in a subdirectory is another cluster.)"""
        own = {str(self.root), str(self.pki)}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                paths = [arg.split("=", 1)[-1] for arg in argv[1:]]
                ours = Path(argv[0]).name in COMPONENTS and any(
                    os.path.dirname(p) in own for p in paths if p.startswith("/")
                )
                watcher = argv[1:5] == [str(HERE / "localcluster.py"), "pod-logs", "--dir",
                                        str(self.root)]  # fmt: skip
                if (ours or watcher) and _alive(int(entry.name)):
                    found.append(int(entry.name))
        return found

    def api_ready(self, timeout: float = 2.0) -> bool:
        state = self.state()
        port, token = state.get("apiserver_port"), state.get("token")
        if not port or not token:
            return False
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def running(self) -> bool:
        pids = self.pids()
        return bool(pids) and all(_alive(pid) for pid in pids.values()) and self.api_ready()

    # --- up ----------------------------------------------------------------------------
    def up(
        self,
        nodes: int,
        node_cpu: str = "4",
        node_memory: str = "8Gi",
        node_pods: int = 110,
        qps: int = DEFAULT_QPS,
        pod_logs: bool = True,
    ) -> None:
        if self.running():
            say(f"already running; KUBECONFIG={self.kubeconfig}")
            return
        if self.pids() or self.stray_processes():
            say("found a half-running cluster: stopping it first")
            self.down()
        start = time.monotonic()
        bins = Binaries.from_cache()
        for d in (self.pki, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        # Every `up` starts from an empty etcd: kwok's node Leases (and every object) from a
        # previous run would otherwise belong to a kwok that is gone, and its nodes would
        # play no pods until those Leases expire.
        shutil.rmtree(self.root / "etcd", ignore_errors=True)
        self._pki()
        old = self.state()
        token = str(old.get("token") or secrets.token_hex(24))
        ports = {}
        for name in ("etcd_port", "etcd_peer_port", "apiserver_port", "kwok_port"):
            previous = old.get(name)
            ports[name] = (
                previous if isinstance(previous, int) and port_free(previous) else free_port()
            )
        (self.pki / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
        state: dict[str, object] = {"token": token, **ports, "pids": {}}
        self._write_state(state)
        self._write_kubeconfig(ports["apiserver_port"], token)

        say(f"starting etcd on 127.0.0.1:{ports['etcd_port']}")
        self._spawn(state, "etcd", [
            str(bins.etcd), "--name", "local", "--data-dir", str(self.root / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{ports['etcd_port']}",
            "--advertise-client-urls", f"http://127.0.0.1:{ports['etcd_port']}",
            "--listen-peer-urls", f"http://127.0.0.1:{ports['etcd_peer_port']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports['etcd_peer_port']}",
            "--initial-cluster", f"local=http://127.0.0.1:{ports['etcd_peer_port']}",
            # A throwaway cluster: fsync buys durability nobody needs here, and costs seconds.
            "--unsafe-no-fsync", "--quota-backend-bytes", str(8 * 1024**3),
            "--log-level", "warn",
        ])  # fmt: skip

        say(f"starting kube-apiserver on https://127.0.0.1:{ports['apiserver_port']}")
        pki = self.pki
        self._spawn(state, "kube-apiserver", [
            str(bins.apiserver),
            "--etcd-servers", f"http://127.0.0.1:{ports['etcd_port']}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(ports["apiserver_port"]),
            "--cert-dir", str(pki),
            "--tls-cert-file", str(pki / "apiserver.crt"),
            "--tls-private-key-file", str(pki / "apiserver.key"),
            "--token-auth-file", str(pki / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            # kwok serves pod logs as the kubelet would; its certificate is ours.
            "--kubelet-preferred-address-types", "InternalIP",
            "--allow-privileged=true", "--profiling=false",
            # Who reads which Secret (names only, never values): the security e2e checks it.
            "--audit-policy-file", str(self._audit_policy()),
            "--audit-log-path", str(self.audit_log),
            "--audit-log-maxsize", "50", "--audit-log-maxbackup", "1",
        ])  # fmt: skip
        self._wait("kube-apiserver ready", self.api_ready, 90, state, "kube-apiserver")

        say("starting kube-controller-manager, kube-scheduler and kwok")
        self._spawn(state, "kube-controller-manager", [
            str(bins.controller_manager), "--kubeconfig", str(self.kubeconfig),
            "--bind-address", "127.0.0.1", "--secure-port", "0", "--leader-elect=false",
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"), "--use-service-account-credentials",
            "--kube-api-qps", str(qps), "--kube-api-burst", str(2 * qps),
            "--concurrent-deployment-syncs", "20", "--concurrent-replicaset-syncs", "20",
            "--concurrent-job-syncs", "20",
        ])  # fmt: skip
        scheduler_config = self.root / "scheduler.yaml"
        scheduler_config.write_text(json.dumps({
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig), "qps": qps,
                                 "burst": 2 * qps},
            "leaderElection": {"leaderElect": False},
        }))  # fmt: skip
        self._spawn(state, "kube-scheduler", [
            str(bins.scheduler), "--config", str(scheduler_config),
            "--bind-address", "127.0.0.1", "--secure-port", "0",
        ])  # fmt: skip
        if pod_logs:  # kwok watches Logs objects: its CRD first (kwok does not install it)
            self.kubectl(bins, "apply", "-f", "-", stdin=json.dumps(LOGS_CRD))
            self.kubectl(bins, "wait", "--for=condition=Established", "--timeout=60s",
                         "crd/logs.kwok.x-k8s.io")  # fmt: skip
        self._spawn(state, "kwok", [
            str(bins.kwok), "--kubeconfig", str(self.kubeconfig), "--manage-all-nodes=true",
            *(["--enable-crds=Logs"] if pod_logs else []),
            "--config", str(self._kwok_config(bins)),
            "--node-ip", "127.0.0.1", "--node-port", str(ports["kwok_port"]),
            "--server-address", f"127.0.0.1:{ports['kwok_port']}",
            "--tls-cert-file", str(pki / "apiserver.crt"),
            "--tls-private-key-file", str(pki / "apiserver.key"),
            "--node-lease-duration-seconds", "40",
        ])  # fmt: skip
        if pod_logs:
            self._spawn(state, "pod-logs", [
                sys.executable, str(HERE / "localcluster.py"), "pod-logs", "--dir", str(self.root),
            ])  # fmt: skip

        say(f"creating {nodes} fake nodes ({node_cpu} CPU, {node_memory} each)")
        self.kubectl(bins, "apply", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List",
             "items": [fake_node(f"kwok-node-{i}", node_cpu, node_memory, node_pods)
                       for i in range(nodes)]}
        ))  # fmt: skip

        def nodes_ready() -> bool:
            out = self.kubectl(bins, "get", "nodes", "-o", "json", check=False)
            items = json.loads(out or "{}").get("items", [])
            ready = [
                n for n in items
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in n.get("status", {}).get("conditions", []))
            ]  # fmt: skip
            return len(ready) >= nodes

        self._wait("nodes Ready (kwok)", nodes_ready, 60, state, "kwok")
        self._wait(
            "the default ServiceAccount (controller-manager)",
            lambda: self.kubectl(bins, "get", "serviceaccount", "default", check=False) != "",
            60, state, "kube-controller-manager",
        )  # fmt: skip
        say(f"ready in {time.monotonic() - start:.1f} s; KUBECONFIG={self.kubeconfig}")

    def _pki(self) -> None:
        """A CA, a serving certificate for 127.0.0.1 and the in-cluster names, and the
        service-account signing key pair; made once, kept across restarts."""
        p = self.pki
        if all((p / f).exists() for f in ("ca.crt", "apiserver.crt", "sa.key", "sa.pub")):
            return
        say("creating certificates (openssl)")

        def ossl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=p)

        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "3650", "-subj", "/CN=flow-operator-local-ca")  # fmt: skip
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key",
             "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver")  # fmt: skip
        names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]  # fmt: skip
        san = ",".join([f"IP:127.0.0.1,IP:{SERVICE_IP}", *(f"DNS:{n}" for n in names)])
        (p / "san.cnf").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        ossl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "apiserver.crt", "-days", "3650",
             "-extfile", "san.cnf")  # fmt: skip
        ossl("genrsa", "-out", "sa.key", "2048")
        ossl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    def _audit_policy(self) -> Path:
        """Audit requests on Secrets, and every request of the user WITNESS, at Metadata
        level (who, verb, which object; no values): tests/e2e/test_security.py reads it to
        see which Secrets the operator read, tests/e2e/test_ha.py what one replica (running
        as WITNESS) did. Nothing else: the benchmarks' requests cost no audit."""
        path = self.root / "audit-policy.yaml"
        path.write_text(json.dumps({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets"]}]},
                {"level": "Metadata", "users": [WITNESS]},
                {"level": "None"},
            ],
        }))  # fmt: skip
        return path

    def _kwok_config(self, bins: Binaries) -> Path:
        """kwok's configuration: upstream's node stages (initialize, heartbeat with a
        lease), our pod stages (cluster/stages/pods.yaml, attempts.yaml), and the log of
        every container that has no Logs object of its own (served through the API server's
        pods/log, as a kubelet would)."""
        upstream = bins.kwok_stages / "node"
        docs = [
            (upstream / "fast" / "node-initialize.yaml").read_text(),
            (upstream / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml").read_text(),
            (HERE / "stages" / "pods.yaml").read_text(),
            (HERE / "stages" / "attempts.yaml").read_text(),
            json.dumps({
                "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
                "metadata": {"name": "every-pod"},
                "spec": {"logs": [{"logsFile": str(HERE / "stages" / "task.log")}]},
            }),
        ]  # fmt: skip
        path = self.root / "kwok.yaml"
        path.write_text("\n---\n".join(d.strip() for d in docs) + "\n")
        return path

    def _write_kubeconfig(self, port: int, token: str) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "flow-local", "cluster": {
                "server": f"https://127.0.0.1:{port}",
                "certificate-authority": str(self.pki / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "flow-local",
                          "context": {"cluster": "flow-local", "user": "admin"}}],
            "current-context": "flow-local",
        }  # fmt: skip
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _write_state(self, state: dict[str, object]) -> None:
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def _spawn(self, state: dict[str, object], name: str, argv: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.root,
        )  # fmt: skip
        log.close()
        pids = state["pids"]
        assert isinstance(pids, dict)
        pids[name] = proc.pid
        # The command line, so that start_component can start it again the same way.
        argvs = state.setdefault("argv", {})
        assert isinstance(argvs, dict)
        argvs[name] = argv
        self._write_state(state)

    # --- one component (fault injection: the e2e API-server outage) ------------------------
    def stop_component(self, name: str, timeout: float = 15.0) -> None:
        """Stop one running component for real (SIGTERM, SIGKILL after `timeout` s) and wait
        until its process is gone; the others run on. start_component brings it back."""
        pid = self.pids()[name]
        with contextlib.suppress(ProcessLookupError):
            if _is_group_leader(pid):
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    def start_component(self, name: str, timeout: float = 90.0) -> None:
        """Start a component stopped by stop_component with the same flags (so the same
        ports); for kube-apiserver, wait until /readyz answers."""
        state = self.state()
        pid = self.pids().get(name)
        if pid and _alive(pid):
            raise RuntimeError(f"{name} is running (pid {pid})")
        argvs = state.get("argv")
        argv = argvs.get(name) if isinstance(argvs, dict) else None
        if not isinstance(argv, list):
            raise RuntimeError(f"no recorded command line for {name}; `up` first")
        self._spawn(state, name, list(argv))
        if name == "kube-apiserver":
            deadline = time.monotonic() + timeout
            while not self.api_ready():
                if time.monotonic() > deadline or not _alive(self.pids()[name]):
                    raise RuntimeError(f"{name} did not become ready; see {self.logs}")
                time.sleep(0.1)

    def _wait(
        self, what: str, check: object, timeout: float, state: dict[str, object], owner: str
    ) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        pid = self.pids()[owner]
        while time.monotonic() < deadline:
            if check():
                return
            if not _alive(pid):
                self._fail(f"{owner} exited while waiting for {what}", owner)
            time.sleep(0.25)
        self._fail(f"timed out after {timeout:.0f} s waiting for {what}", owner)

    def _fail(self, message: str, owner: str) -> None:
        log = self.logs / f"{owner}.log"
        tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else []
        self.down(quiet=True)
        sys.exit(f"{message}; last lines of {log}:\n" + "\n".join(tail))

    def kubectl(self, bins: Binaries, *args: str, stdin: str | None = None,
                check: bool = True) -> str:  # fmt: skip
        done = subprocess.run(
            [str(bins.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout if done.returncode == 0 else ""

    # --- down --------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> None:
        pids = self.pids()
        # Reverse order: clients first, etcd last, so nothing logs a storm of errors.
        ordered = [pids[c] for c in reversed(COMPONENTS) if c in pids]
        targets = [p for p in dict.fromkeys([*ordered, *self.stray_processes()]) if _alive(p)]
        if not targets:
            if not quiet:
                say("not running")
        else:
            for pid in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if _is_group_leader(pid):
                        os.killpg(pid, signal.SIGTERM)
                    else:
                        os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(_alive(p) for p in targets):
                time.sleep(0.1)
            for pid in targets:
                if _alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            # SIGKILL is not instant either: wait until the kernel has taken them away.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(_alive(p) for p in targets):
                time.sleep(0.05)
            if not quiet:
                say(f"stopped {len(targets)} processes")
        state = self.state()
        if state:
            state["pids"] = {}
            self._write_state(state)
        left = self.stray_processes()
        if left:
            sys.exit(f"processes still running after down: {left}")

    def status(self) -> int:
        pids = self.pids()
        for name in COMPONENTS:
            pid = pids.get(name)
            print(f"{name:25} {'running' if pid and _alive(pid) else 'stopped':8} {pid or ''}")
        ready = self.api_ready()
        print(f"API {'ready' if ready else 'not ready'}; KUBECONFIG={self.kubeconfig}")
        return 0 if ready else 1


# kwok's Logs kind (its kustomize/crd/bases/kwok.x-k8s.io_logs.yaml), the schema left open:
# kwok reads what it needs; the objects are pod-logs', never a user's.
LOGS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "logs.kwok.x-k8s.io"},
    "spec": {
        "group": "kwok.x-k8s.io", "scope": "Namespaced",
        "names": {"kind": "Logs", "listKind": "LogsList", "plural": "logs", "singular": "logs"},
        "versions": [{
            "name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}  # fmt: skip


class PodLogs:
    """The `pod-logs` process: for each pod of a Job, its attempt number, a log file that
    names the pod and the attempt, and the kwok Logs object that serves that file."""

    # Every pod a Job controller makes carries its Job's uid under this label.
    SELECTOR = "batch.kubernetes.io/controller-uid"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.dir = cluster.logs / "pods"
        self.template = (HERE / "stages" / "job-pod.log").read_text()
        state = cluster.state()
        self.base = f"https://127.0.0.1:{state['apiserver_port']}"
        self.token = str(state["token"])
        self.tls = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
        self.numbered: dict[str, int] = {}  # pod uid -> its attempt
        self.counts: dict[str, int] = {}  # Job uid -> attempts numbered so far
        self.done: set[str] = set()  # pod uids with their log and Logs object

    def run(self) -> None:
        say("pod-logs: a log of its own for every pod of a Job")
        while True:
            try:
                self._watch(self._list())
            except (OSError, ValueError) as e:  # the API server away, a watch expired (410)
                say(f"pod-logs: {e!r}; listing again in 1 s")
                time.sleep(1)

    def _request(self, method: str, path: str, body: object = None,
                 content_type: str = "application/json", timeout: float = 30) -> Any:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        return urllib.request.urlopen(req, timeout=timeout, context=self.tls)

    def _write(self, method: str, path: str, body: object, content_type: str = "application/json",
               fine: tuple[int, ...] = ()) -> None:  # fmt: skip
        """A write; an HTTP error whose code is in `fine` is no error."""
        try:
            self._request(method, path, body, content_type).close()
        except urllib.error.HTTPError as e:
            if e.code not in fine:
                raise

    def _list(self) -> str:
        with self._request("GET", f"/api/v1/pods?labelSelector={self.SELECTOR}") as resp:
            listed = json.load(resp)
        # In the order they were made: a Job makes its next attempt after the last one ended.
        for pod in sorted(listed["items"], key=lambda p: (
                p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])):  # fmt: skip
            self._pod(pod)
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> None:
        path = (f"/api/v1/pods?watch=1&labelSelector={self.SELECTOR}"
                f"&resourceVersion={version}&timeoutSeconds=300")  # fmt: skip
        with self._request("GET", path, timeout=330) as resp:
            for line in resp:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise ValueError(event["object"].get("message"))
                if event["type"] == "DELETED":
                    self._gone(event["object"])
                else:
                    self._pod(event["object"])

    def _pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid, ns, name = meta["uid"], meta["namespace"], meta["name"]
        owners = meta.get("ownerReferences") or []
        job = next((o for o in owners if o.get("kind") == "Job" and o.get("controller")), None)
        if uid in self.done or job is None or meta.get("deletionTimestamp"):
            return
        given = str((meta.get("annotations") or {}).get(ATTEMPT, ""))
        attempt = self.numbered.get(uid) or (int(given) if given.isdigit() else 0)
        if not attempt:
            attempt = self.counts.get(job["uid"], 0) + 1
        self.numbered[uid] = attempt
        self.counts[job["uid"]] = max(self.counts.get(job["uid"], 0), attempt)
        path = self.dir / ns / f"{name}.log"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self._log(ns, name, job["name"], attempt))
        logs = {
            "apiVersion": KWOK_API, "kind": "Logs",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]},
            "spec": {"logs": [{"logsFile": str(path)}]},
        }  # fmt: skip
        going = (403, 404)  # the pod, or its namespace, is being deleted: nothing to serve
        self._write("POST", f"/apis/{KWOK_API}/namespaces/{ns}/logs", logs, fine=(409, *going))
        if given != str(attempt):
            patch = {"metadata": {"annotations": {ATTEMPT: str(attempt)}}}
            self._write("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}", patch,
                        "application/merge-patch+json", fine=going)  # fmt: skip
        self.done.add(uid)

    def _gone(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.done.discard(meta["uid"])
        self.numbered.pop(meta["uid"], None)
        (self.dir / meta["namespace"] / f"{meta['name']}.log").unlink(missing_ok=True)

    def _log(self, namespace: str, pod: str, job: str, attempt: int) -> str:
        """stages/job-pod.log (lines of `stream text`) for this pod, in the CRI log format
        kwok reads (`<RFC 3339 time> <stream> F <text>`), a millisecond apart."""
        start = time.time()
        out = []
        for i, line in enumerate(self.template.splitlines()):
            stream, _, text = line.partition(" ")
            at = start + i / 1000
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
            text = text.format(namespace=namespace, pod=pod, job=job, attempt=attempt)
            out.append(f"{stamp}.{int(at * 1e9) % 1_000_000_000:09d}Z {stream} F {text}\n")
        return "".join(out)


def fake_node(name: str, cpu: str, memory: str, pods: int = 110) -> dict[str, object]:
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok"},
        },
        # Both addresses from the start: kwok's node-initialize stage, run again when a
        # node was NotReady (an API-server outage longer than the node lease), would
        # otherwise write `addresses: null` and pods/log would fail from then on.
        "status": {"allocatable": resources, "capacity": resources,
                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                 {"type": "Hostname", "address": name}]},
    }  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "kubectl-path", "pod-logs"))
    parser.add_argument("--dir", default=".cluster", help="state directory (default .cluster)")
    parser.add_argument("--nodes", type=int, default=int(os.environ.get("FLOW_NODES", "3")))
    parser.add_argument("--node-cpu", default="4")
    parser.add_argument("--node-memory", default="8Gi")
    parser.add_argument("--node-pods", type=int, default=110, help="pods per node")
    parser.add_argument(
        "--api-qps", type=int, default=DEFAULT_QPS,
        help=f"QPS of the controller-manager's and scheduler's clients (default {DEFAULT_QPS})",
    )  # fmt: skip
    parser.add_argument(
        "--no-pod-logs", dest="pod_logs", action="store_false",
        help="no log of its own per Job pod (kwok serves stages/task.log for every pod)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    cluster = Cluster(Path(args.dir))
    if args.command == "kubectl-path":
        print(Binaries.from_cache().kubectl)
    elif args.command == "up":
        cluster.up(args.nodes, args.node_cpu, args.node_memory, args.node_pods, args.api_qps,
                   args.pod_logs)  # fmt: skip
    elif args.command == "pod-logs":
        PodLogs(cluster).run()
    elif args.command == "down":
        cluster.down()
    else:
        return cluster.status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
