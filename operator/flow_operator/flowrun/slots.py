"""Slots held, counted as the watch reports runs: asking for a free slot never walks the runs.

A FlowRun holds a slot of the operator's capacity (operator-wide and in its namespace) from
Deployed until it ends, and a slot of its flow's concurrency while `FlowRunRecord.holding`
says so (flows/runs.py). `Slots` keeps the counts of both, and the runs waiting for each,
from the states the watch reports (`observe`: an add, a change, a delete; `relist`: a fresh
list) and from the reconciler's own status writes:
- each run's last state is kept by key, and applied as the difference between what the run
  counted before and what it counts now: the same event twice changes nothing, a run that
  finishes or is deleted while holding a slot gives it back;
- a state older than the one kept (resourceVersions compared as integers, as etcd issues
  them; a state without one is taken as it comes) is stale and ignored: the watch's echo of
  an earlier status that arrives after our own write's result. A delete leaves a tombstone
  (the last TOMBSTONES of them), so a stale change does not bring the run back;
- `reserve` counts a run as holding in every scope from the moment it is admitted until
  the reconciler has observed its written status and calls `release`: two workers never
  both take the last slot;
- the waiting runs are kept in order, oldest first (creation, then namespace and name),
  in one sorted list per namespace (capacity: Queued with WaitingForCapacity) and one per
  flow (its Queue and Replace runs not admitted yet): a run's place in the line is a
  bisection, the runs a free slot goes to are the heads of the lines.
So `place` and `flow_place` cost O(log n) (times the namespaces that have waiting runs),
never O(runs). `recount` recomputes everything from the states; the tests hold the two
equal after any sequence of events.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flow_operator.flows.concurrency import REPLACING, RunSlot
from flow_operator.flows.runs import FlowRunRecord, flow_of
from flow_operator.objects.times import parse_time

Key = tuple[str, str]  # (namespace, run)
Place = tuple[datetime, str]  # (created, name): the order of a line
WAITING_FOR_CAPACITY = "WaitingForCapacity"
DEPLOYED = "Deployed"
QUEUED = "Queued"
TOMBSTONES = 10_000
EPOCH = datetime.min.replace(tzinfo=UTC)
LAST = "\U0010ffff"  # sorts after every name


@dataclass(frozen=True)
class RunState:
    """What a run counts for, from one version of its body."""

    key: Key
    created: datetime = EPOCH
    version: int | None = None  # metadata.resourceVersion
    deployed: bool = False  # it holds a slot of the operator's capacity
    waiting: bool = False  # Queued, WaitingForCapacity: in its namespace's line
    flow: str | None = None  # the flow it is a run of (flows/runs.flow_of)
    flow_slot: RunSlot | None = None  # its slot in the flow's concurrency; None: finished
    # Queued, ReplacingRuns: it counts as holding (FlowRunRecord.holding) and waits for the
    # runs it replaces to end, so a slot the flow frees wakes it too
    replacing: bool = False


def _version(value: Any) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() else None


def state_of(body: Mapping[str, Any]) -> RunState | None:
    """A FlowRun body's state; None for a body without a name."""
    meta = body.get("metadata") or {}
    if not meta.get("name"):
        return None
    status = body.get("status") or {}
    phase = status.get("phase")
    flow = flow_of(body)
    slot = None
    if flow is not None:
        try:
            record = FlowRunRecord.from_body(body)
        except ValueError:  # no creationTimestamp, a phase of no kind (pydantic's too)
            record = None
        slot = record.slot() if record is not None and not record.finished else None
    return RunState(
        key=(str(meta.get("namespace") or ""), str(meta["name"])),
        created=parse_time(meta.get("creationTimestamp")) or EPOCH,
        version=_version(meta.get("resourceVersion")),
        deployed=phase == DEPLOYED,
        waiting=phase == QUEUED and status.get("reason") == WAITING_FOR_CAPACITY,
        flow=flow,
        flow_slot=slot,
        replacing=slot is not None and phase == QUEUED and status.get("reason") == REPLACING,
    )


@dataclass(frozen=True)
class _Marks:
    """What one run adds to the counts and lines (a state and its reservation)."""

    holds: bool = False
    line: Place | None = None
    flow: Key | None = None
    flow_holding: RunSlot | None = None
    flow_line: Place | None = None
    flow_replacing: bool = False


NOTHING = _Marks()


def _marks(state: RunState | None, reserved: bool) -> _Marks:
    if state is None:
        return _Marks(holds=True) if reserved else NOTHING
    holds = reserved or state.deployed
    line = (state.created, state.key[1]) if state.waiting and not holds else None
    slot = state.flow_slot
    if state.flow is None or slot is None:
        return _Marks(holds, line)
    flow = (state.key[0], state.flow)
    if reserved or slot.holding:
        replacing = state.replacing and not reserved
        return _Marks(holds, line, flow, replace(slot, holding=True), flow_replacing=replacing)
    return _Marks(holds, line, flow, flow_line=(slot.created, slot.name))


@dataclass(frozen=True)
class Counts:
    """Every count and line, for comparing `Slots` with `recount`."""

    held: int
    held_in: dict[str, int]
    lines: dict[str, list[Place]]
    flow_holding: dict[Key, dict[str, RunSlot]]
    flow_lines: dict[Key, list[Place]]
    flow_replacing: dict[Key, set[str]]


@dataclass(frozen=True)
class Standing:
    """A run's standing for the operator's capacity: the others holding a slot, and those
    waiting ahead of it that a free slot goes to first (operator-wide, in its namespace)."""

    running: int = 0
    namespace_running: int = 0
    ahead: int = 0
    namespace_ahead: int = 0


@dataclass
class Slots:
    """The counts of slots held and the lines of waiting runs, kept as events arrive."""

    tombstones: int = TOMBSTONES
    held: int = 0
    _states: dict[Key, RunState] = field(default_factory=dict)
    _reserved: set[Key] = field(default_factory=set)
    _gone: OrderedDict[Key, int] = field(default_factory=OrderedDict)
    _held_in: Counter[str] = field(default_factory=Counter)
    _lines: dict[str, list[Place]] = field(default_factory=dict)
    _flow_holding: dict[Key, dict[str, RunSlot]] = field(default_factory=dict)
    _flow_lines: dict[Key, list[Place]] = field(default_factory=dict)
    _flow_replacing: dict[Key, set[str]] = field(default_factory=dict)

    # --- events ------------------------------------------------------------------------
    def observe(self, key: Key, state: RunState | None, deleted: bool = False) -> bool:
        """Apply the run's state (`deleted`: the run is gone; `state`, if any, is its last
        body). False when the state is stale or changes no count or line."""
        old = self._states.get(key)
        known = old.version if old is not None else self._gone.get(key)
        version = state.version if state is not None else None
        if known is not None and version is not None and version < known:
            return False
        before = self._marks_of(key)
        if deleted:
            self._states.pop(key, None)
            self._reserved.discard(key)
            if version is not None:
                self._gone[key] = version
                self._gone.move_to_end(key)
                while len(self._gone) > self.tombstones:
                    self._gone.popitem(last=False)
        elif state is not None:
            self._states[key] = state
            self._gone.pop(key, None)
        return self._move(key, before)

    def relist(self, states: Iterable[RunState]) -> None:
        """A fresh list of every run: it replaces what the events left (reservations,
        which belong to reconciles under way, are kept)."""
        self.held = 0
        self._states = {state.key: state for state in states}
        self._gone.clear()
        self._held_in.clear()
        self._lines.clear()
        self._flow_holding.clear()
        self._flow_lines.clear()
        self._flow_replacing.clear()
        for key in self._states.keys() | self._reserved:
            self._enter(key, self._marks_of(key))

    def reserve(self, key: Key) -> None:
        """The run is admitted: it holds its slots until `release`."""
        before = self._marks_of(key)
        self._reserved.add(key)
        self._move(key, before)

    def release(self, key: Key) -> None:
        """Its written status now says whether it holds a slot."""
        if key in self._reserved:
            before = self._marks_of(key)
            self._reserved.discard(key)
            self._move(key, before)

    def reserved(self, key: Key) -> bool:
        return key in self._reserved

    # --- questions ---------------------------------------------------------------------
    def held_in(self, namespace: str) -> int:
        return self._held_in[namespace]

    def standing(self, key: Key, limit: int | None, namespace_limit: int | None) -> Standing:
        """The run's standing: the others holding a slot, and the waiting runs ahead of it
        (older) that a free slot goes to first. In another namespace only as many of them
        count as that namespace has room for (the rest wait for their namespace)."""
        ns, name = key
        mine = self._marks_of(key).holds
        state = self._states.get(key)
        created = state.created if state is not None else datetime.max.replace(tzinfo=UTC)
        namespace_ahead = bisect_left(self._lines.get(ns, []), (created, name))
        ahead = 0
        if limit is not None:
            for other, line in self._lines.items():
                if other == ns:
                    older = namespace_ahead
                elif other < ns:
                    older = bisect_right(line, (created, LAST))
                else:
                    older = bisect_left(line, (created, ""))
                ahead += min(older, self._room(other, namespace_limit))
        return Standing(
            running=self.held - mine,
            namespace_running=self._held_in[ns] - mine,
            ahead=ahead,
            namespace_ahead=namespace_ahead,
        )

    def next_for_capacity(
        self, limit: int | None, namespace_limit: int | None, namespace: str
    ) -> list[Key]:
        """The waiting runs the free slots go to now, oldest first: operator-wide with a
        limit (any namespace with room), else in `namespace` only."""
        if limit is None:
            line = self._lines.get(namespace, [])
            return [(namespace, n) for _, n in line[: self._room(namespace, namespace_limit)]]
        free = limit - self.held
        if free <= 0:
            return []
        heads = [
            _head(ns, line, self._room(ns, namespace_limit)) for ns, line in self._lines.items()
        ]
        return [(ns, n) for _, ns, n in itertools.islice(heapq.merge(*heads), free)]

    def flow_place(self, key: Key, flow: str) -> tuple[list[RunSlot], int]:
        """The flow's other runs holding a slot, and how many of its runs wait ahead of
        this one (concurrency.decide_counted's inputs)."""
        ns, name = key
        holding = [s for n, s in self._flow_holding.get((ns, flow), {}).items() if n != name]
        state = self._states.get(key)
        created = state.created if state is not None else datetime.max.replace(tzinfo=UTC)
        return holding, bisect_left(self._flow_lines.get((ns, flow), []), (created, name))

    def waiting_in_flow(self, flow: Key) -> int:
        """How many of the flow's runs wait for its slots (Queue's line, Replace's runs)."""
        return len(self._flow_lines.get(flow, ())) + len(self._flow_replacing.get(flow, ()))

    def next_in_flow(self, flow: Key, limit: int | None) -> list[Key]:
        """The runs to look at again when the flow's slots change: its waiting runs the free
        slots go to, oldest first (None: no limit), and its runs waiting for the ones they
        replace to end."""
        line = self._flow_lines.get(flow, [])
        free = len(line) if limit is None else limit - len(self._flow_holding.get(flow, {}))
        replacing = sorted(self._flow_replacing.get(flow, ()))
        return [(flow[0], n) for _, n in line[: max(free, 0)]] + [(flow[0], n) for n in replacing]

    def counts(self) -> Counts:
        return Counts(
            self.held,
            {ns: n for ns, n in self._held_in.items() if n},
            {ns: list(line) for ns, line in self._lines.items() if line},
            {f: dict(h) for f, h in self._flow_holding.items() if h},
            {f: list(line) for f, line in self._flow_lines.items() if line},
            {f: set(names) for f, names in self._flow_replacing.items() if names},
        )

    # --- the bookkeeping -----------------------------------------------------------------
    def _room(self, namespace: str, namespace_limit: int | None) -> int:
        if namespace_limit is None:
            return len(self._lines.get(namespace, []))
        return max(namespace_limit - self._held_in[namespace], 0)

    def _marks_of(self, key: Key) -> _Marks:
        return _marks(self._states.get(key), key in self._reserved)

    def _move(self, key: Key, before: _Marks) -> bool:
        after = self._marks_of(key)
        if after == before:
            return False
        self._leave(key, before)
        self._enter(key, after)
        return True

    def _enter(self, key: Key, m: _Marks) -> None:
        ns, name = key
        if m.holds:
            self.held += 1
            self._held_in[ns] += 1
        if m.line is not None:
            insort(self._lines.setdefault(ns, []), m.line)
        if m.flow is not None and m.flow_holding is not None:
            self._flow_holding.setdefault(m.flow, {})[name] = m.flow_holding
        if m.flow is not None and m.flow_line is not None:
            insort(self._flow_lines.setdefault(m.flow, []), m.flow_line)
        if m.flow is not None and m.flow_replacing:
            self._flow_replacing.setdefault(m.flow, set()).add(name)

    def _leave(self, key: Key, m: _Marks) -> None:
        ns, name = key
        if m.holds:
            self.held -= 1
            self._held_in[ns] -= 1
            if not self._held_in[ns]:
                del self._held_in[ns]
        if m.line is not None:
            _remove(self._lines, ns, m.line)
        if m.flow is not None and m.flow_holding is not None:
            holding = self._flow_holding[m.flow]
            del holding[name]
            if not holding:
                del self._flow_holding[m.flow]
        if m.flow is not None and m.flow_line is not None:
            _remove(self._flow_lines, m.flow, m.flow_line)
        if m.flow is not None and m.flow_replacing:
            names = self._flow_replacing[m.flow]
            names.discard(name)
            if not names:
                del self._flow_replacing[m.flow]


def _head(namespace: str, line: list[Place], room: int) -> Iterator[tuple[datetime, str, str]]:
    """The first `room` runs of a namespace's line, in the operator-wide order."""
    return ((created, namespace, name) for created, name in itertools.islice(line, room))


def _remove(lines: dict[Any, list[Place]], scope: Any, place: Place) -> None:
    line = lines[scope]
    del line[bisect_left(line, place)]
    if not line:
        del lines[scope]


def recount(states: Iterable[RunState], reserved: Iterable[Key] = ()) -> Counts:
    """Every count from scratch, walking every run (the tests' check on `Slots`)."""
    by_key = {state.key: state for state in states}
    kept = set(reserved)
    held_in: Counter[str] = Counter()
    lines: dict[str, list[Place]] = {}
    flow_holding: dict[Key, dict[str, RunSlot]] = {}
    flow_lines: dict[Key, list[Place]] = {}
    flow_replacing: dict[Key, set[str]] = {}
    for key in by_key.keys() | kept:
        m = _marks(by_key.get(key), key in kept)
        held_in[key[0]] += m.holds
        if m.line is not None:
            lines.setdefault(key[0], []).append(m.line)
        if m.flow is not None and m.flow_holding is not None:
            flow_holding.setdefault(m.flow, {})[key[1]] = m.flow_holding
        if m.flow is not None and m.flow_line is not None:
            flow_lines.setdefault(m.flow, []).append(m.flow_line)
        if m.flow is not None and m.flow_replacing:
            flow_replacing.setdefault(m.flow, set()).add(key[1])
    return Counts(
        sum(held_in.values()),
        {ns: n for ns, n in held_in.items() if n},
        {ns: sorted(line) for ns, line in lines.items()},
        flow_holding,
        {f: sorted(line) for f, line in flow_lines.items()},
        flow_replacing,
    )
