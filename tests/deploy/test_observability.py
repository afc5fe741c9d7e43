"""Observability assets in deploy/observability: the Grafana dashboard and the PrometheusRule.

Every PromQL expression (dashboard targets, template variables, alert rules) is parsed with a real
PromQL parser (promql-parser, the Rust parser's Python binding) and may only name metrics, and
labels, that the worker really exposes: the exposition of a fresh `streams.metrics.Metrics` with
every labelled metric touched once, as `prometheus_client.generate_latest` renders it (Counters get
`_total`, Histograms `_bucket/_sum/_count`). docs/metrics.md must document every exposed family.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
DASHBOARD = OBS / "grafana-dashboard.json"
RULES = OBS / "prometheus-rules.yaml"
DOCS = ROOT / "docs" / "metrics.md"

# labels Prometheus adds to every series scraped through the ServiceMonitor
TARGET_LABELS = {"namespace", "pod", "instance", "job", "service", "container", "endpoint"}
# series of other exporters a rule may use, each for a stated reason (worker restarts: kube-state-metrics)
EXTERNAL = {"kube_pod_container_status_restarts_total": {"namespace", "pod", "container", "uid"}}
# Grafana's built-in variables, replaced by a typical value before parsing
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"info", "warning", "critical"}


# --------------------------------------------------------------------------- the real exposition


def exposition() -> dict[str, set[str]]:
    """Sample name -> label names, as the worker's /metrics serves them (every labelled metric touched)."""
    m = Metrics()
    touched = 0
    for metric in vars(m).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        child = metric.labels(*["x"] * len(metric._labelnames))
        if hasattr(child, "observe"):
            child.observe(1)
        elif hasattr(child, "inc"):
            child.inc()
        else:
            child.set(1)
        touched += 1
    assert touched >= 10
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def families() -> dict[str, str]:
    """Family name -> type of the exposition (counters without the `_total` suffix, as the parser gives them)."""
    m = Metrics()
    return {
        fam.name: fam.type for metric in vars(m).values() if isinstance(metric, MetricWrapperBase) for fam in metric.describe()
    }


# --------------------------------------------------------------------------- PromQL


def parse(expr: str) -> Any:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return promql_parser.parse(expr)


def references(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric name -> label names used in its matchers, labels named by by/without/on/ignoring/group_x)."""
    selectors: dict[str, set[str]] = {}
    grouping: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {mt.name for mt in node.matchers.matchers} | {mt.name for group in node.matchers.or_matchers for mt in group}
            name = node.name
            assert name, f"selector without a metric name in {expr!r}"
            selectors.setdefault(name, set()).update(labels - {"__name__"})
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                grouping.update(node.modifier.matching.labels)
            grouping.update(node.modifier.group_labels or [])

    promql_parser.walk(parse(expr), pre_visit=visit)
    return selectors, grouping


def result_labels(expr: str) -> set[str] | None:
    """Label names of an expression's result when every top-level aggregation says them (`by`); None if unknown."""
    tree = parse(expr)
    tops: list[Any] = []

    def top(node: Any) -> None:
        while isinstance(node, promql_parser.ParenExpr):
            node = node.expr
        if isinstance(node, promql_parser.BinaryExpr):
            if node.op.__str__() in ("and", "unless"):
                top(node.lhs)
                return
            for side in (node.lhs, node.rhs):
                top(side)
            return
        if isinstance(node, promql_parser.Call) and node.func.name in ("histogram_quantile", "clamp_min", "clamp_max"):
            top(node.args[1] if node.func.name == "histogram_quantile" else node.args[0])
            return
        tops.append(node)

    top(tree)
    labels: set[str] = set()
    for node in tops:
        if isinstance(node, promql_parser.NumberLiteral):
            continue
        if isinstance(node, promql_parser.Call) and node.func.name == "vector":
            continue
        if not isinstance(node, promql_parser.AggregateExpr):
            return None
        if node.modifier is None:
            continue
        if str(node.modifier.type).endswith("By"):
            labels |= set(node.modifier.labels)
        else:
            return None
    return labels - {"le"}


def problems(expr: str, exposed: dict[str, set[str]], *, external: bool = False) -> list[str]:
    """What an expression names that the worker does not expose (empty: fine)."""
    try:
        selectors, grouping = references(expr)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    out = []
    known = dict(exposed) | (EXTERNAL if external else {})
    available: set[str] = set(TARGET_LABELS)
    for name, labels in selectors.items():
        if name not in known:
            out.append(f"unknown metric {name}")
            continue
        available |= known[name]
        extra = labels - known[name] - TARGET_LABELS
        if extra:
            out.append(f"{name} has no label {sorted(extra)}")
    if grouping - available:
        out.append(f"grouping by labels no selected series has: {sorted(grouping - available)}")
    if not selectors:
        out.append("names no metric")
    return out


# --------------------------------------------------------------------------- loading


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def all_panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_queries(d: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, expr, legendFormat) of every panel target."""
    return [
        (f"panel {p['title']!r} target {t.get('refId')}", t["expr"], t.get("legendFormat", ""))
        for p in all_panels(d)
        for t in p.get("targets", [])
    ]


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


def variable_selectors(d: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, selector, label) of every `label_values(selector, label)` query variable."""
    out = []
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = LABEL_VALUES.match(q.strip())
        assert m, f"variable {v['name']}: expected label_values(selector, label), got {q!r}"
        out.append((v["name"], m["selector"], m["label"]))
    return out


def rules_doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return loaded


def alert_rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in doc["spec"]["groups"] for r in g["rules"] if "alert" in r]


# --------------------------------------------------------------------------- PrometheusRule structure


class RuleError(ValueError):
    pass


def check_prometheus_rule(doc: dict[str, Any]) -> None:
    """Structure of a monitoring.coreos.com/v1 PrometheusRule (also used by test_manifests for the rendered one)."""

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise RuleError(f"PrometheusRule/{doc.get('metadata', {}).get('name')}: {msg}")

    need(doc.get("apiVersion") == "monitoring.coreos.com/v1" and doc.get("kind") == "PrometheusRule", "apiVersion/kind")
    need(isinstance(doc.get("metadata", {}).get("name"), str), "metadata.name is required")
    need(set(doc) <= {"apiVersion", "kind", "metadata", "spec"}, f"unknown top-level keys {set(doc)}")
    spec = doc.get("spec")
    need(isinstance(spec, dict) and set(spec) == {"groups"}, "spec must hold groups only")
    groups = spec["groups"]
    need(isinstance(groups, list) and len(groups) > 0, "spec.groups must be a non-empty list")
    names, alerts = set(), set()
    for g in groups:
        need(isinstance(g, dict) and isinstance(g.get("name"), str) and g["name"], "each group needs a name")
        need(g["name"] not in names, f"duplicate group {g['name']}")
        names.add(g["name"])
        need(set(g) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}, f"group {g['name']}: unknown keys")
        if "interval" in g:
            need(isinstance(g["interval"], str) and bool(DURATION.match(g["interval"])), f"group {g['name']}: interval")
        rules = g.get("rules")
        need(isinstance(rules, list) and len(rules) > 0, f"group {g['name']}: rules must be a non-empty list")
        for r in rules:
            need(isinstance(r, dict) and set(r) <= RULE_KEYS, f"group {g['name']}: unknown rule keys {set(r) - RULE_KEYS}")
            need(("alert" in r) != ("record" in r), f"group {g['name']}: a rule is either alert or record")
            what = r.get("alert") or r.get("record")
            need(isinstance(what, str) and bool(re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", what)), f"rule name {what!r}")
            need(isinstance(r.get("expr"), str) and r["expr"].strip() != "", f"{what}: expr is required")
            try:
                parse(r["expr"])
            except ValueError as exc:
                need(False, f"{what}: expr does not parse: {exc}")
            for k in ("for", "keep_firing_for"):
                if k in r:
                    need(isinstance(r[k], str) and bool(DURATION.match(r[k])), f"{what}: {k} must be a duration")
            for k in ("labels", "annotations"):
                if k in r:
                    need(
                        isinstance(r[k], dict) and all(isinstance(a, str) and isinstance(b, str) for a, b in r[k].items()),
                        f"{what}: {k} must map strings to strings",
                    )
            if "alert" in r:
                need(what not in alerts, f"duplicate alert {what}")
                alerts.add(what)
                need(r.get("labels", {}).get("severity") in SEVERITIES, f"{what}: labels.severity in {sorted(SEVERITIES)}")
                ann = r.get("annotations", {})
                for k in ("summary", "description", "runbook"):
                    need(bool(ann.get(k, "").strip()), f"{what}: annotations.{k} is required")
                for text in ann.values():
                    need(text.count("{{") == text.count("}}"), f"{what}: unbalanced template braces")


# --------------------------------------------------------------------------- tests: the checker itself


def test_exposition_has_the_suffixes_prometheus_client_adds() -> None:
    exposed = exposition()
    assert "s2s_records_consumed_total" in exposed and "s2s_records_consumed" not in exposed
    assert {"s2s_http_request_duration_seconds_bucket", "s2s_http_request_duration_seconds_count"} <= set(exposed)
    assert exposed["s2s_http_request_duration_seconds_bucket"] == {"destination", "le"}
    assert exposed["s2s_records_dead_lettered_total"] == {"route", "stage", "reason"}
    assert exposed["s2s_route_paused"] == {"route"}


def test_checker_catches_wrong_names_and_labels() -> None:
    exposed = exposition()
    ok = 'sum by (route) (rate(s2s_records_consumed_total{namespace=~"$namespace"}[$__rate_interval]))'
    assert problems(ok, exposed) == []
    assert problems("sum(rate(s2s_records_consumed[5m]))", exposed) == ["unknown metric s2s_records_consumed"]
    assert problems('rate(s2s_http_requests_total{code="401"}[5m])', exposed) == ["s2s_http_requests_total has no label ['code']"]
    assert problems("sum by (reason) (rate(s2s_records_consumed_total[5m]))", exposed) == [
        "grouping by labels no selected series has: ['reason']"
    ]
    assert problems("sum(rate(s2s_records_consumed_total[5m])", exposed)[0].startswith("does not parse")
    assert problems("kube_pod_container_status_restarts_total", exposed) == [
        "unknown metric kube_pod_container_status_restarts_total"
    ]
    assert problems("kube_pod_container_status_restarts_total", exposed, external=True) == []
    assert result_labels("max by (namespace, route) (s2s_route_paused) == 1") == {"namespace", "route"}
    assert result_labels("sum(rate(s2s_records_consumed_total[5m]))") == set()
    assert result_labels("rate(s2s_records_consumed_total[5m])") is None


def test_rule_check_rejects_broken_rules() -> None:
    good = rules_doc()
    check_prometheus_rule(good)
    cases = {
        "for must be a duration": lambda r: r.update({"for": "ten minutes"}),
        "does not parse": lambda r: r.update({"expr": "sum(rate(s2s_records_consumed_total[5m])"}),
        "severity": lambda r: r["labels"].pop("severity"),
        "annotations.runbook": lambda r: r["annotations"].pop("runbook"),
        "unknown rule keys": lambda r: r.update({"expression": r["expr"]}),
    }
    for msg, breaker in cases.items():
        broken = yaml.safe_load(yaml.safe_dump(good))
        breaker(broken["spec"]["groups"][0]["rules"][0])
        with pytest.raises(RuleError, match=msg):
            check_prometheus_rule(broken)


# --------------------------------------------------------------------------- tests: dashboard


def test_dashboard_is_valid_grafana_json() -> None:
    d = dashboard()
    assert d["uid"] == "s2s-bridge" and d["title"] and isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    panels = all_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, f"panel {p['title']!r}: gridPos"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]!r} and {p['title']!r} overlap"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, f"panel {p['title']!r}: datasource variable"
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]


def test_dashboard_queries_name_only_exposed_metrics_and_labels() -> None:
    exposed = exposition()
    d = dashboard()
    errors = [f"{where}: {p}" for where, expr, _ in dashboard_queries(d) for p in problems(expr, exposed)]
    for name, selector, label in variable_selectors(d):
        errors += [f"variable {name}: {p}" for p in problems(selector, exposed)]
        selectors, _ = references(selector)
        (metric,) = selectors
        assert label in exposed[metric] | TARGET_LABELS, f"variable {name}: {metric} has no label {label}"
    assert not errors, "\n".join(errors)


def test_dashboard_legends_use_labels_the_query_returns() -> None:
    for where, expr, legend in dashboard_queries(dashboard()):
        used = set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend))
        labels = result_labels(expr)
        assert labels is not None, f"{where}: aggregate with `by` so the legend is stable: {expr}"
        assert used <= labels, f"{where}: legend uses {sorted(used - labels)}, the query returns {sorted(labels)}"
        if len(labels) > 0:
            assert used, f"{where}: series by {sorted(labels)} need a legend telling them apart"


def test_dashboard_shows_every_metric_and_the_panels_the_issue_asks_for() -> None:
    d = dashboard()
    used: set[str] = set()
    for _, expr, _ in dashboard_queries(d):
        used |= set(references(expr)[0])
    exposed = exposition()
    for fam, kind in families().items():
        names = {f"{fam}_total"} if kind == "counter" else ({f"{fam}_bucket"} if kind == "histogram" else {fam})
        assert names & used, f"the dashboard does not show {fam} ({kind})"
        assert names <= set(exposed)
    titles = {p["title"] for p in all_panels(d)}
    from bench.dashboard import PANELS  # the renderer draws the same panels (docs/img/dashboard.png)

    missing = set(PANELS) - titles
    assert not missing, f"panels of bench/dashboard.py missing from the dashboard: {missing}"
    by_metric = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in all_panels(d)}

    def panel_with(*needles: str) -> bool:
        return any(all(n in expr for n in needles) for expr in by_metric.values())

    assert panel_with("s2s_records_consumed_total", "by (route)")  # throughput by route
    assert panel_with("s2s_records_delivered_total", "by (route, destination)")  # ... and destination
    assert panel_with("s2s_records_delivered_total", "s2s_records_filtered_total", "s2s_records_dead_lettered_total")  # outcomes
    assert panel_with("s2s_records_dead_lettered_total", "reason")  # dead-letter rate by reason
    assert panel_with("histogram_quantile", "s2s_http_request_duration_seconds_bucket")  # request latency
    assert panel_with("s2s_http_retries_total")  # retries
    assert panel_with("avg_over_time(s2s_route_paused")  # paused time
    assert panel_with("s2s_consumer_lag")  # consumer lag


# --------------------------------------------------------------------------- tests: rules


def test_rules_are_a_valid_prometheus_rule() -> None:
    check_prometheus_rule(rules_doc())


def test_rules_name_only_exposed_metrics_and_labels() -> None:
    exposed = exposition()
    errors = []
    for r in alert_rules(rules_doc()):
        errors += [f"{r['alert']}: {p}" for p in problems(r["expr"], exposed, external=True)]
        labels = result_labels(r["expr"])
        if labels is None:  # no aggregation: the series' own labels
            labels = set(TARGET_LABELS)
            for metric in references(r["expr"])[0]:
                labels |= (exposed | EXTERNAL)[metric]
        for text in r["annotations"].values():
            used = set(re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", text))
            if used - labels:
                errors.append(f"{r['alert']}: annotation uses {sorted(used - labels)}, the alert has {sorted(labels)}")
    assert not errors, "\n".join(errors)


def test_rules_cover_the_four_alert_kinds_of_the_issue() -> None:
    rules = alert_rules(rules_doc())

    def alerts_on(pred: Any) -> list[str]:
        return [r["alert"] for r in rules if pred(r["expr"], references(r["expr"])[0])]

    assert alerts_on(lambda e, s: "s2s_records_dead_lettered_total" in s and "s2s_records_consumed_total" in s), (
        "dead-letter rate"
    )
    assert alerts_on(lambda e, s: "s2s_consumer_lag" in s and "deriv(" in e), "lag growing"
    assert alerts_on(lambda e, s: "s2s_destination_unhealthy" in s), "destination paused"
    assert alerts_on(lambda e, s: "s2s_route_paused" in s), "route paused"
    assert alerts_on(lambda e, s: "s2s_http_requests_total" in s and "401" in e), "auth failures"
    for r in rules:
        if r["labels"]["severity"] != "critical" or "increase(" in r["expr"]:
            continue
        assert "for" in r, f"{r['alert']}: a paging alert on a level needs `for`"


# --------------------------------------------------------------------------- tests: docs


def test_docs_document_every_exposed_metric() -> None:
    text = DOCS.read_text(encoding="utf-8")
    # the metric tables come before the stage/reason tables, whose rows start with label values
    metric_tables = text.partition("\n## Stages and reasons\n")[0]
    documented = set(re.findall(r"^\|\s*`([a-z0-9_:]+)`", metric_tables, re.M))
    exposed_families = set()
    for fam, kind in families().items():
        exposed_families.add(f"{fam}_total" if kind == "counter" else fam)
    assert exposed_families <= documented, f"not in docs/metrics.md: {sorted(exposed_families - documented)}"
    assert documented - exposed_families <= set(EXTERNAL), f"documented, not exposed: {sorted(documented - exposed_families)}"
    assert "img/dashboard.png" in text and (ROOT / "docs" / "img" / "dashboard.png").is_file()
    for r in alert_rules(rules_doc()):
        assert r["alert"] in text, f"docs/metrics.md does not explain alert {r['alert']}"


# --------------------------------------------------------------------------- tests: wiring


@pytest.mark.parametrize("overlay", ("staging", "production"))
def test_overlays_ship_the_rules_and_the_dashboard(overlay: str) -> None:
    from tests.deploy.test_manifests import one, render  # renders with `kubectl kustomize` (never skips)

    docs = render(overlay)
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == rules_doc()["spec"]
    assert rule["metadata"]["namespace"] == one(docs, "StatefulSet")["metadata"]["namespace"]
    cm = one(docs, "ConfigMap", "s2s-bridge-grafana-dashboard")
    assert cm["metadata"]["name"] == "s2s-bridge-grafana-dashboard", "fixed name: no hash suffix for the sidecar"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (body,) = cm["data"].values()
    assert json.loads(body) == dashboard()
    assert len(body.encode()) < 256 * 1024, "kubectl apply keeps the last applied object in an annotation (256 KiB)"
