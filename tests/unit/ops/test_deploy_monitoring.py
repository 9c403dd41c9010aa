"""The alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana) ask only for metrics and
labels carepath really exports: the names and labels come from the metric objects registered in code (the
process metrics of every part) and from a collection of the database- and broker-derived gauges against
a real (test) database and broker. A renamed metric or label breaks this test, not a silent alert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from shared.observability import http, metrics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "carepath-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "carepath.json"
METRIC = re.compile(r"\b(carepath_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SAMPLES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def _exported(settings: Settings) -> dict[str, set[str]]:
    """Sample name -> label names, of everything a scrape of carepath can show."""
    from shared.ops_metrics import BacklogCollector

    found: dict[str, set[str]] = {}
    for module in (metrics, http):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                (family,) = value.describe()
                labels = set(value._labelnames)  # the declared labels, also of a series not yet observed
                for suffix in _SAMPLES[family.type]:
                    found[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    for collector in (BacklogCollector(), metrics.BrokerCollector()):
        families = list(collector.collect())
        assert families, f"{type(collector).__name__} collected nothing: database or broker unreachable"
        for family in families:
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def _check(expressions: dict[str, str], exported: dict[str, set[str]]) -> None:
    assert expressions
    for where, expr in expressions.items():
        used = METRIC.findall(expr)
        assert used, f"{where}: no carepath metric in {expr}"
        labels: set[str] = set()
        for name, matchers in used:
            assert name in exported, f"{where}: {name} is not exported by carepath"
            labels |= exported[name]
            for label, _ in MATCHER.findall(matchers):
                assert label in exported[name], f"{where}: {name} has no label {label!r}"
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in labels, f"{where}: grouping by {label!r}, which none of its metrics has"


def test_alert_rules_use_only_exported_metrics_and_labels(settings: Settings) -> None:
    _check(_rule_expressions(), _exported(settings))


def test_dashboard_uses_only_exported_metrics_and_labels(settings: Settings) -> None:
    _check(_dashboard_expressions(), _exported(settings))


def test_the_check_finds_an_invented_metric_or_label(settings: Settings) -> None:
    exported = _exported(settings)
    with pytest.raises(AssertionError, match="not exported"):
        _check({"x": "rate(carepath_webhooks_sent_total[5m])"}, exported)
    with pytest.raises(AssertionError, match="no label"):
        _check({"x": 'carepath_parked_events{queue="pathway"}'}, exported)
    with pytest.raises(AssertionError, match="grouping"):
        _check({"x": "sum by (patient_id) (carepath_tasks_total)"}, exported)


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
        assert panel["targets"]
    shown = set(METRIC.findall(" ".join(_dashboard_expressions().values())))
    names = {name for name, _ in shown}
    # the list: HTTP, outbox, queue, tasks, evaluations and coalescing, lateness, due-but-undelivered,
    # escalations, deliveries, parked events, heartbeats
    for wanted in (
        "carepath_http_requests_total",
        "carepath_http_request_seconds_bucket",
        "carepath_outbox_unfinished",
        "carepath_outbox_oldest_unfinished_seconds",
        "carepath_broker_queue_depth",
        "carepath_tasks_total",
        "carepath_task_seconds_bucket",
        "carepath_pathway_evaluations_total",
        "carepath_pathway_updates_evaluated_total",
        "carepath_reminder_lateness_seconds_bucket",
        "carepath_reminders_scheduled_past_due",
        "carepath_reminders_escalated_total",
        "carepath_channel_deliveries_total",
        "carepath_parked_events",
        "carepath_loop_heartbeat_timestamp_seconds",
    ):
        assert wanted in names, wanted
