"""TLS of the operator's listeners (docs/security.md, "TLS"): `--tls-cert` and `--tls-key`
name PEM files (the chart mounts them from a Secret, cert-manager's or your own). The
API, the dashboard and, when TLS or --metrics-auth is on, /metrics are then served over
HTTPS only: a plain-HTTP request on the port gets no HTTP answer.

The files are read when the listeners start; a renewed certificate is served after a
restart of the operator's pod (no file watching).
"""

from __future__ import annotations

import ssl
from pathlib import Path

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(Exception):
    """The certificate or key cannot be used: the message names the flag and the file."""


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context of the PEM certificate (chain) and its private key."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise TlsError(f"{flag} {path}: no such file; give a PEM file (or mount the Secret)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as e:
        raise TlsError(
            f"--tls-cert {cert} with --tls-key {key}: not a PEM certificate and its "
            f"private key ({e.__class__.__name__}: {e})"
        ) from None
    return context
