"""The Workflow page and the namespace selector in a real browser (Debian's chromium,
Playwright) against the operator on the local cluster (issue 20's Workflow page, issue
18's header):

- the page of a Workflow (linked from its card, and deep-linked) shows each service's
  rollout counts as its Deployment has them, its pods as kubectl lists them, and the
  runs that use it, each linking to its run page;
- made unschedulable and then fixed, the page follows live (the pod's Unschedulable and
  the scheduler's message, the color) and its color strip shows the ORANGE period, with
  the time in ORANGE in words;
- a Workflow whose pods Pod Security refuses shows why on its card, and the namespace
  selector scopes the cards and the run table, in the URL;
- signed in as alice (edit in ns-a only) to an operator in kubernetes auth mode, the
  selector offers ns-a alone.

FLOW_SCREENSHOTS=1 writes docs/images/dashboard-workflow.png (else the test's tmp dir).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from tests.e2e.conftest import (
    _OPERATORS,
    OK,
    ROOT,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    wait_for,
)
from tests.e2e.test_dashboard import page, shots_dir, sign_in  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.e2e
SUFFIX = secrets.token_hex(3)
TOKEN = f"wf-page-{secrets.token_hex(8)}"
NS = f"wfpage-{SUFFIX}"
NS_PSS = f"wfpss-{SUFFIX}"  # enforces Pod Security restricted; the operator adds nothing
OPERATOR_ARGS = ["--namespace", NS, "--namespace", NS_PSS,
                 "--api-token-secret", f"{NS}/flow-operator-api"]  # fmt: skip
FOREVER = "kwok.flowops.test/crashloop"  # a task pod that runs and never completes
KUBECTL_AGE = re.compile(r"^(\d+[smhdy]){1,2}$")
WEB = {"id": "web", "image": OK, "replicas": 2}
HUGE = {"id": "huge", "image": OK, "replicas": 1,
        "resources": {"requests": {"memory": "1000Gi"}}}  # no node has it  # fmt: skip


def workflow(name: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC",
                     "services": services}}  # fmt: skip


def namespace(cluster: ClusterHandle, name: str, *labels: str) -> None:
    cluster.kubectl("create", "namespace", name)
    if labels:
        cluster.kubectl("label", "namespace", name, *labels)
    wait_for(f"ServiceAccount default in {name}",
             lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
             30)  # fmt: skip


def apply(cluster: ClusterHandle, ns: str, *objects: dict[str, Any]) -> None:
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all(objects))


def color(cluster: ClusterHandle, ns: str, name: str) -> str | None:
    return (cluster.get_json("-n", ns, "workflow", name).get("status") or {}).get("actualStatus")


@pytest.fixture(scope="module")
def demo(cluster: ClusterHandle, operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """NS: the Workflow shop (web, 2 replicas), a run that uses it and one that does not;
    NS_PSS (restricted): the Workflow bare, whose pods are refused."""
    namespace(cluster, NS)
    namespace(cluster, NS_PSS, "pod-security.kubernetes.io/enforce=restricted")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flow-operator-api"},
              "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}  # fmt: skip
    apply(cluster, NS, secret, workflow("shop", [WEB]),
          flowrun("uses-shop", [task("spin", FOREVER)], workflowRef={"name": "shop"}),
          flowrun("no-shop", [task("spin", FOREVER)]))  # fmt: skip
    apply(cluster, NS_PSS, workflow("bare", [{"id": "api", "image": OK, "replicas": 1}]))
    wait_for("shop GREEN", lambda: color(cluster, NS, "shop") == "GREEN", 90)
    wait_for("bare's service message", lambda: service(cluster, NS_PSS, "bare", "api").get(
        "message"), 60)  # fmt: skip
    yield operator
    for ns in (NS, NS_PSS):
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def service(cluster: ClusterHandle, ns: str, wf: str, sid: str) -> dict[str, Any]:
    status = cluster.get_json("-n", ns, "workflow", wf).get("status") or {}
    for svc in (status.get("details") or {}).get("services") or []:
        if svc.get("id") == sid:
            return dict(svc)
    return {}


def pod_names(cluster: ClusterHandle, ns: str, wf: str, component: str) -> set[str]:
    pods = cluster.get_json("-n", ns, "pods", "-l",
                            f"flowops.io/workflow={wf},flowops.io/component={component}")  # fmt: skip
    return {p["metadata"]["name"] for p in pods.get("items", [])
            if not p["metadata"].get("deletionTimestamp")}  # fmt: skip


def colors_api(operator: OperatorProcess, ns: str, name: str) -> dict[str, Any]:
    request = urllib.request.Request(operator.url(f"/api/v1/workflows/{ns}/{name}/colors"),
                                     headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


async def cells(row: Any, *classes: str) -> list[str]:
    return [await row.locator(f"td.{c}").inner_text() for c in classes]


async def test_the_page_shows_rollout_pods_and_the_runs_using_it(
    page: Any,  # noqa: F811 (test_dashboard's browser fixture)
    demo: OperatorProcess,
    cluster: ClusterHandle,
) -> None:
    await sign_in(page, demo.url("/#/workflows"), TOKEN)
    card = page.locator(f'article[data-id="{NS}.shop"]')
    await card.locator("a.wf-link").click()
    await expect(page).to_have_url(re.compile(f"#/workflows/{NS}/shop$"))
    await expect(page.locator("#page-workflow")).to_be_visible()
    await expect(page).to_have_title("shop (GREEN) · Workflow · Flow Operator")

    # the rollout: the Deployment's own counts
    web = page.locator('#wf-rollout tr[data-service="web"]')
    await expect(web.locator("td.available")).to_have_text("2")
    (dep,) = cluster.get_json("-n", NS, "deployments", "-l",
                              "flowops.io/workflow=shop,flowops.io/component=web")["items"]  # fmt: skip
    counts = [str(dep["spec"]["replicas"])] + [
        str(dep["status"].get(k, 0))
        for k in ("updatedReplicas", "readyReplicas", "availableReplicas")
    ]
    assert counts == ["2", "2", "2", "2"]
    assert await cells(web, "desired", "updated", "ready", "available") == counts
    assert "2/2 available" in await web.locator("td.progress").inner_text()

    # its pods, as kubectl names them, Running, aged kubectl-style
    pods = page.locator('#wf-pods tr[data-service="web"]')
    await expect(pods).to_have_count(2)
    assert {await p.get_attribute("data-pod") for p in await pods.all()} == pod_names(
        cluster, NS, "shop", "web")  # fmt: skip
    for pod in await pods.all():
        status, ready, age = await cells(pod, "status", "ready", "age")
        assert (status, ready) == ("Running", "1/1") and KUBECTL_AGE.match(age), (
            status,
            ready,
            age,
        )

    # the runs that use it, and only those; each links to its run page
    runs = page.locator("#wf-runs tbody tr[data-run]")
    await expect(runs).to_have_count(1)
    assert await runs.first.get_attribute("data-run") == f"{NS}/uses-shop"
    await runs.first.locator("a.run-link").click()
    await expect(page).to_have_url(re.compile(f"#/runs/{NS}/uses-shop$"))
    await expect(page.locator("#run-title")).to_have_text("uses-shop")

    # a deep link shows the same page (the token is the tab's)
    await page.goto(demo.url(f"/#/workflows/{NS}/shop"))
    await expect(page.locator('#wf-pods tr[data-service="web"]')).to_have_count(2)
    await expect(page.locator("#wf-title")).to_have_text("shop")
    # at 1920 and 1280 px and in a narrow window, nothing sticks out of the page (a wide
    # table scrolls in its own panel)
    for width in (1920, 1280, 700):
        await page.set_viewport_size({"width": width, "height": 900})
        wide = await page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, (width, wide)
        await expect(page.locator('#wf-pods tr[data-service="web"]').first).to_be_visible()


async def test_the_strip_shows_the_orange_period_of_an_unschedulable_service(
    page: Any,  # noqa: F811
    demo: OperatorProcess,
    cluster: ClusterHandle,
    tmp_path: Path,
) -> None:
    await sign_in(page, demo.url(f"/#/workflows/{NS}/shop"), TOKEN)
    await expect(page.locator("#wf-color .badge")).to_have_text("GREEN")
    await expect(page.locator("#wf-live")).to_have_text("live")
    try:
        apply(cluster, NS, workflow("shop", [WEB, HUGE]))
        # live, without a reload: the color, the pending pod and the scheduler's words
        await expect(page.locator("#wf-color .badge")).to_have_text("ORANGE", timeout=60_000)
        huge = page.locator('#wf-pods tr[data-service="huge"]')
        await expect(huge.locator("td.status")).to_have_text("Unschedulable", timeout=30_000)
        await expect(huge.locator("td.message")).to_contain_text("Insufficient memory")
        (pod,) = pod_names(cluster, NS, "shop", "huge")
        assert await huge.get_attribute("data-pod") == pod
        held = cluster.get_json("-n", NS, "pod", pod)
        (scheduled,) = [c for c in held["status"]["conditions"] if c["type"] == "PodScheduled"]
        await expect(huge.locator("td.message")).to_have_text(scheduled["message"])
        rollout = page.locator('#wf-rollout tr[data-service="huge"]')
        await expect(rollout.locator("td.available")).to_have_text("0")
        # the strip ends in the ORANGE period (one more may come before: shop's first rollout)
        await expect(page.locator('.strip[data-window="24h"] .seg').last).to_have_attribute(
            "data-color", "ORANGE", timeout=15_000
        )
        await page.screenshot(path=str(shots_dir(tmp_path) / "dashboard-workflow.png"),
                              full_page=True)  # fmt: skip
    finally:
        apply(cluster, NS, workflow("shop", [WEB]))
    await expect(page.locator("#wf-color .badge")).to_have_text("GREEN", timeout=60_000)
    await expect(page.locator('#wf-pods tr[data-service="huge"]')).to_have_count(0, timeout=60_000)
    # the strip: GREEN, an ORANGE period, GREEN again, and the time in each in words
    strip = page.locator('.strip[data-window="24h"] .seg')
    await expect(strip.last).to_have_attribute("data-color", "GREEN", timeout=15_000)
    colors = [await s.get_attribute("data-color") for s in await strip.all()]
    assert colors[-3:] == ["GREEN", "ORANGE", "GREEN"], colors
    orange = page.locator('.strip[data-window="24h"] .seg.ORANGE').last
    assert re.search(r"^ORANGE from .* \(\d+[smh]", await orange.get_attribute("title") or "")
    spent = page.locator('.spent[data-window="24h"]')
    await expect(spent).to_contain_text("ORANGE ")
    text = await spent.inner_text()
    assert re.search(r"ORANGE \d+[sm]\S* \(\d+\.\d%\)", text) and "GREEN " in text, text
    # the time in ORANGE is the API's (the period is closed: its seconds hold), in kubectl's words
    seconds = colors_api(demo, NS, "shop")["seconds"]["ORANGE"]
    assert seconds > 0
    assert f"ORANGE {await page.evaluate(f'humanSeconds({seconds})')} (" in text, (seconds, text)
    await expect(page.locator('.spent[data-window="7d"]')).to_contain_text("ORANGE ")


async def test_a_refused_workflow_says_why_and_the_selector_scopes_the_lists(
    page: Any,  # noqa: F811
    demo: OperatorProcess,
    cluster: ClusterHandle,
) -> None:
    await sign_in(page, demo.url("/#/workflows"), TOKEN)
    bare = page.locator(f'article[data-id="{NS_PSS}.bare"]')
    message = service(cluster, NS_PSS, "bare", "api")["message"]
    assert message.startswith("pods refused by Pod Security: ")
    await expect(bare.locator("tr.component td.detail")).to_contain_text(message)
    held = color(cluster, NS_PSS, "bare")
    assert held in ("RED", "ORANGE"), held
    await expect(bare.locator("h2 .badge")).to_have_text(held)

    # the selector: the token caller may list everything, so "All" and each namespace
    select = page.locator("#ns-select")
    await expect(select).to_be_visible()
    offered = await select.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert offered[0] == "" and {NS, NS_PSS} <= set(offered), offered
    await expect(page.locator("article.wf")).to_have_count(2)
    await select.select_option(NS_PSS)
    await expect(page).to_have_url(re.compile(f"#/workflows\\?ns={NS_PSS}$"))
    await expect(page.locator("article.wf")).to_have_count(1)
    await expect(bare).to_be_visible()
    # the run table too, and the URL keeps it: a reload shows the same
    await page.click("#nav-runs")
    await expect(page).to_have_url(re.compile(f"#/runs\\?ns={NS_PSS}$"))
    await expect(page.locator("#runs-empty")).to_be_visible()
    await select.select_option(NS)
    await expect(page.locator("tr.run")).to_have_count(2)
    await page.reload()
    await expect(page.locator("tr.run")).to_have_count(2)
    await expect(select).to_have_value(NS)
    # the Workflow page of the refused one says it too
    await page.goto(demo.url(f"/#/workflows/{NS_PSS}/bare"))
    api = page.locator('#wf-rollout tr[data-service="api"]')
    await expect(api.locator("td.message")).to_have_text(message)
    assert await cells(api, "desired", "ready", "available") == ["1", "0", "0"]
    await expect(page.locator("#wf-pods tbody")).to_have_text("No pods.")


# ---------- kubernetes auth mode: alice sees ns-a only ----------

NS_A, NS_B = f"wf-ns-a-{SUFFIX}", f"wf-ns-b-{SUFFIX}"


@pytest.fixture
def alice(cluster: ClusterHandle, tmp_path: Path) -> Iterator[tuple[OperatorProcess, str]]:
    """An operator of its own in kubernetes auth mode over NS_A and NS_B (the module's
    watches neither), a Workflow in each, and alice's token: edit in NS_A only."""
    cluster.kubectl("apply", "-f", str(ROOT / "cluster" / "flow-roles.yaml"))
    for ns in (NS_A, NS_B):
        namespace(cluster, ns)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "alice"}}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "alice-edit"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "edit"},
               "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": NS_A}]}  # fmt: skip
    apply(
        cluster, NS_A, sa, binding, workflow("a-svc", [{"id": "web", "image": OK, "replicas": 1}])
    )
    apply(cluster, NS_B, workflow("b-svc", [{"id": "web", "image": OK, "replicas": 1}]))
    proc = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log",
                           ["--namespace", NS_A, "--namespace", NS_B, "--auth-mode", "kubernetes"])  # fmt: skip
    _OPERATORS.append(proc)
    try:
        proc.start()
        token = cluster.kubectl("-n", NS_A, "create", "token", "alice", "--duration=1h").stdout
        yield proc, token.strip()
    finally:
        proc.stop()
        _OPERATORS.remove(proc)
        for ns in (NS_A, NS_B):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


async def test_alice_is_offered_ns_a_alone(
    page: Any,  # noqa: F811
    alice: tuple[OperatorProcess, str],
) -> None:
    operator, token = alice
    await sign_in(page, operator.url("/#/workflows"), token)
    await expect(page.locator("#whoami")).to_have_text("signed in as alice")
    select = page.locator("#ns-select")
    await expect(select).to_be_visible()
    assert await select.locator("option").evaluate_all("os => os.map(o => o.value)") == [NS_A]
    await expect(page.locator("article.wf")).to_have_count(1)
    assert await page.locator("article.wf").get_attribute("data-id") == f"{NS_A}.a-svc"
    # a link naming ns-b (from someone who sees it) falls back to hers, in the URL too
    await page.goto(operator.url(f"/#/workflows?ns={NS_B}"))
    await expect(page).to_have_url(re.compile(f"#/workflows\\?ns={NS_A}$"))
    await expect(select).to_have_value(NS_A)
    await expect(page.locator("article.wf")).to_have_count(1)
    # her Workflow's page: edit may list pods
    await page.goto(operator.url(f"/#/workflows/{NS_A}/a-svc"))
    await expect(page.locator('#wf-pods tr[data-service="web"]')).to_have_count(1, timeout=60_000)
