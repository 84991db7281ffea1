"""flowctl's Flow commands on a fake cluster: flows, flow NAME, start FLOW [--wait],
schedule suspend|resume FLOW [SCHEDULE]."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from flow_operator.cli.main import Context, flowctl
from flow_operator.flows.versions import revision_hash, revision_name
from flow_operator.models.flow import FlowSpec
from tests.unit.api_support import NOW
from tests.unit.cli.test_cli_workflows import FakeCluster, invoke
from tests.unit.flows.conftest import flow_spec

Body = dict[str, Any]
PARAMETERS = [{"name": "REGION", "enum": ["eu", "us"], "default": "eu"}]


def flow(name: str, **spec: Any) -> Body:
    fields = flow_spec(**spec)
    rev = revision_hash(FlowSpec.model_validate(fields))
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "creationTimestamp": "2024-02-12T08:00:00Z"},
        "spec": fields,
        "status": {"version": 1, "revision": rev, "scheduleSummary": "hourly",
                   "nextScheduleTime": "2024-02-12T10:00:00Z",
                   "versions": [{"version": 1, "revision": rev,
                                 "revisionName": revision_name(name, 1, rev),
                                 "creationTime": "2024-02-12T08:00:00Z"}]},
    }  # fmt: skip


def fake() -> FakeCluster:
    f = FakeCluster()
    f.put("flows", flow("etl", parameters=PARAMETERS,
                        schedules=[{"name": "hourly", "cron": "@hourly"}]))  # fmt: skip
    f.put("flows", flow("once", concurrency={"policy": "Forbid"}))
    return f


def test_flows_lists_version_schedules_and_next_run() -> None:
    out = invoke(fake(), "flows").output
    header, etl, _once = out.splitlines()
    assert header.split() == ["NAME", "VERSION", "LEVEL", "SCHEDULES", "LAST", "RUN", "LAST",
                              "STATUS", "NEXT", "RUN"]  # fmt: skip
    assert etl.split()[:4] == ["etl", "1", "user", "hourly"]
    assert "2024-02-12T10:00:00Z" in etl


def test_flow_shows_parameters_and_versions() -> None:
    out = invoke(fake(), "flow", "etl").output
    assert "REGION: default 'eu'; one of eu, us" in out
    assert "hourly" in out and "@hourly" in out


def test_start_creates_a_manual_run_of_the_current_version() -> None:
    f = fake()
    result = invoke(f, "start", "etl", "-p", "REGION=us")
    assert result.exit_code == 0, result.output
    (run,) = f.created
    assert run["spec"]["runType"] == "Manual"
    assert run["spec"]["flowRef"] == {"name": "etl", "version": 1}
    assert run["spec"]["configuration"]["parameters"] == {"REGION": "us"}
    assert "created (flow etl v1)" in result.output


def test_start_refuses_a_bad_parameter_naming_it_and_creates_nothing() -> None:
    f = fake()
    result = invoke(f, "start", "etl", "-p", "REGION=mars")
    assert result.exit_code == 2
    assert "parameters.REGION" in result.output
    assert f.created == []


def test_start_under_forbid_is_skipped_while_a_run_is_unfinished() -> None:
    f = fake()
    assert invoke(f, "start", "once").exit_code == 0
    f.created[0]["metadata"]["creationTimestamp"] = "2024-02-12T09:00:00Z"
    f.put("flowruns", f.created[0])
    result = invoke(f, "start", "once")
    assert result.exit_code == 3 and "not started" in result.output
    assert invoke(f, "start", "nope").exit_code == 1


def _invoke(f: FakeCluster, *args: str, sleep: Any = None) -> Any:
    ctx = Context(None, None, factory=lambda: f)
    ctx.now = lambda: NOW
    ctx.sleep = sleep or (lambda seconds: None)
    return CliRunner().invoke(flowctl, list(args), obj=ctx, catch_exceptions=False)


def _progress(f: FakeCluster, phases: list[str], reason: str = "") -> Any:
    """A sleep that moves the created run through `phases`, one per read."""

    def sleep(seconds: float) -> None:
        assert seconds > 0
        run = f.created[-1]
        phase = phases.pop(0)
        run["status"] = {"phase": phase, "reason": reason or phase}
        f.put("flowruns", run)

    return sleep


def test_start_wait_follows_the_run_and_exits_with_its_outcome() -> None:
    f = fake()
    result = _invoke(f, "start", "etl", "--wait",
                     sleep=_progress(f, ["Submitted", "Deployed", "Completed"]))  # fmt: skip
    assert result.exit_code == 0, result.output
    name = f.created[0]["metadata"]["name"]
    assert f"{name}: Deployed" in result.output and f"{name}: Completed" in result.output
    f = fake()
    failed = _invoke(f, "start", "etl", "--wait",
                     sleep=_progress(f, ["Deployed", "Failed"], "TaskFailed"))  # fmt: skip
    assert failed.exit_code == 1 and "ended Failed (TaskFailed)" in failed.output


def test_schedule_suspend_and_resume_patch_the_flows_schedules() -> None:
    f = fake()
    f.objects[("flows", "ns", "etl")]["metadata"]["resourceVersion"] = "42"
    result = _invoke(f, "schedule", "suspend", "etl", "hourly")
    assert result.exit_code == 0, result.output
    (_, _, name, patch) = f.patches[-1]
    assert name == "etl" and patch["metadata"] == {"resourceVersion": "42"}
    assert patch["spec"]["schedules"] == [{"name": "hourly", "cron": "@hourly", "suspend": True}]
    assert "suspended hourly" in result.output
    assert "resumed hourly" in _invoke(f, "schedule", "resume", "etl").output
    assert f.get("flows", "ns", "etl")["spec"]["schedules"][0]["suspend"] is False
    unknown = _invoke(f, "schedule", "suspend", "etl", "daily")
    assert unknown.exit_code == 1 and "no schedule 'daily' (schedules: hourly)" in unknown.output
    assert _invoke(f, "schedule", "suspend", "once").exit_code == 1  # it has no schedules


def two_versions(keep_revision: bool = True) -> FakeCluster:
    """etl at version 2 (tasks a, b); version 1 (task old) kept in its ControllerRevision."""
    f = FakeCluster()
    old = FlowSpec.model_validate(flow_spec(tasks=[{"name": "old", "image": "busybox"}]))
    body = flow("etl")
    v1 = {"version": 1, "revision": revision_hash(old),
          "revisionName": revision_name("etl", 1, revision_hash(old)),
          "creationTime": "2024-02-11T08:00:00Z"}  # fmt: skip
    body["status"]["versions"] = [v1, {**body["status"]["versions"][0], "version": 2}]
    body["status"]["version"] = 2
    f.put("flows", body)
    if keep_revision:
        f.put("controllerrevisions", {"metadata": {"name": v1["revisionName"], "namespace": "ns"},
                                      "data": old.dump(), "revision": 1})  # fmt: skip
    return f


def test_start_version_runs_an_older_kept_version_from_its_revision() -> None:
    f = two_versions()
    result = invoke(f, "start", "etl", "--version", "1")
    assert result.exit_code == 0, result.output
    (run,) = f.created
    assert run["spec"]["flowRef"] == {"name": "etl", "version": 1}
    assert [t["name"] for t in run["spec"]["tasks"]] == ["old"]
    assert "created (flow etl v1)" in result.output
    run["metadata"]["creationTimestamp"] = "2024-02-12T09:00:00Z"
    f.put("flowruns", run)
    assert invoke(f, "start", "etl").exit_code == 0
    assert [t["name"] for t in f.created[-1]["spec"]["tasks"]] != ["old"]  # the current one


def test_start_version_whose_revision_is_gone_names_it_and_creates_nothing() -> None:
    f = two_versions(keep_revision=False)
    result = invoke(f, "start", "etl", "--version", "1")
    assert result.exit_code == 2 and "could not be read" in result.output, result.output
    assert invoke(f, "start", "etl", "--version", "7").exit_code == 2
    assert f.created == []


def test_a_run_applied_by_flow_ref_counts_for_forbid() -> None:
    f = fake()
    f.put("flowruns", {"metadata": {"name": "by-hand", "namespace": "ns", "uid": "u1",
                                    "creationTimestamp": "2024-02-12T09:00:00Z"},
                       "spec": {"flowRef": {"name": "once"}},
                       "status": {"phase": "Deployed", "definition": {"version": 1}}})  # fmt: skip
    result = invoke(f, "start", "once")
    assert result.exit_code == 3 and "not started" in result.output, result.output
