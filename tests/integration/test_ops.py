"""`s2s-bridge check` and `s2s-bridge status` against the real broker and the destination emulator."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from streams.cli import app
from streams.config import BridgeConfig
from streams.deadletter import DeadLetter
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import SampleFactory
from streams.metrics import METRICS
from streams.ops import gather_status
from streams.worker import Worker
from tests.integration.harness import (
    API_KEY,
    WRITE_KEY,
    committed,
    create_topics,
    encoded,
    make_config,
    produce,
)

pytestmark = pytest.mark.kafka

ROUTE = "purchase_completed"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,))) as emu:
        yield emu


def _config(tmp_path: Path, bootstrap: str, emu: Emulator, **kw: Any) -> tuple[BridgeConfig, Path]:
    kafka = {"schema_registry": {"url": emu.registry_url}, **kw.pop("kafka", {})}
    return make_config(tmp_path, bootstrap, emu.base_url, kafka=kafka, **kw)


def _check(path: Path) -> tuple[int, dict[str, Any], str]:
    runner = CliRunner()
    as_json = runner.invoke(app, ["check", "--config", str(path), "--json"])
    table = runner.invoke(app, ["check", "--config", str(path)])
    doc = json.loads(as_json.stdout)
    assert as_json.exit_code == table.exit_code, ([c for c in doc["checks"] if c["status"] == "fail"], table.output)
    return as_json.exit_code, doc, table.output


def _rows(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["check"], c["target"]): c for c in doc["checks"]}


def _records_received(emu: Emulator) -> int:
    return sum(d["events_received"] for d in emu.admin.stats()["destinations"].values())


def _dead_letter(cfg: BridgeConfig, stage: str, reason: str, error_class: str, status: int | None = None) -> Any:
    """Headers exactly as the worker writes them (streams.deadletter)."""
    r = cfg.routes[ROUTE]
    dl = DeadLetter(
        ROUTE, r.destination, r.topic, 0, 7, 1_700_000_000_000, stage, reason, error_class, "test", http_status=status
    )
    return dl.headers([("origin", b"shop")])


# --------------------------------------------------------------------------- check


def test_check_all_ok(kafka_bootstrap, emulator, tmp_path):
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator)
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    code, doc, table = _check(path)
    assert code == 0, table
    assert doc["ok"] is True and doc["counts"]["fail"] == 0
    rows = _rows(doc)
    assert rows[("kafka", kafka_bootstrap)]["status"] == "ok"
    assert rows[("topic", route.topic)]["status"] == "ok" and rows[("topic", route.topic)]["partitions"] == 3
    assert rows[("dead-letter topic", route.dlt)]["status"] == "ok"
    assert rows[("schema registry", emulator.registry_url)]["status"] == "ok"
    assert rows[("auth", "zeotap (zeotap)")]["status"] == "ok"
    assert rows[("auth", "activation (activation)")]["status"] == "ok"
    assert rows[("auth", "audiohook (audiohook)")]["status"] == "skip"
    assert "not probed (API has no side-effect-free endpoint)" in rows[("auth", "audiohook (audiohook)")]["detail"]
    for dest in ("zeotap", "activation", "audiohook"):
        assert rows[("reachability", f"{dest} ({dest})")]["status"] == "ok"
    assert "all OK" in table
    # the probes sent no event: nothing was recorded by any API
    assert _records_received(emulator) == 0
    # and the secrets never show, in either output
    token = base64.b64encode(f"w_k:{WRITE_KEY}".encode()).decode()
    for secret in (WRITE_KEY, API_KEY, token):
        assert secret not in table and secret not in json.dumps(doc)


def test_check_missing_topic_fails_and_names_it(kafka_bootstrap, emulator, tmp_path):
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator)
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.dlt])  # the source topic is missing
    code, doc, table = _check(path)
    assert code == 1
    row = _rows(doc)[("topic", route.topic)]
    assert row["status"] == "fail" and row["exists"] is False
    assert f"route {ROUTE}: source topic missing" in row["detail"]
    assert route.topic in table and "FAIL" in table and "NOT OK" in table
    # only that row failed
    assert [c["target"] for c in doc["checks"] if c["status"] == "fail"] == [route.topic]
    # listing topics never creates one
    code2, doc2, _ = _check(path)
    assert code2 == 1 and _rows(doc2)[("topic", route.topic)]["status"] == "fail"


def test_check_missing_dead_letter_topic_is_a_warning_when_the_worker_creates_it(kafka_bootstrap, emulator, tmp_path):
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator)
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.topic])
    code, doc, _ = _check(path)
    assert code == 0
    assert _rows(doc)[("dead-letter topic", route.dlt)]["status"] == "warn"

    cfg2, path2 = _config(tmp_path, kafka_bootstrap, emulator, kafka={"create_topics": False})
    create_topics(kafka_bootstrap, [cfg2.routes[ROUTE].topic])
    code2, doc2, _ = _check(path2)
    assert code2 == 1
    assert _rows(doc2)[("dead-letter topic", cfg2.routes[ROUTE].dlt)]["status"] == "fail"


def test_check_wrong_write_key_fails_the_auth_row(kafka_bootstrap, emulator, tmp_path):
    wrong = "not-the-write-key-91ab"
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator, write_key=wrong)
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    code, doc, table = _check(path)
    assert code == 1
    rows = _rows(doc)
    auth = rows[("auth", "zeotap (zeotap)")]
    assert auth["status"] == "fail" and auth["http_status"] == 401
    assert "credentials rejected" in auth["detail"] and "invalid write key" in auth["detail"]
    assert rows[("reachability", "zeotap (zeotap)")]["status"] == "ok"
    assert rows[("auth", "activation (activation)")]["status"] == "ok"
    assert wrong not in table and wrong not in json.dumps(doc)
    assert _records_received(emulator) == 0


def test_check_unreachable_registry_fails(kafka_bootstrap, emulator, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/registry"
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator, kafka={"schema_registry": {"url": dead}})
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    code, doc, table = _check(path)
    assert code == 1
    row = _rows(doc)[("schema registry", dead)]
    assert row["status"] == "fail" and "unreachable" in row["detail"]
    assert [c["check"] for c in doc["checks"] if c["status"] == "fail"] == ["schema registry"]


def test_check_unreachable_kafka_fails(emulator, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    _, path = _config(tmp_path, dead, emulator)
    res = CliRunner().invoke(app, ["check", "--config", str(path), "--json", "--timeout", "3"])
    assert res.exit_code == 1
    row = _rows(json.loads(res.stdout))[("kafka", dead)]
    assert row["status"] == "fail" and "cannot connect" in row["detail"]


# --------------------------------------------------------------------------- status


def test_status_lag_and_dead_letters_by_reason(kafka_bootstrap, emulator, tmp_path):
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator)
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(41)
    n = 25
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), [f.record(ROUTE) for _ in range(n)]))
    produce(kafka_bootstrap, route.dlt, [(b"k", b"v")] * 4, headers=_dead_letter(cfg, "map", "mapping_failed", "MappingError"))
    produce(kafka_bootstrap, route.dlt, [(b"k", b"v")] * 2, headers=_dead_letter(cfg, "deliver", "bad_request", "Rejected", 400))
    produce(kafka_bootstrap, route.dlt, [(b"k", b"v")], headers=[("__connect.errors.stage", b"VALUE_CONVERTER")])

    # nothing consumed yet: everything is lag
    report = gather_status(cfg)
    (rs,) = report.routes
    assert report.ok and rs.topic_error is None
    assert rs.lag == n and all(p.committed is None for p in rs.partitions)
    assert rs.dead_letters is not None and rs.dead_letters.complete
    assert rs.dead_letters.total == 7
    expected = {("map", "mapping_failed"): 4, ("deliver", "bad_request"): 2, ("VALUE_CONVERTER", "?"): 1}
    assert dict(rs.dead_letters.by_reason) == expected
    assert rs.paused.text == "unknown (no --metrics-url)"

    # the group commits part of partition 0: the lag drops by exactly that much
    p0 = next(p for p in rs.partitions if p.high > 0)
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": cfg.kafka.group_id, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(route.topic, p0.partition, p0.high)], asynchronous=False)
    finally:
        c.close()
    again = gather_status(cfg).routes[0]
    assert again.lag == n - p0.high
    assert next(p for p in again.partitions if p.partition == p0.partition).committed == p0.high

    # the CLI: table and JSON; a cap on the scan says so
    runner = CliRunner()
    res = runner.invoke(app, ["status", "--config", str(path)])
    assert res.exit_code == 0, res.output
    assert "mapping_failed" in res.output and "unknown (no --metrics-url)" in res.output
    capped = runner.invoke(app, ["status", "--config", str(path), "--max-scan", "3", "--json"])
    assert capped.exit_code == 0
    dl = json.loads(capped.stdout)["routes"][0]["dead_letters"]
    assert dl["total"] == 7 and dl["scanned"] == 3 and dl["capped"] is True and dl["complete"] is False
    assert sum(r["count"] for r in dl["by_reason"]) == 3
    table = runner.invoke(app, ["status", "--config", str(path), "--max-scan", "3"])
    assert "capped by --max-scan" in table.output and "the breakdown is partial" in table.output

    # status committed nothing: not for the bridge's group beyond what we committed, not for its scan consumer
    assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic)[p0.partition] == p0.high
    assert all(o < 0 for o in committed(kafka_bootstrap, f"{cfg.kafka.group_id}-ops-status", route.dlt).values())
    assert all(o < 0 for o in committed(kafka_bootstrap, cfg.kafka.group_id, route.dlt).values())


def test_status_missing_topic_exits_1(kafka_bootstrap, emulator, tmp_path):
    cfg, path = _config(tmp_path, kafka_bootstrap, emulator)
    res = CliRunner().invoke(app, ["status", "--config", str(path), "--json"])
    assert res.exit_code == 1
    (r,) = json.loads(res.stdout)["routes"]
    assert r["topic_error"] == "topic missing" and r["lag"] is None
    assert r["dead_letters"]["exists"] is False


async def test_status_reads_paused_from_the_worker_metrics(kafka_bootstrap, emulator, tmp_path):
    # paused = the route holds worker.max_in_flight_events unsettled records (its destination is down)
    retry = {"retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.2}}
    cfg, _ = _config(tmp_path, kafka_bootstrap, emulator, zeotap=retry, worker={"max_in_flight_events": 10})
    route = cfg.routes[ROUTE]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    emulator.admin.set_faults("zeotap", outage_for_seconds=120)
    # the registry is process-wide: start from no sample for the route, whatever earlier tests left
    with contextlib.suppress(KeyError):
        METRICS.paused.remove(ROUTE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    worker = Worker(cfg, web_port=port, install_signals=False)
    task = asyncio.ensure_future(worker.main())
    try:
        for _ in range(120):
            if worker.ready:
                break
            await asyncio.sleep(0.25)
        # nothing to hold yet: the worker reports the route running
        report = await asyncio.to_thread(gather_status, cfg, metrics_urls=[url], max_scan=0)
        assert report.metrics[0].error is None
        assert report.routes[0].paused.text == "no", report.routes[0].paused

        f = SampleFactory(42)
        produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), [f.record(ROUTE) for _ in range(20)]))
        for _ in range(120):
            await asyncio.sleep(0.5)
            report = await asyncio.to_thread(gather_status, cfg, metrics_urls=[url], max_scan=0)
            if report.routes[0].paused.paused_on:
                break
        paused = report.routes[0].paused
        assert paused.known and paused.paused_on == [f"{url}/metrics"], paused
        assert paused.text == "PAUSED (1/1 workers)"
        assert report.metrics[0].error is None

        emulator.admin.clear_faults()
        for _ in range(120):
            await asyncio.sleep(0.5)
            report = await asyncio.to_thread(gather_status, cfg, metrics_urls=[url], max_scan=0)
            if not report.routes[0].paused.paused_on:
                break
        assert report.routes[0].paused.text == "no"
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 60)
        with contextlib.suppress(KeyError):  # leave no state to the next test
            METRICS.paused.remove(ROUTE)
