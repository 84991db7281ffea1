from datetime import UTC, datetime, timedelta

import pytest

from flow_operator.objects.durations import go_duration, go_duration_ns, since


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_500, "1.5µs"),
        (512_171_355, "512.171355ms"),
        (1_000_000, "1ms"),
        (1_000_000_000, "1s"),
        (39_092_166_459, "39.092166459s"),
        (116_138_865_794, "1m56.138865794s"),
        (986_470_291_765, "16m26.470291765s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_661_000_000_000, "1h1m1s"),
        (-1_500_000_000, "-1.5s"),
    ],
)
def test_matches_go(ns: int, text: str) -> None:
    assert go_duration_ns(ns) == text


def test_seconds_float() -> None:
    assert go_duration(0.5) == "500ms"
    assert go_duration(90) == "1m30s"


def test_since_never_negative() -> None:
    now = datetime(2024, 2, 12, 10, 0, tzinfo=UTC)
    assert since(now + timedelta(seconds=5), now) == "0s"
    assert since(now - timedelta(minutes=2), now) == "2m0s"
