"""How long one HTTP request holds the operator's event loop (issue 21, isolation goal 3:
"no request handler blocks the loop for more than 10 ms").

The operator's own HTTP API (api/server.make_app, served by aiohttp on a real port) over what
it reads inside the operator: kopf-shaped indexes of N live FlowRuns and W Workflows (built
from the golden bodies of the unit tests, renamed), and a real SQLite run store migrated by
Alembic and loaded with M archived runs (bench/history.py's rows). Auth is token mode with a
real token Secret body. Clients run in another *process* (so their JSON decoding takes
nothing from the server's loop or GIL) and poll one endpoint at a time for a few seconds.

Every callback the server's loop runs is timed: asyncio's Handle._run is wrapped, recording
wall time and the loop thread's CPU time. The longest callback while an endpoint is under
load is that endpoint's loop block: the longest time any other coroutine of the operator (a
reconcile, a status write, a watch) had to wait behind it. The CPU figure is the one that
does not grow when other processes share the cores.

    .venv/bin/python bench/loop.py [--live 5000 --workflows 5000 --stored 100000]

Results: bench/results/loop-<stamp>.json (docs/performance.md, "The loop under reads").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import gc
import json
import multiprocessing as mp
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "bench")]

import history as history_bench  # noqa: E402
from common import log, pct, provenance, report  # noqa: E402

from flow_operator.api.auth import API_KEY_TYPE, SecretKeys  # noqa: E402
from flow_operator.api.flowrun_backend import IndexedFlowRuns  # noqa: E402
from flow_operator.api.server import Api, ApiServer, Readiness  # noqa: E402
from flow_operator.api.workflows import WorkflowDirectory  # noqa: E402
from flow_operator.history.sql import open_store  # noqa: E402
from flow_operator.ports import SecretData  # noqa: E402

GOAL_MS = 10.0
T = TypeVar("T")
TOKEN = "bench-loop-token-0123456789abcdef"
GOLDEN_RUN = ROOT / "tests/unit/history/golden/record/completed-dag.in.json"
GOLDEN_WORKFLOW_IN = ROOT / "tests/golden/workflow/in/sync-published-green.json"
GOLDEN_WORKFLOW_STATUS = ROOT / "tests/golden/workflow/sync-published-green.json"
NAMESPACES = [f"team-{i}" for i in range(10)]


# -- the server's loop, timed -------------------------------------------------------------


class CallbackTimer:
    """Wraps asyncio.Handle._run: the duration of every callback of one loop, wall and CPU
    (the thread's), tagged with the phase under way."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.phase = "idle"
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.worst: dict[str, tuple[float, str]] = {}  # the longest callback's CPU, and what
        self.thread: threading.Thread | None = None  # the loop's
        self.gc_total = 0.0
        self._gc_started = 0.0
        self.gc_pauses: dict[str, list[tuple[int, float]]] = {}
        self._original = asyncio.events.Handle._run

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        timer, original = self, self._original

        def timed_run(handle: asyncio.Handle) -> None:
            if getattr(handle, "_loop", None) is not timer.loop:
                original(handle)
                return
            wall, cpu, collected = time.perf_counter(), time.thread_time(), timer.gc_total
            try:
                original(handle)
            finally:
                # the collector's pauses inside this callback are not the handler's own
                gc_in = timer.gc_total - collected
                sample = (time.perf_counter() - wall - gc_in, time.thread_time() - cpu - gc_in)
                timer.samples.setdefault(timer.phase, []).append(sample)
                if sample[1] > timer.worst.get(timer.phase, (0.0, ""))[0]:
                    timer.worst[timer.phase] = (sample[1], _what(handle))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self._collector)

    def _collector(self, phase: str, info: dict[str, int]) -> None:
        """Python's cyclic collector, timed apart: it stops whichever callback is running."""
        if threading.current_thread() is not self.thread:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc_total += pause
        self.gc_pauses.setdefault(self.phase, []).append((info["generation"], pause))

    def uninstall(self) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._collector)


def _what(handle: asyncio.Handle) -> str:
    """The coroutine a callback stepped (a task's step), else the callback's name."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    if coro is not None:
        return getattr(coro, "__qualname__", repr(coro))
    return getattr(callback, "__qualname__", repr(callback))


# -- what the API reads -------------------------------------------------------------------


def live_runs(n: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """N FlowRuns in kopf's index shape, the golden completed DAG run renamed; one in ten
    still running (its tasks' last one Running), so filters and merges have work."""
    template = json.loads(GOLDEN_RUN.read_text())
    index: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(n):
        body = copy.deepcopy(template)
        ns, name = NAMESPACES[i % len(NAMESPACES)], f"live-{i:06d}"
        meta = body["metadata"]
        meta.update(name=name, namespace=ns, uid=f"00000000-0000-4000-8000-{i:012d}")
        meta["resourceVersion"] = str(100_000 + i)
        if i % 10 == 0:
            body["status"]["phase"] = "Deployed"
            body["status"].pop("completionTime", None)
        index[(ns, name)] = [body]
    return index


def workflows(n: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """W Workflows with the golden GREEN status, renamed."""
    body = json.loads(GOLDEN_WORKFLOW_IN.read_text())["workflow"]
    status = json.loads(GOLDEN_WORKFLOW_STATUS.read_text())
    index: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(n):
        one = copy.deepcopy(body)
        ns, name = NAMESPACES[i % len(NAMESPACES)], f"wf-{i:06d}"
        one.setdefault("metadata", {}).update(name=name, namespace=ns, resourceVersion=str(i + 1))
        one["status"] = copy.deepcopy(status)
        index[(ns, name)] = [one]
    return index


class NoActions:
    """The cluster side of the run backend: the reads measured here never call it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the bench's reads called the cluster: {name}")


async def read_token_secret(namespace: str, name: str) -> SecretData:
    data = {"bench": base64.b64encode(TOKEN.encode()).decode()}
    return SecretData(API_KEY_TYPE, data)


def endpoints(live: int, workflow_count: int) -> list[tuple[str, str, str]]:
    """(id, what, path): the dashboard's reads, and the heavy ones it could be asked for."""
    some_run = f"{NAMESPACES[3]}/live-{3:06d}"
    return [
        ("first_page", "runs, limit=100 (the dashboard's)", "/api/v1/flowruns?limit=100"),
        (
            "page_1000",
            "runs, limit=1000 (the largest page)",
            "/api/v1/flowruns?limit=1000",
        ),
        (
            "search",
            "runs, search=weekly, limit=100",
            "/api/v1/flowruns?limit=100&search=weekly",
        ),
        (
            "status",
            "runs, status=Failed, limit=100",
            "/api/v1/flowruns?limit=100&status=Failed",
        ),
        ("detail", "one live flowrun", f"/api/v1/flowruns/{some_run}"),
        ("workflows", f"workflows (all {workflow_count})", "/api/v1/workflows"),
        ("me", "me", "/api/v1/me"),
        ("healthz", "healthz", "/healthz"),
    ]


# -- the clients (another process) --------------------------------------------------------


def _clients(url: str, clients: int, seconds: float, out: Any) -> None:
    async def one(session: Any, latencies: list[float], errors: list[str]) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                body = await r.read()
                if r.status != 200:
                    errors.append(f"{r.status} {body[:200]!r}")
            latencies.append(time.perf_counter() - started)

    async def main() -> tuple[list[float], list[str], int]:
        import aiohttp

        latencies: list[float] = []
        errors: list[str] = []
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(one(session, latencies, errors) for _ in range(clients)))
            async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                size = len(await r.read())
        return latencies, errors, size

    out.put(asyncio.run(main()))


async def load_endpoint(base: str, path: str, clients: int, seconds: float) -> dict[str, Any]:
    """The clients' process, started and awaited from the bench's own loop (not the
    server's: its callbacks are not timed)."""
    context = mp.get_context("spawn")
    queue: Any = context.Queue()
    proc = context.Process(target=_clients, args=(base + path, clients, seconds, queue))
    proc.start()
    latencies, errors, size = await asyncio.get_running_loop().run_in_executor(None, queue.get)
    proc.join()
    if errors:
        raise SystemExit(f"{path}: {len(errors)} errors, the first: {errors[0]}")
    return {"requests": len(latencies), "bytes": size,
            "latency_p50_ms": round(pct(latencies, 50) * 1000, 2),
            "latency_p99_ms": round(pct(latencies, 99) * 1000, 2)}  # fmt: skip


class ServerThread:
    """The API on a loop of its own in a thread: the loop whose callbacks are timed, as
    the operator's one loop would run them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def blocks(samples: Iterable[tuple[float, float]]) -> dict[str, float]:
    walls = sorted(s[0] for s in samples)
    cpus = sorted(s[1] for s in samples)
    return {
        "callbacks": len(walls),
        "block_max_wall_ms": round(walls[-1] * 1000, 2),
        "block_p99_wall_ms": round(pct(walls, 99) * 1000, 2),
        "block_max_cpu_ms": round(cpus[-1] * 1000, 2),
        "block_p99_cpu_ms": round(pct(cpus, 99) * 1000, 2),
    }


def collections(pauses: list[tuple[int, float]]) -> dict[str, Any]:
    """The cyclic collector's pauses on the loop's thread while an endpoint was loaded."""
    full = [s for g, s in pauses if g == 2]
    return {
        "gc_collections": len(pauses),
        "gc_full_collections": len(full),
        "gc_pause_max_ms": round(max((s for _, s in pauses), default=0.0) * 1000, 2),
        "gc_full_pause_max_ms": round(max(full, default=0.0) * 1000, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = provenance()
    results.update(live_runs=args.live, workflows=args.workflows, stored_runs=args.stored,
                   clients=args.clients, seconds_per_endpoint=args.seconds, goal_ms=GOAL_MS,
                   gc_freeze=args.gc_freeze)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        dsn = f"sqlite+aiosqlite:///{tmp}/history.db"
        store = await open_store(dsn)
        log(f"loading {args.stored:,} archived runs into SQLite")
        await history_bench.load(store, args.stored)
        await history_bench.analyze(store)
        log(f"indexing {args.live:,} live runs and {args.workflows:,} Workflows")
        runs, wfs = live_runs(args.live), workflows(args.workflows)
        if args.gc_freeze:  # what the indexes hold now is left out of every later collection
            gc.collect()
            gc.freeze()
        api = Api(
            directory=WorkflowDirectory(wfs, {}),
            secrets=SecretKeys(read_token_secret),
            token_secret=("flow-system", "flow-operator-api"),
            flowruns=IndexedFlowRuns(runs, NoActions(), store),
            readiness=Readiness(ready=True, reason="bench"),
        )
        server = ApiServer(api, "127.0.0.1", 0)
        host = ServerThread()
        await host.run(server.start())
        base = f"http://127.0.0.1:{server.port}"
        timer = CallbackTimer()
        timer.thread = host.thread
        timer.install(host.loop)
        figures: dict[str, Any] = {}
        try:
            for key, what, path in endpoints(args.live, args.workflows):
                timer.phase = "warm"
                await load_endpoint(base, path, 1, 0.5)
                timer.phase = key
                load = await load_endpoint(base, path, args.clients, args.seconds)
                timer.phase = "idle"
                figures[key] = {"what": what, "path": urllib.parse.unquote(path), **load,
                                **blocks(timer.samples.pop(key)),
                                "longest_callback": timer.worst.pop(key)[1],
                                **collections(timer.gc_pauses.pop(key, []))}  # fmt: skip
                f = figures[key]
                log(f"  {what}: longest callback {f['block_max_wall_ms']} ms wall, "
                    f"{f['block_max_cpu_ms']} ms CPU ({f['longest_callback']}); "
                    f"{load['requests']} requests, p99 {load['latency_p99_ms']} ms; "
                    f"longest collector pause {f['gc_pause_max_ms']} ms")  # fmt: skip
        finally:
            timer.uninstall()
            await host.run(server.stop())
            host.stop()
            await store.engine.dispose()
    results["endpoints"] = figures
    over = {w: f["block_max_cpu_ms"] for w, f in figures.items() if f["block_max_cpu_ms"] > GOAL_MS}
    results["over_goal_cpu_ms"] = over
    results["goal_met"] = not over
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", type=int, default=5000, help="live FlowRuns in the index")
    parser.add_argument("--workflows", type=int, default=5000, help="Workflows in the index")
    parser.add_argument("--stored", type=int, default=100_000, help="archived runs in SQLite")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="load per endpoint")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once the indexes are built (the collector's pauses)",
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    summary = {k: v for k, v in results.items() if k != "endpoints"}
    for what, f in results["endpoints"].items():
        summary[f"{what}: block wall / CPU, collector ms"] = (
            f"{f['block_max_wall_ms']} / {f['block_max_cpu_ms']}, {f['gc_pause_max_ms']}"
        )
    path = report(summary, args.results, "loop")
    path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
