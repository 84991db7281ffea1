"""The Flow page and the run timeline's attempts in a real browser (Debian's chromium,
Playwright) against the operator on the local cluster.

- The Flow page (`#/flows/<ns>/<name>?window=24h&last=20`): a Flow is run 6 times at
  version 1 (configurations small and big), then changed so that its task fails and run
  4 times at version 2. The page's numbers per version and per configuration (runs,
  successes, failures, success rate, p50 and p95) are checked against the FlowRuns as the
  cluster has them, worked out here with Python's `statistics`; the flag says the latest
  runs fail more often, in words; the trend chart (uPlot) has a point per run and its
  table lists them; the window and the trend's length are in the URL and survive a reload.
- The run page's timeline: a task whose first attempt fails and whose retry succeeds
  shows two attempts, the failed one marked and before the successful one.

The screenshots are docs/images/dashboard-flow.png and dashboard-timeline.png
(FLOW_SCREENSHOTS=1 writes them there, else to the test's tmp dir).
"""

from __future__ import annotations

import json
import secrets
import statistics
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from tests.e2e.conftest import (
    OK,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    token_namespace,
    wait_for,
)
from tests.e2e.test_dashboard import browser_page, shots_dir, sign_in

TOKEN = f"dashboard-flow-{secrets.token_hex(8)}"
NS = f"flowpage-{secrets.token_hex(3)}"
OPERATOR_ARGS = ["--namespace", NS, "--api-token-secret", f"{NS}/flow-operator-api"]
FLOW = "etl"
FAIL = "kwok.flowops.test/fail"
FAIL_ONCE = "kwok.flowops.test/fail-once"
FINISHED = ("Completed", "Failed", "Crashed", "Cancelled")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(cluster: ClusterHandle) -> Iterator[str]:
    yield from token_namespace(cluster, NS, TOKEN)


def etl(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": FLOW},
        "spec": {
            "tasks": [{"name": "extract", "image": image}],
            "configurations": [{"name": "small", "parameters": {"ROWS": "10"}},
                               {"name": "big", "parameters": {"ROWS": "1000"}}],
            "parameters": [{"name": "ROWS", "default": "1"}],
        },
    }  # fmt: skip


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with browser_page() as pg:
        yield pg


def start_run(operator: OperatorProcess, configuration: str) -> str:
    request = urllib.request.Request(
        operator.url(f"/api/v1/flows/{NS}/{FLOW}/runs"),
        data=json.dumps({"runType": "Manual", "configuration": configuration}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return str(json.loads(response.read())["name"])


def runs_of_flow(cluster: ClusterHandle) -> list[dict[str, Any]]:
    out = cluster.get_json("-n", NS, "flowruns", "-l", f"flowops.io/flow={FLOW}")
    return list(out.get("items") or [])


def make_runs(cluster: ClusterHandle, operator: OperatorProcess, configurations: list[str]) -> None:
    names = {start_run(operator, c) for c in configurations}

    def done() -> bool:
        phases = {
            r["metadata"]["name"]: (r.get("status") or {}).get("phase")
            for r in runs_of_flow(cluster)
        }
        return all(phases.get(n) in FINISHED for n in names)

    wait_for(f"{len(names)} runs of {FLOW} finished", done, 180, every=0.5)


def seconds(run: dict[str, Any]) -> float:
    status = run["status"]
    start = datetime.fromisoformat(status["startTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(status["endTime"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def expected(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the page must say of these runs (the definitions of docs/flows.md)."""
    ok = [r for r in runs if r["status"]["phase"] == "Completed"]
    bad = [r for r in runs if r["status"]["phase"] in ("Failed", "Crashed")]
    durations = [seconds(r) for r in ok]
    out: dict[str, Any] = {"runs": len(runs), "succeeded": len(ok), "failed": len(bad)}
    out["rate"] = len(ok) / (len(ok) + len(bad)) if ok or bad else None
    out["p50"] = statistics.median(durations) if durations else None
    if len(durations) > 1:
        out["p95"] = statistics.quantiles(durations, n=20, method="inclusive")[18]
    else:
        out["p95"] = durations[0] if durations else None
    return out


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate * 100:.0f}%" if rate in (0, 1) else f"{rate * 100:.1f}%"


async def check_row(row: Any, want: dict[str, Any]) -> None:
    await expect(row.locator("td.runs")).to_have_text(str(want["runs"]))
    await expect(row.locator("td.succeeded")).to_have_text(str(want["succeeded"]))
    await expect(row.locator("td.failed")).to_have_text(str(want["failed"]))
    await expect(row.locator("td.rate")).to_have_text(rate_text(want["rate"]))
    for key in ("p50", "p95"):
        title = await row.locator(f"td.{key}").get_attribute("title")
        if want[key] is None:
            assert not title
        else:
            assert title and abs(float(title.removesuffix(" s")) - want[key]) < 0.002, (
                key,
                title,
                want,
            )


async def test_flow_page_stats_match_the_runs_made(
    page: Any, demo: str, cluster: ClusterHandle, operator: OperatorProcess, tmp_path: Path
) -> None:
    cluster.kubectl("-n", NS, "apply", "-f", "-", input=yaml.safe_dump(etl(OK)))
    wait_for("the Flow's version 1",
             lambda: (cluster.get_json("-n", NS, "flow", FLOW).get("status") or {}).get("version") == 1, 30)  # fmt: skip
    make_runs(cluster, operator, ["small", "small", "big", "small", "big", "small"])
    # version 2: its task fails
    cluster.kubectl("-n", NS, "apply", "-f", "-", input=yaml.safe_dump(etl(FAIL)))
    wait_for("the Flow's version 2",
             lambda: (cluster.get_json("-n", NS, "flow", FLOW).get("status") or {}).get("version") == 2, 30)  # fmt: skip
    make_runs(cluster, operator, ["small", "big", "small", "small"])

    runs = runs_of_flow(cluster)
    assert len(runs) == 10
    version = lambda r: r["metadata"]["labels"]["flowops.io/flow-version"]  # noqa: E731
    config = lambda r: r["spec"]["configuration"]["name"]  # noqa: E731
    v1 = [r for r in runs if version(r) == "1"]
    v2 = [r for r in runs if version(r) == "2"]
    assert len(v1) == 6 and len(v2) == 4
    assert {r["status"]["phase"] for r in v1} == {"Completed"}
    assert {r["status"]["phase"] for r in v2} <= {"Failed", "Crashed"}

    await sign_in(page, operator.url(f"/#/flows/{NS}/{FLOW}?window=24h&last=20"), TOKEN)
    detail = page.locator("#flow-detail")
    await expect(detail.locator("#flow-versions")).to_be_visible(timeout=15_000)
    await expect(page).to_have_title(f"{FLOW} · Flows · Flow Operator")
    assert await page.locator("#flow-window").input_value() == "24h"
    assert await page.locator("#flow-last").input_value() == "20"

    await check_row(detail.locator('#flow-versions tr[data-group="1"]'), expected(v1))
    await check_row(detail.locator('#flow-versions tr[data-group="2"]'), expected(v2))
    for name in ("small", "big"):
        await check_row(detail.locator(f'#flow-configurations tr[data-group="{name}"]'),
                        expected([r for r in runs if config(r) == name]))  # fmt: skip
    overall = expected(runs)
    await expect(page.locator("#flow-overall")).to_contain_text("10 runs since")
    await expect(page.locator("#flow-overall")).to_contain_text(
        f"{overall['succeeded']} succeeded, {overall['failed']} failed"
    )
    # the newest 5 (1 success, 4 failures) against the 5 before (all successes): in words
    flag = page.locator("#flow-flag")
    await expect(flag).to_have_attribute("data-flag", "failing")
    await expect(flag).to_contain_text("Failing more often")
    await expect(flag).to_contain_text("4 of the last 5 runs failed (80%), against 0% before")

    # the trend: a point per run, oldest first, drawn by uPlot, and as a table
    trend = page.locator("#flow-trend")
    await expect(trend).to_have_attribute("data-points", "10")
    await expect(trend.locator("canvas")).to_have_count(1)
    legend = await trend.locator(".u-legend").inner_text()
    assert "Completed" in legend and "Failed or crashed" in legend
    ordered = sorted(runs, key=lambda r: (r["status"]["startTime"], r["metadata"]["name"]))
    table = page.locator("#flow-trend-rows tbody tr")
    assert await table.evaluate_all("rows => rows.map(r => r.dataset.run)") == [
        r["metadata"]["name"] for r in ordered
    ]
    assert await detail.locator("button.run").is_enabled()
    await page.screenshot(path=str(shots_dir(tmp_path) / "dashboard-flow.png"), full_page=True)

    # the window and the trend's length are the URL's: changed, reloaded, the same view
    await page.select_option("#flow-last", "50")
    await expect(page).to_have_url(f"{operator.url('/')}#/flows/{NS}/{FLOW}?window=24h&last=50")
    await page.goto(operator.url(f"/#/flows/{NS}/{FLOW}?window=7d&last=3"))
    await page.reload()
    await expect(page.locator("#flow-trend")).to_have_attribute("data-points", "3", timeout=15_000)
    assert await page.locator("#flow-window").input_value() == "7d"
    assert await page.locator("#flow-trend-rows tbody tr").count() == 3


async def test_timeline_shows_the_failed_attempt_then_the_retry(
    page: Any, demo: str, cluster: ClusterHandle, operator: OperatorProcess, tmp_path: Path
) -> None:
    run = flowrun("flaky", [task("prepare"), task("fetch", FAIL_ONCE, retries=1, dependsOn=["prepare"]),
                            task("report", dependsOn=["fetch"])])  # fmt: skip
    cluster.kubectl("-n", NS, "apply", "-f", "-", input=yaml.safe_dump(run))
    wait_for("flaky Completed",
             lambda: (cluster.get_json("-n", NS, "flowrun", "flaky").get("status") or {}).get("phase")
             in FINISHED, 120)  # fmt: skip
    status = cluster.get_json("-n", NS, "flowrun", "flaky")["status"]
    assert status["phase"] == "Completed", status
    pods = cluster.get_json("-n", NS, "pods", "-l", "flowops.io/task=fetch")["items"]
    pods.sort(key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Succeeded"]

    await sign_in(page, operator.url(f"/#/runs/{NS}/flaky"), TOKEN)
    await expect(page.locator("#run-status .badge")).to_have_text("Completed", timeout=15_000)
    row = page.locator('#run-timeline .tl-row[data-task="fetch"]')
    attempts = row.locator(".attempt")
    await expect(attempts).to_have_count(2, timeout=15_000)
    first, second = attempts.nth(0), attempts.nth(1)
    await expect(first).to_have_attribute("data-outcome", "Failed")
    await expect(second).to_have_attribute("data-outcome", "Succeeded")
    assert await first.get_attribute("data-pod") == pods[0]["metadata"]["name"]
    assert await second.get_attribute("data-pod") == pods[1]["metadata"]["name"]
    await expect(first.locator(".attempt-mark")).to_have_text("✗")
    assert "attempt 1 Failed (Error, exit 1)" in (await first.get_attribute("aria-label") or "")
    await expect(row.locator(".tl-text")).to_contain_text(
        "attempt 1 Failed (Error, exit 1) · attempt 2 Succeeded"
    )
    # the failed attempt runs before the retry; the retry's bar has a running part
    first_run = first.locator(".seg.running")
    second_run = second.locator(".seg.running")
    a = await first_run.bounding_box()
    b = await second_run.bounding_box()
    assert a and b and a["x"] + a["width"] <= b["x"] + 0.5, (a, b)
    assert await second.locator(".seg.backoff").count() == 1  # the Job's wait before the retry
    # the other tasks: one attempt each; each part of a bar named in the legend
    await expect(page.locator('#run-timeline .tl-row[data-task="report"] .attempt')).to_have_count(
        1
    )
    await expect(page.locator("#run-timeline-legend")).to_contain_text("running")
    await expect(page.locator("#run-timeline-legend")).to_contain_text("retry back-off")
    await page.locator("#run-tl-h").scroll_into_view_if_needed()
    await page.screenshot(path=str(shots_dir(tmp_path) / "dashboard-timeline.png"), full_page=True)
