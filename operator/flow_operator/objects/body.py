"""A Kubernetes object as the API sends it (a plain dict), and the reads every kind repeats."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Body = dict[str, Any]


def meta(obj: Mapping[str, Any] | None) -> Body:
    """The object's metadata, empty when it has none."""
    return dict((obj or {}).get("metadata") or {})


def labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def uid(obj: Mapping[str, Any] | None) -> str:
    return str(meta(obj).get("uid", ""))


def resource_version(obj: Mapping[str, Any] | None) -> str:
    return str(meta(obj).get("resourceVersion", ""))


def first(items: Iterable[Body] | None) -> Body | None:
    """The one object of an index entry (a name maps to one object), or None."""
    return next(iter(items or ()), None)
