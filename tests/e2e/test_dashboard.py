"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against the real
aiohttp app, fed by the in-memory view and flow-run backend of the unit tests.

Needs /usr/bin/chromium (tests/e2e/browser_deps.sh installs it); skipped without it, except
in CI, where a missing browser is a failure. FLOW_SCREENSHOTS=1 writes the two pages'
screenshots to docs/ (docs/dashboard-workflows.png, docs/dashboard-runs.png).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from flow_operator.api.server import make_app
from tests.unit.api_support import MemoryFlowRuns, Secrets, demo_view, make_api

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
TOKEN = "dashboard-token"
DOCS = Path(__file__).parents[2] / "docs"

pytestmark = pytest.mark.e2e


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("FLOW_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, MemoryFlowRuns]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", token=TOKEN)
    backend = MemoryFlowRuns()
    backend.logs_text["score"] = "".join(
        f"2024-02-12T10:09:{31 + i:02d}Z epoch {i + 1}/8 loss={0.9 / (i + 1):.3f}\n"
        for i in range(8)
    )
    srv = TestServer(make_app(make_api(demo_view(), secrets, flowruns=backend)), host="127.0.0.1")
    await srv.start_server()
    yield str(srv.make_url("/")), backend
    await srv.close()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: run tests/e2e/browser_deps.sh")
        pytest.skip(f"{CHROMIUM} missing (tests/e2e/browser_deps.sh installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1500, "height": 950})
        pg = await context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield pg
        await browser.close()
        # a 401 on purpose shows up as a console error; anything else is a bug
        assert [e for e in errors if "401" not in e] == []


async def sign_in(page: Any, base: str, token: str = TOKEN) -> None:
    await page.goto(base)
    await page.wait_for_selector("#login-form", state="visible")
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")


async def test_workflows_page(page: Any, server: tuple[str, MemoryFlowRuns], shots: Path) -> None:
    base, _ = server
    await sign_in(page, base, "wrong")
    await page.wait_for_selector("#login-error:not([hidden])")
    await page.fill("#token", TOKEN)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("article.wf")
    cards = page.locator("article.wf")
    assert await cards.count() == 6
    colors = {
        await c.get_attribute("data-id"): (await c.get_attribute("class") or "").split()[1]
        for c in await cards.all()
    }
    assert colors == {
        "live.live-scoring": "GREEN",
        "live.fraud-check": "ORANGE",
        "live.recommender": "ORANGE",
        "batch.churn-analysis": "GREEN",
        "batch.doc-indexing": "ORANGE",
        "batch.legacy-export": "GREEN",
    }
    recommender = page.locator('article[data-id="live.recommender"]')
    assert "Unschedulable" in await recommender.inner_text()
    assert "0/2 nodes are available" in await recommender.inner_text()
    await page.fill("#wf-filter", "batch")
    await expect(page.locator("article.wf")).to_have_count(3)
    await page.fill("#wf-filter", "")
    await expect(page.locator("article.wf")).to_have_count(6)
    await page.screenshot(path=str(shots / "dashboard-workflows.png"), full_page=True)


async def test_flow_run_status_page(
    page: Any, server: tuple[str, MemoryFlowRuns], shots: Path
) -> None:
    base, backend = server
    await sign_in(page, base + "#/runs")
    rows = page.locator("tr.run")
    await page.wait_for_selector("tr.run")
    assert await rows.count() == 4
    headers = await page.locator("#runs thead th").all_inner_texts()
    assert headers[1:] == ["Flow Name", "Version", "Level", "Run Type", "Configuration",
                           "Flow Type", "Start Time", "End Time", "Total Duration", "Status",
                           "Message", "Action"]  # fmt: skip

    # the search box: name, configuration, run type or status
    await page.fill("#run-search", "scheduled")
    await expect(page.locator("tr.run")).to_have_count(2)
    await page.fill("#run-search", "emea")
    await expect(page.locator("tr.run")).to_have_count(1)
    await page.fill("#run-search", "")
    await expect(page.locator("tr.run")).to_have_count(4)

    # a run expands into its tasks; a task's log opens
    run = page.locator('tr.run[data-run="analytics/sales-forecast-x2p9"]')
    await run.locator("button.expand").click()
    await page.wait_for_selector("tr.task[data-task=score]")
    tasks = [await t.get_attribute("data-task") for t in await page.locator("tr.task").all()]
    assert tasks == ["load", "features", "score"]
    await page.locator("tr.task[data-task=score] button.logs").click()
    await expect(page.locator("#logs-body")).to_contain_text("epoch 8/8")
    assert "sales-forecast-x2p9 · score" in await page.inner_text("#logs-title")
    await page.screenshot(path=str(shots / "dashboard-runs.png"), full_page=False)
    await page.click("#logs-close")
    assert await page.locator("#logs").is_hidden()

    # cancel (after a confirmation) and rerun
    page.on("dialog", lambda d: d.accept())
    queued = page.locator('tr.run[data-run="ml/nightly-etl-q1w2"]')
    assert await queued.locator("button.rerun").is_disabled()
    await queued.locator("button.cancel").click()
    await expect(queued.locator(".badge")).to_have_text("Cancelled")
    assert ("cancel", "ml", "nightly-etl-q1w2") in backend.actions
    failed = page.locator('tr.run[data-run="ml/nlp-tagging-k8d1"]')
    await failed.locator("button.rerun").click()
    await expect(page.locator("tr.run")).to_have_count(5)
    assert ("rerun", "ml", "nlp-tagging-k8d1") in backend.actions
