"""The project's own errors for what the API server answers, raised at the client edge.

flow_operator.kube turns the client library's exceptions (an HTTP status with the API
server's Status body, a refused or broken connection, a timeout) into these, so the rest
of the operator decides on what an answer means (the object is gone, someone wrote it
first, the server refuses it, the server is away) and never imports the client library.
Pure: nothing here talks to a cluster.
"""

from __future__ import annotations

import json
from typing import Any


class KubeError(Exception):
    """An API call that did not succeed: the HTTP status (None when no answer came), its
    reason phrase, and the API server's own message (the Status `message`, which names the
    field or the rule), which is also the exception's text."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: it exists already, or was written by someone else since it was read."""


class Refused(KubeError):
    """400, 422 (and 401/403, as Forbidden): the API server refuses the request or the
    object; asking again unchanged gets the same answer."""


class Forbidden(Refused):
    """401/403: not allowed (RBAC, an admission rule, a namespace being terminated)."""


class Gone(KubeError):
    """410: the resourceVersion a watch asked for has expired: list again."""


class Unavailable(KubeError):
    """5xx, 429, a connection refused or broken, a timeout: the API server is down,
    starting, overloaded or slow; the same request may succeed later."""


def for_status(status: int | None, reason: str = "", message: str = "") -> KubeError:
    """The error for an HTTP status (the message defaults to the reason)."""
    text = message or reason or f"HTTP {status}"
    kind: type[KubeError]
    if status is None:
        kind = Unavailable
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 410:
        kind = Gone
    elif status in (401, 403):
        kind = Forbidden
    elif status in (400, 422):
        kind = Refused
    elif status == 429 or status >= 500:
        kind = Unavailable
    else:
        kind = KubeError
    return kind(text, status=status, reason=reason)


def status_message(body: Any, default: str = "") -> str:
    """The `message` of an API server's Status body (bytes, str or a parsed dict)."""
    try:
        parsed = json.loads(body) if isinstance(body, bytes | str) else body
    except ValueError:
        return default
    if isinstance(parsed, dict):
        return str(parsed.get("message") or default)
    return default
