"""The chart's RBAC is enough, and no more: the operator runs with a token of the chart's
ServiceAccount (and nothing else) against the local control plane, a Workflow goes GREEN,
`kubectl wait --for=condition=Ready` returns, and /metrics shows it; the same token is
refused what the code never does. Both scopes: ClusterRole (-A) and per-namespace Roles (-n).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import wait_for
from tests.unit.test_chart import CHART, KUBE_VERSION, ROOT, helm_binary, versions

pytestmark = pytest.mark.e2e


def kubectl_binary() -> str:
    cache = Path(os.environ.get("FLOW_CACHE", Path.home() / ".cache" / "flow-operator"))
    return str(cache / "bin" / f"kubernetes-{versions()['KUBERNETES_VERSION']}" / "kubectl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_rbac(release: str, namespace: str, *values: str) -> str:
    """Only the ServiceAccount and RBAC objects of the chart, as `helm template` renders them."""
    binary = helm_binary()
    if binary is None:
        pytest.fail("helm is missing: bash cluster/build.sh helm")
    done = subprocess.run(
        [binary, "template", release, str(CHART), "--namespace", namespace,
         "--kube-version", KUBE_VERSION,
         "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
         *values],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def token_kubeconfig(cluster: Any, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig for the admin's API server whose only credential is the account's token."""
    made = cluster.kubectl(
        "-n", namespace, "create", "token", account, "--duration=1h", check=False
    )
    assert made.returncode == 0, f"kubectl create token (TokenRequest API): {made.stderr}"
    admin_path = Path(cluster.kubeconfig)
    admin = yaml.safe_load(admin_path.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = dict(
        next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])["cluster"]
    )
    ca = server.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        server["certificate-authority"] = str((admin_path.parent / ca).resolve())
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": account, "user": {"token": made.stdout.strip()}}],
        "contexts": [{"name": account, "context": {"cluster": "local", "user": account,
                                                    "namespace": namespace}}],
        "current-context": account,
    }))  # fmt: skip
    return path


class Operator:
    """`python -m flow_operator run` as a subprocess with the given KUBECONFIG."""

    def __init__(self, kubeconfig: Path, namespace: str, scope: list[str], log: Path) -> None:
        self.scope = scope
        self.metrics_port = free_port()
        self.log = log
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace}
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flow_operator", "run", *scope,
             "--http-host", "127.0.0.1", "--http-port", str(free_port()),
             "--metrics-port", str(self.metrics_port),
             "--api-token-secret", f"{namespace}/flow-operator-api"],
            cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text()

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._out.close()


SCOPES = {
    "cluster": ([], ["--all-namespaces"]),
    "namespaced": (["--set", "watch.scope=namespaced"], ["--namespace"]),
}


@pytest.fixture(params=list(SCOPES))
def restricted_operator(
    request: pytest.FixtureRequest, cluster: Any, namespace: str, tmp_path: Path
) -> Iterator[tuple[Operator, Path]]:
    scope = request.param
    values, flags = SCOPES[scope]
    if scope == "namespaced":
        values = [*values, "--set", f"watch.namespaces={{{namespace}}}"]
        flags = [f"--namespace={namespace}"]
    release = f"rbac-{namespace}"[:40].rstrip("-")
    manifests = render_rbac(release, namespace, *values)
    cluster.kubectl("apply", "-f", "-", input=manifests)
    cluster_scoped = [
        (d["kind"], d["metadata"]["name"])
        for d in yaml.safe_load_all(manifests)
        if d and d["kind"] in ("ClusterRole", "ClusterRoleBinding")
    ]
    account = f"{release}-flow-operator"
    kubeconfig = token_kubeconfig(cluster, namespace, account, tmp_path / "sa.kubeconfig")
    operator = Operator(kubeconfig, namespace, flags, tmp_path / "operator.log")
    try:
        wait_for("operator ready", lambda: "operator ready" in operator.text() or
              operator.proc.poll() is not None, 90)  # fmt: skip
        assert operator.proc.poll() is None, operator.text()
        yield operator, kubeconfig
    finally:
        operator.stop()
        for kind, name in cluster_scoped:
            cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)


def test_operator_with_only_the_chart_rbac_publishes_a_workflow(
    cluster: Any, namespace: str, restricted_operator: tuple[Operator, Path]
) -> None:
    operator, _ = restricted_operator
    workflow = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "least", "namespace": namespace},
        "spec": {
            "desiredStatus": "PUBLISHED",
            "publishingMode": "ASYNC",
            "services": [
                {"id": "web", "image": "nginx:1.27", "replicas": 2,
                 "ports": [{"name": "http", "containerPort": 80}]},
            ],
        },
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(workflow))

    def color() -> str | None:
        out = cluster.kubectl("-n", namespace, "get", "workflow", "least", "-o", "json").stdout
        return json.loads(out).get("status", {}).get("actualStatus")

    try:
        wait_for("GREEN", lambda: color() == "GREEN", 120)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- operator log ---\n{operator.text()[-4000:]}") from None
    waited = cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "workflow/least",
                             "--timeout=60s", check=False)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    # The Service (a port was declared) and the color on /metrics, from the same process.
    assert (
        cluster.kubectl("-n", namespace, "get", "service", "least-web", check=False).returncode == 0
    )
    green = (
        "flowops_workflow_color",
        frozenset({"namespace": namespace, "workflow": "least", "color": "GREEN"}.items()),
    )
    wait_for("GREEN on /metrics", lambda: operator.metrics().get(green) == 1, 30)  # fmt: skip

    # Unpublish: the Deployment and Service are deleted with the same token.
    cluster.kubectl("-n", namespace, "patch", "workflow", "least", "--type=merge",
                    "-p", '{"spec": {"desiredStatus": "UNPUBLISHED"}}')  # fmt: skip
    wait_for("Deployments gone", lambda: not json.loads(cluster.kubectl(
        "-n", namespace, "get", "deployments", "-l", "flowops.io/workflow=least", "-o", "json"
    ).stdout)["items"], 60)  # fmt: skip

    assert_never_refused(operator)


def assert_never_refused(operator: Operator) -> None:
    log = operator.text()
    for refused in ("Forbidden", " 403"):
        lines = [ln for ln in log.splitlines() if refused in ln and "namespaces" not in ln]
        assert not lines, "\n".join(lines)


def test_operator_with_only_the_chart_rbac_runs_flowruns(
    cluster: Any, namespace: str, restricted_operator: tuple[Operator, Path]
) -> None:
    """Jobs created, a child run created, a failed pod's log read, a cancel carried out:
    every FlowRun call the operator makes, with the chart's token."""
    operator, _ = restricted_operator
    image = "registry.example.com/task:1"

    def run(name: str, tasks: list[dict[str, Any]]) -> None:
        body = {"apiVersion": "flowops.io/v1alpha1", "kind": "FlowRun",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"flowName": name, "version": "1", "tasks": tasks}}  # fmt: skip
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def phase(name: str) -> str | None:
        out = cluster.kubectl("-n", namespace, "get", "flowrun", name, "-o", "json").stdout
        return json.loads(out).get("status", {}).get("phase")

    sub = {"flowName": "child", "version": "1", "tasks": [{"name": "inner", "image": image}]}
    run("nested", [{"name": "a", "image": image},
                   {"name": "b", "subFlow": sub, "dependsOn": ["a"]}])  # fmt: skip
    run("broken", [{"name": "crash", "image": "kwok.flowops.test/fail"}])
    run("endless", [{"name": "spin", "image": "kwok.flowops.test/crashloop"}])
    try:
        wait_for("nested Completed", lambda: phase("nested") == "Completed", 90)
        wait_for("broken Failed", lambda: phase("broken") == "Failed", 60)
        wait_for("endless Deployed", lambda: phase("endless") == "Deployed", 60)
        cluster.kubectl("-n", namespace, "patch", "flowrun", "endless", "--type=merge",
                        "-p", '{"spec": {"cancel": true}}')  # fmt: skip
        wait_for("endless Cancelled", lambda: phase("endless") == "Cancelled", 60)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- operator log ---\n{operator.text()[-4000:]}") from None
    out = cluster.kubectl("-n", namespace, "get", "flowrun", "broken", "-o", "json").stdout
    assert "working" in json.loads(out)["status"]["tasks"][0]["message"]  # pods/log was read
    assert_never_refused(operator)


def test_the_token_is_refused_what_the_code_never_does(
    cluster: Any, namespace: str, restricted_operator: tuple[Operator, Path]
) -> None:
    operator, kubeconfig = restricted_operator

    def can(*args: str) -> bool:
        done = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(kubeconfig), "auth", "can-i", *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return done.stdout.strip() == "yes"

    ns = ["-n", namespace]
    # Secrets (apiKeySecretRef): a watched namespace's Role grants get; the cluster scope's
    # ClusterRole does not (rbac.apiKeySecrets, docs/security.md)
    namespaced = operator.scope != ["--all-namespaces"]
    assert can("get", "secrets", *ns) is namespaced
    assert not can("get", "secrets", "-n", "kube-system")
    for allowed in (["create", "deployments"], ["patch", "deployments"], ["delete", "services"],
                    ["list", "pods"], ["get", "pods", "--subresource=log"],
                    ["patch", "workflows.flowops.io", "--subresource=status"],
                    ["create", "jobs.batch"], ["delete", "jobs.batch"], ["create", "events"], ["list", "events"],
                    ["create", "flowruns.flowops.io"],
                    # retention: a finished run leaves the cluster once archived
                    ["delete", "flowruns.flowops.io"],
                    ["patch", "flowruns.flowops.io", "--subresource=status"]):  # fmt: skip
        assert can(*allowed, *ns), allowed
    for refused in (["list", "secrets"], ["watch", "secrets"], ["update", "deployments"],
                    ["create", "pods"], ["delete", "workflows.flowops.io"],
                    ["patch", "jobs.batch"], ["deletecollection", "flowruns.flowops.io"],
                    ["create", "rolebindings.rbac.authorization.k8s.io"],
                    ["get", "nodes"], ["*", "*"]):  # fmt: skip
        assert not can(*refused, *ns), refused
