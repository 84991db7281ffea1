"""The cost of one capacity decision (issues 16, 21): the old walk over every run against the
incremental count (flowrun/slots.py), with 1,000 and 100,000 runs in the index.

    .venv/bin/python bench/capacity.py                   # 1,000 and 100,000 runs
    .venv/bin/python bench/capacity.py --runs 1000 --reps 200

A micro-benchmark, no cluster: for each size N it fills a FlowRun index as kopf's would hold
it (N runs over 8 namespaces, a quarter Deployed, the rest finished), with the operator-wide
limit reached, and times the decision for a Queued run (it waits):
- `walk`: the capacity count as it was until this change (d0e5f3e's
  FlowRunReconciler._capacity: every run of the index, its phase as our writes show it);
- `count`: FlowRunReconciler._capacity now, reading the counts the watch keeps;
- `observe`: what keeping them costs per watch event (a run's phase changing);
- `relist`: counting the whole index once (a reconciler built without the watch's counts).
p50 and p99 in microseconds over `--reps` repetitions (at least 20 for the walk at
100,000). Prints a table and writes bench/results/capacity-<stamp>.json with provenance().
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ (also when imported)

from common import ROOT, log, pct, provenance, report

from flow_operator.flowrun.machine import Capacity
from flow_operator.flowrun.slots import state_of
from flow_operator.models.flowrun import FlowRun, Phase
from flow_operator.reconcile.flowrun import FlowRunReconciler, FlowRunView, Limits

RESULTS = ROOT / "bench" / "results"
NAMESPACES = ("ml", "data", "finance", "ops", "marketing", "risk", "search", "ads")
Key = tuple[str, str]


def run(namespace: str, name: str, phase: str, version: int, minute: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {
            "name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1,
            "resourceVersion": str(version),
            "creationTimestamp": f"2026-12-04T{minute // 60 % 24:02d}:{minute % 60:02d}:00Z",
        },
        "spec": {"flowName": "bench", "version": "1",
                 "tasks": [{"name": "extract", "image": "busybox:1.36"}]},
        "status": {"phase": phase, "reason": "WaitingForCapacity" if phase == "Queued" else phase,
                   "history": [], "tasks": []},
    }  # fmt: skip


def index(n: int) -> tuple[dict[Key, list[dict[str, Any]]], int]:
    """N runs, a quarter Deployed; the number Deployed."""
    runs: dict[Key, list[dict[str, Any]]] = {}
    deployed = 0
    for i in range(n):
        ns = NAMESPACES[i % len(NAMESPACES)]
        phase = "Deployed" if i % 4 == 0 else "Completed"
        deployed += phase == "Deployed"
        runs[(ns, f"run-{i}")] = [run(ns, f"run-{i}", phase, i + 1, i)]
    return runs, deployed


def old_capacity(rec: FlowRunReconciler, admitted: set[Key], key: Key, run: FlowRun) -> Capacity:
    """d0e5f3e's FlowRunReconciler._capacity (its flow hold left out: none here)."""
    phase = run.status.phase if run.status is not None else None
    holds = phase is Phase.DEPLOYED or key in admitted
    limited = rec.limits.running is not None or rec.limits.per_namespace is not None
    others: set[Key] = set()
    if limited and not holds:
        deployed = Phase.DEPLOYED.value

        def phase_of(k: Key, b: dict[str, Any]) -> Any:
            return (rec.writes.current(k, b, b.get("status"), peek=True) or {}).get("phase")

        others = {
            k
            for k, bodies in list(rec.view.runs.items())
            for b in bodies
            if k != key and phase_of(k, b) == deployed
        } | (admitted - {key})
    in_namespace = sum(1 for ns, _ in others if ns == key[0])
    return Capacity(
        running=len(others),
        limit=rec.limits.running,
        namespace_running=in_namespace,
        namespace_limit=rec.limits.per_namespace,
        holds_slot=holds,
    )


def timed(fn: Callable[[], object], reps: int) -> dict[str, float]:
    took = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        took.append((time.perf_counter_ns() - t0) / 1000)
    return {"p50_us": round(pct(took, 0.5), 2), "p99_us": round(pct(took, 0.99), 2), "reps": reps}


def measure(n: int, reps: int) -> dict[str, Any]:
    runs, deployed = index(n)
    key = ("ml", "waiting")
    candidate = run("ml", "waiting", "Queued", n + 1, n)
    runs[key] = [candidate]
    view = FlowRunView(runs=runs, jobs={}, pods={}, children={}, workflows={})
    limits = Limits(running=deployed, per_namespace=None)
    t0 = time.perf_counter()
    rec = FlowRunReconciler(view, None, limits)  # type: ignore[arg-type]  # no API call made
    relist_ms = (time.perf_counter() - t0) * 1000
    model = FlowRun.from_body(candidate)
    old, new = old_capacity(rec, set(), key, model), rec._capacity(key, model)
    assert (old.running, old.namespace_running) == (new.running, new.namespace_running), (old, new)
    assert new.running == deployed and not new.holds_slot  # the limit is reached: it waits
    walk = timed(lambda: old_capacity(rec, set(), key, model), max(reps // 50, 20))
    count = timed(lambda: rec._capacity(key, model), reps)
    # keeping the count: one run's phase flips Deployed <-> Completed, a new version each
    flip = [0]

    def event() -> None:
        flip[0] += 1
        phase = "Completed" if flip[0] % 2 else "Deployed"
        state = state_of(run("data", "run-1", phase, n + 10 + flip[0], 1))
        assert state is not None
        rec.counts.observe(state.key, state)

    observe = timed(event, reps)
    log(f"{n:>7} runs: walk p50 {walk['p50_us']:,.0f} us, count p50 {count['p50_us']:,.1f} us")
    return {
        "runs": n,
        "deployed": deployed,
        "walk": walk,
        "count": count,
        "observe": observe,
        "relist_ms": round(relist_ms, 1),
        "speedup_p50": round(walk["p50_us"] / count["p50_us"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--reps", type=int, default=2000, help="repetitions of a decision")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {**provenance(), "reps": args.reps}
    for n in args.runs:
        results[f"n{n}"] = measure(n, args.reps)
    report(results, args.results, "capacity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
