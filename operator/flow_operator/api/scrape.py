"""/metrics served by the operator's event loop, when it needs TLS or authentication
(docs/security.md, "Metrics"); without either, prometheus_client's own thread serves it
(metrics.serve).

With `--metrics-auth` a scrape is authenticated the way the API's kubernetes mode does it
(a Kubernetes bearer token, reviewed by TokenReview) and authorized by one concrete
permission, `get` on the non-resource URL `/metrics` (a SubjectAccessReview), as
kube-rbac-proxy does: Prometheus's ServiceAccount needs a ClusterRole with
`nonResourceURLs: ["/metrics"], verbs: ["get"]`. No token is 401, a token without the
permission 403 naming it, a review that cannot be made 503.
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flow_operator import metrics
from flow_operator.api.identity import Access, Unauthenticated, Unverifiable
from flow_operator.logsafe import printable
from flow_operator.ports import url_permission

log = logging.getLogger(__name__)
PATH = "/metrics"
SCRAPE = url_permission("get", PATH)
ACCESS = web.AppKey("access", Access)


def _refused(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


async def scrape(request: web.Request) -> web.Response:
    access = request.app.get(ACCESS)
    if access is not None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        try:
            who = await access.authenticate(token)
            allowed = await access.can(who, SCRAPE)
        except Unauthenticated as e:
            return _refused(
                401, "Unauthorized", str(e), **{"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
        except Unverifiable as e:
            return _refused(503, "Unavailable", str(e))
        if not allowed:
            log.info("metrics scrape refused: %s %s", printable(who.user), SCRAPE.refusal())
            return _refused(403, "Forbidden", f"{who.user} {SCRAPE.refusal()}")
    return web.Response(
        body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def metrics_app(access: Access | None) -> web.Application:
    """The /metrics app; `access` None: anyone may scrape (TLS alone)."""
    app = web.Application()
    if access is not None:
        app[ACCESS] = access
    app.router.add_get(PATH, scrape)
    return app


class MetricsServer:
    """The /metrics listener on the event loop, started and stopped with the API's."""

    def __init__(
        self, access: Access | None, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.access, self.host, self.port, self.ssl_context = access, host, port, ssl_context
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            metrics_app(self.access), access_log=None, handle_signals=False
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as e:
            log.error("metrics not served: cannot listen on %s:%d (%s)", self.host, self.port, e)
            await self.stop()
            return
        if self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        scheme = "https" if self.ssl_context else "http"
        auth = "a token with get /metrics" if self.access else "no authentication"
        log.info("metrics on %s://%s:%d%s (%s)", scheme, self.host, self.port, PATH, auth)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
