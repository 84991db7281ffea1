"""The flow-run contract (tests/unit/api_contract.py) against the in-memory fake backend;
tests/e2e/test_api.py runs the same function against the operator on the local cluster."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from flow_operator.api.flowruns import FlowRunRow, TaskRow
from flow_operator.api.server import make_app
from tests.unit.api_contract import Subject, check_flow_run_contract
from tests.unit.api_support import MemoryFlowRuns, Secrets, View, make_api

TOKEN = "contract-token"


def contract_runs(namespace: str) -> list[FlowRunRow]:
    """`done` and `forever` as the operator shows them (a one-task run each)."""
    only = TaskRow(name="only", version="1", status="Succeeded", pod="done-only-abcde",
                   startTime="2024-02-12T10:00:01Z", endTime="2024-02-12T10:00:02Z",
                   runtime="1s")  # fmt: skip
    spin = TaskRow(name="spin", version="1", status="Running", pod="forever-spin-fghij",
                   startTime="2024-02-12T10:00:01Z")  # fmt: skip
    return [
        FlowRunRow(namespace=namespace, name="done", flowName="done", runType="API",
                   startTime="2024-02-12T10:00:00Z", endTime="2024-02-12T10:00:02Z",
                   duration="2s", status="Completed", message="all 1 tasks completed",
                   tasks=[only]),
        FlowRunRow(namespace=namespace, name="forever", flowName="forever", runType="API",
                   startTime="2024-02-12T10:00:00Z", status="Deployed",
                   message="0 of 1 tasks done; running: spin", tasks=[spin]),
    ]  # fmt: skip


async def test_the_fake_backend_keeps_the_contract() -> None:
    backend = MemoryFlowRuns(contract_runs("contract"))
    steps: list[int] = []

    async def settle() -> None:
        # the operator acts on the second look, not at once (as the real one may)
        steps.append(1)
        if len(steps) >= 2:
            backend.settle()

    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", token=TOKEN)
    server = TestServer(make_app(make_api(View(), secrets, flowruns=backend)), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        run = await check_flow_run_contract(Subject(base, TOKEN, "contract", settle))
    finally:
        await server.close()
    assert run["status"] == "Cancelled"
    assert len(steps) >= 2  # the answer to cancel came before the run was Cancelled
    assert [a[0] for a in backend.actions] == ["cancel", "rerun"]
