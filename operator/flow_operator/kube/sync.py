"""flowctl's API calls, through the kubeconfig with the official (sync) client.

Dicts in and out; a failure leaves as the project's own error (flow_operator.errors), as
in the async client: NotFound for a 404, and so on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kubernetes import client, config

from flow_operator import GROUP, VERSION
from flow_operator.errors import KubeError, Unavailable, for_status, status_message
from flow_operator.objects.body import Body


@contextlib.contextmanager
def edge() -> Iterator[None]:
    """The sync client's failures as the project's errors."""
    try:
        yield
    except KubeError:
        raise
    except client.exceptions.ApiException as e:
        reason = str(e.reason or "")
        raise for_status(e.status or None, reason, status_message(e.body, reason)) from e
    except (OSError, TimeoutError) as e:  # urllib3's connection errors are OSErrors
        raise Unavailable(f"{type(e).__name__}: {e}") from e


class Cluster:
    """The cluster flowctl talks to: kubeconfig (or in-cluster) credentials."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
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
        self._apps = client.AppsV1Api(self._api)

    def get(self, plural: str, namespace: str, name: str) -> Body:
        with edge():
            return dict(
                self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            )

    def items(self, plural: str, namespace: str | None) -> list[Body]:
        with edge():
            if namespace is None:
                out = self._custom.list_cluster_custom_object(GROUP, VERSION, plural)
            else:
                out = self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        return list(out.get("items", []))

    def patch(self, plural: str, namespace: str, name: str, patch: Body) -> Body:
        with edge():
            return dict(
                self._custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, patch
                )
            )

    def patch_status(self, plural: str, namespace: str, name: str, patch: Body) -> Body:
        with edge():
            return dict(
                self._custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, patch
                )
            )

    def create(self, plural: str, namespace: str, body: Body) -> Body:
        with edge():
            return dict(
                self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, body
                )
            )

    def revision(self, namespace: str, name: str) -> Body:
        """A ControllerRevision (a Flow's kept version)."""
        with edge():
            out = self._apps.read_namespaced_controller_revision(name, namespace)
        return dict(self._api.sanitize_for_serialization(out))

    def pods(self, namespace: str, selector: str) -> list[Body]:
        with edge():
            out = self._core.list_namespaced_pod(namespace, label_selector=selector)
        return [self._api.sanitize_for_serialization(p) for p in out.items]

    def logs(
        self, namespace: str, pod: str, container: str | None, follow: bool
    ) -> Iterator[bytes]:
        kwargs: Body = {"follow": follow, "_preload_content": False}
        if container:
            kwargs["container"] = container
        with edge():
            response = self._core.read_namespaced_pod_log(pod, namespace, **kwargs)
        try:
            with edge():
                yield from response.stream(4096)
        finally:
            response.release_conn()
