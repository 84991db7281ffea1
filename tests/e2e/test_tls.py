"""TLS, metrics authentication and request limits of a real operator on the local control
plane (docs/security.md): started with a self-signed certificate (--tls-cert/--tls-key)
and --metrics-auth, it answers the API over HTTPS and refuses plain HTTP on the port;
/metrics is HTTPS too and takes only a ServiceAccount token whose user may get the
non-resource URL /metrics (a ClusterRole, as for kube-rbac-proxy); headers past the limit
are 431 before authentication."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.certs import self_signed
from tests.e2e.conftest import _OPERATORS, ClusterHandle, OperatorProcess

pytestmark = pytest.mark.e2e
NS = "e2e-tls"
ROLE = "flowops-e2e-metrics-reader"


@pytest.fixture(scope="module")
def tls_operator(
    cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, ssl.SSLContext]]:
    root = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(root)
    proc = OperatorProcess(cluster.kubeconfig, root / "operator.log",
                           ["--all-namespaces", "--auth-mode", "kubernetes", "--metrics-auth",
                            "--tls-cert", str(cert), "--tls-key", str(key)])  # fmt: skip
    _OPERATORS.append(proc)
    proc.start()
    try:
        yield proc, ssl.create_default_context(cafile=str(cert))
    finally:
        proc.stop()
        _OPERATORS.remove(proc)


@pytest.fixture(scope="module")
def tokens(cluster: ClusterHandle) -> Iterator[dict[str, str]]:
    """A ServiceAccount bound to `get /metrics`, and one without."""
    cluster.kubectl("create", "namespace", NS, check=False)
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "scraper", "namespace": NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "other", "namespace": NS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": ROLE},
         "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": ROLE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": NS}]},
    ]  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    made = {
        who: cluster.kubectl("-n", NS, "create", "token", who, "--duration=1h").stdout.strip()
        for who in ("scraper", "other")
    }
    yield made
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", ROLE, check=False)
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def get(url: str, context: ssl.SSLContext | None, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def test_the_api_answers_over_https_and_refuses_plain_http(
    tls_operator: tuple[OperatorProcess, ssl.SSLContext],
) -> None:
    proc, trust = tls_operator
    assert get(f"https://localhost:{proc.http_port}/healthz", trust) == (200, b'{"status": "ok"}')
    assert "HTTP API listening on https://127.0.0.1" in proc.text()
    plain = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.request("GET", "/healthz")
        plain.getresponse()  # the TLS server closes the connection: no HTTP answer
    plain.close()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(f"https://localhost:{proc.http_port}/healthz", None)


def test_metrics_need_a_token_allowed_get_metrics(
    tls_operator: tuple[OperatorProcess, ssl.SSLContext], tokens: dict[str, str]
) -> None:
    proc, trust = tls_operator
    url = f"https://localhost:{proc.metrics_port}/metrics"
    status, body = get(url, trust)
    assert (status, json.loads(body)["error"]) == (401, "Unauthorized")
    status, body = get(url, trust, Authorization=f"Bearer {tokens['other']}")
    assert (status, json.loads(body)["message"]) == (
        403,
        f"system:serviceaccount:{NS}:other cannot get /metrics",
    )
    status, body = get(url, trust, Authorization=f"Bearer {tokens['scraper']}")
    assert status == 200
    assert b"# HELP flowops_workflow_color" in body


def test_headers_past_the_limit_are_431(
    tls_operator: tuple[OperatorProcess, ssl.SSLContext],
) -> None:
    proc, trust = tls_operator
    status, body = get(f"https://localhost:{proc.http_port}/api/v1/flowruns", trust,
                       **{"X-Padding": "p" * 20_000})  # fmt: skip
    assert (status, json.loads(body)["error"]) == (431, "RequestHeaderFieldsTooLarge")
