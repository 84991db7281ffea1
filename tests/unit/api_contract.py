"""The flow-run API's contract, one check run against both backends: the in-memory fake of
the unit tests (tests/unit/api/test_api_contract.py) and the operator's own on the local
cluster (tests/e2e/test_api.py). If the fake drifts from what the operator does, the unit
run or the e2e run of this same function fails.

The caller provides, in `subject.namespace`:
- `done`: a finished run (Completed) of one task `only`, Succeeded, with a pod;
- `forever`: a run (Deployed) of one task `spin`, Running for ever, with a pod;
and `settle()`, which lets the operator act (the fake's step; for the real one a short
wait: the operator acts by itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from flow_operator.models.flowrun import Phase, TaskPhase
from tests.unit.api_support import validate

RUN = "/api/v1/flowruns/{namespace}/{name}"
TASK_STATES = {p.value for p in TaskPhase}
RUN_STATES = {p.value for p in Phase}


@dataclass
class Subject:
    base: str  # the API's URL, no trailing slash
    token: str
    namespace: str
    settle: Callable[[], Awaitable[None]]
    timeout: float = 30.0


async def _call(
    http: aiohttp.ClientSession, subject: Subject, method: str, path: str, template: str
) -> tuple[int, Any]:
    auth = {"Authorization": f"Bearer {subject.token}"}
    async with http.request(method, subject.base + path, headers=auth) as resp:
        if resp.content_type == "application/json":
            body = await resp.json()
            validate(template, method, resp.status, body)
        else:
            body = await resp.text()
        return resp.status, body


async def check_flow_run_contract(subject: Subject) -> dict[str, Any]:
    """Run the contract; returns the run `forever` once Cancelled (for more checks)."""
    ns = subject.namespace
    done, forever = RUN.format(namespace=ns, name="done"), RUN.format(namespace=ns, name="forever")
    async with aiohttp.ClientSession() as http:

        async def call(method: str, path: str, template: str = RUN) -> tuple[int, Any]:
            return await _call(http, subject, method, path, template)

        # the list, and one run with its tasks: the operator's own states
        code, listed = await call("GET", f"/api/v1/flowruns?namespace={ns}", "/api/v1/flowruns")
        assert code == 200, listed
        states = {r["name"]: r["status"] for r in listed["items"]}
        assert states == {"done": "Completed", "forever": "Deployed"}, states
        assert all("tasks" not in r for r in listed["items"])
        assert (listed["total"], listed["counts"]) == (2, {"Completed": 1, "Deployed": 1})
        code, first = await call(
            "GET", f"/api/v1/flowruns?namespace={ns}&limit=1", "/api/v1/flowruns"
        )
        assert code == 200 and len(first["items"]) == 1 and first["continue"], first
        page = f"/api/v1/flowruns?namespace={ns}&limit=1&continue={first['continue']}"
        code, second = await call("GET", page, "/api/v1/flowruns")
        assert code == 200 and "continue" not in second, second
        paged = [r["name"] for r in first["items"] + second["items"]]
        assert paged == [r["name"] for r in listed["items"]], paged
        code, run = await call("GET", done)
        assert code == 200 and run["status"] in RUN_STATES
        assert [(t["name"], t["status"]) for t in run["tasks"]] == [("only", "Succeeded")]
        assert run["tasks"][0]["pod"] and run["tasks"][0]["runtime"]
        code, run = await call("GET", forever)
        assert [(t["name"], t["status"]) for t in run["tasks"]] == [("spin", "Running")]
        assert {t["status"] for t in run["tasks"]} <= TASK_STATES
        code, body = await call("GET", RUN.format(namespace=ns, name="ghost"))
        assert (code, body["error"]) == (404, "NotFound")

        # logs: the task's pod; an unknown task 404; a bad tailLines 400
        logs = RUN + "/tasks/{task}/logs"
        code, text = await call("GET", f"{done}/tasks/only/logs", logs)
        assert code == 200 and isinstance(text, str) and text.strip(), text
        code, text = await call("GET", f"{done}/tasks/only/logs?tailLines=1", logs)
        assert code == 200 and len(text.strip().splitlines()) == 1, text
        code, body = await call("GET", f"{done}/tasks/nope/logs", logs)
        assert (code, body["error"]) == (404, "NotFound")
        code, body = await call("GET", f"{done}/tasks/only/logs?tailLines=%C2%B2", logs)
        assert (code, body["error"]) == (400, "BadRequest") and "tailLines" in body["message"]

        # cancel: a finished run is refused; a running one is answered as it stands, and
        # turns Cancelled only when the operator has done it
        cancel = RUN + "/cancel"
        code, body = await call("POST", f"{done}/cancel", cancel)
        assert (code, body["error"]) == (409, "Conflict")
        assert "already finished (Completed)" in body["message"]
        code, body = await call("POST", f"{forever}/cancel", cancel)
        assert code == 200, body
        assert (body["status"], body["message"]) == ("Deployed", "cancel requested"), body
        deadline = time.monotonic() + subject.timeout
        while True:
            await subject.settle()
            code, run = await call("GET", forever)
            if run["status"] == "Cancelled" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0)
        assert run["status"] == "Cancelled", run
        assert run["message"] == "cancelled on request (spec.cancel)", run
        assert [(t["name"], t["status"]) for t in run["tasks"]] == [("spin", "Cancelled")]
        code, body = await call("POST", f"{forever}/cancel", cancel)
        assert (code, body["error"]) == (409, "Conflict")
        code, body = await call("POST", RUN.format(namespace=ns, name="ghost") + "/cancel", cancel)
        assert (code, body["error"]) == (404, "NotFound")

        # rerun: a new run named after the old one, started by hand, not started yet
        rerun = RUN + "/rerun"
        code, body = await call("POST", f"{done}/rerun", rerun)
        assert code == 201, body
        assert body["name"].startswith("done-") and len(body["name"]) == len("done-") + 5
        assert (body["runType"], body["status"]) == ("Manual", "Submitted"), body
        assert [(t["name"], t["status"]) for t in body["tasks"]] == [("only", "Pending")]
        assert "message" not in body
        code, body = await call("POST", RUN.format(namespace=ns, name="ghost") + "/rerun", rerun)
        assert code == 404
        return dict(run)
