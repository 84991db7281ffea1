"""The chart's TLS and metrics authentication (docs/security.md), rendered
offline with helm (tests/unit/test_chart.py's helpers; skipped without helm locally)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flow_operator.settings import Settings
from tests.unit.test_chart import KUBE_VERSION, helm, helm_template

Body = dict[str, Any]
TLS = ["--set", "api.tls.enabled=true"]
CERT_MANAGER = [*TLS, "--set", "api.tls.certManager.enabled=true",
                "--set", "api.tls.certManager.issuerRef.name=ca-issuer",
                "--set", "api.tls.certManager.issuerRef.kind=ClusterIssuer"]  # fmt: skip
MONITORED = ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.auth=true"]


def docs(*args: str) -> list[Body]:
    return [d for d in yaml.safe_load_all(helm_template(*args)) if d]


def kind(rendered: list[Body], name: str) -> list[Body]:
    return [d for d in rendered if d["kind"] == name]


def one(rendered: list[Body], name: str) -> Body:
    (found,) = kind(rendered, name)
    return found


def operator_container(rendered: list[Body]) -> Body:
    (c,) = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def volumes(rendered: list[Body]) -> list[Body]:
    return list(one(rendered, "Deployment")["spec"]["template"]["spec"]["volumes"])


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_is_off_by_default() -> None:
    rendered = docs()
    c = operator_container(rendered)
    assert not [a for a in c["args"] if a.startswith("--tls") or a == "--metrics-auth"]
    assert "scheme" not in c["livenessProbe"]["httpGet"]
    assert "tls" not in {v["name"] for v in volumes(rendered)}
    assert not kind(rendered, "Certificate")
    ports = one(rendered, "Service")["spec"]["ports"]
    assert {p["name"]: p["appProtocol"] for p in ports} == {"http": "http", "metrics": "http"}


def test_tls_mounts_the_secret_and_switches_probes_service_and_monitor_to_https() -> None:
    rendered = docs(*TLS, *MONITORED)
    c = operator_container(rendered)
    assert "--tls-cert=/etc/flow-operator/tls/tls.crt" in c["args"]
    assert "--tls-key=/etc/flow-operator/tls/tls.key" in c["args"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS", probe
    mount = {"name": "tls", "mountPath": "/etc/flow-operator/tls", "readOnly": True}
    assert mount in c["volumeMounts"]
    secret = {"secretName": "flow-flow-operator-tls", "defaultMode": 0o440}
    assert {"name": "tls", "secret": secret} in volumes(rendered)
    ports = one(rendered, "Service")["spec"]["ports"]
    assert {p["name"]: p["appProtocol"] for p in ports} == {"http": "https", "metrics": "https"}
    (endpoint,) = one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {
        "serverName": "flow-flow-operator.flow-system.svc",
        "ca": {"secret": {"name": "flow-flow-operator-tls", "key": "ca.crt"}},
    }
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert "--metrics-auth" in c["args"]
    assert not kind(rendered, "Certificate")  # a Secret of your own by default


def test_a_secret_of_your_own_and_a_tls_config_of_your_own() -> None:
    rendered = docs(*TLS, *MONITORED, "--set", "api.tls.secretName=my-cert",
                    "--set", "metrics.serviceMonitor.tlsConfig.insecureSkipVerify=true")  # fmt: skip
    secret = {"secretName": "my-cert", "defaultMode": 0o440}
    assert {"name": "tls", "secret": secret} in volumes(rendered)
    (endpoint,) = one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}


def test_cert_manager_issues_the_mounted_secret_for_the_services_names() -> None:
    rendered = docs(*CERT_MANAGER, "--set", "api.tls.certManager.dnsNames={flows.example.com}")
    cert = one(rendered, "Certificate")
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["spec"]["secretName"] == "flow-flow-operator-tls"
    assert cert["spec"]["issuerRef"] == {"name": "ca-issuer", "kind": "ClusterIssuer",
                                         "group": "cert-manager.io"}  # fmt: skip
    assert cert["spec"]["dnsNames"] == [
        "flow-flow-operator", "flow-flow-operator.flow-system",
        "flow-flow-operator.flow-system.svc", "flow-flow-operator.flow-system.svc.cluster.local",
        "flows.example.com",
    ]  # fmt: skip
    assert "server auth" in cert["spec"]["usages"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "api.tls.certManager.enabled=true"],
         "api.tls.certManager.enabled needs api.tls.enabled"),
        ([*TLS, "--set", "api.tls.certManager.enabled=true"],
         "needs api.tls.certManager.issuerRef.name"),
    ],
)  # fmt: skip
def test_cert_manager_without_what_it_needs_is_refused(args: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        helm_template(*args)


def test_tls_values_pass_lint_and_the_args_parse() -> None:
    out = helm("lint", "--strict", "charts/flow-operator", "--kube-version", KUBE_VERSION,
               *CERT_MANAGER, *MONITORED)  # fmt: skip
    assert "0 chart(s) failed" in out
    args = operator_container(docs(*CERT_MANAGER, *MONITORED))["args"]
    settings = Settings.parse(args, env={})
    assert settings.http.tls == ("/etc/flow-operator/tls/tls.crt", "/etc/flow-operator/tls/tls.key")
    assert settings.http.metrics_auth and settings.metrics_on_loop


def test_metrics_auth_grants_the_reviews_in_token_mode_too() -> None:
    def auth_roles(*args: str) -> list[str]:
        return [r["metadata"]["name"] for r in kind(docs(*args), "ClusterRole")
                if r["metadata"]["name"].endswith("-auth")]  # fmt: skip

    assert auth_roles("--set", "api.authMode=token") == []
    token_mode = auth_roles("--set", "api.authMode=token", "--set", "metrics.auth=true")
    assert token_mode == ["flow-flow-operator-auth"]
    assert auth_roles() == ["flow-flow-operator-auth"]  # kubernetes mode, the default


def test_the_rendered_objects_match_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    rendered = docs(*CERT_MANAGER, *MONITORED, "--set", "history.postgresql.existingSecret=db",
                    "--set-json", 'networkPolicy.metrics.from=[{"podSelector": {}}]')  # fmt: skip
    checked = 0
    for doc in rendered:
        if doc["apiVersion"].startswith(("monitoring.coreos.com/", "cert-manager.io/")):
            continue  # CRDs of the Prometheus Operator and cert-manager
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        checked += doc["kind"] in ("NetworkPolicy", "Deployment", "Service")
    assert checked == 3
