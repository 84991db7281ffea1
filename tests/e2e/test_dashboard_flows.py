"""The Flows page in a real browser (Debian's chromium, Playwright) against the operator on
the local cluster: a Flow with a required enum parameter lists with its version, level,
schedule (the next tick in the viewer's local time) and "never run"; its Run button,
from the keyboard, opens a form built from the declared parameters and configurations;
Run without the required value shows the API's 422 at that field; with a chosen value the
run is made (runType Manual, the value in its configuration), the page goes to the run,
the run completes, and the run table has it, linked to its Flow, whose page then shows it
as the last run. The screenshot is docs/images/dashboard-flows.png (FLOW_SCREENSHOTS=1
writes it there, else to the test's tmp dir).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from tests.e2e.conftest import OK, ClusterHandle, OperatorProcess, token_namespace, wait_for
from tests.e2e.test_dashboard import browser_page, shots_dir, sign_in

TOKEN = f"dashboard-flows-{secrets.token_hex(8)}"
NS = f"flowspage-{secrets.token_hex(3)}"
OPERATOR_ARGS = ["--namespace", NS, "--api-token-secret", f"{NS}/flow-operator-api"]
FLOW = "regional"
TIME_ZONE = "America/New_York"  # the viewer's: the page's times are not UTC

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(cluster: ClusterHandle) -> Iterator[str]:
    yield from token_namespace(cluster, NS, TOKEN)


def regional() -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": FLOW},
        "spec": {
            "level": "organization",
            "tasks": [{"name": "extract", "image": OK},
                      {"name": "load", "image": OK, "dependsOn": ["extract"]}],
            "parameters": [
                {"name": "REGION", "description": "where the data is", "required": True,
                 "enum": ["emea", "apac", "amer"]},
                {"name": "SINCE", "default": "2024-01-01"},
            ],
            "configurations": [{"name": "backfill", "parameters": {"SINCE": "2020-01-01"}}],
            "schedules": [{"name": "nightly", "cron": "0 3 * * *", "timeZone": "Europe/Berlin",
                           "parameters": {"REGION": "emea"}}],
        },
    }  # fmt: skip


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    """test_dashboard's browser in another time zone; the 422 asked for on purpose (and a
    401) are the only console errors allowed."""
    async with browser_page(allowed=("401", "422"), timezone=TIME_ZONE) as pg:
        yield pg


async def test_run_a_flow_from_the_dashboard_with_a_parameter(
    page: Any,
    demo: str,
    cluster: ClusterHandle,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    cluster.kubectl("-n", NS, "apply", "-f", "-", input=yaml.safe_dump(regional()))

    def flow_status() -> dict[str, Any]:
        return dict(cluster.get_json("-n", NS, "flow", FLOW).get("status") or {})

    status = wait_for("the Flow's version 1 and its next tick",
                      lambda: (s := flow_status()).get("version") == 1 and s.get("nextScheduleTime")
                      and s, 30)  # fmt: skip

    await sign_in(page, operator.url("/#/flows"), TOKEN)
    row = page.locator(f'#flows tr.flow[data-flow="{NS}/{FLOW}"]')
    await expect(row).to_be_visible(timeout=15_000)
    assert await page.title() == "Flows · Flow Operator"
    await expect(row.locator("td.version")).to_have_text("v1")
    await expect(row.locator("td.level")).to_have_text("organization")
    await expect(row.locator("td.schedules")).to_contain_text("nightly")
    await expect(row.locator("td.last-run")).to_have_text("never run")
    # the next tick in the viewer's local time (not UTC), humanized after it
    tick = row.locator("td.schedules time")
    assert await tick.get_attribute("datetime") == status["nextScheduleTime"]
    local = await page.evaluate("ts => new Date(ts).toLocaleString()", status["nextScheduleTime"])
    assert (await tick.text_content() or "").startswith(local)
    assert re.search(r"\(in \d+[smhd]", await tick.text_content() or "")

    # Run, from the keyboard: the form has a labelled field per declared parameter
    await row.locator("button.run").focus()
    await page.keyboard.press("Enter")
    form = page.locator("#run-form")
    await expect(form).to_be_visible()
    region = page.locator("#param-REGION")
    await expect(region).to_be_focused()
    assert await page.locator('label[for="param-REGION"]').text_content() == "REGION *"
    assert await page.locator('label[for="param-SINCE"]').text_content() == "SINCE"
    options = await region.locator("option").all_text_contents()
    assert options == ["choose…", "emea", "apac", "amer"]
    assert await page.locator("#run-configuration option").all_text_contents() == [
        "none",
        "backfill",
    ]
    await expect(page.locator("#param-SINCE")).to_have_attribute("placeholder", "2024-01-01")

    # the required value left out: the API's 422 at its field, nothing made
    await page.click("#run-form button[type=submit]")
    await expect(page.locator("#param-REGION-error")).to_contain_text("required")
    await expect(region).to_have_attribute("aria-invalid", "true")
    await expect(region).to_be_focused()
    out = cluster.get_json("-n", NS, "flowruns", "-l", f"flowops.io/flow={FLOW}")
    assert not out.get("items")

    await region.select_option("apac")
    await page.screenshot(path=str(shots_dir(tmp_path) / "dashboard-flows.png"))
    await page.click("#run-form button[type=submit]")
    await expect(form).to_be_hidden()
    await expect(page).to_have_url(re.compile(rf"#/runs/{NS}/{FLOW}-[a-z0-9]+$"), timeout=10_000)
    name = page.url.rsplit("/", 1)[1]
    run = cluster.get_json("-n", NS, "flowrun", name)
    assert run["spec"]["runType"] == "Manual"
    assert run["spec"]["configuration"]["parameters"] == {"REGION": "apac", "SINCE": "2024-01-01"}
    await expect(page.locator("#run-status .badge")).to_have_text("Completed", timeout=120_000)

    # the run table has it, Completed, linked to its Flow
    await page.goto(operator.url("/#/runs"))
    run_row = page.locator(f'#runs tr.run[data-run="{NS}/{name}"]')
    await expect(run_row.locator(".badge")).to_have_text("Completed", timeout=15_000)
    await expect(run_row.locator("td.runType")).to_have_text("Manual")
    link = run_row.locator("a.flow-link")
    await expect(link).to_have_attribute("href", f"#/flows/{NS}/{FLOW}")
    # followed by its address: the table redraws its rows as the run's events come
    await page.goto(operator.url(f"/#/flows/{NS}/{FLOW}"))

    # the Flow's own view: its last run, Completed; the schedule's next tick; the run
    await expect(page).to_have_title(f"{FLOW} · Flows · Flow Operator")
    await expect(row.locator("td.last-run")).to_contain_text(name, timeout=15_000)
    await expect(row.locator("td.last-run .badge")).to_have_text("Completed", timeout=15_000)
    detail = page.locator("#flow-detail")
    await expect(detail.locator(f'tr[data-run="{NS}/{name}"] .badge')).to_have_text("Completed")
    nightly = detail.locator('tr[data-schedule="nightly"]')
    assert (
        await nightly.locator("time").first.get_attribute("datetime")
        == (status["schedules"][0]["nextScheduleTime"])
    )
