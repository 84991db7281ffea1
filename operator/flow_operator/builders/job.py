"""The Job of one FlowRun task, and the child FlowRun of a sub-flow task.

Both are named `<run>-<task>` (truncated and hashed when long, builders/naming.py), owned
by the run (garbage-collected with it) and labelled with the run and the task, so a
restarted operator finds what it made, and a create that meets AlreadyExists is done.
A Job retries its pod `retries` times (`backoffLimit`) within `timeoutSeconds`
(`activeDeadlineSeconds`, all attempts together); its pods never restart in place, so
every attempt is a pod whose exit code and log stay readable.
"""

from __future__ import annotations

from flow_operator import API_VERSION
from flow_operator.builders.naming import (
    FLOWRUN_LABEL,
    MAX_JOB_NAME,
    TASK_LABEL,
    child_name,
    managed_labels,
    owner_reference,
)
from flow_operator.builders.security import container_security_context, pod_security_context
from flow_operator.models.flowrun import (
    KIND,
    FlowRun,
    FlowRunSpec,
    FlowType,
    RunType,
    Task,
    TaskBase,
)
from flow_operator.models.security import SecurityDefault
from flow_operator.objects.body import Body


def object_name(run: str, task: str) -> str:
    """The name of a task's Job, or of its child FlowRun."""
    return child_name(run, task, MAX_JOB_NAME)


def task_labels(run: FlowRun, task: TaskBase) -> dict[str, str]:
    return managed_labels(**{FLOWRUN_LABEL: run.metadata.name, TASK_LABEL: task.name})


def _metadata(run: FlowRun, task: TaskBase) -> Body:
    return {
        "name": object_name(run.metadata.name, task.name),
        "namespace": run.metadata.namespace,
        "labels": task_labels(run, task),
        "ownerReferences": [owner_reference(KIND, run.metadata.name, run.metadata.uid)],
    }


def task_env(run: FlowRun, task: TaskBase) -> list[Body]:
    """Who the task is, the configuration's parameters, then the task's own env (which
    wins over a parameter of the same name; a valueFrom entry is passed as it is, so the
    kubelet reads the Secret or ConfigMap and its value never enters the Job)."""
    values = {
        "FLOW_RUN": run.metadata.name,
        "FLOW_NAME": run.spec.flow_name,
        "FLOW_TASK": task.name,
    }
    config = run.spec.configuration
    if config is not None:
        values["FLOW_CONFIGURATION"] = config.name
        values.update(config.parameters or {})
    env: dict[str, Body] = {k: {"name": k, "value": v} for k, v in values.items()}
    env.update({e.name: e.dump() for e in task.env or ()})
    return list(env.values())


def desired_job(
    run: FlowRun, task: TaskBase, security: SecurityDefault = SecurityDefault.NONE
) -> Body:
    """The task's Job; `security` fills what the task's securityContexts leave out."""
    container: Body = {"name": task.name, "image": task.image}
    for key, value in (
        ("command", task.command),
        ("args", task.args),
        ("env", task_env(run, task)),
        ("resources", task.resources.dump() if task.resources else None),
        (
            "securityContext",
            container_security_context(task.container_security_context, security),
        ),
    ):
        if value:
            container[key] = value
    pod_spec: Body = {
        "restartPolicy": "Never",
        "containers": [container],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    pod_security = pod_security_context(task.pod_security_context, security)
    if pod_security:
        pod_spec["securityContext"] = pod_security
    spec: Body = {
        "backoffLimit": task.retries,
        "template": {"metadata": {"labels": task_labels(run, task)}, "spec": pod_spec},
    }
    if task.timeout_seconds is not None:
        spec["activeDeadlineSeconds"] = task.timeout_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(run, task), "spec": spec}


def desired_child_run(run: FlowRun, task: Task) -> Body:
    """The sub-flow run of `task`: Triggered by its parent, under the parent's Workflow and
    (unless it names its own) configuration, its deadline the task's timeout."""
    sub = task.sub_flow
    if sub is None:
        raise ValueError(f"task {task.name} runs a Job, not a sub-flow")
    spec = FlowRunSpec(
        flow_name=sub.flow_name,
        version=sub.version,
        level=run.spec.level,
        run_type=RunType.TRIGGERED,
        configuration=sub.configuration or run.spec.configuration,
        flow_type=FlowType.SUB_FLOW,
        parent_run=run.metadata.name,
        workflow_ref=run.spec.workflow_ref,
        tasks=[Task.model_validate(t.model_dump()) for t in sub.tasks],
        active_deadline_seconds=task.timeout_seconds,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(run, task),
        "spec": spec.dump(),
    }
