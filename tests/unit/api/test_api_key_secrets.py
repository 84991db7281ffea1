"""apiKeySecretRef takes only Secrets of type flowops.io/api-key, and only their values of
at least MIN_KEY_BYTES (api/auth.py api_keys); anything else gives no key and a message
that names the field and the fix, never a key."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from flow_operator.api.auth import (
    ACCEPTED,
    API_KEY_TYPE,
    MIN_KEY_BYTES,
    SecretKeys,
    api_keys,
    digest,
)
from flow_operator.errors import Forbidden
from flow_operator.ports import SecretData
from flow_operator.status.aggregate import Observed
from tests.unit.api.test_api_workflow_status import client_for, get
from tests.unit.api_support import Clock, Secrets, View, make_api
from tests.unit.kube_objects import workflow

__all__ = ["client_for"]  # the fixture, shared with the status endpoint's tests

LONG = "k" * MIN_KEY_BYTES
SHORT = "s" * (MIN_KEY_BYTES - 1)


def data(**values: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def test_an_api_key_secret_gives_its_keys() -> None:
    found = api_keys("team-a", "keys", SecretData(API_KEY_TYPE, data(a=LONG, b=LONG + "x")))
    assert found.reason == ACCEPTED
    assert found.named == {"a": digest(LONG), "b": digest(LONG + "x")}


@pytest.mark.parametrize("secret_type", ["Opaque", "kubernetes.io/basic-auth", ""])
def test_any_other_type_gives_no_key_and_says_which_type_to_use(secret_type: str) -> None:
    found = api_keys("team-a", "foo", SecretData(secret_type, data(password=LONG)))
    assert found.named == {}
    assert found.reason == "WrongSecretType"
    assert found.message.startswith(
        f"apiKeySecretRef: Secret team-a/foo has type {secret_type}; "
        "create it with type flowops.io/api-key"
    )


def test_short_values_are_refused_by_name_without_the_value() -> None:
    found = api_keys("ns", "keys", SecretData(API_KEY_TYPE, data(ok=LONG, tiny=SHORT)))
    assert found.named == {"ok": digest(LONG)}  # the long one still works
    assert found.reason == "KeysTooShort"
    assert "tiny" in found.message and f"{MIN_KEY_BYTES} bytes" in found.message
    assert SHORT not in found.message and "1 of 2 keys accepted" in found.message
    assert api_keys("ns", "keys", SecretData(API_KEY_TYPE, data(tiny=SHORT))).named == {}


def test_a_trailing_newline_does_not_count_towards_the_length() -> None:
    found = api_keys("ns", "keys", SecretData(API_KEY_TYPE, data(k=SHORT + "\n")))
    assert found.reason == "KeysTooShort" and found.named == {}


@pytest.mark.parametrize(
    ("error", "reason", "says"),
    [
        ("NotFound", "SecretNotFound", "not found; create it with type flowops.io/api-key"),
        ("Forbidden", "SecretForbidden", "rbac.apiKeySecrets"),
        ("Unavailable", "SecretUnreadable", "(Unavailable)"),
    ],
)
def test_an_unreadable_secret_gives_no_key_and_says_why(error: str, reason: str, says: str) -> None:
    found = api_keys("ns", "keys", None, error)
    assert (found.named, found.reason) == ({}, reason)
    assert found.message.startswith("apiKeySecretRef: Secret ns/keys") and says in found.message


def test_an_empty_api_key_secret_says_so() -> None:
    assert api_keys("ns", "keys", SecretData(API_KEY_TYPE, {})).reason == "NoKeys"


async def test_the_token_secret_is_not_held_to_the_api_key_type() -> None:
    """The operator's own token Secret (`named`) takes every value, as before."""
    secrets = Secrets()
    secrets.put("ops", "tokens", secret_type="Opaque", ci="short")
    keys = SecretKeys(secrets.read, clock=Clock())
    assert await keys.named("ops", "tokens") == {"ci": digest("short")}
    assert (await keys.api_keys("ops", "tokens")).named == {}
    assert secrets.reads == [("ops", "tokens")]  # one read serves both


async def test_a_forbidden_read_is_a_verdict_not_an_error() -> None:
    async def forbidden(namespace: str, name: str) -> SecretData:
        raise Forbidden(f'secrets "{name}" is forbidden', status=403)

    reason, message = await SecretKeys(forbidden, clock=Clock()).verdict("ns", "keys")
    assert reason == "SecretForbidden" and "get Secrets in ns" in message


async def test_an_ordinary_secret_is_no_oracle(
    client_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Its right value gets the same 401, byte for byte, as a wrong one: a Workflow pointed
    at someone's Opaque Secret learns nothing about it; the log names the fix, not a key."""
    view = View()
    view.add(workflow("wf"), Observed(), secret="db-password")
    view.add(workflow("short"), Observed(), secret="short-keys")
    secrets = Secrets()
    secrets.put("ns", "db-password", secret_type="Opaque", password=LONG)
    secrets.put("ns", "short-keys", k=SHORT)
    caplog.set_level(logging.DEBUG)
    client = await client_for(make_api(view, secrets))
    right = await get(client, "ns.wf", LONG)
    wrong = await get(client, "ns.wf", "not-the-password-at-all")
    assert right[0] == wrong[0] == 401 and right[1] == wrong[1]
    assert (await get(client, "ns.short", SHORT))[0] == 401
    assert "Secret ns/db-password has type Opaque; create it with type" in caplog.text
    assert LONG not in caplog.text and SHORT not in caplog.text
    # made an api-key Secret, the same value works once the cache has expired
    secrets.put("ns", "db-password", password=LONG)
    client = await client_for(make_api(view, secrets))
    assert (await get(client, "ns.wf", LONG))[0] == 200
