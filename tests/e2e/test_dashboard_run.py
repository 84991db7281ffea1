"""The run page in a real browser (Debian's chromium, Playwright) against the operator on
the local cluster: a 6-task diamond run's graph has its 6 nodes and 6 edges, and the nodes
turn green live, pushed by the stream (the page is opened before the run exists and never
reloaded); the run's Completed shows within 2 s of the cluster's; the timeline has a bar
per task; the log viewer highlights a search, and the URL with the task and the search
opens the same view after a reload. The screenshot is docs/images/dashboard-run.png
(FLOW_SCREENSHOTS=1 writes it there, else to the test's tmp dir).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from tests.e2e.conftest import (
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    token_namespace,
    wait_for,
)
from tests.e2e.test_dashboard import browser_page, shots_dir, sign_in

TOKEN = f"dashboard-run-{secrets.token_hex(8)}"
NS = f"runpage-{secrets.token_hex(3)}"
OPERATOR_ARGS = ["--namespace", NS, "--api-token-secret", f"{NS}/flow-operator-api"]
RUN = "diamond"
# extract -> (clean, enrich) -> join -> (report, publish): a diamond with a fan-out after
EDGES = {
    ("extract", "clean"),
    ("extract", "enrich"),
    ("clean", "join"),
    ("enrich", "join"),
    ("join", "report"),
    ("join", "publish"),
}
TASKS = ["extract", "clean", "enrich", "join", "report", "publish"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(cluster: ClusterHandle) -> Iterator[str]:
    yield from token_namespace(cluster, NS, TOKEN)


def diamond() -> dict[str, Any]:
    needs: dict[str, list[str]] = {}
    for a, b in EDGES:
        needs.setdefault(b, []).append(a)
    tasks = [task(n, **({"dependsOn": sorted(needs[n])} if n in needs else {})) for n in TASKS]
    return flowrun(RUN, tasks, runType="Manual", configuration={"name": "nightly"})


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    """test_dashboard's browser, but the run page opens before its run exists: that one
    404 (and a 401 on purpose) are the only console errors allowed."""
    async with browser_page(allowed=("401", "404")) as pg:
        yield pg


async def test_run_page_graph_goes_green_live(
    page: Any,
    demo: str,
    cluster: ClusterHandle,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    url = operator.url(f"/#/runs/{NS}/{RUN}")
    await sign_in(page, url, TOKEN)
    await expect(page.locator("#run-live")).to_have_text("live")
    assert await page.title() == f"{RUN} · Flow run · Flow Operator"
    await page.evaluate("window.__notReloaded = true")

    # the run is made after the page is open: all it shows comes through the stream
    cluster.kubectl("-n", NS, "apply", "-f", "-", input=yaml.safe_dump(diamond()))
    nodes = page.locator("#run-dag g.node")
    await expect(nodes).to_have_count(6, timeout=30_000)
    names = {await n.get_attribute("data-task") for n in await nodes.all()}
    assert names == set(TASKS)
    edges = {
        (await e.get_attribute("data-from"), await e.get_attribute("data-to"))
        for e in await page.locator("#run-dag path.edge").all()
    }
    assert edges == EDGES
    # every node says its state in words, not by color alone
    for n in await nodes.all():
        state = await n.get_attribute("data-status")
        assert state and state in (await n.locator("text.state").text_content() or "")

    def phase() -> str:
        return str((cluster.get_json("-n", NS, "flowrun", RUN).get("status") or {}).get("phase"))

    wait_for("the run Completed", lambda: phase() == "Completed", 120, every=0.1)
    seen = time.monotonic()
    await expect(page.locator("#run-status .badge")).to_have_text("Completed", timeout=2_000)
    assert time.monotonic() - seen <= 2.5
    for name in TASKS:
        node = page.locator(f'#run-dag g.node[data-task="{name}"]')
        await expect(node).to_have_attribute("data-status", "Succeeded", timeout=2_000)
        assert "Succeeded" in (await node.locator("text.state").text_content() or "")
    assert await page.evaluate("window.__notReloaded === true")
    assert await page.title() == f"{RUN} (Completed) · Flow run · Flow Operator"

    # the timeline: a bar per task, each after the tasks it depends on
    bars = page.locator("#run-timeline .bar")
    await expect(bars).to_have_count(6)
    # read in one go: a late event redraws the timeline
    left = dict(
        await page.eval_on_selector_all(
            "#run-timeline .bar",
            "bars => bars.map(b => [b.dataset.task, b.getBoundingClientRect().left])",
        )
    )
    assert set(left) == set(TASKS)
    for a, b in EDGES:
        assert left[a] <= left[b], (a, b, left)
    history = await page.locator("#run-history tbody tr").all_inner_texts()
    assert any("Completed" in h for h in history), history

    # the log viewer, from the keyboard: Tab to a node, Enter opens its log; search marks
    node = page.locator('#run-dag g.node[data-task="join"]')
    await node.focus()
    await page.keyboard.press("Enter")
    body = page.locator("#run-log-body")
    await expect(body).to_contain_text("attempt 1", timeout=15_000)
    await page.fill("#run-log-search", "attempt")
    await expect(page.locator("#run-log-body mark").first).to_have_text("attempt")
    await expect(page.locator("#run-log-matches")).to_contain_text("match")
    assert "task=join" in page.url and "q=attempt" in page.url
    await page.screenshot(path=str(shots_dir(tmp_path) / "dashboard-run.png"), full_page=True)

    async with page.expect_download() as download:
        await page.click("#run-log-download")
    assert (await download.value).suggested_filename == f"{RUN}-join.log"

    # a deep link: the same run, task and search after a reload
    await page.reload()
    await expect(page.locator("#run-log-title")).to_have_text("Log of join", timeout=15_000)
    await expect(page.locator("#run-log-body mark").first).to_have_text("attempt", timeout=15_000)
    await expect(page.locator("#run-dag g.node")).to_have_count(6)
