"""The Prometheus rules and Grafana dashboard of deploy/: promtool checks the rules and runs their
unit tests, and every metric and label they name is one `shoal serve` exports (a renamed metric
or label fails here), every alert carries a severity, a summary and a `for`, and its runbook
points at documentation that exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shoal.graphs.results import STATUSES, NodeTrace, RunResult
from shoal.policies.escalation import circuit as circuit_module
from shoal.policies.escalation.circuit import CircuitBreaker
from shoal.service.metrics import Metrics
from tests.conftest import REPO

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "shoal-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "shoal-rules.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "shoal-dashboard.json"
# Labels Prometheus adds to every scraped series, and the histogram bucket bound.
TARGET_LABELS = frozenset({"job", "instance"})
SEVERITIES = frozenset({"critical", "warning", "info"})

_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                       "group_right", "bool", "offset", "inf", "nan"})
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


# --- shoal's exposition ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def exposition() -> dict[str, dict[str, set[str]]]:
    """Each sample name of a `shoal serve` scrape -> its label names -> the values seen, with
    every status, escalation outcome, a circuit, a model's tokens and a model version in it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(circuit_module, "_registry", {})  # only this test's breaker
        mp.setattr("shoal.models.tokens._generated", {"planner": 12})
        CircuitBreaker("planner")
        metrics = Metrics(versions=lambda: {"triage": "v1"}, graph="healthcare-cascade")
        nodes = {
            "escalated": NodeTrace(node="triage", agent="classifier", latency_ms=2.0,
                                   escalate=True, escalated=True),
            "pending_escalation": NodeTrace(node="triage", agent="classifier", latency_ms=2.0,
                                            escalate=True, pending="outbox-1"),
            "ok": NodeTrace(node="triage", agent="classifier", latency_ms=2.0, escalate=True),
        }
        for i, status in enumerate(STATUSES):
            node = nodes.get(status)
            metrics.observe(RunResult(id=str(i), status=status, latency_ms=5.0,
                                      nodes=[node] if node is not None else []))
        text = metrics.render().decode()
    seen: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = seen.setdefault(sample.name, {})
            for name, value in sample.labels.items():
                labels.setdefault(name, set()).add(value)
    assert seen.get("shoal_runs_total", {}).get("status") == set(STATUSES)  # the fixture works
    return seen


def _selectors(expr: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(metric name, {label: matched value or regex}) of each series selector in a PromQL (or
    Grafana) expression; the values of `!=` and `!~` matchers are left out."""
    expr = re.sub(r"\$\{?\w+\}?", "x", expr)  # Grafana variables: $job, $__rate_interval
    expr = re.sub(r"label_values\(\s*([^,()]+),\s*\w+\s*\)", r"\1", expr)  # Grafana's variable
    found: list[tuple[str, dict[str, str]]] = []

    def selector(match: re.Match[str]) -> str:
        matchers = {label: value for label, op, value in _MATCHER.findall(match[2])
                    if op in ("=", "=~")}
        found.append((match[1] or matchers.pop("__name__", ""), matchers))
        return " "

    expr = _SELECTOR.sub(selector, expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # string arguments
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = _LABEL_LISTS.sub(" ", expr)
    found.extend((name, {}) for name in _IDENT.findall(expr) if name.lower() not in _KEYWORDS)
    yield from found


def _label_lists(expr: str) -> set[str]:
    """Label names of every by/without/on/ignoring/group_* clause."""
    return {label.strip() for _, labels in _LABEL_LISTS.findall(expr)
            for label in labels.split(",") if label.strip()}


def _check_expr(expr: str, where: str, exposition: dict[str, dict[str, set[str]]],
                recorded: frozenset[str] = frozenset()) -> list[str]:
    problems = []
    known_labels = set(TARGET_LABELS | {"le"}).union(*exposition.values())
    for name, matchers in _selectors(expr):
        if name in recorded:
            continue
        if name not in exposition:
            problems.append(f"{where}: {name!r} is not a metric shoal exports")
            continue
        labels = exposition[name]
        for label, value in matchers.items():
            if label in TARGET_LABELS:
                continue
            if label not in labels:
                problems.append(f"{where}: {name} has no label {label!r}")
            # A value or plain alternation (a|b) of a label whose values the fixture covers.
            elif label in ("status", "outcome") and re.fullmatch(r"[\w|]+", value):
                problems.extend(f"{where}: {name}{{{label}}} is never {v!r}"
                                for v in value.split("|") if v not in labels[label])
    problems.extend(f"{where}: no shoal metric has the label {label!r}"
                    for label in _label_lists(expr) - known_labels)
    return problems


def test_expression_parser_finds_names_and_labels() -> None:
    expr = ('sum by (job, status) (rate(shoal_runs_total{status="error", job=~"$job"}'
            '[$__rate_interval])) / on (job) group_left max(shoal_outbox_pending offset 5m)'
            ' and histogram_quantile(0.95, x:y:z) > bool 1e-3 unless label_values(up, job)')
    assert list(_selectors(expr)) == [("shoal_runs_total", {"status": "error", "job": "x"}),
                                      ("shoal_outbox_pending", {}), ("x:y:z", {}), ("up", {})]
    assert _label_lists(expr) == {"job", "status"}


# --- the rules ------------------------------------------------------------------------------

def _load_rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return data


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_rules()["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def test_rules_group_and_alerts_are_complete() -> None:
    assert [group["name"] for group in _load_rules()["groups"]] == ["shoal"]
    alerts = _alerts()
    assert {a["alert"] for a in alerts} >= {
        "ShoalRunErrors", "ShoalCircuitOpen", "ShoalOutboxGrowing",
        "ShoalPlannerShareAboveBudget", "ShoalRunLatencyHigh"}
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", str(alert.get("for", ""))), f"{name}: no `for`"
        assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert str(annotations.get(key, "")).strip(), f"{name}: no {key} annotation"


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6}\s+(.*)", line)):
            anchors.add(_slug(match[1]))
    return anchors


def test_runbooks_point_at_documentation_that_exists() -> None:
    for alert in _alerts():
        refs = alert["annotations"]["runbook"].split()
        assert refs, alert["alert"]
        for ref in refs:
            path, _, anchor = ref.partition("#")
            doc = REPO / path
            assert doc.is_file(), f"{alert['alert']}: {path} does not exist"
            if anchor:
                assert anchor in _anchors(doc), f"{alert['alert']}: no #{anchor} in {path}"
        # Its own section in deploy/README.md says what to do.
        assert f"deploy/README.md#{alert['alert'].lower()}" in refs, alert["alert"]


def test_rules_name_only_exported_metrics(exposition: dict[str, dict[str, set[str]]]) -> None:
    rules = _rules()
    recorded = frozenset(rule["record"] for rule in rules if "record" in rule)
    assert all(":" in name for name in recorded)  # level:metric:operations
    problems = []
    for rule in rules:
        problems += _check_expr(rule["expr"], rule.get("alert") or rule["record"], exposition,
                                recorded)
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    for test in tests["tests"]:
        for series in test.get("input_series", []):
            problems += _check_expr(series["series"], f"test {test['name']!r}", exposition)
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [RULES.name]
    firing, quiet = set(), set()
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = {alert["alert"] for alert in _alerts()}
    assert alerts <= firing, f"never fired in a test: {alerts - firing}"
    assert alerts <= quiet, f"never tested quiet: {alerts - quiet}"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.geteuid() != 0:
            pytest.skip("promtool is not installed (Debian package prometheus) and this is not "
                        "root: `make debian-packages` as root installs it")
        pytest.fail("promtool is missing although this runs as root: `make debian-packages` "
                    "installs it")
    return found


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=RULES.parent)


def test_promtool_check_rules(promtool: str) -> None:
    done = _promtool(promtool, "check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests(promtool: str) -> None:
    done = _promtool(promtool, "test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# --- the dashboard --------------------------------------------------------------------------

def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def test_dashboard_is_valid_and_names_only_exported_metrics(
        exposition: dict[str, dict[str, set[str]]]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    problems, exprs = [], 0
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", datasource) == datasource, panel["title"]
            problems += _check_expr(target["expr"], f"panel {panel['title']!r}", exposition)
            exprs += 1
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == datasource
            problems += _check_expr(variable["definition"], f"variable {variable['name']}",
                                    exposition)
    assert not problems, "\n".join(problems)
    # The metrics the dashboard is meant to show, every one of them.
    shown = {name for panel in _panels(dashboard["panels"]) for target in panel.get("targets", [])
             for name, _ in _selectors(target["expr"])}
    assert shown == {"shoal_runs_total", "shoal_escalations_total",
                     "shoal_run_latency_seconds_bucket", "shoal_node_latency_seconds_bucket",
                     "shoal_circuit_state", "shoal_outbox_pending",
                     "shoal_model_generated_tokens_total", "shoal_model_version_info",
                     "shoal_planner_spend_usd_total", "shoal_all_planner_estimate_usd_total"}
    assert exprs >= len(shown)
