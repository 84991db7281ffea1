"""Projections of watched objects: only the fields the reconcilers read are kept in
memory (a full Pod body is ~10x larger), and as plain dicts detached from kopf."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flow_operator.objects.body import Body


def _pick(src: Mapping[str, Any] | None, *keys: str) -> Body:
    src = src or {}
    return {k: _plain(src[k]) for k in keys if k in src and src[k] is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


META = ("name", "namespace", "uid", "generation", "resourceVersion", "labels",
        "annotations", "creationTimestamp", "deletionTimestamp", "ownerReferences")  # fmt: skip


def custom_object(body: Mapping[str, Any]) -> Body:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _pick(body.get("metadata"), *META),
        "spec": _plain(body.get("spec") or {}),
        "status": _plain(body.get("status") or {}),
    }


def deployment(body: Mapping[str, Any]) -> Body:
    spec = body.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    return {
        "metadata": _pick(body.get("metadata"), *META),
        "spec": {
            **_pick(spec, "replicas", "minReadySeconds"),
            "template": {
                "spec": {
                    "containers": [
                        _pick(c, "name", "image") for c in template_spec.get("containers") or []
                    ]
                }
            },
        },
        "status": _plain(body.get("status") or {}),
    }


def replicaset(body: Mapping[str, Any]) -> Body:
    return {
        "metadata": _pick(body.get("metadata"), "name", "labels", "annotations", "ownerReferences")
    }


def service(body: Mapping[str, Any]) -> Body:
    return {"metadata": _pick(body.get("metadata"), *META)}


def pod(body: Mapping[str, Any]) -> Body:
    spec = body.get("spec") or {}
    return {
        "metadata": _pick(
            body.get("metadata"),
            "name",
            "namespace",
            "uid",
            "labels",
            "creationTimestamp",
            "deletionTimestamp",
            "ownerReferences",
        ),
        "spec": {
            "containers": [{"name": c.get("name")} for c in spec.get("containers") or []],
            "initContainers": [{"name": c.get("name")} for c in spec.get("initContainers") or []],
            **_pick(spec, "nodeName"),
        },
        "status": _pick(
            body.get("status"),
            "phase",
            "reason",
            "message",
            "startTime",
            "conditions",
            "containerStatuses",
            "initContainerStatuses",
        ),
    }


def job(body: Mapping[str, Any]) -> Body:
    return {
        "metadata": _pick(body.get("metadata"), *META),
        "spec": _pick(body.get("spec"), "backoffLimit", "activeDeadlineSeconds", "suspend"),
        "status": _plain(body.get("status") or {}),
    }
