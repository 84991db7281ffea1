"""Operator entry point: `python -m flow_operator run` builds the settings and the one
`Operator` (flow_operator.app) from the kinds below, and hands it to kopf.

Adding a kind: its model, builder, machine, reconciler and `handlers/<kind>.py` with a
`setup(app)`, then one line in KINDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

import kopf

from flow_operator import metrics
from flow_operator.api.tls import TlsError, server_context
from flow_operator.app import Operator
from flow_operator.handlers import flow, flowrun, history, http, workflow
from flow_operator.kube import Kube
from flow_operator.logsafe import EscapingFormatter
from flow_operator.settings import Settings

# The kinds, in build order: a later one may read what an earlier one provides.
KINDS = (workflow.setup, history.setup, flowrun.setup, flow.setup, http.setup)


def build(settings: Settings) -> Operator:
    def connect() -> Awaitable[Kube]:  # the client's QPS and burst, as told (--kube-qps)
        return Kube.connect(qps=settings.kube_qps, burst=settings.kube_burst)

    return Operator(settings, KINDS, connect=connect)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    # One line per record, whatever a message quotes (a request's path, a spec's string):
    # control characters are escaped (logsafe.py, docs/security.md)
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(LOG_FORMAT))
    logging.basicConfig(
        level=logging.DEBUG if settings.verbose else logging.INFO, handlers=[handler]
    )
    if not settings.verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("kopf.activities.startup").setLevel(logging.INFO)
    if settings.trace:
        logging.getLogger("flow_operator.trace").setLevel(logging.DEBUG)


def cli(argv: Sequence[str] | None = None) -> None:
    settings = Settings.parse(argv)
    configure_logging(settings)
    if settings.http.tls is not None:
        try:  # refuse now what the listener could not use later
            server_context(*settings.http.tls)
        except TlsError as e:
            raise SystemExit(f"flow-operator: {e}") from None
    if settings.metrics_port and not settings.metrics_on_loop:
        metrics.serve(settings.metrics_port)
    app = build(settings)
    asyncio.run(
        kopf.operator(
            registry=app.registry,
            memo=app,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=True,
        )
    )
