"""Kube at the client edge: raw responses are checked (kubernetes_asyncio checks the status
of a preloaded response only, so with `_preload_content=False` a 409, 422 or 503 came back
as if it were a success), every failure leaves as the project's own error with the API
server's message, and every write is one generic call whose path the Resource builds."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from flow_operator.errors import (
    Conflict,
    Forbidden,
    Gone,
    KubeError,
    NotFound,
    Refused,
    Unavailable,
    for_status,
)
from flow_operator.kube import Kube, edge, path
from flow_operator.kube.client import from_api_exception
from flow_operator.ports import (
    DEPLOYMENTS,
    EVENTS,
    FLOWRUNS,
    JOBS,
    LEASES,
    PODS,
    SERVICES,
    WORKFLOWS,
    Resource,
    SecretData,
)

Call = tuple[str, str, list[tuple[str, Any]], Any]  # method, path, query, body


class Raw:
    """What kubernetes_asyncio returns with _preload_content=False: aiohttp's response."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.status, self.reason = status, {200: "OK", 201: "Created"}.get(status, "Error")
        self._body = json.dumps(body or {}).encode()
        self.headers = {"Content-Type": "application/json"}
        self.released = False

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        self.released = True


def status_body(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "code": code, "message": message}


class Api:
    """An ApiClient whose call_api answers with the next Raw response given (200 when none
    are left) and records each call."""

    def __init__(self, *responses: Raw) -> None:
        self.responses = list(responses)
        self.calls: list[Call] = []

    async def call_api(self, url: str, method: str, **kwargs: Any) -> Raw:
        assert kwargs["_preload_content"] is False
        assert kwargs["auth_settings"] == ["BearerToken"]
        self.calls.append((method, url, kwargs["query_params"], kwargs["body"]))
        return self.responses.pop(0) if self.responses else Raw(200)


def kube(*responses: Raw, object_writes: int = 16) -> tuple[Kube, Api]:
    api = Api(*responses)
    return Kube(api, object_writes=object_writes), api


JOB = {"kind": "Job", "metadata": {"name": "r-a", "namespace": "ns"}}
DEPLOYMENT = {"kind": "Deployment", "metadata": {"name": "w-a", "namespace": "ns"}}


# --- the error mapping ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Refused), (401, Forbidden), (403, Forbidden), (404, NotFound), (409, Conflict),
        (410, Gone), (422, Refused), (429, Unavailable), (500, Unavailable),
        (503, Unavailable), (504, Unavailable), (None, Unavailable), (405, KubeError),
    ],
)  # fmt: skip
def test_each_status_has_its_error(status: int | None, kind: type[KubeError]) -> None:
    error = for_status(status, "Reason", "the server's message")
    assert type(error) is kind
    assert (error.status, error.reason, error.message) == (status, "Reason", "the server's message")
    assert str(error) == "the server's message"


def test_the_refusals_are_one_family() -> None:
    """What the reconcilers record as "refused" (400, 403, 422) and not retry."""
    assert all(isinstance(for_status(s), Refused) for s in (400, 401, 403, 422))
    assert not isinstance(for_status(404), Refused)  # its own: NotFound


def test_the_client_librarys_exception_keeps_the_servers_message() -> None:
    e = ApiException(status=422, reason="Unprocessable Entity")
    e.body = json.dumps(status_body(422, 'Job.batch "r-a" is invalid: spec.template')).encode()
    error = from_api_exception(e)
    assert isinstance(error, Refused) and error.status == 422
    assert error.reason == "Unprocessable Entity"
    assert error.message == 'Job.batch "r-a" is invalid: spec.template'
    bare = from_api_exception(ApiException(status=403, reason="Forbidden"))
    assert isinstance(bare, Forbidden) and bare.message == "Forbidden"  # no body: the reason


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
)
def test_no_answer_is_unavailable(failure: Exception) -> None:
    with pytest.raises(Unavailable) as raised, edge():
        raise failure
    assert raised.value.status is None and raised.value.__cause__ is failure


async def test_a_connection_error_of_a_call_is_unavailable() -> None:
    class Down:
        async def call_api(self, *args: Any, **kwargs: Any) -> Raw:
            raise aiohttp.ClientConnectionError("Cannot connect to host")

    with pytest.raises(Unavailable, match="Cannot connect to host"):
        await Kube(Down()).apply(DEPLOYMENTS, DEPLOYMENT)


# --- paths ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "namespace", "name", "sub", "expected"),
    [
        (DEPLOYMENTS, "ns", "w-a", None, "/apis/apps/v1/namespaces/ns/deployments/w-a"),
        (SERVICES, "ns", "w-a", None, "/api/v1/namespaces/ns/services/w-a"),
        (JOBS, "ns", None, None, "/apis/batch/v1/namespaces/ns/jobs"),
        (PODS, None, None, None, "/api/v1/pods"),
        (PODS, "ns", "p", "log", "/api/v1/namespaces/ns/pods/p/log"),
        (LEASES, "kube-system", "l", None,
         "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l"),
        (FLOWRUNS, "ns", "r", "status", "/apis/flowops.io/v1alpha1/namespaces/ns/flowruns/r/status"),
        (WORKFLOWS, None, None, None, "/apis/flowops.io/v1alpha1/workflows"),
        (Resource("", "v1", "namespaces", "Namespace", namespaced=False), "ignored", "n",
         None, "/api/v1/namespaces/n"),
        (PODS, "ns", "a/b c", None, "/api/v1/namespaces/ns/pods/a%2Fb%20c"),
    ],
)  # fmt: skip
def test_paths(
    resource: Resource, namespace: str | None, name: str | None, sub: str | None, expected: str
) -> None:
    assert path(resource, namespace, name, sub) == expected


def test_the_resources_match_the_models() -> None:
    from flow_operator.models import flowrun, workflow

    assert (FLOWRUNS.plural, WORKFLOWS.plural) == (flowrun.PLURAL, workflow.PLURAL)
    assert FLOWRUNS.api_version == "flowops.io/v1alpha1" and SERVICES.api_version == "v1"


async def test_writes_are_one_call_for_every_kind() -> None:
    k, api = kube()
    await k.apply(DEPLOYMENTS, DEPLOYMENT)
    await k.apply(SERVICES, {"kind": "Service", "metadata": {"name": "w-a", "namespace": "ns"}})
    assert await k.create(JOBS, JOB) is True
    await k.delete(JOBS, "ns", "r-a")
    await k.delete(FLOWRUNS, "ns", "old-run")  # retention: no branch of its own
    await k.merge_patch(FLOWRUNS, "ns", "r", {"spec": {"cancel": True}})
    apply = [("fieldManager", "flow-operator"), ("force", True)]
    background = [("propagationPolicy", "Background")]
    manager = [("fieldManager", "flow-operator")]
    assert [(m, u, q) for m, u, q, _ in api.calls] == [
        ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/w-a", apply),
        ("PATCH", "/api/v1/namespaces/ns/services/w-a", apply),
        ("POST", "/apis/batch/v1/namespaces/ns/jobs", manager),
        ("DELETE", "/apis/batch/v1/namespaces/ns/jobs/r-a", background),
        ("DELETE", "/apis/flowops.io/v1alpha1/namespaces/ns/flowruns/old-run", background),
        ("PATCH", "/apis/flowops.io/v1alpha1/namespaces/ns/flowruns/r", manager),
    ]
    assert api.calls[0][3] is DEPLOYMENT and api.calls[5][3] == {"spec": {"cancel": True}}


async def test_a_status_write_replaces_the_status() -> None:
    k, api = kube(Raw(200, {"metadata": {"resourceVersion": "42"}}))
    made = await k.replace_status(WORKFLOWS, "ns", "w", {"actualStatus": "GREEN"})
    assert made == "42"
    ((method, url, _, body),) = api.calls
    assert (method, url) == ("PATCH", "/apis/flowops.io/v1alpha1/namespaces/ns/workflows/w/status")
    assert body == [{"op": "add", "path": "/status", "value": {"actualStatus": "GREEN"}}]


# --- raw responses are checked ------------------------------------------------------------
async def test_a_create_that_meets_an_existing_job_is_not_a_creation() -> None:
    first, second = Raw(201), Raw(409, status_body(409, 'jobs.batch "r-a" already exists'))
    k, _ = kube(first, second)
    assert await k.create(JOBS, JOB) is True
    assert await k.create(JOBS, JOB) is False
    assert first.released and second.released


@pytest.mark.parametrize(
    ("code", "kind", "message"),
    [
        (422, Refused, 'Deployment.apps "w-a" is invalid: spec.replicas: Invalid value: -1'),
        (403, Forbidden, "deployments.apps is forbidden"),
        (503, Unavailable, "the request has been made before all known HTTP paths have been installed"),
    ],
)  # fmt: skip
async def test_a_refused_apply_raises_with_the_servers_message(
    code: int, kind: type[KubeError], message: str
) -> None:
    response = Raw(code, status_body(code, message))
    k, _ = kube(response)
    with pytest.raises(kind) as raised:
        await k.apply(DEPLOYMENTS, DEPLOYMENT)
    assert raised.value.status == code and raised.value.message == message
    assert response.released


async def test_status_writes_deletes_and_patches_are_checked_too() -> None:
    k, _ = kube(Raw(404, status_body(404, "not found")), Raw(404), Raw(500, status_body(500, "x")))
    with pytest.raises(NotFound):
        await k.replace_status(FLOWRUNS, "ns", "gone", {})
    await k.delete(JOBS, "ns", "gone")  # already gone is fine
    with pytest.raises(Unavailable):
        await k.merge_patch(FLOWRUNS, "ns", "r", {"spec": {"cancel": True}})


async def test_a_status_write_is_timed() -> None:
    from flow_operator.metrics import REGISTRY

    def writes() -> float:
        value = REGISTRY.get_sample_value(
            "flowops_status_write_seconds_count", {"resource": "workflows"}
        )
        return value or 0.0

    before = writes()
    k, _ = kube(Raw(200, {"metadata": {"resourceVersion": "42"}}))
    await k.replace_status(WORKFLOWS, "ns", "w", {"actualStatus": "GREEN"})
    assert writes() == before + 1


async def test_reads_raise_instead_of_returning_the_error_as_data() -> None:
    k, _ = kube(Raw(409, status_body(409, "exists")), Raw(400, status_body(400, "no log yet")))
    with pytest.raises(Conflict):
        await k.create_returning(FLOWRUNS, {"metadata": {"name": "r", "namespace": "ns"}})
    with pytest.raises(Refused) as raised:
        await k.pod_log("ns", "pod")
    assert raised.value.message == "no log yet"


async def test_a_rerun_gets_the_object_as_stored() -> None:
    stored = {"metadata": {"name": "r-x7k2p", "namespace": "ns"}}
    k, api = kube(Raw(201, stored))
    body = {"metadata": {"generateName": "r-", "namespace": "ns"}}
    assert await k.create_returning(FLOWRUNS, body) == stored
    assert api.calls[0][:2] == ("POST", "/apis/flowops.io/v1alpha1/namespaces/ns/flowruns")


# --- reads ------------------------------------------------------------------------------
async def test_a_list_is_one_page_with_its_token() -> None:
    page = {"items": [{"metadata": {"name": "a"}}],
            "metadata": {"continue": "tok2", "resourceVersion": "77"}}  # fmt: skip
    k, api = kube(Raw(200, page), Raw(200, {"items": []}))
    first = await k.list(WORKFLOWS, None, limit=500)
    assert (first.items, first.continue_token, first.resource_version) == (
        [{"metadata": {"name": "a"}}], "tok2", "77")  # fmt: skip
    last = await k.list(EVENTS, "ns", limit=500, continue_token="tok2",
                        field_selector="reason=FailedCreate")  # fmt: skip
    assert last.items == [] and last.continue_token == ""
    assert api.calls[0][:3] == ("GET", "/apis/flowops.io/v1alpha1/workflows", [("limit", 500)])
    assert api.calls[1][:3] == ("GET", "/api/v1/namespaces/ns/events", [
        ("fieldSelector", "reason=FailedCreate"), ("limit", 500), ("continue", "tok2")])  # fmt: skip


async def test_a_secret_reads_as_its_data_or_raises() -> None:
    k, api = kube(
        Raw(200, {"type": "flowops.io/api-key", "data": {"token": "c2VjcmV0"}}),
        Raw(200, {"data": {"token": "c2VjcmV0"}}),
        Raw(404, status_body(404, 'secrets "x" not found')),
        Raw(403, status_body(403, 'secrets "x" is forbidden')),
    )
    assert await k.read_secret("ops", "api") == SecretData(
        "flowops.io/api-key", {"token": "c2VjcmV0"}
    )
    assert (await k.read_secret("ops", "api")).type == "Opaque"  # the API server's default
    assert api.calls[0][:2] == ("GET", "/api/v1/namespaces/ops/secrets/api")
    with pytest.raises(NotFound):
        await k.read_secret("ops", "x")
    with pytest.raises(Forbidden):
        await k.read_secret("ops", "x")


async def test_a_lister_lists_and_watches_one_resource() -> None:
    k, api = kube(Raw(200), Raw(200))
    everywhere, one = k.lister(PODS), k.lister(JOBS, "ns")
    await everywhere(label_selector="a=b", limit=500, _continue="t", _preload_content=False)
    await one(label_selector="a=b", watch=True, resource_version="9",
              allow_watch_bookmarks=True, timeout_seconds=300)  # fmt: skip
    assert api.calls[0][:3] == ("GET", "/api/v1/pods",
                                [("labelSelector", "a=b"), ("limit", 500), ("continue", "t")])  # fmt: skip
    assert api.calls[1][:3] == ("GET", "/apis/batch/v1/namespaces/ns/jobs", [
        ("labelSelector", "a=b"), ("watch", True), ("resourceVersion", "9"),
        ("allowWatchBookmarks", True), ("timeoutSeconds", 300)])  # fmt: skip


# --- events -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "level"),
    [
        ('events is forbidden: User "flow" cannot create resource "events"', logging.WARNING),
        ('events "r-a.1" is forbidden: namespace ns is being terminated', logging.DEBUG),
    ],
)
async def test_a_refused_event_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, message: str, level: int
) -> None:
    """Events are best effort: a refusal never fails the reconcile that posts one, but it
    is seen (the response is checked) and logged with the server's reason; a namespace
    being deleted refusing it is expected, so only at debug level."""
    refused = Raw(403, status_body(403, message))
    k, api = kube(refused)
    with caplog.at_level(logging.DEBUG, logger="flow_operator.kube.client"):
        await k.event(JOB, "TaskFailed", "task a failed")  # does not raise
    assert refused.released
    assert api.calls[0][:2] == ("POST", "/api/v1/namespaces/ns/events")
    (record,) = [r for r in caplog.records if "could not post event" in r.getMessage()]
    assert record.levelno == level
    assert record.getMessage() == f"could not post event TaskFailed on r-a: 403 Error: {message}"


# --- the client itself --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "proxy"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, "http://proxy.example:3128"),
        ({"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "api.example"}, None),
    ],
)
async def test_the_client_reads_the_proxy_once_not_per_request(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], proxy: str | None
) -> None:
    """aiohttp with trust_env looks up proxies and ~/.netrc in a thread on every request;
    `direct` turns that off and sets the environment's proxy on the client instead."""
    from kubernetes_asyncio import client

    from flow_operator.kube import direct

    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configuration = client.Configuration(host="https://api.example:6443")
    api = client.ApiClient(configuration)
    try:
        assert api.rest_client.pool_manager.trust_env is True  # kubernetes_asyncio's default
        direct(api)
        assert api.rest_client.pool_manager.trust_env is False
        assert api.rest_client.proxy == proxy
    finally:
        await api.close()


async def test_object_writes_are_capped_and_status_writes_pass_them() -> None:
    """A wave of applies keeps at most `object_writes` under way; a status write does not
    queue behind the others."""
    gate, under_way, most = asyncio.Event(), 0, 0

    class Slow(Api):
        async def call_api(self, url: str, method: str, **kwargs: Any) -> Raw:
            nonlocal under_way, most
            if url.endswith("/status"):
                return Raw(200, {"metadata": {"resourceVersion": "7"}})
            under_way += 1
            most = max(most, under_way)
            await gate.wait()
            under_way -= 1
            return Raw(200)

    k = Kube(Slow(), object_writes=3)
    wave = [asyncio.create_task(k.apply(DEPLOYMENTS, DEPLOYMENT)) for _ in range(10)]
    wave += [asyncio.create_task(k.delete(JOBS, "ns", "j"))]
    created = asyncio.create_task(k.create(JOBS, JOB))
    for _ in range(5):
        await asyncio.sleep(0)
    assert most == 3  # the others wait for a turn
    status = {"actualStatus": "GREEN"}
    made = await asyncio.wait_for(k.replace_status(WORKFLOWS, "ns", "w", status), 1)
    assert made == "7"  # answered while all of the wave still waits
    gate.set()
    await asyncio.gather(*wave, created)
    assert most == 3 and under_way == 0


async def test_the_rate_limit_lets_a_burst_through_then_paces_to_qps() -> None:
    """client-go's token bucket: `burst` at once, then one per 1/qps seconds, each waiter
    sleeping until its own moment (no polling); a quiet spell refills the bucket."""
    from flow_operator.kube.client import RateLimit

    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    limit = RateLimit(10, 3, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await limit.take()
    assert slept == [0.1, 0.2] and limit.waited == 2  # 3 at once, then 10 a second
    now[0] = 10.0  # a quiet spell: the bucket is full again, not more than full
    slept.clear()
    for _ in range(4):
        await limit.take()
    assert slept == [0.1]
    unlimited = RateLimit(0, 1, clock=lambda: now[0], sleep=sleep)
    for _ in range(100):
        await unlimited.take()
    assert unlimited.waited == 0
