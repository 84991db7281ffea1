"""`helm install` of the chart into the local control plane: the API server admits every
object (hardened pod spec included) and the release's objects exist. kwok fakes the pods,
so the image is never pulled or run; `helm uninstall` takes the objects away again."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.e2e.conftest import wait_for
from tests.unit.test_chart import CHART, helm_binary

pytestmark = pytest.mark.e2e


def helm(cluster: Any, *args: str) -> str:
    binary = helm_binary()
    if binary is None:
        pytest.fail("helm is missing: bash cluster/build.sh helm")
    done = subprocess.run(
        [binary, "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def get(cluster: Any, *args: str) -> dict[str, Any]:
    out = cluster.kubectl("get", *args, "-o", "json", "--ignore-not-found", check=False).stdout
    return json.loads(out) if out.strip() else {}


def test_helm_install_creates_the_release_objects(cluster: Any, namespace: str) -> None:
    release = f"fo-{namespace}"[:40].rstrip("-")
    full = f"{release}-flow-operator" if "flow-operator" not in release else release
    helm(cluster, "install", release, str(CHART), "--namespace", namespace,
         "--set", "replicaCount=2", "--set", "podDisruptionBudget.enabled=true",
         "--set", "argocd.healthConfigMap.enabled=true",
         # HTTPS only, /metrics behind a token (docs/security.md): the Secret is not made,
         # kwok's pods never mount it
         "--set", "api.tls.enabled=true", "--set", "metrics.auth=true",
         # Two replicas need PostgreSQL for the history (the chart refuses SQLite).
         "--set", "history.postgresql.existingSecret=flow-history-db")  # fmt: skip
    try:
        status = json.loads(helm(cluster, "status", release, "-n", namespace, "-o", "json"))
        assert status["info"]["status"] == "deployed"
        expected = {
            ("deployment", full), ("service", full), ("serviceaccount", full),
            ("poddisruptionbudget", full), ("configmap", f"{full}-argocd-health"),
            ("role", f"{full}-leader"), ("rolebinding", f"{full}-leader"),
            ("networkpolicy", full),
        }  # fmt: skip
        for kind, name in sorted(expected):
            assert get(cluster, "-n", namespace, kind, name), f"{kind} {name} missing"
        for kind in ("clusterrole", "clusterrolebinding"):
            assert get(cluster, kind, full), f"{kind} {full} missing"
        # The CRDs came with the chart (or were there already: helm leaves them as they are).
        assert get(cluster, "crd", "workflows.flowops.io")
        # The controllers made pods from the hardened template: the API server admitted them.
        pods = wait_for(
            "the operator's pods",
            lambda: get(
                cluster, "-n", namespace, "pods", "-l", f"app.kubernetes.io/instance={release}"
            ).get("items"),
        )
        spec = pods[0]["spec"]
        assert spec["serviceAccountName"] == full
        (c,) = spec["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert "--leader-election" in c["args"]
        assert {"--tls-cert=/etc/flow-operator/tls/tls.crt", "--metrics-auth"} <= set(c["args"])
        assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert {"name": "tls", "secret": {"secretName": f"{full}-tls", "defaultMode": 0o440}} in [
            {k: v for k, v in vol.items() if k in ("name", "secret")} for vol in spec["volumes"]
        ]
    finally:
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s")
    assert not get(cluster, "clusterrole", full)
    assert not get(cluster, "-n", namespace, "deployment", full)
