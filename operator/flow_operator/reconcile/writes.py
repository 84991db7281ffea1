"""The status writes of one reconciler: what it wrote until the watch shows it, and how
often a change of details alone may be written. Shared by the Workflow and FlowRun
reconcilers, each of which compares statuses in its own terms (`headline`).

*Reading our own writes.* A reconciler reads the index, which the watch fills later than
the write lands: right after a write the index still shows the status before it. Each
write is recorded with the resourceVersion it made and the versions older than it (the
one it was decided on, and those of our earlier writes not yet shown). While the index
shows one of those older versions, `current` answers with the status we wrote (or decided
and kept); any other version is that write or a later one, and the index is believed
again. A late echo of an earlier write is therefore never mistaken for the present.

*Details one interval later.* A change that leaves the headline alone (a pod went from
Pending to Running) is written one interval after it was first seen, with whatever else
changed meanwhile: `wait` says how long to keep it; the caller comes back then and writes
the latest state, so the last state is always written. So details are written at most
once per interval per key, and never right before a headline change that follows them
closely (a Workflow's services become available within a fraction of a second of each
other: the write for "2/3 ready" would hold up the one for GREEN). A change of the
headline is written at once, with the details as they are.

*The interval follows the API server.* It is `interval` (1 s) while status writes are
fast, and grows to SLOWDOWN times the recent round trip of a status write (a moving
average) when they are slow, up to `longest` (10 s). On an API server that has no CPU to
spare a key is then busy with a detail write a tenth of the time at most, so a change of
its headline rarely waits behind one, and the operator asks less of the server when it
can give least (docs/performance.md). An idle cluster sees the details within a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flow_operator.objects.body import resource_version

K = TypeVar("K", bound=Hashable)
SLOWDOWN = 10.0  # the interval is at least this many status-write round trips
SMOOTHING = 0.2  # weight of the newest round trip in the moving average


@dataclass(frozen=True)
class _Record:
    status: Any  # what we decided last, in the caller's terms
    stale: frozenset[str]  # versions older than it: the index does not show it at those
    made: str  # the version our last sent write made ("" when none is known)
    sent: bool  # False: decided and kept, not written yet


def version_of(body: Mapping[str, Any]) -> str:
    return resource_version(body)


class StatusWrites(Generic[K]):
    def __init__(
        self,
        headline: Callable[[Any], Any],
        interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        longest: float = 10.0,
    ) -> None:
        self.headline = headline
        self.interval = interval
        self.longest = longest
        self.monotonic = monotonic
        self.round_trip = 0.0  # moving average of a status write's round trip, seconds
        self._records: dict[K, _Record] = {}
        self._sent: dict[K, tuple[float, Any]] = {}  # last write: when (monotonic), headline
        self._changed: dict[K, float] = {}  # when a change not yet written was first seen
        self._made: dict[K, str] = {}  # the version our last write of each key made

    def current(self, key: K, body: Mapping[str, Any], status: Any, peek: bool = False) -> Any:
        """The status the API server holds (or will, once our kept one is written):
        ours while the index, at `body`'s version, does not show it; else `status`, the
        index's own (in the caller's terms). Then the record is dropped, unless `peek`
        (a look at another key's status, whose own reconcile may still need the record)."""
        record = self._records.get(key)
        if record is not None and version_of(body) in record.stale:
            return record.status
        if not peek:
            self._records.pop(key, None)  # the index shows our last write, or a later one
        return status

    def made_last(self, key: K, version: str) -> bool:
        """`version` is the one our last status write of `key` made: an object at it
        shows what we wrote, nothing more (the watch's echo of our own write)."""
        sent = self._made.get(key)
        return bool(version) and sent == version

    def unsent(self, key: K) -> bool:
        """A status was decided and kept, not yet written."""
        record = self._records.get(key)
        return record is not None and not record.sent

    @property
    def detail_interval(self) -> float:
        """How long a change of details alone is kept before it is written."""
        slowed = min(SLOWDOWN * self.round_trip, max(self.longest, self.interval))
        return max(self.interval, slowed)

    def wait(self, key: K, status: Any) -> float:
        """Seconds to keep `status`, which differs from what the API server holds, before
        writing it: 0 when its headline differs from the last write's, or when an
        interval has passed since the first change not yet written."""
        sent_at, headline = self._sent.get(key, (None, None))
        if sent_at is None or self.headline(status) != headline:
            return 0.0
        first = self._changed.setdefault(key, self.monotonic())
        return max(0.0, first + self.detail_interval - self.monotonic())

    def settled(self, key: K) -> None:
        """Nothing differs from what the API server holds (a change was undone)."""
        self._changed.pop(key, None)

    def record(
        self,
        key: K,
        body: Mapping[str, Any],
        status: Any,
        made: str | None,
        took: float | None = None,
    ) -> None:
        """`status` was decided on `body`; `made` is the version its write made, or None
        when it was kept, not written; `took` the write's round trip in seconds."""
        if took is not None:
            self.round_trip += SMOOTHING * (took - self.round_trip)
        previous = self._records.get(key)
        stale = {version_of(body)}
        if previous is not None and version_of(body) in previous.stale:
            # still not shown: every version before our last write stays older than this
            stale |= previous.stale | ({previous.made} if previous.made else set())
        if made is None:
            self._records[key] = _Record(
                status, frozenset(stale), previous.made if previous else "", sent=False
            )
            return
        self._records[key] = _Record(status, frozenset(stale), made, sent=True)
        if made:
            self._made[key] = made
        self._sent[key] = (self.monotonic(), self.headline(status))
        self._changed.pop(key, None)

    def forget(self, key: K) -> None:
        self._records.pop(key, None)
        self._made.pop(key, None)
        self._sent.pop(key, None)
        self._changed.pop(key, None)
