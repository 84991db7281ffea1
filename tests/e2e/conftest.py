"""The end-to-end fixtures: a real local control plane for the session, the operator as a
subprocess per test module, and a fresh namespace per test.

The cluster is cluster/localcluster.py's, in `.cluster/e2e` (or $FLOW_E2E_DIR; ports of its
own, so a `make run` cluster next to it is left alone), started once and stopped at the end
unless FLOW_KEEP_CLUSTER=1. With FLOW_E2E_KUBECONFIG set, the tests use that cluster instead and
start nothing. When a test fails, the tail of the operator's log is attached to its report.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# How long a new namespace may wait for its default ServiceAccount (seconds).
SERVICE_ACCOUNT_WAIT = 120.0


def _load_localcluster() -> ModuleType:
    spec = importlib.util.spec_from_file_location("localcluster", ROOT / "cluster/localcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["localcluster"] = module
    spec.loader.exec_module(module)
    return module


localcluster = _load_localcluster()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def token_namespace(cluster: ClusterHandle, ns: str, token: str) -> Iterator[str]:
    """For a module fixture (`yield from`): namespace `ns` with its default ServiceAccount,
    and the operator's API token Secret `flow-operator-api` holding `token`; deleted after
    (without waiting)."""
    cluster.kubectl("create", "namespace", ns)
    wait_for(f"ServiceAccount default in {ns}",
             lambda: cluster.kubectl("-n", ns, "get", "sa", "default", check=False).returncode == 0,
             SERVICE_ACCOUNT_WAIT)  # fmt: skip
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flow-operator-api"},
              "data": {"token": base64.b64encode(token.encode()).decode()}}  # fmt: skip
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump(secret))
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ClusterHandle:
    """What the tests use of the cluster: its kubeconfig and kubectl."""

    kubeconfig: Path
    kubectl_path: Path
    root: Path | None = None

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def get_json(self, *args: str) -> dict[str, Any]:
        out = self.kubectl("get", *args, "-o", "json", "--ignore-not-found", check=False).stdout
        return json.loads(out) if out.strip() else {}


OK = "registry.example.com/flows/task:1"  # a Job's pod succeeds after 1 s
FOREVER = "kwok.flowops.test/crashloop"  # a pod that runs and never completes (never Ready)


def task(name: str, image: str = OK, **fields: Any) -> dict[str, Any]:
    """A FlowRun task for the tests: its image picks what kwok's pod does."""
    return {"name": name, "version": "1.0", "image": image, **fields}


def flowrun(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """An inline FlowRun manifest named after its flow."""
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name},
        "spec": {"flowName": name, "version": "1", "tasks": tasks, **spec},
    }


def flowctl(cluster: ClusterHandle, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed flowctl against the test cluster, its output as text."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "NO_COLOR": "1"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "flowctl"), *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterHandle]:
    bins = localcluster.Binaries.from_cache()
    external = os.environ.get("FLOW_E2E_KUBECONFIG")
    if external:
        handle = ClusterHandle(Path(external), bins.kubectl)
        _install_crds(handle)
        yield handle
        return
    local = localcluster.Cluster(Path(os.environ.get("FLOW_E2E_DIR", ROOT / ".cluster" / "e2e")))
    local.up(nodes=3, node_cpu="4", node_memory="8Gi")
    handle = ClusterHandle(local.kubeconfig, bins.kubectl, local.root)
    try:
        _install_crds(handle)
        yield handle
    finally:
        if os.environ.get("FLOW_KEEP_CLUSTER") != "1":
            local.down(quiet=True)


def _install_crds(handle: ClusterHandle) -> None:
    handle.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    handle.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))


@pytest.fixture
def namespace(cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own; deleted afterwards (without waiting)."""
    base = request.node.name.lower().replace("_", "-")
    base = "".join(c for c in base if c.isalnum() or c == "-")[:40].strip("-")
    name = f"{base}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount (the controller-manager makes it).
    # Generous: after a test that stops the API server, the controller-manager's watches
    # reconnect with backoff, and its ServiceAccount controller took over 30 s once in CI
    # (test_reliability.py's next test, in the whole suite).
    wait_for(
        f"ServiceAccount default in {name}",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        SERVICE_ACCOUNT_WAIT,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class OperatorProcess:
    """`python -m flow_operator run` against the test cluster, its output in a log file."""

    kubeconfig: Path
    log: Path
    args: list[str] = field(default_factory=list)
    http_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        args = list(self.args or ["--all-namespaces"])
        if not {"--history-db", "--data-dir"} & set(args):
            # A run history of its own beside the log, never the repository's
            # ./.flow-operator (make run's, and every other operator's).
            args += ["--data-dir", str(self.log.parent / "data")]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flow_operator", "run", *args,
                 "--http-host", "127.0.0.1", "--http-port", str(self.http_port),
                 "--metrics-port", str(self.metrics_port)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        mark = self.text().count("operator ready")
        wait_for("operator ready", lambda: self.text().count("operator ready") > mark or
                 self.proc is None or self.proc.poll() is not None, 60)  # fmt: skip
        assert self.proc.poll() is None, f"the operator exited:\n{self.text()[-4000:]}"

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterHandle,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    """One operator per test module (so a module can run an operator of its own, e.g.
    with restricted RBAC, without this one acting on its objects). A module's
    `OPERATOR_ARGS` list replaces the default `--all-namespaces`."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    args = list(getattr(request.module, "OPERATOR_ARGS", ["--all-namespaces"]))
    proc = OperatorProcess(cluster.kubeconfig, log, args)
    proc.start()
    _OPERATORS.append(proc)
    try:
        yield proc
    finally:
        proc.stop()
        _OPERATORS.remove(proc)


_OPERATORS: list[OperatorProcess] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield  # type: ignore[misc]
    if report.failed:
        for proc in _OPERATORS:
            report.sections.append(("operator log (tail)", proc.text()[-8000:]))
    return report  # type: ignore[return-value]
