"""TLS of the API listener (api/tls.py): the flags go together, a file that cannot serve
is refused naming the flag, and a listener with a certificate answers HTTPS only."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import aiohttp
import pytest

from flow_operator.api.server import ApiServer
from flow_operator.api.tls import TlsError, follow, server_context
from flow_operator.settings import Settings
from tests.certs import self_signed
from tests.unit.api_support import Secrets, View, make_api


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_the_flags_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        Settings.parse(["run", "--tls-cert", "/tls/tls.crt"], env={})
    assert "--tls-cert is given without --tls-key: TLS takes both files (or neither)" in (
        capsys.readouterr().err
    )
    parsed = Settings.parse(["run", "--tls-cert", "c.pem", "--tls-key", "k.pem"], env={})
    assert parsed.http.tls == ("c.pem", "k.pem")
    assert parsed.metrics_on_loop
    env = {"FLOW_METRICS_AUTH": "true"}
    assert Settings.parse(["run"], env=env).metrics_on_loop
    assert not Settings.parse(["run"], env={}).metrics_on_loop
    assert not Settings.parse(
        ["run", "--metrics-auth", "--metrics-port", "0"], env={}
    ).metrics_on_loop


def test_a_missing_file_is_named(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    with pytest.raises(TlsError, match=r"^--tls-key /nowhere/tls.key: no such file"):
        server_context(str(pair[0]), "/nowhere/tls.key")


def test_a_key_that_is_not_the_certificates_is_refused(
    tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    other_cert, other_key = self_signed(tmp_path)
    with pytest.raises(TlsError, match=r"^--tls-cert .* with --tls-key .*: not a PEM certificate"):
        server_context(str(pair[0]), str(other_key))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not pem")
    with pytest.raises(TlsError, match="not a PEM certificate and its private key"):
        server_context(str(garbage), str(other_key))
    assert server_context(str(other_cert), str(other_key)).minimum_version == ssl.TLSVersion.TLSv1_2


async def test_with_a_certificate_the_listener_is_https_only(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    server = ApiServer(
        make_api(View(), Secrets()), "127.0.0.1", 0, server_context(str(cert), str(key))
    )
    await server.start()
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with aiohttp.ClientSession() as session:
            url = f"https://localhost:{server.port}/healthz"
            async with session.get(url, ssl=trust) as resp:
                assert (resp.status, await resp.json()) == (200, {"status": "ok"})
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(url)  # the system's CAs do not know it
            with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
                await session.get(f"http://127.0.0.1:{server.port}/healthz",
                                  timeout=aiohttp.ClientTimeout(total=5))  # fmt: skip
    finally:
        await server.stop()


async def _served_certificate(port: int) -> bytes:
    """The DER certificate a handshake with 127.0.0.1:port gets."""
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return bytes(der)


async def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    # the kubelet's layout of a Secret volume: tls.crt -> ..data/tls.crt, and a renewal
    # swaps the ..data symlink to a new directory
    first, second = tmp_path / "..2026_a", tmp_path / "..2026_b"
    first.mkdir()
    second.mkdir()
    self_signed(first)
    self_signed(second)
    (tmp_path / "..data").symlink_to(first.name)
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).symlink_to(f"..data/{name}")
    cert, key = str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")
    context = server_context(cert, key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    reloads: asyncio.Queue[bool] = asyncio.Queue()
    watcher = asyncio.create_task(follow(context, cert, key, reloads.put_nowait))
    try:
        # the watch is up once a touch in the directory is seen (touch until it is)
        while True:
            (tmp_path / "probe").write_text("x")
            with contextlib.suppress(TimeoutError):
                assert await asyncio.wait_for(reloads.get(), 1) is True
                break
        der = ssl.PEM_cert_to_DER_cert
        assert await _served_certificate(port) == der((first / "tls.crt").read_text())
        (tmp_path / "..data_tmp").symlink_to(second.name)
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        renewed = der((second / "tls.crt").read_text())
        async with asyncio.timeout(20):  # each reload seen, until the renewed one is served
            while await _served_certificate(port) != renewed:
                assert await reloads.get() is True
        # a broken renewal keeps the certificate being served
        (second / "tls.key").write_text("not a key\n")
        (second / "tls.crt").write_text("not a certificate\n")
        (tmp_path / "touch").write_text("x")
        async with asyncio.timeout(20):  # until the broken pair has been tried
            while await reloads.get():
                pass
        assert await _served_certificate(port) == renewed
    finally:
        watcher.cancel()
        server.close()
        await server.wait_closed()
