"""Operator commands (streams.ops): lag arithmetic, dead-letter keys, paused state, auth probe verdicts,
secret scrubbing and the rendered table / JSON. Kafka-backed behaviour is in tests/integration/test_ops.py."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console
from typer.testing import CliRunner

from streams.cli import app
from streams.config import BridgeConfig, load_config
from streams.deadletter import H_EXC_CLASS, H_STAGE, DeadLetter
from streams.destinations.base import EMPTY_BATCH
from streams.metrics import Metrics
from streams.ops import (
    Check,
    CheckReport,
    DeadLetterCounts,
    RouteStatus,
    Scrubber,
    StatusReport,
    parse_paused,
    partition_lag,
    probe_auth,
    render_check,
    render_status,
)
from streams.ops.kafka_probe import dead_letter_key
from streams.ops.render import dead_letter_text
from streams.ops.status import MetricsScrape, metrics_endpoint, paused_state, scrape_metrics
from streams.urls import safe_url

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.yaml"
WRITE_KEY = "wk-5a1e-secret-zeotap"
API_KEY = "ak-93bd-secret-activation"
SASL_PASSWORD = "sasl-pw-7f3c-secret"
REGISTRY_PASSWORD = "sr-pw-2d8e-secret"


def _config(tmp_path: Path, **kafka: Any) -> tuple[BridgeConfig, Path]:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    raw = copy.deepcopy(raw)
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    raw["kafka"] = {"bootstrap_servers": "127.0.0.1:1", "group_id": "g-unit", **kafka}
    raw["destinations"]["zeotap"].update(url="http://127.0.0.1:1/zeotap", write_key=WRITE_KEY)
    raw["destinations"]["activation"] = {"type": "activation", "url": "http://127.0.0.1:1/activation", "api_key": API_KEY}
    raw["destinations"]["audiohook"] = {"type": "audiohook", "url": "http://127.0.0.1:1/audiohook", "pixel_id": "px"}
    raw["routes"] = {"purchase_completed": raw["routes"]["purchase_completed"]}
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_config(path, env={}), path


def _console() -> Console:
    return Console(file=io.StringIO(), width=200, color_system=None)


def _text(console: Console) -> str:
    f = console.file
    assert isinstance(f, io.StringIO)
    return f.getvalue()


# --------------------------------------------------------------------------- lag


def test_partition_lag_is_high_minus_committed() -> None:
    p = partition_lag(0, low=10, high=50, committed=30)
    assert (p.committed, p.lag) == (30, 20)


def test_partition_lag_without_commit_follows_auto_offset_reset() -> None:
    assert partition_lag(1, 10, 50, None, "earliest").lag == 40  # everything retained
    assert partition_lag(1, 10, 50, None, "latest").lag == 0
    assert partition_lag(1, 10, 50, -1001, "earliest").committed is None


def test_partition_lag_commit_below_retention_counts_from_low_watermark() -> None:
    # records before the low watermark were deleted by retention: they are not lag any more
    assert partition_lag(2, low=100, high=130, committed=5).lag == 30


# --------------------------------------------------------------------------- dead letters


def test_dead_letter_key_reads_stage_and_reason_headers() -> None:
    dl = DeadLetter("r", "zeotap", "t", 0, 1, None, "deliver", "bad_request", "DestinationRejected", "m", http_status=400)
    assert dead_letter_key(dl.headers([("origin", b"shop")])) == ("deliver", "bad_request")


def test_dead_letter_key_falls_back_to_connect_class_then_unknown() -> None:
    # a Kafka Connect dead letter has no s2s.reason: its exception class stands in (as `replay --reason`)
    assert dead_letter_key([(H_STAGE, b"VALUE_CONVERTER"), (H_EXC_CLASS, b"org.apache.DataException")]) == (
        "VALUE_CONVERTER",
        "org.apache.DataException",
    )
    assert dead_letter_key(None) == ("?", "?")


def test_dead_letter_text_says_when_the_scan_is_partial() -> None:
    assert dead_letter_text(DeadLetterCounts("t.dlt", total=12, scanned=12)) == "12"
    assert dead_letter_text(DeadLetterCounts("t.dlt", total=12, scanned=5, capped=True)) == "12 (scanned 5, capped by --max-scan)"
    assert dead_letter_text(DeadLetterCounts("t.dlt", exists=False)) == "no topic"
    assert dead_letter_text(None) == "-"


def test_dead_letter_counts_as_dict_lists_reasons() -> None:
    d = DeadLetterCounts("t.dlt", total=3, scanned=3, by_reason=Counter({("map", "mapping_failed"): 2, ("decode", "x"): 1}))
    out = d.as_dict()
    assert out["complete"] is True
    assert out["by_reason"] == [
        {"stage": "decode", "reason": "x", "count": 1},
        {"stage": "map", "reason": "mapping_failed", "count": 2},
    ]


# --------------------------------------------------------------------------- paused


def _metrics_page(paused: dict[str, int]) -> str:
    m = Metrics(CollectorRegistry())
    for route, v in paused.items():
        m.paused.labels(route).set(v)
    return generate_latest(m.registry).decode()


def test_parse_paused_reads_the_workers_gauge() -> None:
    assert parse_paused(_metrics_page({"a": 1, "b": 0})) == {"a": 1.0, "b": 0.0}
    assert parse_paused(_metrics_page({})) == {}  # a worker that never paused anything


def test_parse_paused_refuses_a_page_without_the_metric() -> None:
    with pytest.raises(KeyError):
        parse_paused("# TYPE up gauge\nup 1\n")


def test_metrics_endpoint_adds_the_path() -> None:
    assert metrics_endpoint("10.0.0.5:9108") == "http://10.0.0.5:9108/metrics"
    assert metrics_endpoint("http://pod:9108/") == "http://pod:9108/metrics"
    assert metrics_endpoint("http://pod:9108/custom") == "http://pod:9108/custom"


def test_paused_state_across_workers() -> None:
    assert paused_state("a", []).text == "unknown (no --metrics-url)"
    one = MetricsScrape("http://w1/metrics", {"a": 1.0})
    two = MetricsScrape("http://w2/metrics", {})
    broken = MetricsScrape("http://w3/metrics", error="ConnectError")
    st = paused_state("a", [one, two])
    assert st.known and st.paused_on == ["http://w1/metrics"] and st.text == "PAUSED (1/2 workers)"
    assert paused_state("b", [one, two]).text == "no"
    assert paused_state("b", [one, broken]).text == "no (1 of 2 metrics URL(s) failed)"
    assert paused_state("a", [broken]).text == "unknown (1 metrics URL(s) failed)"
    assert paused_state("a", [broken]).as_dict()["paused"] is None


def test_status_reads_the_destination_state_from_the_workers() -> None:
    from prometheus_client import generate_latest

    from streams.metrics import Metrics
    from streams.ops.status import destination_state, parse_destination_gauges

    m = Metrics()
    m.destination_refusing.labels("zeotap").set(1)
    m.destination_unhealthy.labels("zeotap").set(1)
    m.destination_unhealthy.labels("audiohook").set(1)
    m.destination_refusing.labels("activation").set(0)
    refusing, unhealthy = parse_destination_gauges(generate_latest(m.registry).decode())
    assert refusing == {"zeotap": 1.0, "activation": 0.0}
    assert unhealthy == {"zeotap": 1.0, "audiohook": 1.0}
    w1 = MetricsScrape("http://w1/metrics", {}, refusing=refusing, unhealthy=unhealthy)
    w2 = MetricsScrape("http://w2/metrics", {})
    broken = MetricsScrape("http://w3/metrics", error="ConnectError")
    assert destination_state("zeotap", [w2, w1]) == "refusing"
    assert destination_state("audiohook", [w1, w2]) == "unhealthy"
    assert destination_state("activation", [w1, w2]) == "ok"
    assert destination_state("zeotap", [broken]) is None
    assert destination_state("zeotap", []) is None


def test_scrape_metrics_over_http() -> None:
    page = _metrics_page({"purchase_completed": 1})
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, text=page)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        s = scrape_metrics("http://worker:9108", client=client)
    assert seen == ["http://worker:9108/metrics"]
    assert s.error is None and s.paused == {"purchase_completed": 1.0}


# --------------------------------------------------------------------------- auth probe


def _probe(tmp_path: Path, dest: str, status: int, headers: dict[str, str] | None = None, body: Any = None) -> Any:
    cfg, _ = _config(tmp_path)
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, headers=headers, json=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = probe_auth(dest, cfg.destinations[dest], client=client)
    return result, requests


def test_zeotap_probe_sends_an_empty_batch_with_the_write_key(tmp_path: Path) -> None:
    result, reqs = _probe(tmp_path, "zeotap", 204)
    assert result.status == "ok" and result.http_status == 204
    (req,) = reqs
    assert req.method == "POST" and req.content == EMPTY_BATCH == b'{"events":[]}'
    assert json.loads(req.content) == {"events": []}  # no event: nothing can be ingested
    assert req.headers["authorization"] == "Basic " + base64.b64encode(f"w_k:{WRITE_KEY}".encode()).decode()
    assert req.url.params["eventType"] == "s2s"


@pytest.mark.parametrize(
    ("status", "debug", "expected", "words"),
    [
        (401, "invalid write key", "fail", "credentials rejected"),
        (400, "Authorization header must be 'Basic base64(w_k:<write_key>)'", "fail", "credentials rejected"),
        (400, "invalid region 'XX' (valid: EU)", "fail", "misconfigured"),
        (400, "'events' array is empty", "ok", "credentials accepted"),
        (503, "", "fail", "unhealthy"),
        (404, "", "fail", "misconfigured"),
    ],
)
def test_zeotap_probe_verdicts(tmp_path: Path, status: int, debug: str, expected: str, words: str) -> None:
    result, _ = _probe(tmp_path, "zeotap", status, {"x-zeo-debug": debug} if debug else None)
    assert result.status == expected
    assert words in result.detail
    if debug:
        assert debug in result.detail


def test_activation_probe_verdicts(tmp_path: Path) -> None:
    bad, reqs = _probe(tmp_path, "activation", 401, body={"error": "unauthorized", "message": "invalid credentials"})
    assert bad.status == "fail" and "credentials rejected" in bad.detail and "invalid credentials" in bad.detail
    # one event per request unless batch_key is set: the probe is an empty object, nothing to ingest
    assert reqs[0].headers["authorization"] == f"Bearer {API_KEY}" and reqs[0].content == b"{}"
    refused = {"error": "invalid_event", "message": "event: required: non-empty string (event name)"}
    good, _ = _probe(tmp_path, "activation", 400, body=refused)
    assert good.status == "ok"
    redirect, _ = _probe(tmp_path, "activation", 302, headers={"location": "https://u:p@login.example/"})
    assert redirect.status == "fail" and "https://login.example/" in redirect.detail and "u:p" not in redirect.detail


def test_audiohook_is_never_sent_a_request(tmp_path: Path) -> None:
    result, reqs = _probe(tmp_path, "audiohook", 200)
    assert reqs == []
    assert result.status == "skip" and "not probed (API has no side-effect-free endpoint)" in result.detail


def test_probe_transport_error_is_a_failure(tmp_path: Path) -> None:
    cfg, _ = _config(tmp_path)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = probe_auth("zeotap", cfg.destinations["zeotap"], client=client)
    assert result.status == "fail" and "ConnectError" in result.detail


# --------------------------------------------------------------------------- secrets


def test_scrubber_masks_every_configured_secret(tmp_path: Path) -> None:
    cfg, _ = _config(
        tmp_path,
        security_protocol="SASL_PLAINTEXT",
        sasl={"mechanism": "SCRAM-SHA-512", "username": "bridge", "password": SASL_PASSWORD},
        schema_registry={"url": "https://sr.example", "username": "sr", "password": REGISTRY_PASSWORD},
    )
    scrub = Scrubber.for_config(cfg)
    token = base64.b64encode(f"w_k:{WRITE_KEY}".encode()).decode()
    text = f"a {WRITE_KEY} b {API_KEY} c {SASL_PASSWORD} d {REGISTRY_PASSWORD} e Basic {token}"
    out = scrub(text)
    for secret in (WRITE_KEY, API_KEY, SASL_PASSWORD, REGISTRY_PASSWORD, token):
        assert secret not in out
    assert out.count("***") == 5
    assert scrub("user bridge") == "user bridge"  # usernames are not secrets


def test_safe_url_drops_user_info() -> None:
    assert safe_url("https://user:pw@sr.example:8081/x") == "https://sr.example:8081/x"
    assert safe_url("http://127.0.0.1:8080/registry") == "http://127.0.0.1:8080/registry"


# --------------------------------------------------------------------------- rendering


def _report() -> CheckReport:
    return CheckReport(
        [
            Check("config", "bridge.yaml", "ok", "valid"),
            Check("topic", "orders", "fail", "route purchase_completed: source topic missing"),
            Check("dead-letter topic", "orders.dlt", "warn", "missing; the worker creates it"),
            Check("auth", "audiohook (audiohook)", "skip", "not probed"),
        ]
    )


def test_check_report_ok_only_without_failures() -> None:
    r = _report()
    assert not r.ok
    assert r.counts() == {"ok": 1, "warn": 1, "fail": 1, "skip": 1}
    r.checks[1].status = "ok"
    assert r.ok  # warnings and skipped checks do not fail the check


def test_render_check_table_and_summary() -> None:
    console = _console()
    render_check(_report(), console)
    out = _text(console)
    row = next(line for line in out.splitlines() if "orders " in line and "missing" in line)
    assert "FAIL" in row and "topic" in row
    assert "WARN" in out
    assert "NOT OK: 1 failed, 1 warning(s), 1 ok" in out


def test_render_check_all_ok_summary() -> None:
    console = _console()
    render_check(CheckReport([Check("config", "x", "ok", "valid")]), console)
    assert "all OK (1 ok, 0 warning(s), 0 not checked)" in _text(console)


def test_check_report_json_shape() -> None:
    d = _report().as_dict()
    assert d["ok"] is False
    assert d["checks"][1] == {
        "check": "topic",
        "target": "orders",
        "status": "fail",
        "detail": "route purchase_completed: source topic missing",
    }
    json.dumps(d)


def _status() -> StatusReport:
    reasons = Counter({("map", "mapping_failed"): 4, ("deliver", "bad_request"): 1})
    dl = DeadLetterCounts("orders.dlt", total=9, scanned=5, capped=True, by_reason=reasons)
    lags = [partition_lag(0, 0, 10, 4), partition_lag(1, 0, 5, None)]
    r1 = RouteStatus("purchase_completed", "orders", "zeotap", lags, None, dl)
    r2 = RouteStatus("page_view", "views", "audiohook", topic_error="topic missing")
    return StatusReport("g", [r1, r2], max_scan=5)


def test_status_aggregates_lag_and_reports_missing_topics() -> None:
    s = _status()
    assert s.routes[0].lag == 6 + 5
    assert s.routes[1].lag is None
    assert not s.ok  # a missing topic could not be read
    d = s.as_dict()
    assert d["routes"][0]["lag"] == 11 and d["routes"][0]["partitions"][1]["committed"] is None
    paused = {"known": False, "paused": None, "paused_on": [], "running_on": [], "note": "no --metrics-url"}
    assert d["routes"][0]["paused"] == paused
    json.dumps(d)


def test_render_status_table_breakdown_and_cap_note() -> None:
    console = _console()
    render_status(_status(), console)
    out = _text(console)
    line = next(x for x in out.splitlines() if "purchase_completed" in x and "orders " in x and "orders.dlt" not in x)
    assert "zeotap: unknown" in line  # the destination's state needs --metrics-url
    assert "11 (no commits)" in line and "9 (scanned 5, capped by --max-scan)" in line
    assert "unknown (no --metrics-url)" in line
    assert "topic missing" in out
    assert re.search(r"orders\.dlt\s*│\s*map\s*│\s*mapping_failed\s*│\s*4\s*│", out)
    assert re.search(r"deliver\s*│\s*bad_request\s*│\s*1\s*│", out)
    assert "counted 5 of 9 dead letters (--max-scan 5); the breakdown is partial" in out


# --------------------------------------------------------------------------- CLI (no broker: unreachable Kafka)


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["check", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read config file" in missing.output
    _, path = _config(tmp_path)
    neg = runner.invoke(app, ["status", "--config", str(path), "--max-scan", "-1"])
    assert neg.exit_code == 2


def test_cli_check_never_prints_secrets(tmp_path: Path) -> None:
    _, path = _config(
        tmp_path,
        security_protocol="SASL_PLAINTEXT",
        sasl={"mechanism": "PLAIN", "username": "bridge", "password": SASL_PASSWORD},
        schema_registry={"url": f"http://sr:{REGISTRY_PASSWORD}@127.0.0.1:1/registry"},
    )
    runner = CliRunner()
    token = base64.b64encode(f"w_k:{WRITE_KEY}".encode()).decode()
    table = runner.invoke(app, ["check", "--config", str(path), "--timeout", "2"])
    as_json = runner.invoke(app, ["check", "--config", str(path), "--timeout", "2", "--json"])
    for res in (table, as_json):
        assert res.exit_code == 1, res.output  # nothing listens on 127.0.0.1:1
        for secret in (WRITE_KEY, API_KEY, SASL_PASSWORD, REGISTRY_PASSWORD, token):
            assert secret not in res.output
    doc = json.loads(as_json.stdout)
    rows = {(c["check"], c["target"]): c for c in doc["checks"]}
    assert rows[("kafka", "127.0.0.1:1")]["status"] == "fail"
    assert rows[("schema registry", "http://127.0.0.1:1/registry")]["status"] == "fail"
    assert rows[("reachability", "zeotap (zeotap)")]["status"] == "fail"
    assert rows[("auth", "zeotap (zeotap)")]["status"] == "skip"
