"""The API key comparison takes one path whatever the key: `matches` hashes the given key
once and calls `hmac.compare_digest` on two 32-byte digests against every accepted key,
in the same order, for a right key and a wrong one, of any length (and once against a
dummy digest when there is no key). Counted through a spy on `hmac.compare_digest`: a
comparison that stopped at the first match, compared raw keys (whose lengths differ) or
skipped the dummy would show here as a different list of calls."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterator

import pytest

from flow_operator.api import auth

LENGTHS = (0, 1, 31, 32, 33, 1000)


class Spy:
    """Records each compare_digest call as (length of a, length of b, which b), then
    compares for real."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, bytes]] = []
        self.real = hmac.compare_digest

    def __call__(self, a: bytes, b: bytes) -> bool:
        assert isinstance(a, bytes) and isinstance(b, bytes)
        self.calls.append((len(a), len(b), b))
        return self.real(a, b)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    found = Spy()
    monkeypatch.setattr(auth.hmac, "compare_digest", found)
    yield found


def key(length: int, fill: str = "k") -> str:
    return (fill * length)[:length]


def accepted_of(*keys: str) -> list[bytes]:
    """The digests a Secret holding `keys` yields, as the server reads them (a list, so
    the order the comparison walks is fixed)."""
    data = {f"k{i}": base64.b64encode(k.encode()).decode() for i, k in enumerate(keys)}
    digests = auth.keys_from_data(data)
    return sorted(digests)


def path(spy: Spy, given: str | None, accepted: list[bytes]) -> tuple[bool, list[object]]:
    spy.calls.clear()
    result = auth.matches(given, accepted)
    return result, list(spy.calls)


@pytest.mark.parametrize("length", [n for n in LENGTHS if n])
def test_a_right_and_a_wrong_key_of_each_length_take_the_same_path(spy: Spy, length: int) -> None:
    right = key(length)
    # Other accepted keys around it, of other lengths, so that the right one is neither
    # alone nor necessarily first.
    accepted = accepted_of(key(7, "a"), right, key(64, "z"))
    ok, right_path = path(spy, right, accepted)
    assert ok is True
    for wrong in {key(n, "w") for n in LENGTHS} | {right + "x", right[:-1]}:
        refused, wrong_path = path(spy, wrong, accepted)
        assert refused is False, wrong
        assert wrong_path == right_path, (len(wrong), wrong_path, right_path)
    # That path: every accepted digest, each once, in order, both sides 32 bytes.
    assert right_path == [(32, 32, d) for d in accepted]


def test_every_length_against_the_same_keys_takes_the_same_path(spy: Spy) -> None:
    accepted = accepted_of(key(32), key(1000, "m"))
    paths = {n: path(spy, key(n, "q"), accepted)[1] for n in LENGTHS}
    paths[-1] = path(spy, None, accepted)[1]  # no key at all
    assert all(p == [(32, 32, d) for d in accepted] for p in paths.values()), paths


def test_a_match_on_the_first_key_still_compares_against_the_rest(spy: Spy) -> None:
    first, second = key(32, "a"), key(32, "b")
    accepted = accepted_of(first, second)
    earliest = next(k for k in (first, second) if auth.digest(k) == accepted[0])
    ok, calls = path(spy, earliest, accepted)
    assert ok is True and [c[2] for c in calls] == accepted


@pytest.mark.parametrize("length", LENGTHS)
def test_no_accepted_key_costs_one_comparison_against_a_dummy(spy: Spy, length: int) -> None:
    ok, calls = path(spy, key(length), [])
    assert ok is False
    assert calls == [(32, 32, auth._DUMMY)]


def test_an_empty_key_never_matches_even_an_empty_digest(spy: Spy) -> None:
    # The digest of "" is a well-known constant; a Secret cannot accept it, and a caller
    # sending no key is refused after the same comparisons.
    accepted = [auth.digest(""), *accepted_of(key(32))]
    ok, calls = path(spy, "", accepted)
    assert ok is False and [c[2] for c in calls] == accepted
