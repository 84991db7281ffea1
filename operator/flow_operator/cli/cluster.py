"""flowctl's few API calls, through the kubeconfig with the official (sync) client.

One class, so the commands can be tested on a fake with the same methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from flow_operator import GROUP, VERSION
from flow_operator.builders.naming import WORKFLOW_LABEL
from flow_operator.models.workflow import PLURAL as WORKFLOWS

Body = dict[str, Any]
FLOWRUNS = "flowruns"


class NotFound(Exception):
    pass


class ClusterApi(Protocol):
    namespace: str

    def get(self, plural: str, namespace: str, name: str) -> Body: ...

    def items(self, plural: str, namespace: str | None) -> list[Body]: ...

    def patch(self, plural: str, namespace: str, name: str, patch: Body) -> Body: ...

    def patch_status(self, plural: str, namespace: str, name: str, patch: Body) -> Body: ...

    def create(self, plural: str, namespace: str, body: Body) -> Body: ...

    def pods(self, namespace: str, selector: str) -> list[Body]: ...

    def logs(
        self, namespace: str, pod: str, container: str | None, follow: bool
    ) -> Iterator[bytes]: ...


class Cluster:
    """The real thing: kubeconfig (or in-cluster) credentials, dicts in and out."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client, config

        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
                active = next((c for c in contexts if c["name"] == context), active)
            self.namespace = str((active or {}).get("context", {}).get("namespace") or "default")
        except config.ConfigException:
            config.load_incluster_config()
            self.namespace = "default"
        self._api = client.ApiClient()
        self._custom = client.CustomObjectsApi(self._api)
        self._core = client.CoreV1Api(self._api)
        self._exception = client.exceptions.ApiException

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._exception as e:
            if e.status == 404:
                raise NotFound(str(args[-1]) if args else "") from None
            raise

    def get(self, plural: str, namespace: str, name: str) -> Body:
        return dict(
            self._call(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        )

    def items(self, plural: str, namespace: str | None) -> list[Body]:
        if namespace is None:
            out = self._custom.list_cluster_custom_object(GROUP, VERSION, plural)
        else:
            out = self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        return list(out.get("items", []))

    def patch(self, plural: str, namespace: str, name: str, patch: Body) -> Body:
        return dict(
            self._call(
                self._custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                patch,
            )
        )

    def patch_status(self, plural: str, namespace: str, name: str, patch: Body) -> Body:
        return dict(
            self._call(
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                patch,
            )
        )

    def create(self, plural: str, namespace: str, body: Body) -> Body:
        return dict(
            self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        )

    def pods(self, namespace: str, selector: str) -> list[Body]:
        out = self._core.list_namespaced_pod(namespace, label_selector=selector)
        return [self._api.sanitize_for_serialization(p) for p in out.items]

    def logs(
        self, namespace: str, pod: str, container: str | None, follow: bool
    ) -> Iterator[bytes]:
        kwargs: Body = {"follow": follow, "_preload_content": False}
        if container:
            kwargs["container"] = container
        response = self._call(self._core.read_namespaced_pod_log, pod, namespace, **kwargs)
        try:
            yield from response.stream(4096)
        finally:
            response.release_conn()


def workflow_pods_selector(name: str) -> str:
    return f"{WORKFLOW_LABEL}={name}"


__all__ = ["FLOWRUNS", "WORKFLOWS", "Cluster", "ClusterApi", "NotFound", "workflow_pods_selector"]
