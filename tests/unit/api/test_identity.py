"""Identity and RBAC of the operator-wide API (api/identity.py, api/audit.py) on fakes of
the TokenReview and SubjectAccessReview ports: 401/403 and their messages, the caches'
expiry on an injected clock, lists filtered to the namespaces the caller may list, `me`,
read-only, the audit (log line, Event, requested-by annotation)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.audit import REQUESTED_BY, Audit, Stamped, requesting
from flow_operator.api.identity import KubernetesAccess, TokenAccess, Unauthenticated
from flow_operator.api.server import Api, make_app
from flow_operator.errors import Forbidden
from flow_operator.kube.client import access_review, identity_of
from flow_operator.objects.body import Body
from flow_operator.ports import FLOWRUNS, PODS, Identity, Permission, Resource
from tests.unit.api_support import Clock, MemoryFlowRuns, Secrets, View, make_api, validate

ALICE = Identity("system:serviceaccount:team-a:alice", ("system:serviceaccounts",))
BOB = Identity("system:serviceaccount:team-b:bob", ("system:serviceaccounts",))
MALLORY = Identity("system:serviceaccount:default:mallory", ("system:serviceaccounts",))
TOKENS = {"alice-token": ALICE, "bob-token": BOB, "mallory-token": MALLORY}
EDIT = {"get", "list", "watch", "create", "patch", "update", "delete"}
VIEW = {"get", "list", "watch"}


class Reviews:
    """TokenReview and SubjectAccessReview in memory: tokens -> identities, and RBAC as
    {(user, namespace or None): verbs on (resource/subresource)}; counts every review."""

    def __init__(self) -> None:
        self.tokens = dict(TOKENS)
        # alice: edit in analytics (incl. pods/log); bob: view in ml (no pods/log)
        self.rules: dict[tuple[str, str | None], dict[str, set[str]]] = {
            (ALICE.user, "analytics"): {
                "flowruns": EDIT,
                "workflows": VIEW,
                "flows": VIEW,
                "pods/log": {"get"},
            },
            (BOB.user, "ml"): {"flowruns": VIEW, "workflows": VIEW, "flows": VIEW},
        }
        self.token_reviews = 0
        self.access_reviews = 0
        self.fail: Exception | None = None

    async def review_token(self, token: str) -> Identity | None:
        self.token_reviews += 1
        if self.fail is not None:
            raise self.fail
        return self.tokens.get(token)

    async def can(self, who: Identity, permission: Permission) -> bool:
        self.access_reviews += 1
        if self.fail is not None:
            raise self.fail
        verbs = self.rules.get((who.user, permission.namespace), {}).get(permission.what, set())
        return permission.verb in verbs


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[Body, str, str]] = []

    async def event(self, involved: Body, reason: str, message: str, type_: str = "Normal",
                    at: datetime | None = None) -> None:  # fmt: skip
        self.posted.append((involved, reason, message))


@pytest.fixture
def reviews() -> Reviews:
    return Reviews()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def backend() -> MemoryFlowRuns:
    return MemoryFlowRuns()  # runs in analytics and ml


def kube_api(
    reviews: Reviews, clock: Clock, backend: MemoryFlowRuns, events: Events, read_only: bool = False
) -> Api:
    api = make_api(View(), Secrets(), clock=clock, flowruns=backend)
    api.access = KubernetesAccess(reviews, reviews, read_only=read_only, clock=clock)
    runs = {(r.namespace, r.name): r for r in backend.rows.values()}

    def lookup(resource: Resource, ns: str, name: str) -> Body | None:
        found = runs.get((ns, name))
        return (
            {"kind": "FlowRun", "metadata": {"namespace": ns, "name": name, "uid": "u-1"}}
            if found
            else None
        )

    api.audit = Audit(events, lookup, clock=lambda: datetime(2024, 2, 12, tzinfo=UTC))
    return api


@pytest.fixture
async def client(
    reviews: Reviews, clock: Clock, backend: MemoryFlowRuns, events: Events
) -> AsyncIterator[TestClient[Any, Any]]:
    c = TestClient(TestServer(make_app(kube_api(reviews, clock, backend, events))))
    await c.start_server()
    yield c
    await c.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def names(client: TestClient[Any, Any], token: str) -> set[str]:
    resp = await client.get("/api/v1/flowruns", headers=auth(token))
    assert resp.status == 200, await resp.text()
    return {r["namespace"] for r in (await resp.json())["items"]}


# --- authentication ---------------------------------------------------------------------------


async def test_a_garbage_or_missing_token_is_401(client: TestClient[Any, Any]) -> None:
    for headers in (auth("garbage"), {}):
        resp = await client.get("/api/v1/flowruns", headers=headers)
        assert resp.status == 401
        body = await resp.json()
        validate("/api/v1/flowruns", "get", 401, body)
        assert "garbage" not in body["message"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_token_reviews_are_cached_at_most_60s_by_digest(
    reviews: Reviews, clock: Clock
) -> None:
    access = KubernetesAccess(reviews, reviews, clock=clock)
    assert await access.authenticate("alice-token") == ALICE
    assert await access.authenticate("alice-token") == ALICE
    assert reviews.token_reviews == 1
    assert b"alice-token" not in repr(access.tokens._items).encode()  # the digest, not the token
    del reviews.tokens["alice-token"]  # the ServiceAccount is deleted
    clock.t += 59.9
    assert await access.authenticate("alice-token") == ALICE
    clock.t += 0.2
    with pytest.raises(Unauthenticated):
        await access.authenticate("alice-token")
    assert reviews.token_reviews == 2


async def test_a_refused_token_is_asked_again_after_10s(reviews: Reviews, clock: Clock) -> None:
    access = KubernetesAccess(reviews, reviews, clock=clock)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await access.authenticate("new-token")
    assert reviews.token_reviews == 1
    reviews.tokens["new-token"] = ALICE
    clock.t += 10.0
    assert await access.authenticate("new-token") == ALICE


async def test_decisions_are_cached_10s_per_user_verb_resource_namespace(
    reviews: Reviews, clock: Clock
) -> None:
    access = KubernetesAccess(reviews, reviews, clock=clock)
    patch = Permission("patch", FLOWRUNS, "analytics")
    assert await access.can(ALICE, patch)
    assert await access.can(ALICE, patch)
    assert reviews.access_reviews == 1
    assert not await access.can(ALICE, Permission("patch", FLOWRUNS, "ml"))  # another key
    assert not await access.can(BOB, patch)
    assert reviews.access_reviews == 3
    reviews.rules.pop((ALICE.user, "analytics"))  # the RoleBinding is deleted
    clock.t += 9.9
    assert await access.can(ALICE, patch)
    clock.t += 0.1
    assert not await access.can(ALICE, patch)


async def test_a_review_that_cannot_be_made_is_503_not_401(
    client: TestClient[Any, Any], reviews: Reviews
) -> None:
    reviews.fail = Forbidden("tokenreviews.authentication.k8s.io is forbidden", status=403)
    resp = await client.get("/api/v1/flowruns", headers=auth("alice-token"))
    assert resp.status == 503
    assert "could not be reviewed" in (await resp.json())["message"]


# --- authorization ----------------------------------------------------------------------------


async def test_lists_are_filtered_to_the_namespaces_the_caller_may_list(
    client: TestClient[Any, Any], reviews: Reviews, clock: Clock
) -> None:
    assert await names(client, "alice-token") == {"analytics"}
    assert await names(client, "bob-token") == {"ml"}
    assert await names(client, "mallory-token") == set()
    reviews.rules[(MALLORY.user, None)] = {"flowruns": {"list"}}  # a cluster-wide list
    clock.t += 10  # once the decision cached for mallory has expired
    assert await names(client, "mallory-token") == {"analytics", "ml"}


async def test_cancel_is_403_naming_the_missing_permission(
    client: TestClient[Any, Any], backend: MemoryFlowRuns
) -> None:
    url = "/api/v1/flowruns/ml/nightly-etl-q1w2/cancel"
    for token in ("alice-token", "bob-token", "mallory-token"):
        resp = await client.post(url, headers=auth(token))
        assert resp.status == 403, token
        body = await resp.json()
        validate("/api/v1/flowruns/{namespace}/{name}/cancel", "post", 403, body)
        assert "cannot" in body["message"] and "flowruns in ml" in body["message"]
    resp = await client.post(url, headers=auth("bob-token"))
    assert (await resp.json())["message"] == f"{BOB.user} cannot patch flowruns in ml"
    assert backend.actions == []
    resp = await client.post("/api/v1/flowruns/analytics/sales-forecast-x2p9/cancel",
                             headers=auth("alice-token"))  # fmt: skip
    assert resp.status == 200
    assert backend.actions == [("cancel", "analytics", "sales-forecast-x2p9")]


async def test_logs_need_pods_log_too(client: TestClient[Any, Any]) -> None:
    alice = await client.get("/api/v1/flowruns/analytics/sales-forecast-x2p9/tasks/load/logs",
                             headers=auth("alice-token"))  # fmt: skip
    assert alice.status == 200
    bob = await client.get("/api/v1/flowruns/ml/nlp-tagging-k8d1/tasks/tokenize/logs",
                           headers=auth("bob-token"))  # fmt: skip
    assert bob.status == 403
    assert (await bob.json())["message"].endswith("cannot get pods/log in ml")
    one = await client.get("/api/v1/flowruns/ml/nlp-tagging-k8d1", headers=auth("bob-token"))
    assert one.status == 200


async def test_an_endpoint_without_an_access_rule_is_refused_in_kubernetes_mode() -> None:
    from aiohttp import web

    from flow_operator.api.server import bearer

    @bearer
    async def unruled(request: web.Request) -> web.StreamResponse:
        return web.json_response({"secret": "everything"})

    api = make_api(View(), Secrets())
    api.access = KubernetesAccess(Reviews(), Reviews())
    app = make_app(api)
    app.router.add_get("/api/v1/unruled", unruled)
    async with TestClient(TestServer(app)) as c:
        resp = await c.get("/api/v1/unruled", headers=auth("alice-token"))
        assert resp.status == 403
        assert "no access rule" in (await resp.json())["message"]


# --- me, read-only ----------------------------------------------------------------------------


async def test_me_says_who_and_what_per_namespace(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/me", headers=auth("alice-token"))
    body = await resp.json()
    validate("/api/v1/me", "get", 200, body)
    assert body["user"] == ALICE.user and body["authMode"] == "kubernetes"
    assert body["readOnly"] is False and body["clusterWide"] == []
    assert body["namespaces"] == [
        {"namespace": "analytics",
         "actions": ["flowruns", "workflows", "flows", "logs", "cancel", "rerun", "run"]},
    ]  # fmt: skip
    bob = await (await client.get("/api/v1/me", headers=auth("bob-token"))).json()
    assert bob["namespaces"] == [{"namespace": "ml", "actions": ["flowruns", "workflows", "flows"]}]
    mallory = await (await client.get("/api/v1/me", headers=auth("mallory-token"))).json()
    assert mallory["namespaces"] == []


async def test_read_only_refuses_every_action_and_me_says_so(
    reviews: Reviews, clock: Clock, backend: MemoryFlowRuns, events: Events
) -> None:
    api = kube_api(reviews, clock, backend, events, read_only=True)
    async with TestClient(TestServer(make_app(api))) as c:
        for verb in ("cancel", "rerun"):
            resp = await c.post(f"/api/v1/flowruns/analytics/churn-weekly-7f3k/{verb}",
                                headers=auth("alice-token"))  # fmt: skip
            assert resp.status == 403
            assert "read-only" in (await resp.json())["message"]
        me = await (await c.get("/api/v1/me", headers=auth("alice-token"))).json()
        assert me["readOnly"] is True
        assert me["namespaces"][0]["actions"] == ["flowruns", "workflows", "flows", "logs"]
    assert backend.actions == [] and events.posted == []


async def test_token_mode_names_each_key_as_a_caller() -> None:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", ci="token-of-ci", ops="token-of-ops")
    api = make_api(View(), secrets, flowruns=MemoryFlowRuns())
    async with TestClient(TestServer(make_app(api))) as c:
        me = await (await c.get("/api/v1/me", headers=auth("token-of-ops"))).json()
        assert me["user"] == "token:ops" and me["authMode"] == "token"
        assert me["clusterWide"] == ["flowruns", "workflows", "flows"]
        assert (await c.get("/api/v1/me", headers=auth("token-of-nobody"))).status == 401
    assert isinstance(api.access, TokenAccess)


# --- audit ------------------------------------------------------------------------------------


async def test_an_action_is_audited_as_a_log_line_and_an_event(
    client: TestClient[Any, Any], events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flow_operator.audit"):
        resp = await client.post("/api/v1/flowruns/analytics/sales-forecast-x2p9/cancel",
                                 headers=auth("alice-token"))  # fmt: skip
        assert resp.status == 200
        refused = await client.post("/api/v1/flowruns/ml/nightly-etl-q1w2/cancel",
                                    headers=auth("bob-token"))  # fmt: skip
        assert refused.status == 403
        rerun = await client.post("/api/v1/flowruns/analytics/churn-weekly-7f3k/rerun",
                                  headers=auth("alice-token"))  # fmt: skip
        assert rerun.status == 201
    lines = [json.loads(r.getMessage().removeprefix("audit ")) for r in caplog.records
             if r.name == "flow_operator.audit"]  # fmt: skip
    assert lines[0] == {
        "user": ALICE.user, "groups": ["system:serviceaccounts"], "action": "cancel",
        "target": "analytics/sales-forecast-x2p9", "time": "2024-02-12T00:00:00Z",
        "result": "done", "status": 200,
    }  # fmt: skip
    assert lines[1]["result"] == "refused" and lines[1]["user"] == BOB.user
    assert lines[1]["detail"] == f"{BOB.user} cannot patch flowruns in ml"
    assert lines[2]["action"] == "rerun" and lines[2]["created"].startswith(
        "analytics/churn-weekly-7f3k-"
    )
    involved, reason, message = events.posted[0]
    assert (reason, message) == ("CancelRequested", f"cancelled by {ALICE.user}")
    assert involved["metadata"]["uid"] == "u-1"
    assert events.posted[1][1] == "RerunRequested"
    assert events.posted[1][2].endswith(f"by {ALICE.user}")
    assert len(events.posted) == 2  # the refused one posts nothing


class Creates:
    def __init__(self) -> None:
        self.created: list[Body] = []

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        return {}

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        return None

    async def create_returning(self, resource: Resource, body: Body) -> Body:
        self.created.append(body)
        return body

    async def pod_log(self, namespace: str, pod: str, *, follow: bool = False,
                      tail_lines: int | None = None,
                      limit_bytes: int | None = None) -> AsyncIterator[bytes]:  # fmt: skip
        raise NotImplementedError


async def test_a_run_created_for_a_request_carries_who_asked() -> None:
    kube = Creates()
    stamped = Stamped(kube)
    run = {"metadata": {"generateName": "x-", "annotations": {"flowops.io/rerun-of": "x"}}}
    with requesting(ALICE.user):
        await stamped.create_returning(FLOWRUNS, run)
        await stamped.create_returning(PODS, {"metadata": {}})  # only FlowRuns
    await stamped.create_returning(FLOWRUNS, {"metadata": {}})  # no request: no stamp
    annotations = [(b["metadata"].get("annotations") or {}) for b in kube.created]
    assert annotations[0] == {"flowops.io/rerun-of": "x", REQUESTED_BY: ALICE.user}
    assert annotations[1] == {} and annotations[2] == {}
    assert run["metadata"]["annotations"] == {"flowops.io/rerun-of": "x"}  # not mutated


# --- the client edge's bodies -----------------------------------------------------------------


def test_the_review_bodies() -> None:
    answer = {"status": {"authenticated": True, "user": {
        "username": ALICE.user, "uid": "u", "groups": ["system:serviceaccounts"],
        "extra": {"authentication.kubernetes.io/pod-name": ["p"]}}}}  # fmt: skip
    who = identity_of(answer)
    assert who is not None and who.user == ALICE.user and who.uid == "u"
    assert identity_of({"status": {"authenticated": False}}) is None
    review = access_review(who, Permission("get", PODS, "team-b", "log"))
    assert review["kind"] == "SubjectAccessReview"
    assert review["spec"]["resourceAttributes"] == {
        "verb": "get",
        "group": "",
        "resource": "pods",
        "subresource": "log",
        "namespace": "team-b",
    }
    assert review["spec"]["extra"] == {"authentication.kubernetes.io/pod-name": ["p"]}
    cluster = access_review(who, Permission("list", FLOWRUNS, None))
    assert "namespace" not in cluster["spec"]["resourceAttributes"]


def test_the_auth_flags() -> None:
    from flow_operator.api.identity import MODES
    from flow_operator.settings import AUTH_MODES, Settings

    assert AUTH_MODES == MODES
    http = Settings.parse(["run", "-A"], env={}).http
    assert (http.auth_mode, http.read_only) == ("token", False)
    http = Settings.parse(["run", "-A", "--auth-mode", "kubernetes", "--read-only"], env={}).http
    assert (http.auth_mode, http.read_only) == ("kubernetes", True)
    env = {"FLOW_AUTH_MODE": "kubernetes", "FLOW_READ_ONLY": "true"}
    http = Settings.parse(["run", "-A"], env=env).http
    assert (http.auth_mode, http.read_only) == ("kubernetes", True)


# --- the live stream ----------------------------------------------------------------------------


async def test_the_stream_carries_only_the_namespaces_the_caller_may_list(
    reviews: Reviews, clock: Clock, backend: MemoryFlowRuns, events: Events
) -> None:
    from flow_operator.api.stream import StreamHub

    api = kube_api(reviews, clock, backend, events)
    api.stream = hub = StreamHub(clock=lambda: 1_700_000_000.0)
    async with TestClient(TestServer(make_app(api))) as c:
        assert (await c.get("/api/v1/stream", headers=auth("garbage"))).status == 401
        for token, theirs, other in (("alice-token", "analytics", "ml"),
                                     ("bob-token", "ml", "analytics")):  # fmt: skip
            resp = await c.get("/api/v1/stream?kinds=runs", headers=auth(token))
            assert resp.status == 200
            while b"event: ready" not in await resp.content.readuntil(b"\n\n"):
                pass
            hub.publish("run", other, "not-theirs", {})  # published first, never sent
            hub.publish("run", theirs, "theirs", {})
            frame = await resp.content.readuntil(b"\n\n")
            assert b'"theirs"' in frame and b"not-theirs" not in frame, frame
            resp.close()
