"""flowctl's Flow commands on a fake cluster: flows, flow NAME, start FLOW."""

from __future__ import annotations

from typing import Any

from flow_operator.flows.versions import revision_hash, revision_name
from flow_operator.models.flow import FlowSpec
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
