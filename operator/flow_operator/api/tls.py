"""TLS of the operator's listeners (docs/security.md, "TLS"): `--tls-cert` and `--tls-key`
name PEM files (the chart mounts them from a Secret, cert-manager's or your own). The
API, the dashboard and, when TLS or --metrics-auth is on, /metrics are then served over
HTTPS only: a plain-HTTP request on the port gets no HTTP answer.

The files are read when the listeners start, and read again whenever their directory
changes (`follow`: inotify through watchfiles, no polling): a renewed Secret (the kubelet
swaps the volume's `..data` symlink) is served to new connections without a restart. A
pair that cannot be loaded is logged and the one already served is kept.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from watchfiles import awatch

log = logging.getLogger(__name__)

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


async def follow(
    context: ssl.SSLContext,
    cert: str,
    key: str,
    on_reload: Callable[[bool], None] = lambda loaded: None,
) -> None:
    """Reload `cert` and `key` into `context` after each change in their directories,
    until cancelled. New handshakes get the new pair; open connections keep theirs.
    `on_reload(loaded)` is told of each attempt (the tests wait on it)."""
    directories = sorted({str(Path(cert).parent), str(Path(key).parent)})
    async for _ in awatch(*directories, debounce=500, recursive=False):
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, ValueError, OSError) as e:
            log.warning(
                "--tls-cert %s with --tls-key %s changed but cannot be loaded (%s: %s); "
                "still serving the previous certificate",
                cert, key, e.__class__.__name__, e,
            )  # fmt: skip
            on_reload(False)
            continue
        log.info("TLS certificate %s reloaded", cert)
        on_reload(True)
