"""The chart's PrometheusRule and Grafana dashboard: rendered by helm, every metric their
PromQL reads is one the operator's registry exports (or a rule of the chart records), and
the objects have the shape the Prometheus Operator and Grafana's sidecar expect; with
promtool at hand ($PROMTOOL or the PATH), `promtool check rules` and `promtool test rules`
on the rendered rules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_operator import metrics
from tests.unit.test_chart import CHART, KUBE_VERSION, helm, helm_template

Body = dict[str, Any]
HERE = Path(__file__).parent
PROMTOOL_TESTS = HERE / "promtool" / "flow-operator-rules.test.yaml"
ON = ["--set", "prometheusRule.enabled=true", "--set", "grafana.dashboard.enabled=true"]
PROMETHEUS_OWN = {"up"}  # series Prometheus itself writes for every target
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+[smhdwy])+$")

# --- PromQL metric names: a tokenizer, not a parser ------------------------------------------------

STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")  # {a="b", c=~"d"}: label names, never metric names
RANGES = re.compile(r"\[[^\[\]]*\]")  # [5m], [1h:1m], [$__rate_interval]
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")  # 0.95, 1e3, 5m (after offset)
GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
IDENTIFIER = re.compile(r"([A-Za-z_:][\w:]*)(\s*\()?")
KEYWORDS = {"and", "or", "unless", "atan2", "bool", "offset", "group_left", "group_right",
            "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression selects: what remains
    once strings, label matchers, ranges, grouping labels and numbers are cut out, less
    function names (followed by a parenthesis) and keywords."""
    if "__name__" in expr:
        raise AssertionError(f"{expr!r}: select by a plain name, not __name__ (checked here)")
    text = STRING.sub(" ", expr)
    for cut in (MATCHERS, RANGES, GROUPING, GRAFANA_VARIABLE, NUMBER):
        text = cut.sub(" ", text)
    return {m[1] for m in IDENTIFIER.finditer(text) if not m[2] and m[1] not in KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('rate(flowops_x_total{phase=~"Failed|Crashed", a="{b}"}[5m])', {"flowops_x_total"}),
        ("histogram_quantile(0.95, sum by (le, flow) (rate(a_bucket[$__rate_interval])))",
         {"a_bucket"}),
        ("sum without (pod) (a) / on (queue) group_left (x) b:c:rate5m > 0.1", {"a", "b:c:rate5m"}),
        ("a offset 5m and bool b unless c or d", {"a", "b", "c", "d"}),
        ('label_replace(up{job="x"}, "dst", "$1", "src", "(.*)") == 0', {"up"}),
        ("max_over_time(flowops_workqueue_depth[10m:1m]) > 1e3", {"flowops_workqueue_depth"}),
    ],
)  # fmt: skip
def test_metric_names_are_found_and_only_them(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_selecting_by_name_label_is_refused() -> None:
    with pytest.raises(AssertionError, match="__name__"):
        metric_names('{__name__=~"flowops_.*"}')


# --- what the operator exports -------------------------------------------------------------------

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}


@cache
def exported() -> frozenset[str]:
    """Every series name the operator's registry can expose (families without samples
    yet, e.g. a labelled histogram nothing observed, included)."""
    return frozenset(
        family.name + suffix
        for family in metrics.REGISTRY.collect()
        for suffix in SUFFIXES[family.type]
    )


def test_exported_names_follow_the_scrape() -> None:
    metrics.flowrun_transition("monitoring", "Completed")
    scraped = {line.split("{")[0].split(" ")[0] for line in metrics.render().decode().splitlines()
               if line and not line.startswith("#")}  # fmt: skip
    assert "flowops_flowrun_transitions_total" in scraped
    assert scraped <= exported()
    assert "flowops_flowrun_transitions" not in exported()  # a counter is read as _total


# --- the PrometheusRule ----------------------------------------------------------------------------


@cache
def rendered(*args: str) -> tuple[Body, ...]:
    return tuple(d for d in yaml.safe_load_all(helm_template(*ON, *args)) if d)


def rule_object(*args: str) -> Body:
    (obj,) = [d for d in rendered(*args) if d["kind"] == "PrometheusRule"]
    return obj


def rules(*args: str) -> list[Body]:
    return [r for g in rule_object(*args)["spec"]["groups"] for r in g["rules"]]


def test_prometheus_rule_shape() -> None:
    obj = rule_object()
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["metadata"]["namespace"] == "flow-system"
    assert set(obj["spec"]) == {"groups"}
    names = [g["name"] for g in obj["spec"]["groups"]]
    assert names == ["flow-operator.rules", "flow-operator.alerts"]
    alerts = []
    for rule in rules():
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule
        if "record" in rule:
            assert set(rule) == {"record", "expr"}, rule
            assert re.fullmatch(r"flowops:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
        else:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"FlowOps[A-Za-z]+", rule["alert"]), rule["alert"]
            assert DURATION.match(rule.get("for", "0s")), rule
            assert rule["labels"]["severity"] in SEVERITIES, rule
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts)) >= 8


def test_rules_read_only_exported_metrics() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    used = set()
    for rule in rules():
        names = metric_names(rule["expr"])
        unknown = names - exported() - recorded - PROMETHEUS_OWN
        assert not unknown, f"{rule.get('record') or rule['alert']} reads {sorted(unknown)}"
        used |= names
    assert {"flowops_flow_run_duration_seconds_count", "flowops_workflow_color",
            "flowops_history_pending", "flowops_history_write_errors_total"} <= used  # fmt: skip


def test_every_rule_and_alert_is_documented() -> None:
    documented = (HERE.parent.parent / "docs" / "monitoring.md").read_text()
    for rule in rules():
        name = rule.get("record") or rule["alert"]
        assert f"`{name}`" in documented, f"{name}: not in docs/monitoring.md"


def test_rule_values_reach_the_rules() -> None:
    tuned = ["--set", "prometheusRule.workflowNotGreenMinutes=45", "--set",
             "prometheusRule.flowFailureRatio=0.5", "--set", "prometheusRule.historyPending=7",
             "--set", "prometheusRule.alertLabels.team=data", "--set",
             "prometheusRule.labels.release=kube-prometheus-stack"]  # fmt: skip
    by_name = {r["alert"]: r for r in rules(*tuned) if "alert" in r}
    assert by_name["FlowOpsWorkflowNotGreen"]["for"] == "45m"
    assert "45 minutes" in by_name["FlowOpsWorkflowNotGreen"]["annotations"]["summary"]
    assert by_name["FlowOpsFlowFailing"]["expr"].endswith("> 0.5")
    assert by_name["FlowOpsHistoryBehind"]["expr"].endswith("> 7")
    assert all(r["labels"]["team"] == "data" for r in by_name.values())
    assert rule_object(*tuned)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    only_recording = rule_object("--set", "prometheusRule.alerts=false")["spec"]["groups"]
    assert [g["name"] for g in only_recording] == ["flow-operator.rules"]


def test_off_by_default_and_refused_without_metrics() -> None:
    defaults = [d["kind"] for d in yaml.safe_load_all(helm_template()) if d]
    assert "PrometheusRule" not in defaults
    assert not [d for d in yaml.safe_load_all(helm_template()) if d and
                d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]  # fmt: skip
    for on in ("prometheusRule.enabled", "grafana.dashboard.enabled"):
        with pytest.raises(AssertionError, match=f"{on}=true needs metrics.enabled=true"):
            helm_template("--set", f"{on}=true", "--set", "metrics.enabled=false")


def test_helm_lint_and_the_configmap_schema_with_both_on() -> None:
    out = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *ON)
    assert "0 chart(s) failed" in out
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(dashboard_map(), KUBE_VERSION, strict=True)


# --- the Grafana dashboard -------------------------------------------------------------------------


def dashboard_map(*args: str) -> Body:
    (obj,) = [d for d in rendered(*args) if d["kind"] == "ConfigMap"
              and d["metadata"]["name"] == "flow-flow-operator-dashboard"]  # fmt: skip
    return obj


def panels(dashboard: Body) -> Iterator[Body]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


VARIABLE_QUERY = re.compile(r"label_values\((.*),\s*\w+\)|query_result\((.*)\)")


def queries(dashboard: Body) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable (the metric selector
    inside label_values(...) and the expression inside query_result(...))."""
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        if m := VARIABLE_QUERY.fullmatch(q):
            q = m[1] or m[2]
        yield f"${v['name']}", q


def test_dashboard_configmap_for_the_sidecar() -> None:
    obj = dashboard_map()
    assert obj["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(obj["data"]) == {"flow-operator.json"}
    shipped = json.loads((HERE.parent.parent / "charts" / "flow-operator" / "dashboards" /
                          "flow-operator.json").read_text())  # fmt: skip
    assert json.loads(obj["data"]["flow-operator.json"]) == shipped
    moved = dashboard_map("--set", "grafana.dashboard.namespace=monitoring", "--set",
                          "grafana.dashboard.annotations.grafana_folder=Flows")  # fmt: skip
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["annotations"] == {"grafana_folder": "Flows"}


def test_dashboard_panels_read_only_exported_metrics() -> None:
    dashboard = json.loads(dashboard_map()["data"]["flow-operator.json"])
    used = set()
    for where, expr in queries(dashboard):
        names = metric_names(expr)
        assert names, f"{where}: {expr!r} selects no metric"
        unknown = names - exported()
        assert not unknown, f"{where}: {sorted(unknown)} are not exported by the operator"
        used |= names
    # The signals the rules alert on have panels too.
    assert {"flowops_flow_run_duration_seconds_count", "flowops_flow_run_duration_seconds_bucket",
            "flowops_workflow_color", "flowops_history_pending",
            "flowops_history_write_errors_total"} <= used  # fmt: skip


def test_dashboard_shape() -> None:
    dashboard = json.loads(dashboard_map()["data"]["flow-operator.json"])
    assert dashboard["uid"] == "flow-operator" and dashboard["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and p["description"], p["title"]
        for t in p["targets"]:
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var.startswith("__") or var in variables, f"{p['title']}: ${var}"


# --- promtool ------------------------------------------------------------------------------------


def need_promtool() -> str:
    """promtool from $PROMTOOL or the PATH: optional (cluster/build.sh does not build it,
    docs/monitoring.md#prometheus-rules-and-alerts says why), so missing it skips, CI too."""
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (set PROMTOOL or put it on the PATH)")
    return promtool


def promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run([need_promtool(), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)  # fmt: skip
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_promtool_checks_and_tests_the_rendered_rules(tmp_path: Path) -> None:
    need_promtool()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_object()["spec"]))
    (tmp_path / "rules.test.yaml").write_text(PROMTOOL_TESTS.read_text())
    assert "SUCCESS" in promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert "SUCCESS" in promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
