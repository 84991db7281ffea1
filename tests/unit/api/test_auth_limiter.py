"""The failed-authentication limiter keeps its bound under address rotation (the bypass
Argo CD fixed as CVE-2024-21662): with the table full, new addresses share one bucket."""

from __future__ import annotations

from flow_operator import metrics
from flow_operator.api.auth import GLOBAL, FailureLimiter, named_keys_from_data, which
from tests.unit.api_support import Clock


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
