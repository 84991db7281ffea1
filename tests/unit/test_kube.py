"""Kube's raw responses: kubernetes_asyncio checks the status of a preloaded response only,
so with `_preload_content=False` a 409, 422 or 503 came back as if it were a success (a
second create "created" the Job again, a refused apply or status write went unnoticed).
Every raw response is now checked: a refusal raises ApiException with the server's Status."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from flow_operator.kube import Kube, api_error


class Raw:
    """What kubernetes_asyncio returns with _preload_content=False: aiohttp's response."""

    def __init__(self, status: int, body: dict[str, Any] | None = None) -> None:
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


class Calls:
    """Each client method answers with the next Raw response given."""

    def __init__(self, *responses: Raw) -> None:
        self.responses = list(responses)

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Raw:
            assert kwargs.get("_preload_content") is False, name
            return self.responses.pop(0)

        return call


def kube(*responses: Raw, object_writes: int = 16) -> Kube:
    k = Kube.__new__(Kube)
    k.apps = k.core = k.batch = k.custom = Calls(*responses)  # type: ignore[assignment]
    k.object_writes = asyncio.Semaphore(object_writes)
    return k


JOB = {"kind": "Job", "metadata": {"name": "r-a", "namespace": "ns"}}
DEPLOYMENT = {"kind": "Deployment", "metadata": {"name": "w-a", "namespace": "ns"}}


async def test_a_create_that_meets_an_existing_job_is_not_a_creation() -> None:
    first, second = Raw(201), Raw(409, status_body(409, 'jobs.batch "r-a" already exists'))
    k = kube(first, second)
    assert await k.create(JOB) is True
    assert await k.create(JOB) is False
    assert first.released and second.released


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (422, 'Deployment.apps "w-a" is invalid: spec.replicas: Invalid value: -1'),
        (403, "deployments.apps is forbidden"),
        (503, "the request has been made before all known HTTP paths have been installed"),
    ],
)
async def test_a_refused_apply_raises_with_the_servers_message(code: int, message: str) -> None:
    response = Raw(code, status_body(code, message))
    with pytest.raises(ApiException) as raised:
        await kube(response).apply(DEPLOYMENT)
    assert raised.value.status == code and api_error(raised.value) == message
    assert response.released


async def test_status_writes_deletes_and_patches_are_checked_too() -> None:
    k = kube(Raw(404, status_body(404, "not found")), Raw(404), Raw(500, status_body(500, "x")))
    with pytest.raises(ApiException):
        await k.replace_status("flowruns", "ns", "gone", {}, "flowops.io", "v1alpha1")
    await k.delete("Job", "ns", "gone")  # already gone is fine
    with pytest.raises(ApiException):
        await k.merge_patch_custom("flowruns", "ns", "r", {"spec": {"cancel": True}})


async def test_a_status_write_returns_its_version_and_is_timed() -> None:
    from flow_operator.metrics import REGISTRY

    def writes() -> float:
        value = REGISTRY.get_sample_value(
            "flowops_status_write_seconds_count", {"resource": "workflows"}
        )
        return value or 0.0

    before = writes()
    made = await kube(Raw(200, {"metadata": {"resourceVersion": "42"}})).replace_status(
        "workflows", "ns", "w", {"actualStatus": "GREEN"}, "flowops.io", "v1alpha1"
    )
    assert made == "42" and writes() == before + 1


async def test_reads_raise_instead_of_returning_the_error_as_data() -> None:
    k = kube(Raw(409, status_body(409, "exists")), Raw(400, status_body(400, "no log yet")))
    with pytest.raises(ApiException):
        await k.create_custom("flowruns", "ns", {"metadata": {"name": "r"}})
    with pytest.raises(ApiException) as raised:
        await k.pod_log("ns", "pod")
    assert api_error(raised.value) == "no log yet"


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
    with caplog.at_level(logging.DEBUG, logger="flow_operator.kube"):
        await kube(refused).event(JOB, "TaskFailed", "task a failed")  # does not raise
    assert refused.released
    (record,) = [r for r in caplog.records if "could not post event" in r.getMessage()]
    assert record.levelno == level
    assert record.getMessage() == f"could not post event TaskFailed on r-a: 403 Error: {message}"


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

    class Slow(Calls):
        def __getattr__(self, name: str) -> Any:
            async def call(*args: Any, **kwargs: Any) -> Raw:
                nonlocal under_way, most
                if name.endswith("_status"):
                    return Raw(200, {"metadata": {"resourceVersion": "7"}})
                under_way += 1
                most = max(most, under_way)
                await gate.wait()
                under_way -= 1
                return Raw(200)

            return call

    k = kube(object_writes=3)
    k.apps = k.core = k.batch = k.custom = Slow()  # type: ignore[assignment]
    wave = [asyncio.create_task(k.apply(DEPLOYMENT)) for _ in range(10)]
    wave += [asyncio.create_task(k.create(JOB)), asyncio.create_task(k.delete("Job", "ns", "j"))]
    for _ in range(5):
        await asyncio.sleep(0)
    assert most == 3  # the others wait for a turn
    status = {"actualStatus": "GREEN"}
    made = await asyncio.wait_for(k.replace_status("workflows", "ns", "w", status, "g", "v"), 1)
    assert made == "7"  # answered while all of the wave still waits
    gate.set()
    await asyncio.gather(*wave)
    assert most == 3 and under_way == 0
