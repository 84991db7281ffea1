"""The composition root: kinds wire themselves; a wiring mistake fails at start."""

from __future__ import annotations

from typing import Any, cast

import pytest

from flow_operator import main
from flow_operator.app import Operator, Queue, Queues, Started, WiringError
from flow_operator.observers import Topic
from flow_operator.settings import HttpSettings, Settings


def test_the_kinds_register_their_indexes_and_queues() -> None:
    app = main.build(Settings())
    indexers = {h.id for h in app.registry._indexing.get_all_handlers()}
    # kopf passes an index to the handlers under its handler id: the names they ask for
    assert indexers == {
        "workflow_bodies",
        "flowrun_bodies",
        "flowrun_children",
        "flowruns_by_workflow",
        "flow_bodies",
        "flowruns_by_flow",
    }
    logins = [
        h
        for h in app.registry._activities.get_all_handlers()
        if h.activity.value == "authentication"
    ]
    assert logins, "kopf needs a login handler on a registry of our own, or it cannot connect"
    assert app.queues.unbound() == ["flow", "flowrun", "workflow"]  # bound at start, not before
    # metrics (a run: by phase, and by its Flow); the HTTP API joins at build
    assert len(app.workflows) == 1 and len(app.runs) == 2


def test_enqueueing_before_the_reconciler_is_bound_fails_loudly() -> None:
    queue = Queue("flowrun")
    with pytest.raises(WiringError, match="'flowrun' was enqueued before"):
        queue.enqueue(("ns", "a"))


def test_a_queue_declared_twice_or_unknown_is_refused() -> None:
    queues = Queues()
    queues.declare("flowrun")
    with pytest.raises(WiringError, match="declared twice"):
        queues.declare("flowrun")
    with pytest.raises(WiringError, match=r"no queue 'flowruns' \(declared: flowrun\)"):
        queues["flowruns"]


async def test_a_declared_queue_without_a_reconciler_stops_the_start() -> None:
    def forgetful(app: Operator) -> None:
        app.queues.declare("flow")  # and never binds it

    class Client:
        closed = False

        async def close(self) -> None:
            self.closed = True

    async def connect() -> Any:
        return Client()

    logs = Client()
    app = Operator(Settings(), (forgetful,), connect=connect, connect_logs=lambda *_: logs)
    with pytest.raises(WiringError, match="given no reconciler: flow"):
        await app.start({})
    await app.stop()
    assert logs.closed  # the log streams' own client is closed with the operator


async def test_log_streams_get_a_client_of_their_own_sized_by_the_cap() -> None:
    """The HTTP API's log reader is made beside the reconcilers' client, never it, with one
    connection per stream --max-log-streams allows, and handed to the build steps."""
    made: list[tuple[Any, int]] = []
    seen: list[Any] = []

    class Client:
        async def close(self) -> None: ...

    kube, logs = Client(), Client()

    async def connect() -> Any:
        return kube

    def connect_logs(of: Any, connections: int) -> Any:
        made.append((of, connections))
        return logs

    def wired(app: Operator) -> None:
        app.on_build(lambda started: seen.append(started.log_reader()))

    settings = Settings(http=HttpSettings(max_log_streams=7))
    app = Operator(settings, (wired,), connect=connect, connect_logs=connect_logs)
    app.spawn = lambda coro, name: coro.close()  # type: ignore[method-assign]
    await app.start({})
    await app.stop()
    assert made == [(kube, 7)] and seen == [logs] and logs is not kube


def test_a_started_without_a_log_reader_says_so() -> None:
    ctx = Started(app=Operator(Settings(), ()), kube=cast(Any, None), indexes={})
    with pytest.raises(WiringError, match="no log reader"):
        ctx.log_reader()


def test_an_unknown_index_or_missing_part_is_named() -> None:
    ctx = Started(
        app=Operator(Settings(), ()), kube=cast(Any, None), indexes={"flowrun_bodies": {}}
    )
    with pytest.raises(
        WiringError, match=r"no kopf index 'workflow_bodies' \(registered: flowrun_bodies\)"
    ):
        ctx.index("workflow_bodies")
    with pytest.raises(WiringError, match="no Topic was provided"):
        ctx.need(Topic)
    ctx.provide(Topic("x"))
    assert ctx.need(Topic).name == "x"


def test_kopf_copies_of_the_memo_are_the_operator() -> None:
    import copy

    app = Operator(Settings(), ())
    assert copy.copy(app) is app


def test_a_failing_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    topic: Topic[int] = Topic("numbers")
    seen: list[int] = []

    def broken(_: int) -> None:
        raise RuntimeError("boom")

    topic.subscribe(broken)
    topic.subscribe(seen.append)
    topic.publish(7)
    assert seen == [7]
    assert "numbers subscriber" in caplog.text


def test_settings_come_from_flags_and_environment() -> None:
    s = Settings.parse(
        ["run", "-n", "a", "-n", "b", "--leader-election", "--max-running-runs", "3"],
        env={"FLOW_HTTP_PORT": "9000", "POD_NAME": "op-1", "FLOW_WORKERS": "0"},
    )
    assert s.namespaces == ("a", "b") and s.http.namespaces == ("a", "b")
    assert s.leader_election and s.identity == "op-1"
    assert s.http.port == 9000 and s.limits.running == 3 and s.limits.per_namespace is None
    assert s.workers == 1  # at least one
    with pytest.raises(AttributeError):
        setattr(s, "workers", 2)  # noqa: B010


def test_the_clients_qps_and_burst_are_set_explicitly() -> None:
    default = Settings.parse(["run"], env={})
    assert (default.kube_qps, default.kube_burst) == (200.0, 400)
    told = Settings.parse(["run", "--kube-qps", "50"], env={"FLOW_KUBE_BURST": "80"})
    assert (told.kube_qps, told.kube_burst) == (50.0, 80)
