"""Security of a real operator on the local control plane (docs/reliability.md).

After a round of authentication attempts against its HTTP API (right keys, wrong keys,
another Workflow's key, no key, operator tokens right and wrong, enough failures to be
rate-limited):

- no key, token or guessed value (nor its base64) appears in the operator's log, its
  /metrics, the namespace's Events, or any Workflow (status included);
- a key for Workflow A tells nothing about B: A's key on B, on a Workflow without keys,
  on one whose Secret is missing and on one that does not exist get the same 401 body;
- the operator read only the Secrets that Workflows reference (and its own token Secret),
  only with `get`, never `list` or `watch`: the API server's audit log (the local cluster
  audits Secret requests at Metadata level, names only) is the witness;
- a Workflow pointed at an ordinary (Opaque) Secret gets no keys, its right value the same
  401 as a guess, and its status an ApiKeySecret condition naming the field and the fix;
  a flowops.io/api-key Secret's key works, one shorter than 16 bytes does not.

The operator here is this module's own process, confined to the test's namespace.
Constant-time comparison, the 401 matrix and Schemathesis fuzzing are unit tests
(tests/unit/api/).
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import results
from tests.e2e.conftest import _OPERATORS, ClusterHandle, OperatorProcess, localcluster, wait_for

pytestmark = pytest.mark.e2e
IMAGE = "registry.example.com/flows/app:1"


def workflow(name: str, secret: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "desiredStatus": "PUBLISHED",
        "publishingMode": "ASYNC",
        "services": [{"id": "api", "image": IMAGE, "replicas": 1}],
    }
    if secret:
        spec["apiKeySecretRef"] = {"name": secret}
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def secret(name: str, secret_type: str = "flowops.io/api-key", **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": secret_type, "stringData": values}  # fmt: skip


def call(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


@pytest.fixture
def api_operator(
    cluster: ClusterHandle, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log",
                           ["--namespace", namespace,
                            "--api-token-secret", f"{namespace}/flow-operator-api"])  # fmt: skip
    _OPERATORS.append(proc)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        _OPERATORS.remove(proc)


def test_no_secret_leaks_and_only_referenced_secrets_are_read(
    cluster: ClusterHandle, namespace: str, api_operator: OperatorProcess
) -> None:
    started = datetime.now(UTC)
    key_a, key_a2, key_b = (secrets.token_hex(16) for _ in range(3))
    token, never_read = secrets.token_hex(16), secrets.token_hex(16)
    guesses = [secrets.token_hex(16) for _ in range(12)]
    objs = [
        secret("keys-a", primary=key_a, secondary=key_a2),
        secret("keys-b", k=key_b),
        secret("unreferenced", k=never_read),
        secret("flow-operator-api", ci=token),
        workflow("wf-a", "keys-a"),
        workflow("wf-b", "keys-b"),
        workflow("wf-open", None),
        workflow("wf-missing", "missing-keys"),
    ]
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(objs))

    def published() -> bool:
        items = cluster.get_json("-n", namespace, "workflows").get("items", [])
        return len(items) == 4 and all(
            (w.get("status") or {}).get("actualStatus") == "GREEN" for w in items
        )

    wait_for("every Workflow GREEN", published, 90)
    attempts: list[int] = []  # the HTTP code of every authentication attempt, in order

    def attempt(path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        code, body = call(api_operator.url(path), headers)
        attempts.append(code)
        return code, body

    def status(workflow_id: str, key: str | None) -> tuple[int, bytes]:
        headers = {"X-API-KEY": key} if key is not None else {}
        return attempt(f"/api/v1/runtime/workflow/{workflow_id}/action/status", headers)

    wf_a = f"{namespace}.wf-a"
    code, body = status(wf_a, key_a)
    assert code == 200 and json.loads(body)["actualStatus"] == "GREEN", body
    assert status(wf_a, key_a2)[0] == 200  # every value of the Secret is a key
    assert status("wf-a", key_a)[0] == 200  # the plain name, told apart by the key
    # Any other key gets the same 401, byte for byte: nothing about B (or about whether a
    # Workflow exists, or has keys) is learnt from A's key.
    denied = {
        "A's key on B": status(f"{namespace}.wf-b", key_a),
        "B's key on A": status(wf_a, key_b),
        "a guess on A": status(wf_a, guesses[0]),
        "A's key on a Workflow without keys": status(f"{namespace}.wf-open", key_a),
        "A's key on a Workflow whose Secret is missing": status(f"{namespace}.wf-missing", key_a),
        "A's key on no Workflow": status(f"{namespace}.wf-nothing", key_a),
        "the token as a key": status(wf_a, token),
    }
    assert {what: code for what, (code, _) in denied.items()} == dict.fromkeys(denied, 401)
    assert len({body for _, body in denied.values()}) == 1, denied
    assert status(wf_a, None)[0] == 401

    def workflows(auth: str) -> int:
        return attempt("/api/v1/workflows", {"Authorization": auth})[0]

    assert workflows(f"Bearer {token}") == 200
    assert workflows(f"Bearer {guesses[1]}") == 401
    assert workflows(f"Bearer {key_a}") == 401  # a Workflow's key is not the operator token
    # Failures are rate-limited per client address; then even the right key gets 429.
    codes = [status(wf_a, g)[0] for g in guesses[2:]]
    assert codes[-1] == 429, codes
    assert status(wf_a, key_a)[0] == 429

    # --- nothing secret anywhere it could be read -------------------------------------
    values = [key_a, key_a2, key_b, token, never_read, *guesses]
    encoded = [base64.b64encode(v.encode()).decode() for v in values]
    events = cluster.kubectl("-n", namespace, "get", "events", "-o", "json").stdout
    objects = cluster.kubectl("-n", namespace, "get", "workflows,flowruns,deployments",
                              "-o", "json").stdout  # fmt: skip
    places = {
        "operator log": api_operator.text(),
        "metrics": api_operator.metrics_text(),
        "events": events,
        "workflows (status included)": objects,
    }
    leaks = [(where, v[:6]) for where, text in places.items() for v in values + encoded
             if v in text]  # fmt: skip
    assert leaks == [], f"secret values found: {leaks}"

    # --- which Secrets the operator read: the API server's audit log -------------------
    if cluster.root is None:
        pytest.skip("no audit log on an external cluster (FLOW_E2E_KUBECONFIG)")
    audit = localcluster.Cluster(cluster.root).audit_log
    if not audit.exists():
        pytest.skip(f"no {audit}: the cluster was started before it had an audit log; restart it")

    def secret_requests() -> list[dict[str, Any]]:
        out = []
        for line in audit.read_text(errors="replace").splitlines():
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            when = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if ref.get("resource") == "secrets" and when >= started:
                out.append(entry)
        return out

    def reads_of_keys_a() -> list[dict[str, Any]]:
        return [e for e in secret_requests() if e["objectRef"].get("namespace") == namespace
                and e["objectRef"].get("name") == "keys-a"
                and not e.get("userAgent", "").startswith("kubectl/")]  # fmt: skip

    # Besides this test's kubectl, only the operator reads keys-a: its user agent is whoever did.
    agents = {e["userAgent"] for e in wait_for("keys-a read (audit log)", reads_of_keys_a, 10)}
    operator_requests = [e for e in secret_requests() if e.get("userAgent") in agents]
    reads = {(e["verb"], e["objectRef"].get("namespace"), e["objectRef"].get("name"))
             for e in operator_requests}  # fmt: skip
    referenced = {"keys-a", "keys-b", "missing-keys", "flow-operator-api"}
    assert {verb for verb, _, _ in reads} == {"get"}, reads  # never list or watch
    assert {ns for _, ns, _ in reads} == {namespace}, reads
    assert {name for _, _, name in reads} <= referenced, reads  # never "unreferenced"
    assert "flow-operator-api" in {name for _, _, name in reads}
    # Cached: each Secret read at most once per 30 s, however many requests named it.
    names = [e["objectRef"]["name"] for e in operator_requests]
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert all(names.count(n) <= 1 + elapsed // 30 for n in set(names)), names
    print(f"\nsecurity: {len(attempts)} requests; the operator read only "
          f"{sorted(set(names))} ({len(names)} gets in {elapsed:.0f} s); no key or token in "
          "its log, metrics, events or Workflow statuses")  # fmt: skip
    results.record("security", {
        "attempts": len(attempts),
        "codes": {str(c): n for c, n in sorted(Counter(attempts).items())},
        "failures_before_429": attempts.index(429) - attempts[: attempts.index(429)].count(200),
        "secret_gets": len(names),
        "secrets_read": sorted(set(names)),
        "elapsed_s": round(elapsed),
    })  # fmt: skip


def api_key_condition(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, Any]:
    body = cluster.get_json("-n", namespace, "workflow", name)
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "ApiKeySecret"), {})


def test_only_api_key_secrets_give_keys(
    cluster: ClusterHandle, namespace: str, api_operator: OperatorProcess
) -> None:
    password, key, short = secrets.token_hex(16), secrets.token_hex(16), "tooshort"
    objs = [
        secret("db-password", "Opaque", password=password),
        secret("keys", k=key),
        secret("short-keys", k=short),
        workflow("wf-opaque", "db-password"),
        workflow("wf-keys", "keys"),
        workflow("wf-short", "short-keys"),
    ]
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(objs))
    expected = {
        "wf-opaque": ("False", "WrongSecretType", f"apiKeySecretRef: Secret {namespace}/"
                      "db-password has type Opaque; create it with type flowops.io/api-key"),
        "wf-keys": ("True", "Accepted", f"1 key accepted from {namespace}/keys"),
        "wf-short": ("False", "KeysTooShort", f"apiKeySecretRef: Secret {namespace}/short-keys: "
                     "the value of k is shorter than 16 bytes"),
    }  # fmt: skip

    def conditions() -> dict[str, tuple[str, str, str]]:
        out = {}
        for name in expected:
            c = api_key_condition(cluster, namespace, name)
            out[name] = (c.get("status", ""), c.get("reason", ""), c.get("message", ""))
        return out

    def told() -> bool:
        got = conditions()
        return all(got[n][:2] == e[:2] and got[n][2].startswith(e[2]) for n, e in expected.items())

    try:
        wait_for("each Workflow's ApiKeySecret condition", told, 90)
    except AssertionError as e:
        raise AssertionError(f"{e}: {conditions()}") from None

    def items() -> list[dict[str, Any]]:
        return list(cluster.get_json("-n", namespace, "workflows").get("items", []))

    wait_for("published", lambda: all((w.get("status") or {}).get("firstPublishedAt")
                                      for w in items()), 90)  # fmt: skip
    assert len(items()) == 3

    def status(workflow_id: str, value: str) -> tuple[int, bytes]:
        path = f"/api/v1/runtime/workflow/{namespace}.{workflow_id}/action/status"
        return call(api_operator.url(path), {"X-API-KEY": value})

    code, body = status("wf-keys", key)
    assert code == 200 and "actualStatus" in json.loads(body), body
    # The Opaque Secret's own value is no key: the same 401, byte for byte, as a guess.
    right, guess = status("wf-opaque", password), status("wf-opaque", secrets.token_hex(16))
    assert right[0] == guess[0] == 401 and right[1] == guess[1], (right, guess)
    assert status("wf-short", short)[0] == 401
    log = api_operator.text()
    assert f"Secret {namespace}/db-password has type Opaque" in log
    leaks = [what for what, value in (("password", password), ("key", key), ("short", short))
             for text in (log, json.dumps(items())) if value in text]  # fmt: skip
    assert leaks == [], leaks
    print(f"\napi-key Secrets: {conditions()}")
