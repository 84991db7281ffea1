"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against the
operator on the local cluster: the examples (examples/) applied, plus a Workflow whose
pods never start, a run that never ends and one that fails; the page reads the
operator's own API, cancel goes through the operator, Logs opens a real pod's log.

Needs /usr/bin/chromium (tests/e2e/browser_deps.sh installs it); skipped without it, except
in CI, where a missing browser is a failure. FLOW_SCREENSHOTS=1 writes the two pages'
screenshots to docs/ (docs/dashboard-workflows.png, docs/dashboard-runs.png).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from tests.e2e.conftest import ROOT, ClusterHandle, OperatorProcess, wait_for

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
WIDTH = 1500
TOKEN = f"dashboard-{secrets.token_hex(8)}"
DOCS = ROOT / "docs"
# One namespace for the module, the only one its operator watches: the pages show what
# this module applied, whatever other modules left in the cluster.
NS = f"demo-{secrets.token_hex(3)}"
OPERATOR_ARGS = ["--namespace", NS, "--api-token-secret", f"{NS}/flow-operator-api"]
EXAMPLES = ["workflow-async.yaml", "workflow-sync.yaml", "flowrun-dag.yaml"]
FOREVER = "kwok.flowops.test/crashloop"  # a pod that runs and never completes
FAILS = "kwok.flowops.test/fail"  # exits 1
CREATING = "kwok.flowops.test/creating"  # ContainerCreating for ever

pytestmark = pytest.mark.e2e


def _extras() -> list[dict[str, Any]]:
    def run(name: str, task: str, image: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "flowops.io/v1alpha1", "kind": "FlowRun",
                "metadata": {"name": name},
                "spec": {"flowName": name, "version": "2", "runType": "Scheduled",
                         "configuration": {"name": "warehouse"}, "flowType": "standalone",
                         "level": "platform",
                         "tasks": [{"name": task, "version": "1.0", "image": image}], **spec}}  # fmt: skip

    token = base64.b64encode(TOKEN.encode()).decode()
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flow-operator-api"},
         "data": {"token": token}},
        {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow",
         "metadata": {"name": "fraud-check"},
         "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC",
                  "services": [{"id": "detector", "image": CREATING, "replicas": 2}]}},
        run("nightly-etl", "copy", FOREVER),
        run("nlp-tagging", "tokenize", FAILS),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def demo(cluster: ClusterHandle) -> Iterator[str]:
    """The namespace NS with the examples and the extras applied, each in its state."""
    cluster.kubectl("create", "namespace", NS)
    wait_for(f"ServiceAccount default in {NS}",
             lambda: cluster.kubectl("-n", NS, "get", "sa", "default", check=False).returncode == 0,
             30)  # fmt: skip
    for name in EXAMPLES:
        cluster.kubectl("-n", NS, "apply", "-f", str(ROOT / "examples" / name))
    cluster.kubectl("-n", NS, "apply", "-f", "-", input=yaml.safe_dump_all(_extras()))
    yield NS
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def status_of(cluster: ClusterHandle, kind: str, name: str) -> dict[str, Any]:
    return cluster.get_json("-n", NS, kind, name).get("status") or {}


@pytest.fixture(scope="module")
def settled(demo: str, cluster: ClusterHandle, operator: OperatorProcess) -> OperatorProcess:
    """The operator, once every object of the demo is where the tests expect it."""
    wanted = {
        ("workflow", "churn-analysis"): ("actualStatus", "GREEN"),
        ("workflow", "live-scoring"): ("actualStatus", "GREEN"),
        ("workflow", "fraud-check"): ("actualStatus", "ORANGE"),
        ("flowrun", "churn-weekly-001"): ("phase", "Completed"),
        ("flowrun", "nlp-tagging"): ("phase", "Failed"),
        ("flowrun", "nightly-etl"): ("phase", "Deployed"),
    }

    def pending() -> list[str]:
        return [f"{kind}/{name}" for (kind, name), (field, value) in wanted.items()
                if status_of(cluster, kind, name).get(field) != value]  # fmt: skip

    wait_for("the demo in its states", lambda: not pending() or None, 90)
    return operator


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("FLOW_SCREENSHOTS") == "1" else tmp_path


@contextlib.asynccontextmanager
async def browser_page(
    allowed: tuple[str, ...] = ("401",), timezone: str | None = None
) -> AsyncIterator[Any]:
    """A Chromium page at WIDTH; on leaving, no page error or console error but those
    naming one of `allowed` (a 401 asked for on purpose shows up as one)."""
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: run tests/e2e/browser_deps.sh")
        pytest.skip(f"{CHROMIUM} missing (tests/e2e/browser_deps.sh installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        options: dict[str, Any] = {"viewport": {"width": WIDTH, "height": 950}}
        if timezone:
            options["timezone_id"] = timezone
        context = await browser.new_context(**options)
        pg = await context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield pg
        await browser.close()
        assert [e for e in errors if not any(a in e for a in allowed)] == []


def shots_dir(tmp_path: Path) -> Path:
    """Where a test's screenshot goes: docs/images with FLOW_SCREENSHOTS=1, else tmp_path."""
    if os.environ.get("FLOW_SCREENSHOTS") == "1":
        out = DOCS / "images"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with browser_page() as pg:
        yield pg


async def sign_in(page: Any, base: str, token: str = TOKEN) -> None:
    await page.goto(base)
    await page.wait_for_selector("#login-form", state="visible")
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")


KUBECTL_AGE = re.compile(r"^(\d+[smhdy]){1,2}$")
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)$")


async def test_workflows_page(
    page: Any, settled: OperatorProcess, cluster: ClusterHandle, shots: Path
) -> None:
    base = settled.url("/")
    await sign_in(page, base, "wrong")
    await page.wait_for_selector("#login-error:not([hidden])")
    await page.fill("#token", TOKEN)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("article.wf")
    cards = page.locator("article.wf")
    await expect(cards).to_have_count(3)
    colors = {
        await c.get_attribute("data-id"): (await c.get_attribute("class") or "").split()[1]
        for c in await cards.all()
    }
    assert colors == {
        f"{NS}.churn-analysis": "GREEN",
        f"{NS}.live-scoring": "GREEN",
        f"{NS}.fraud-check": "ORANGE",
    }
    fraud = page.locator(f'article[data-id="{NS}.fraud-check"]')
    assert "ContainerCreating" in await fraud.inner_text()
    # each pod's age as kubectl shows it; the API's exact Go duration in its title
    ages = page.locator("td.age")
    replicas = sum(len(s.get("replicasDetail", [])) for w in ("churn-analysis", "live-scoring",
                   "fraud-check") for s in status_of(cluster, "workflow", w)["details"]["services"])  # fmt: skip
    assert replicas == 2 + 1 + 3 + 2 and await ages.count() == replicas  # services' pods
    for age in await ages.all():
        text, title = await age.inner_text(), await age.get_attribute("title") or ""
        assert KUBECTL_AGE.match(text), text
        assert GO_DURATION.match(title), title
    await page.fill("#wf-filter", "live")
    await expect(page.locator("article.wf")).to_have_count(1)
    await page.fill("#wf-filter", "")
    await expect(page.locator("article.wf")).to_have_count(3)
    await page.screenshot(path=str(shots / "dashboard-workflows.png"), full_page=True)


async def fits_the_window(page: Any) -> None:
    """The run table fits a WIDTH window: the Action column and every button in it are
    on screen, the box around the table has nothing to scroll."""
    header = await page.locator("#runs > thead > tr > th").last.bounding_box()
    assert await page.locator("#runs > thead > tr > th").last.inner_text() == "Action"
    assert header["x"] >= 0 and header["x"] + header["width"] <= WIDTH, header
    # every button measured in one step in the page: a live update redrawing the table
    # between two measurements cannot leave one of them without a box
    boxes = await page.eval_on_selector_all(
        "tr.run td.actions button",
        """bs => bs.map(b => { const r = b.getBoundingClientRect();
                const c = b.closest('td').getBoundingClientRect();
                return [r.left, r.right, r.width, c.left, c.right]; })""",
    )
    assert boxes, "no buttons in the Action column"
    for left, right, width, cell_left, cell_right in boxes:
        assert width > 0 and right <= WIDTH, (left, right)
        assert abs(cell_left - header["x"]) < 1  # the cell is under its header
        assert cell_left <= left and right <= cell_right + 0.5, (left, right, cell_left, cell_right)
    scroll, client = await page.eval_on_selector(
        ".table-box", "b => [b.scrollWidth, b.clientWidth]"
    )
    assert scroll <= client, (scroll, client)
    # the short columns are not cut (only the message may be, whole in its tooltip)
    cut = await page.eval_on_selector_all(
        "tr.run > td:not(.message)",
        "cells => cells.filter(c => c.scrollWidth > c.clientWidth).map(c => c.className + ': ' + c.textContent)",
    )
    assert cut == [], cut


async def test_flow_run_status_page(
    page: Any, settled: OperatorProcess, cluster: ClusterHandle, shots: Path
) -> None:
    await sign_in(page, settled.url("/#/runs"))
    rows = page.locator("tr.run")
    await expect(rows).to_have_count(3)
    headers = await page.locator("#runs > thead > tr > th").all_inner_texts()
    assert headers[1:] == ["Flow Name", "Version", "Level", "Run Type", "Configuration",
                           "Flow Type", "Start Time", "End Time", "Total Duration", "Status",
                           "Message", "Action"]  # fmt: skip
    await fits_the_window(page)
    for duration in await page.locator("tr.run td.duration").all():
        text = await duration.inner_text()
        assert text == "" or KUBECTL_AGE.match(text), text

    # the search box: name, configuration, run type or status
    await page.fill("#run-search", "failed")
    await expect(rows).to_have_count(1)
    await page.fill("#run-search", "churn-prod")
    await expect(rows).to_have_count(1)
    await page.fill("#run-search", "")
    await expect(rows).to_have_count(3)

    # a run expands into its tasks, in the operator's own states; a task's log is its pod's
    run = page.locator(f'tr.run[data-run="{NS}/churn-weekly-001"]')
    await expect(run.locator(".badge")).to_have_text("Completed")
    await run.locator("button.expand").click()
    await page.wait_for_selector("tr.task[data-task=publish]")
    tasks = [await t.get_attribute("data-task") for t in await page.locator("tr.task").all()]
    assert tasks == ["extract", "train", "publish"]
    assert await page.locator("tr.task .badge").all_inner_texts() == ["Succeeded"] * 3
    lines = {t["name"]: t for t in status_of(cluster, "flowrun", "churn-weekly-001")["tasks"]}
    pod = lines["train"]["podName"]
    await page.locator("tr.task[data-task=train] button.logs").click()
    await expect(page.locator("#logs-body")).to_contain_text(f"pod {NS}/{pod}: attempt 1")
    body = await page.inner_text("#logs-body")
    assert lines["extract"]["podName"] not in body and lines["publish"]["podName"] not in body
    assert "churn-weekly-001 · train" in await page.inner_text("#logs-title")
    await fits_the_window(page)
    await page.screenshot(path=str(shots / "dashboard-runs.png"), full_page=False)
    await page.click("#logs-close")
    assert await page.locator("#logs").is_hidden()

    # cancel (after a confirmation): the operator answers at once with the run as it
    # stands; the row turns Cancelled when the operator has ended it
    page.on("dialog", lambda d: d.accept())
    etl = page.locator(f'tr.run[data-run="{NS}/nightly-etl"]')
    assert await etl.locator("button.rerun").is_disabled()
    async with page.expect_response(lambda r: r.url.endswith("/cancel")) as answer:
        await etl.locator("button.cancel").click()
    response = await (await answer.value).json()
    assert (response["status"], response["message"]) == ("Deployed", "cancel requested")
    await expect(etl.locator("button.cancel")).to_be_disabled()
    await expect(etl.locator(".badge")).to_have_text("Cancelled", timeout=30_000)
    ended = status_of(cluster, "flowrun", "nightly-etl")
    assert ended["phase"] == "Cancelled" and ended["tasks"][0]["status"] == "Cancelled"
    await expect(etl.locator("td.message")).to_have_text(ended["message"])
    assert await etl.locator("button.rerun").is_enabled()

    # rerun: a new run of the failed one, started by hand
    failed = page.locator(f'tr.run[data-run="{NS}/nlp-tagging"]')
    await failed.locator("button.rerun").click()
    await expect(rows).to_have_count(4)
    created = [await r.get_attribute("data-run") for r in await rows.all()]
    new = [c for c in created if c and c.startswith(f"{NS}/nlp-tagging-")]
    assert len(new) == 1, created
    rerun = page.locator(f'tr.run[data-run="{new[0]}"]')
    await expect(rerun.locator("td.runType")).to_have_text("Manual")
    spec = cluster.get_json("-n", NS, "flowrun", new[0].split("/")[1])
    assert spec["metadata"]["annotations"]["flowops.io/rerun-of"] == "nlp-tagging"
