"""The chart's NetworkPolicy (networkPolicy, on by default; docs/security.md), rendered
offline with helm (tests/unit/test_chart.py's helpers; skipped without helm locally)."""

from __future__ import annotations

import json
import tempfile
from typing import Any

import pytest
import yaml

from tests.unit.test_chart import KUBE_VERSION, helm_template

Body = dict[str, Any]
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def docs(*args: str) -> list[Body]:
    return [d for d in yaml.safe_load_all(helm_template(*args)) if d]


def kind(rendered: list[Body], name: str) -> list[Body]:
    return [d for d in rendered if d["kind"] == name]


def one(rendered: list[Body], name: str) -> Body:
    (found,) = kind(rendered, name)
    return found


def ports_of(rule: Body) -> set[tuple[Any, str]]:
    return {(p["port"], p["protocol"]) for p in rule["ports"]}


def test_the_network_policy_is_on_by_default() -> None:
    rendered = docs()
    spec = one(rendered, "NetworkPolicy")["spec"]
    selector = one(rendered, "Deployment")["spec"]["selector"]["matchLabels"]
    assert spec["podSelector"]["matchLabels"] == selector
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # the API port from anywhere; the metrics port from nobody until Prometheus is named
    assert spec["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    # DNS and the API server, to any address; SQLite: no database egress
    assert [ports_of(r) for r in spec["egress"]] == [
        {(53, "UDP"), (53, "TCP")},
        {(443, "TCP"), (6443, "TCP")},
    ]
    assert all("to" not in r for r in spec["egress"])
    assert not kind(docs("--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def test_selectors_reach_the_policy() -> None:
    kube_dns = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    values = {
        "networkPolicy": {
            "api": {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
            "metrics": {"from": [PROMETHEUS]},
            "egress": {
                "apiServer": {"to": [{"ipBlock": {"cidr": "172.20.0.1/32"}}], "ports": [443]},
                "history": {"to": [{"podSelector": {"matchLabels": {"app": "postgresql"}}}]},
                "dns": {"to": [kube_dns]},
                "extra": [{"ports": [{"port": 8443, "protocol": "TCP"}]}],
            },
        }
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        rendered = docs("-f", f.name, "--set", "history.postgresql.existingSecret=db")
    spec = one(rendered, "NetworkPolicy")["spec"]
    assert spec["ingress"] == [
        {
            "ports": [{"port": "http", "protocol": "TCP"}],
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
        },
        {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [PROMETHEUS]},
    ]
    dns, api, history, extra = spec["egress"]
    assert dns["to"] == [kube_dns]
    assert (ports_of(api), api["to"]) == ({(443, "TCP")}, [{"ipBlock": {"cidr": "172.20.0.1/32"}}])
    assert ports_of(history) == {(5432, "TCP")}
    assert history["to"] == [{"podSelector": {"matchLabels": {"app": "postgresql"}}}]
    assert ports_of(extra) == {(8443, "TCP")}


def test_without_metrics_no_metrics_ingress() -> None:
    prometheus = f"networkPolicy.metrics.from=[{json.dumps(PROMETHEUS)}]"
    spec = one(docs("--set", "metrics.enabled=false", "--set-json", prometheus), "NetworkPolicy")
    assert [r["ports"][0]["port"] for r in spec["spec"]["ingress"]] == ["http"]
    with_metrics = one(docs("--set-json", prometheus), "NetworkPolicy")
    assert [r["ports"][0]["port"] for r in with_metrics["spec"]["ingress"]] == ["http", "metrics"]


def test_the_policy_matches_the_kubernetes_schema() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    prometheus = f"networkPolicy.metrics.from=[{json.dumps(PROMETHEUS)}]"
    rendered = docs("--set", "history.postgresql.existingSecret=db", "--set-json", prometheus)
    kubernetes_validate.validate(one(rendered, "NetworkPolicy"), KUBE_VERSION, strict=True)
