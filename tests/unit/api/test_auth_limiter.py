"""The failed-authentication limiter keeps its bound under address rotation (the bypass
Argo CD fixed as CVE-2024-21662): with the table full, new addresses share one bucket.
X-Forwarded-For is believed only from --api-trusted-proxies, so one caller behind an
ingress does not lock out the others, and a client cannot pick its own bucket."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator import metrics
from flow_operator.api.auth import (
    GLOBAL,
    FailureLimiter,
    client_address,
    named_keys_from_data,
    proxy_networks,
    which,
)
from flow_operator.api.server import make_app
from flow_operator.settings import Settings
from tests.unit.api_support import Clock, Secrets, View, make_api


def failures(shared: bool) -> float:
    bucket = "global" if shared else "address"
    value = metrics.REGISTRY.get_sample_value(
        "flowops_api_auth_failures_total", {"credential": "bearer", "bucket": bucket}
    )
    return value or 0.0


def test_twenty_thousand_rotated_addresses_get_no_fresh_buckets() -> None:
    clock = Clock()
    limiter = FailureLimiter(burst=10, per_second=0.2, clock=clock, max_clients=10_000)
    shared_before = failures(shared=True)
    allowed = 0
    for i in range(20_000):
        address = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        if limiter.retry_after(address) == 0:
            allowed += 1
            limiter.failed(address)
    # 10,000 addresses got a bucket each; the other 10,000 shared one: 10 attempts in all
    assert allowed == 10_000 + 10
    assert len(limiter) == 10_001
    assert limiter.retry_after("192.0.2.1") > 0  # a new address is limited too
    assert limiter.retry_after("10.0.0.1") == 0  # a known one keeps its own bucket
    assert failures(shared=True) - shared_before == 10


def test_refilled_buckets_make_room_again() -> None:
    clock = Clock()
    limiter = FailureLimiter(burst=2, per_second=1.0, clock=clock, max_clients=3)
    for address in ("a", "b", "c"):
        limiter.failed(address)
    assert limiter.bucket("d") == GLOBAL
    clock.t += 5  # every bucket has refilled: they are the same as none
    assert limiter.bucket("d") == "d"


def test_a_named_key_is_found_in_constant_time_over_all() -> None:
    named = named_keys_from_data({"ci": "dG9rZW4tb2YtY2k=", "ops": "dG9rZW4tb2Ytb3BzCg=="})
    assert which("token-of-ci", named) == "ci"
    assert which("token-of-ops", named) == "ops"  # the trailing newline is not part
    assert which("token-of-nobody", named) is None
    assert which("", named) is None and which(None, {}) is None


PROXY = proxy_networks("10.0.0.0/8, fd00::/8")


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("10.1.2.3", "198.51.100.7", "198.51.100.7"),  # the ingress says who called
        ("10.1.2.3", "203.0.113.9, 198.51.100.7", "198.51.100.7"),  # the rightmost: ours
        ("10.1.2.3", "198.51.100.7, 10.4.4.4", "198.51.100.7"),  # through two proxies
        ("10.1.2.3", "10.9.9.9", "10.1.2.3"),  # only proxies: the nearest one
        ("10.1.2.3", "not-an-address", "10.1.2.3"),  # garbage: the proxy's own bucket
        ("10.1.2.3", None, "10.1.2.3"),
        ("192.0.2.50", "198.51.100.7", "192.0.2.50"),  # not a proxy: the header is ignored
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    remote: str, forwarded: str | None, client: str
) -> None:
    assert client_address(remote, forwarded, PROXY) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("10.1.2.3", "198.51.100.7", ()) == "10.1.2.3"
    assert client_address(None, "198.51.100.7", PROXY) == "unknown"


def test_a_bad_proxy_is_refused_naming_the_flag() -> None:
    with pytest.raises(ValueError, match=r"--api-trusted-proxies: 'ten' is not an address or CIDR"):
        proxy_networks("10.0.0.0/8,ten")


def test_one_caller_behind_the_ingress_does_not_lock_out_the_others() -> None:
    clock = Clock()
    limiter = FailureLimiter(burst=3, per_second=0.2, clock=clock, max_clients=100)
    attacker = client_address("10.0.0.2", "198.51.100.66", PROXY)
    for _ in range(3):
        limiter.failed(attacker)
    assert limiter.retry_after(attacker) > 0
    assert limiter.retry_after(client_address("10.0.0.2", "198.51.100.7", PROXY)) == 0
    # without the proxy trusted, both are the proxy's address: one bucket, both locked out
    assert limiter.retry_after(client_address("10.0.0.2", "198.51.100.66", ())) == 0
    for _ in range(3):
        limiter.failed(client_address("10.0.0.2", "198.51.100.66", ()))
    assert limiter.retry_after(client_address("10.0.0.2", "198.51.100.7", ())) > 0


def test_forged_forwarded_for_from_a_client_buys_no_buckets() -> None:
    """A client that is not a trusted proxy rotates X-Forwarded-For in vain: one bucket."""
    clock = Clock()
    limiter = FailureLimiter(burst=10, per_second=0.2, clock=clock, max_clients=10_000)
    allowed = 0
    for i in range(20_000):
        client = client_address("192.0.2.1", f"198.51.{i // 256 % 256}.{i % 256}", PROXY)
        if limiter.retry_after(client) == 0:
            allowed += 1
            limiter.failed(client)
    assert allowed == 10 and len(limiter) == 1


def test_rotation_through_a_trusted_proxy_keeps_the_bound() -> None:
    """Addresses a trusted proxy forwards are as many buckets as the table holds, then one
    shared bucket: 20,000 rotated addresses get max_clients x burst + burst guesses, and
    what the shared bucket refills meanwhile (one per 5 s)."""
    clock = Clock()
    limiter = FailureLimiter(burst=10, per_second=0.2, clock=clock, max_clients=1_000)
    allowed = 0
    for i in range(20_000):
        client = client_address("10.0.0.2", f"198.{i // 65536}.{i // 256 % 256}.{i % 256}", PROXY)
        while limiter.retry_after(client) == 0:  # every guess each address can get
            allowed += 1
            limiter.failed(client)
        clock.t += 0.001  # 20 s in all
    assert 1_000 * 10 + 10 <= allowed <= 1_000 * 10 + 10 + 20 * 0.2
    assert len(limiter) == 1_001


def test_the_trusted_proxies_setting_is_parsed_and_a_bad_one_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings.parse(["run", "--api-trusted-proxies", "10.0.0.0/8,fd00::1"], env={})
    assert [str(n) for n in settings.http.trusted_proxies] == ["10.0.0.0/8", "fd00::1/128"]
    assert Settings.parse(["run"], env={}).http.trusted_proxies == ()
    from_env = Settings.parse(["run"], env={"FLOW_API_TRUSTED_PROXIES": "192.0.2.1"})
    assert [str(n) for n in from_env.http.trusted_proxies] == ["192.0.2.1/32"]
    with pytest.raises(SystemExit):
        Settings.parse(["run", "--api-trusted-proxies", "ten"], env={})
    assert "'ten' is not an address or CIDR" in capsys.readouterr().err


@pytest.mark.parametrize("trusted", [False, True])
async def test_the_server_counts_the_forwarded_client_only_behind_a_trusted_proxy(
    trusted: bool,
) -> None:
    api = make_api(View(), Secrets())  # its limiter: burst 5
    if trusted:
        api.trusted_proxies = proxy_networks("127.0.0.1")  # the test client's address
    client = TestClient(TestServer(make_app(api)))
    await client.start_server()
    try:

        async def code(forwarded_for: str) -> int:
            path = "/api/v1/runtime/workflow/ns.none/action/status"
            response = await client.get(path, headers={"X-Forwarded-For": forwarded_for})
            return response.status

        attacker = [await code("198.51.100.66") for _ in range(6)]
        assert attacker[:5] == [401] * 5 and attacker[5] == 429
        # another caller behind the same proxy: locked out too unless the proxy is trusted
        assert await code("198.51.100.7") == (401 if trusted else 429)
    finally:
        await client.close()
