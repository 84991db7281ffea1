"""Bad input: every manifest here is refused at admission with a message naming the field,
and nothing is created: 29 Workflows and 37 FlowRuns (missing fields, wrong enums, negative
or oversize values, duplicate ids and task names, unknown dependencies, ...). What the CRD
schema and CEL cannot judge, the operator's model refuses and the object goes Stalled
with the reason named, and nothing is created: a Workflow's resource quantities; a
FlowRun's dependsOn cycle (named), parameter names, a sub-flow task without an image.
docs/reliability.md lists them all."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from tests.e2e import results
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def _wf(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bad"},
        "spec": {
            "desiredStatus": "PUBLISHED",
            "publishingMode": "ASYNC",
            "services": [{"id": "svc", "image": "x:1", "replicas": 1}],
        },
    }
    for key, value in spec.items():
        if value is None:
            del base["spec"][key]
        else:
            base["spec"][key] = value
    return base


def _svc(**fields: Any) -> list[dict[str, Any]]:
    svc: dict[str, Any] = {"id": "svc", "image": "x:1", "replicas": 1}
    for key, value in fields.items():
        if value is None:
            del svc[key]
        else:
            svc[key] = value
    return [svc]


LONG = "a" * 70
# (case id, manifest, a fragment the API server's message must contain)
WORKFLOW_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no-spec", {k: v for k, v in _wf().items() if k != "spec"}, "spec: Required value"),
    ("no-desired-status", _wf(desiredStatus=None), "spec.desiredStatus: Required value"),
    (
        "desired-status-enum",
        _wf(desiredStatus="LIVE"),
        'spec.desiredStatus: Unsupported value: "LIVE"',
    ),
    ("mode-enum", _wf(publishingMode="BATCH"), 'spec.publishingMode: Unsupported value: "BATCH"'),
    ("no-services", _wf(services=None), "spec.services: Required value"),
    ("empty-services", _wf(services=[]), "spec.services: Invalid value"),
    ("negative-replicas", _wf(services=_svc(replicas=-1)), "spec.services[0].replicas"),
    ("huge-replicas", _wf(services=_svc(replicas=100000)), "spec.services[0].replicas"),
    ("replicas-string", _wf(services=_svc(replicas="two")), "spec.services[0].replicas"),
    ("no-image", _wf(services=_svc(image=None)), "spec.services[0].image: Required value"),
    ("empty-image", _wf(services=_svc(image="")), "spec.services[0].image"),
    ("no-id", _wf(services=_svc(id=None)), "spec.services[0].id: Required value"),
    ("id-not-dns", _wf(services=_svc(id="Not_DNS")), "spec.services[0].id"),
    ("id-too-long", _wf(services=_svc(id=LONG)), "spec.services[0].id"),
    ("duplicate-ids", _wf(services=_svc() + _svc()), "spec.services[].id must be unique"),
    (
        "sync-without-stream",
        _wf(publishingMode="SYNC"),
        "spec.stream is required when spec.publishingMode is SYNC",
    ),
    (
        "async-with-stream",
        _wf(stream={"id": "benthos", "image": "b:4"}),
        "spec.stream is only allowed when spec.publishingMode is SYNC",
    ),
    (
        "stream-id-clash",
        _wf(publishingMode="SYNC", stream={"id": "svc", "image": "b:4"}),
        "spec.stream.id must differ",
    ),
    (
        "port-out-of-range",
        _wf(services=_svc(ports=[{"containerPort": 70000}])),
        "spec.services[0].ports[0].containerPort",
    ),
    (
        "port-protocol",
        _wf(services=_svc(ports=[{"containerPort": 80, "protocol": "HTTP"}])),
        "spec.services[0].ports[0].protocol",
    ),
    (
        "env-bad-name",
        _wf(services=_svc(env=[{"name": "1 bad", "value": "x"}])),
        "spec.services[0].env[0].name",
    ),
    (
        "toleration-effect",
        _wf(services=_svc(tolerations=[{"key": "k", "effect": "Sometimes"}])),
        "spec.services[0].tolerations[0].effect",
    ),
    ("deadline-too-small", _wf(progressDeadlineSeconds=1), "spec.progressDeadlineSeconds"),
    (
        "too-many-services",
        _wf(services=[{"id": f"s{i}", "image": "x"} for i in range(51)]),
        "spec.services: Too many",
    ),
    ("unknown-field", _wf(color="GREEN"), 'unknown field "spec.color"'),
    ("oversize-image", _wf(services=_svc(image="x" * 600)), "spec.services[0].image: Too long"),
    ("oversize-args", _wf(services=_svc(args=["a"] * 300)), "spec.services[0].args: Too many"),
    (
        "name-too-long",
        {**_wf(), "metadata": {"name": "w" * 64}},
        "metadata.name must be at most 63 characters",
    ),
    ("secret-ref-empty", _wf(apiKeySecretRef={"name": ""}), "spec.apiKeySecretRef.name"),
]


def assert_refused(
    cluster: Any, namespace: str, case: str, manifest: dict[str, Any], fragment: str, kinds: str
) -> None:
    """`kubectl apply` of `manifest` fails naming `fragment`, and no object of `kinds`
    exists afterwards: nothing partially created."""
    done = cluster.kubectl(
        "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    assert done.returncode != 0, f"{case} was accepted"
    assert fragment in done.stderr, done.stderr
    left = cluster.kubectl("-n", namespace, "get", kinds, "-o", "name", check=False)
    assert left.stdout.strip() == ""
    results.tally("bad_input", f"{kinds.split(',')[0].removesuffix('s')}_manifests_refused")


@pytest.mark.parametrize(
    ("case", "manifest", "fragment"), WORKFLOW_CASES, ids=[c[0] for c in WORKFLOW_CASES]
)
def test_refused_at_admission(
    cluster: Any, namespace: str, case: str, manifest: dict[str, Any], fragment: str
) -> None:
    assert_refused(cluster, namespace, case, manifest, fragment, "workflows,deployments")


def test_workflow_the_schema_cannot_judge_goes_stalled(
    cluster: Any, namespace: str, operator: Any
) -> None:
    manifest = _wf(services=_svc(resources={"requests": {"cpu": "plenty"}}))
    manifest["metadata"]["name"] = "stalls"
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = cluster.kubectl("-n", namespace, "get", "workflow", "stalls", "-o", "json").stdout
        status = json.loads(out).get("status") or {}
        if status.get("conditions"):
            break
        time.sleep(0.2)
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "resources.requests.cpu" in stalled["message"]
    deployments = cluster.kubectl("-n", namespace, "get", "deployments", "-o", "name").stdout
    assert deployments.strip() == ""  # nothing partially created
    results.tally("bad_input", "workflow_specs_stalled")


def _fr(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": "bad-run"},
        "spec": {"flowName": "f", "version": "1", "tasks": [{"name": "a", "image": "x:1"}]},
    }
    for key, value in spec.items():
        if value is None:
            del base["spec"][key]
        else:
            base["spec"][key] = value
    return base


def _task(**fields: Any) -> list[dict[str, Any]]:
    task: dict[str, Any] = {"name": "a", "image": "x:1"}
    for key, value in fields.items():
        if value is None:
            del task[key]
        else:
            task[key] = value
    return [task]


def _sub(**fields: Any) -> dict[str, Any]:
    return {"flowName": "child", "version": "1", "tasks": [{"name": "s", "image": "x:1"}], **fields}


def _chain(n: int) -> list[dict[str, Any]]:
    return [{"name": f"t{i}", "image": "x"} for i in range(n)]


FLOWRUN_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("run-no-spec", {k: v for k, v in _fr().items() if k != "spec"}, "spec: Required value"),
    # required unless spec.flowRef names a Flow (a run by reference): CEL says so
    (
        "run-no-flow-name",
        _fr(flowName=None),
        "spec.flowName and spec.version are required unless spec.flowRef",
    ),
    (
        "run-no-version",
        _fr(version=None),
        "spec.flowName and spec.version are required unless spec.flowRef",
    ),
    ("run-no-tasks", _fr(tasks=None), "spec.tasks is required unless spec.flowRef names a Flow"),
    ("run-empty-tasks", _fr(tasks=[]), "spec.tasks: Invalid value: 0"),
    ("run-tasks-not-a-list", _fr(tasks={"a": {"image": "x"}}), 'unknown field "spec.tasks.a"'),
    ("run-level-enum", _fr(level="team"), 'spec.level: Unsupported value: "team"'),
    ("run-type-enum", _fr(runType="Cron"), 'spec.runType: Unsupported value: "Cron"'),
    ("run-flow-type-enum", _fr(flowType="nested"), 'spec.flowType: Unsupported value: "nested"'),
    (
        "run-sub-flow-without-parent",
        _fr(flowType="sub-flow"),
        "spec.parentRun is required when spec.flowType is sub-flow",
    ),
    (
        "run-parent-on-standalone",
        _fr(parentRun="p"),
        "spec.parentRun is only allowed when spec.flowType is sub-flow",
    ),
    (
        "run-duplicate-task-names",
        _fr(tasks=_task() + _task()),
        'spec.tasks[1]: Duplicate value: {"name":"a"}',
    ),
    (
        "run-depends-on-unknown",
        _fr(tasks=_task(dependsOn=["ghost"])),
        "spec.tasks[].dependsOn must name tasks of this run",
    ),
    (
        "run-depends-on-repeated",
        _fr(tasks=[*_chain(1), {"name": "b", "image": "x", "dependsOn": ["t0", "t0"]}]),
        "spec.tasks[1].dependsOn[1]: Duplicate value",
    ),
    (
        "run-too-many-depends",
        _fr(
            tasks=[
                *_chain(21),
                {"name": "z", "image": "x", "dependsOn": [f"t{i}" for i in range(21)]},
            ]
        ),
        "spec.tasks[21].dependsOn: Too many",
    ),
    ("run-task-name-not-dns", _fr(tasks=_task(name="Extract_Data")), "spec.tasks[0].name"),
    (
        "run-negative-retries",
        _fr(tasks=_task(retries=-1)),
        "spec.tasks[0].retries: Invalid value: -1",
    ),
    (
        "run-too-many-retries",
        _fr(tasks=_task(retries=11)),
        "spec.tasks[0].retries: Invalid value: 11",
    ),
    ("run-retries-string", _fr(tasks=_task(retries="three")), "spec.tasks[0].retries"),
    ("run-zero-timeout", _fr(tasks=_task(timeoutSeconds=0)), "spec.tasks[0].timeoutSeconds"),
    (
        "run-task-neither-image-nor-subflow",
        _fr(tasks=_task(image=None)),
        "spec.tasks[0]: Invalid value: a task has either image (a Job) or subFlow",
    ),
    (
        "run-task-image-and-subflow",
        _fr(tasks=_task(subFlow=_sub())),
        "spec.tasks[0]: Invalid value: a task has either image (a Job) or subFlow",
    ),
    (
        "run-subflow-with-retries",
        _fr(tasks=[{"name": "a", "retries": 1, "subFlow": _sub()}]),
        "a subFlow task takes no command, args, env, resources or retries",
    ),
    (
        "run-subflow-no-tasks",
        _fr(tasks=[{"name": "a", "subFlow": _sub(tasks=[])}]),
        "spec.tasks[0].subFlow.tasks",
    ),
    ("run-empty-image", _fr(tasks=_task(image="")), "spec.tasks[0].image"),
    (
        "run-env-bad-name",
        _fr(tasks=_task(env=[{"name": "1x", "value": "v"}])),
        "spec.tasks[0].env[0].name",
    ),
    ("run-oversize-flow-name", _fr(flowName="f" * 300), "spec.flowName: Too long"),
    ("run-oversize-version", _fr(version="9" * 70), "spec.version: Too long"),
    (
        "run-oversize-parameter",
        _fr(configuration={"name": "c", "parameters": {"P": "v" * 40000}}),
        "spec.configuration.parameters.P: Too long",
    ),
    ("run-too-many-tasks", _fr(tasks=_chain(51)), "spec.tasks: Too many: 51"),
    ("run-negative-deadline", _fr(activeDeadlineSeconds=-5), "spec.activeDeadlineSeconds"),
    ("run-queue-timeout-too-long", _fr(queueTimeoutSeconds=10**8), "spec.queueTimeoutSeconds"),
    ("run-cancel-not-bool", _fr(cancel="yes"), "spec.cancel"),
    ("run-unknown-field", _fr(priority="high"), 'unknown field "spec.priority"'),
    (
        "run-configuration-without-name",
        _fr(configuration={"parameters": {"A": "1"}}),
        "spec.configuration.name: Required value",
    ),
    ("run-workflow-ref-empty", _fr(workflowRef={"name": ""}), "spec.workflowRef.name"),
    (
        "run-name-too-long",
        {**_fr(), "metadata": {"name": "r" * 64}},
        "metadata.name must be at most 63 characters",
    ),
]


@pytest.mark.parametrize(
    ("case", "manifest", "fragment"), FLOWRUN_CASES, ids=[c[0] for c in FLOWRUN_CASES]
)
def test_flowrun_refused_at_admission(
    cluster: Any, namespace: str, case: str, manifest: dict[str, Any], fragment: str
) -> None:
    assert_refused(cluster, namespace, case, manifest, fragment, "flowruns,jobs")


# FlowRuns the CRD admits but the model refuses: Failed, Stalled, the reason named, no Job.
STALLED_RUNS: list[tuple[str, list[dict[str, Any]], dict[str, Any], str]] = [
    (
        "cycle",
        [
            {"name": "a", "image": "x", "dependsOn": ["c"]},
            {"name": "b", "image": "x", "dependsOn": ["a"]},
            {"name": "c", "image": "x", "dependsOn": ["b"]},
            {"name": "d", "image": "x"},
        ],
        {},
        "spec.tasks: dependsOn forms a cycle: a -> c -> b -> a (each depends on the next)",
    ),
    (
        "self-dependency",
        [{"name": "a", "image": "x", "dependsOn": ["a"]}],
        {},
        "dependsOn forms a cycle: a -> a",
    ),
    (
        "parameter-name",
        [{"name": "a", "image": "x"}],
        {"configuration": {"name": "c", "parameters": {"1-bad name": "x"}}},
        "configuration.parameters names must be environment variable names: 1-bad name",
    ),
    (
        "subflow-task-without-image",
        [{"name": "a", "subFlow": {"flowName": "c", "version": "1", "tasks": [{"name": "s"}]}}],
        {},
        "sub-flow task s: image is required",
    ),
]


@pytest.mark.parametrize(
    ("case", "tasks", "spec", "fragment"), STALLED_RUNS, ids=[c[0] for c in STALLED_RUNS]
)
def test_flowrun_the_schema_cannot_judge_fails_stalled(
    cluster: Any,
    namespace: str,
    operator: Any,
    case: str,
    tasks: list[dict[str, Any]],
    spec: dict[str, Any],
    fragment: str,
) -> None:
    manifest = _fr(tasks=tasks, **spec)
    manifest["metadata"]["name"] = case
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))

    def stalled() -> dict[str, Any] | None:
        status = cluster.get_json("-n", namespace, "flowrun", case).get("status") or {}
        return status if status.get("phase") in ("Failed", "Completed", "Deployed") else None

    status = wait_for(f"{case} Failed", stalled, 30)
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
    assert fragment in status["message"], status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert fragment in conditions["Stalled"]["message"]

    def warned() -> bool:  # Events are posted in the background (flow_operator/events.py)
        events = cluster.get_json("-n", namespace, "events", "--field-selector",
                                  f"involvedObject.name={case}")["items"]  # fmt: skip
        return any(e["type"] == "Warning" and fragment in e["message"] for e in events)

    wait_for(f"a Warning Event on {case}", warned, 10)
    everything = cluster.kubectl("-n", namespace, "get", "jobs,pods,flowruns", "-o", "name")
    assert everything.stdout.split() == [f"flowrun.flowops.io/{case}"]  # no Job, no child run
    results.tally("bad_input", "flowrun_specs_stalled")


def test_cases_are_distinct() -> None:
    for cases in (WORKFLOW_CASES, FLOWRUN_CASES):
        dumps = [json.dumps(m, sort_keys=True) for _, m, _ in cases]
        assert len(set(dumps)) == len(dumps), "a case is repeated"
    assert len(WORKFLOW_CASES) >= 25 and len(FLOWRUN_CASES) >= 30
    assert len(WORKFLOW_CASES) + len(FLOWRUN_CASES) + len(STALLED_RUNS) + 1 >= 60
