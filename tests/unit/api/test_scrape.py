"""/metrics on the event loop (api/scrape.py) with --metrics-auth, on fakes of the
TokenReview and SubjectAccessReview ports: no token 401, a token without `get /metrics`
403 naming it, with it the Prometheus text; the review asked is the non-resource URL's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.identity import KubernetesAccess
from flow_operator.api.scrape import SCRAPE, metrics_app
from flow_operator.errors import Forbidden
from flow_operator.kube.client import access_review
from flow_operator.ports import Identity, Permission

PROMETHEUS = Identity("system:serviceaccount:monitoring:prometheus", ("system:serviceaccounts",))
ALICE = Identity("system:serviceaccount:team-a:alice")


class Reviews:
    """Tokens -> identities; who may get which non-resource URLs; the permissions asked."""

    def __init__(self) -> None:
        self.tokens = {"prom-token": PROMETHEUS, "alice-token": ALICE}
        self.urls = {PROMETHEUS.user: {"/metrics"}}
        self.asked: list[Permission] = []
        self.fail: Exception | None = None

    async def review_token(self, token: str) -> Identity | None:
        return self.tokens.get(token)

    async def can(self, who: Identity, permission: Permission) -> bool:
        self.asked.append(permission)
        if self.fail is not None:
            raise self.fail
        return permission.verb == "get" and permission.path in self.urls.get(who.user, set())


@pytest.fixture
def reviews() -> Reviews:
    return Reviews()


@pytest.fixture
async def client(reviews: Reviews) -> AsyncIterator[TestClient[Any, Any]]:
    c = TestClient(TestServer(metrics_app(KubernetesAccess(reviews, reviews))))
    await c.start_server()
    yield c
    await c.close()


async def scrape(client: TestClient[Any, Any], token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.get("/metrics", headers=headers)
    text = await resp.text()
    return resp.status, (await resp.json() if resp.status != 200 else text)


async def test_a_token_allowed_get_metrics_scrapes(
    client: TestClient[Any, Any], reviews: Reviews
) -> None:
    status, text = await scrape(client, "prom-token")
    assert status == 200
    assert "flowops_" in text and "process_cpu_seconds_total" in text
    assert reviews.asked == [Permission("get", SCRAPE.resource, None, path="/metrics")]


async def test_no_token_is_401_a_wrong_one_too(client: TestClient[Any, Any]) -> None:
    assert await scrape(client, None) == (
        401,
        {"error": "Unauthorized", "message": "a bearer token is required (a Kubernetes token)"},
    )
    status, body = await scrape(client, "guessed")
    assert (status, body["error"]) == (401, "Unauthorized")


async def test_a_token_without_the_permission_is_403_naming_it(
    client: TestClient[Any, Any],
) -> None:
    assert await scrape(client, "alice-token") == (
        403,
        {"error": "Forbidden", "message": f"{ALICE.user} cannot get /metrics"},
    )


async def test_a_review_that_cannot_be_made_is_503(
    client: TestClient[Any, Any], reviews: Reviews
) -> None:
    reviews.fail = Forbidden("subjectaccessreviews is forbidden")
    status, body = await scrape(client, "prom-token")
    assert (status, body["error"]) == (503, "Unavailable")


async def test_without_access_anyone_scrapes() -> None:
    c = TestClient(TestServer(metrics_app(None)))
    await c.start_server()
    try:
        assert (await c.get("/metrics")).status == 200
    finally:
        await c.close()


def test_the_review_is_of_the_non_resource_url() -> None:
    assert access_review(PROMETHEUS, SCRAPE)["spec"] == {
        "user": PROMETHEUS.user,
        "groups": ["system:serviceaccounts"],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }
