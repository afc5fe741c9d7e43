"""The worker on a real Kafka broker against the destination emulator: outcomes counted, nothing lost."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator

import orjson
import pytest
import yaml

from streams.deadletter import H_DEBUG, H_EXC_CLASS, H_OFFSET, H_PARTITION, H_REASON, H_STAGE, H_STATUS, H_TOPIC
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import EVENTS, SampleFactory
from streams.native import load_extension
from streams.pipeline.outcome import Payload, Rejected
from streams.routes import build_pipelines
from tests.integration import harness
from tests.integration.harness import (
    API_KEY,
    WRITE_KEY,
    committed,
    create_topics,
    dead_letters,
    encoded,
    end_offsets,
    make_config,
    produce,
    read_all,
    run_worker_until,
)

pytestmark = pytest.mark.kafka


engine = harness.both_engines()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    cfg = EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,), seed=5)
    with Emulator(cfg) as emu:
        yield emu


def zeotap_ids(emu: Emulator) -> int:
    return int(emu.admin.stats()["destinations"]["zeotap"]["unique_ids"])


def _without_user_id(route: str) -> dict:
    """The reference route's mapping without `user.userId` (a plain customer id)."""
    mapping = copy.deepcopy(yaml.safe_load(harness.EXAMPLE.read_text())["routes"][route]["mapping"])
    mapping["user"].pop("userId")
    return mapping


async def test_happy_path_all_routes_and_destinations(kafka_bootstrap, emulator, tmp_path):
    """Every shipped route to Zeotap plus Audiohook and the activation API: what arrives is what
    the transform core produces, byte for byte, and every record is accounted for."""
    cfg, _ = make_config(
        tmp_path,
        kafka_bootstrap,
        emulator.base_url,
        routes=EVENTS,
        extra_routes={
            # Audiohook takes only hashed identifiers: the page-view mapping without the plain userId
            "pageview_audiohook": {"like": "page_view", "destination": "audiohook", "mapping": _without_user_id("page_view")},
            "purchase_activation": {"like": "purchase_completed", "destination": "activation"},
        },
    )
    f = SampleFactory(11)
    produced: dict[str, list[tuple[bytes, bytes]]] = {}
    for name, route in cfg.routes.items():
        event = name if name in EVENTS else {"pageview_audiohook": "page_view", "purchase_activation": "purchase_completed"}[name]
        recs = [f.record(event) for _ in range(40)]
        produced[name] = encoded(cfg.schema_path(route), recs)
        create_topics(kafka_bootstrap, [route.topic, route.dlt])
        produce(kafka_bootstrap, route.topic, produced[name])
    total = sum(len(v) for v in produced.values())

    # what the transform core makes of the same bytes
    pipelines = build_pipelines(cfg)
    expected: dict[str, dict[str, bytes]] = {"zeotap": {}, "audiohook": {}, "activation": {}}
    expected_dead: dict[str, set[bytes]] = {name: set() for name in produced}
    n_payloads = 0
    for name, values in produced.items():
        for i, (key, value) in enumerate(values):
            out = pipelines[name].process(value, cfg.routes[name].topic, 0, i)
            if isinstance(out, Payload):
                expected[pipelines[name].destination.name][out.event_id] = out.body
                n_payloads += 1
            elif isinstance(out, Rejected):
                expected_dead[name].add(key)

    worker, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= total, timeout=90)
    assert code == 0
    assert worker.bridge.settled == total

    stats = emulator.admin.stats()["destinations"]
    for dest, want in expected.items():
        got = {
            orjson.loads(p)["event"]["eventId"] if dest == "zeotap" else orjson.loads(p)["event_id"]: p
            for p in (orjson.dumps(x) for x in emulator.admin.payloads(dest))
        }
        assert set(got) == set(want), dest
        for eid, body in want.items():
            assert orjson.loads(got[eid]) == orjson.loads(body), (dest, eid)
        assert stats[dest]["duplicates"] == 0
    # dead-lettered exactly what the transform core rejects (Audiohook: records without an IP)
    for name, route in cfg.routes.items():
        assert {m.key() for m, _ in dead_letters(kafka_bootstrap, route.dlt)} == expected_dead[name], name
        assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic) == end_offsets(kafka_bootstrap, route.topic)
    assert n_payloads > total * 0.5
    assert all(len(want) >= 10 for want in expected.values()), {d: len(w) for d, w in expected.items()}


async def test_poison_records_are_dead_lettered_with_original_bytes(kafka_bootstrap, emulator, tmp_path):
    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(12)
    good = encoded(cfg.schema_path(route), [f.record("purchase_completed") for _ in range(200)])
    no_id = f.record("purchase_completed")
    no_id["customer"] = {k: None for k in no_id["customer"]}
    no_country = f.record("purchase_completed")
    no_country["customer"].update(country=None, phone=None)
    no_country["context"].update(ip_address=None, locale=None)
    bad = [(b"garbage", b"\x02\xff\xfe not avro"), (b"tomb", None)] + encoded(cfg.schema_path(route), [no_id, no_country])
    produce(kafka_bootstrap, route.topic, good[:100] + bad + good[100:], headers=[("trace-id", b"abc-123")])
    total = len(good) + len(bad)

    worker, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= total)
    assert code == 0
    assert zeotap_ids(emulator) == 200
    dls = dead_letters(kafka_bootstrap, route.dlt)
    assert len(dls) == 3  # the tombstone is filtered (decode:tombstone), not dead-lettered
    by_key = {m.key(): (m, h) for m, h in dls}
    assert set(by_key) == {k for k, _ in bad} - {b"tomb"}
    source = {m.key(): (m.partition(), m.offset()) for m in read_all(kafka_bootstrap, route.topic)}
    for key, value in bad[:1] + bad[2:]:
        m, h = by_key[key]
        assert m.value() == value  # original bytes, byte for byte
        assert h["trace-id"] == "abc-123"  # original headers kept
        assert h[H_TOPIC] == route.topic
        assert (int(h[H_PARTITION]), int(h[H_OFFSET])) == source[key]
    assert by_key[b"garbage"][1][H_STAGE] == "decode"
    assert by_key[b"garbage"][1][H_EXC_CLASS] == "DecodeError"
    # the route ran on its native plan, which made the good records' payloads and handed the bad ones
    # to the Python pipeline (whose dead letters and filter are the ones checked above)
    if load_extension() is not None or os.environ.get("CI") == "true":
        plan = worker.bridge.pipelines["purchase_completed"].native
        assert plan is not None
        stats = plan.stats()
        assert stats["payloads"] == 200, stats
        assert {"decode", "tombstone", "no_identifier", "no_country"} <= set(stats["handed_back"]), stats
    reasons = {h[H_REASON] for _, h in dls}
    assert {"missing_identifier", "missing_country", "undecodable"} <= reasons
    # no raw PII in any dead-letter header
    for _, h in dls:
        blob = repr(h)
        assert "@" not in blob
    assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic) == end_offsets(kafka_bootstrap, route.topic)


async def test_one_bad_event_in_a_batch_of_500_is_isolated(kafka_bootstrap, emulator, tmp_path):
    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url, zeotap={"batch": {"max_events": 500, "linger_ms": 500}})
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt], partitions=1)
    f = SampleFactory(13)
    recs = [f.record("purchase_completed") for _ in range(500)]
    poison = recs[317]["event_id"]
    emulator.admin.set_faults("zeotap", poison_ids=[poison])
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), recs))

    worker, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= 500)
    assert code == 0
    assert zeotap_ids(emulator) == 499
    dls = dead_letters(kafka_bootstrap, route.dlt)
    assert len(dls) == 1
    m, h = dls[0]
    assert m.key() == poison.encode()
    assert h[H_STAGE] == "deliver" and h[H_STATUS] == "400"
    assert poison in h[H_DEBUG]  # Zeotap's own x-zeo-debug text
    requests = emulator.admin.stats()["destinations"]["zeotap"]["requests"]
    assert requests.get("400", 0) >= 9  # log2(500) splits down to the bad one


async def test_outage_pauses_instead_of_dead_lettering(kafka_bootstrap, emulator, tmp_path):
    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url, worker={"max_in_flight_events": 1000})
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(14)
    n = 3000
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), [f.record("purchase_completed") for _ in range(n)]))
    emulator.admin.set_faults("zeotap", outage_for_seconds=30)
    t0 = time.monotonic()
    held: list[int] = []

    def done(w) -> bool:
        held.append(w.bridge.capacity["purchase_completed"].used)
        return w.bridge.settled >= n

    worker, code = await run_worker_until(cfg, done, timeout=120)
    assert code == 0
    assert time.monotonic() - t0 >= 30
    assert zeotap_ids(emulator) == n
    assert dead_letters(kafka_bootstrap, route.dlt) == []
    # memory bounded: never more records held than the configured in-flight limit (+ one take)
    assert max(held) <= 1000 + 500
    assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic) == end_offsets(kafka_bootstrap, route.topic)


async def test_retry_after_is_honoured(kafka_bootstrap, emulator, tmp_path):
    # one request carries all 50 events, so the retried request is the one that was throttled
    cfg, _ = make_config(
        tmp_path, kafka_bootstrap, emulator.base_url, zeotap={"batch": {"max_events": 500, "linger_ms": 800}, "concurrency": 1}
    )
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt], partitions=1)
    f = SampleFactory(15)
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), [f.record("purchase_completed") for _ in range(50)]))
    emulator.admin.set_faults("zeotap", throttle_rate=1.0, retry_after=2)
    import asyncio

    async def lift() -> None:
        # after the first 429, answer normally again
        while emulator.admin.stats()["destinations"]["zeotap"]["requests"].get("429", 0) == 0:
            await asyncio.sleep(0.01)
        emulator.admin.clear_faults()

    lifter = asyncio.ensure_future(lift())
    worker, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= 50)
    await lifter
    assert code == 0
    stats = emulator.admin.stats()["destinations"]["zeotap"]
    assert stats["requests"]["429"] == 1
    assert zeotap_ids(emulator) == 50
    throttled_ms = [f["ms"] for f in stats["fault_times"] if f["kind"] == "throttle"]
    assert len(throttled_ms) == 1
    # nothing reached the destination in the 2 s after it said Retry-After: 2
    receipts = emulator.admin.receipts("zeotap")["zeotap"].values()
    assert all(r - throttled_ms[0] >= 2000 for r in receipts if r > throttled_ms[0])
    assert max(receipts) - throttled_ms[0] >= 2000


async def test_unauthorized_stops_without_dead_letters_or_commits(kafka_bootstrap, emulator, tmp_path, caplog):
    caplog.set_level("DEBUG")
    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url, write_key="wrong-key-9d8e7f")
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(16)
    recs = [f.record("purchase_completed") for _ in range(100)]
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), recs))

    worker, code = await run_worker_until(cfg, lambda w: w.bridge.fatal is not None, timeout=60)
    assert code == 3
    assert "zeotap" in str(worker.bridge.fatal) and "401" in str(worker.bridge.fatal)
    assert worker.bridge.settled == 0
    assert dead_letters(kafka_bootstrap, route.dlt) == []
    offsets = committed(kafka_bootstrap, cfg.kafka.group_id, route.topic)
    assert all(o < 0 for o in offsets.values()), offsets  # nothing committed
    # the message names the destination; the write key never reaches the logs, nor raw emails
    assert any("zeotap" in r.getMessage() and "401" in r.getMessage() for r in caplog.records)
    logs = caplog.text
    assert "wrong-key-9d8e7f" not in logs
    import base64

    assert base64.b64encode(b"w_k:wrong-key-9d8e7f").decode() not in logs
    emails = [r["customer"]["email"].strip() for r in recs if r["customer"]["email"]]
    assert emails and not [e for e in emails if e in logs or e.lower() in logs]


async def test_one_destination_outage_does_not_stop_another(kafka_bootstrap, emulator, tmp_path):
    cfg, _ = make_config(
        tmp_path,
        kafka_bootstrap,
        emulator.base_url,
        extra_routes={"purchase_activation": {"like": "purchase_completed", "destination": "activation"}},
        worker={"max_in_flight_events": 600},
    )
    zroute, aroute = cfg.routes["purchase_completed"], cfg.routes["purchase_activation"]
    create_topics(kafka_bootstrap, [zroute.topic, zroute.dlt, aroute.topic, aroute.dlt])
    f = SampleFactory(17)
    n = 2000
    produce(kafka_bootstrap, zroute.topic, encoded(cfg.schema_path(zroute), [f.record("purchase_completed") for _ in range(n)]))
    arecords = [f.record("purchase_completed") for _ in range(n)]
    produce(kafka_bootstrap, aroute.topic, encoded(cfg.schema_path(aroute), arecords))
    # the activation API's customer_id comes from one identifier (userId): a record without it is
    # dead-lettered at encode, never sent with another kind of id in its place
    sendable = sum(1 for r in arecords if r["customer"]["customer_id"])
    assert 0 < sendable < n
    emulator.admin.set_faults("zeotap", outage_for_seconds=600)

    def activation_done(w) -> bool:
        return emulator.admin.stats()["destinations"]["activation"]["unique_ids"] >= sendable

    worker, code = await run_worker_until(cfg, activation_done, timeout=60)
    assert code == 0
    stats = emulator.admin.stats()["destinations"]
    assert stats["activation"]["unique_ids"] == sendable  # delivered in full while Zeotap was down
    reasons = [(h.get(H_STAGE), h.get(H_REASON)) for _, h in dead_letters(kafka_bootstrap, aroute.dlt)]
    assert reasons == [("encode", "missing_required_field")] * (n - sendable)
    assert stats["zeotap"]["unique_ids"] == 0
    assert dead_letters(kafka_bootstrap, zroute.dlt) == []
    # the Zeotap route committed nothing it did not deliver
    assert sum(max(0, o) for o in committed(kafka_bootstrap, cfg.kafka.group_id, zroute.topic).values()) == 0
    assert committed(kafka_bootstrap, cfg.kafka.group_id, aroute.topic) == end_offsets(kafka_bootstrap, aroute.topic)


async def test_metrics_and_health_endpoints(kafka_bootstrap, emulator, tmp_path):
    import asyncio
    import socket

    import httpx
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from streams.metrics import METRICS
    from streams.worker import Worker

    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(18)
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), [f.record("purchase_completed") for _ in range(100)]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    # the registry is process-wide and earlier tests filled it: this worker's part is the difference
    outcomes = ("s2s_records_delivered_total", "s2s_records_dead_lettered_total", "s2s_records_filtered_total")

    def route_totals(page: str) -> tuple[float, float]:
        """(records consumed, records settled: delivered + dead-lettered + filtered) of the route."""
        consumed = settled = 0.0
        for fam in text_string_to_metric_families(page):
            for sample in fam.samples:
                if sample.labels.get("route") != "purchase_completed":
                    continue
                if sample.name == "s2s_records_consumed_total":
                    consumed += sample.value
                elif sample.name in outcomes:
                    settled += sample.value
        return consumed, settled

    consumed_before, settled_before = route_totals(generate_latest(METRICS.registry).decode())

    worker = Worker(cfg, web_port=port, install_signals=False)
    task = asyncio.ensure_future(worker.main())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                if worker.bridge.settled >= 100:
                    break
                await asyncio.sleep(0.1)
            assert worker.bridge.settled == 100
            health, ready = await client.get("/healthz"), await client.get("/readyz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            assert (ready.status_code, ready.json()) == (200, {"ready": True})
            page = await client.get("/metrics")
            text = page.text
    finally:
        worker.request_stop()
        assert await task == 0
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    consumed, settled = route_totals(text)
    assert consumed - consumed_before == 100
    assert settled - settled_before == 100  # every record delivered, dead-lettered or filtered, counted once
    assert "s2s_http_request_duration_seconds_bucket" in text
    assert WRITE_KEY not in text
    assert "@" not in text  # no raw email in any label


async def test_confluent_wire_format_with_evolved_writer_schema(kafka_bootstrap, emulator, tmp_path):
    """Records written by a newer producer schema (an extra field) in the Confluent wire format:
    the writer schema comes from the registry, the route's schema reads them."""
    import json

    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from streams.codec import encode_confluent, load_schema_file, parse

    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url, kafka={"schema_registry": {"url": emulator.registry_url}})
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    writer = load_schema_file(cfg.schema_path(route))
    writer["fields"].append({"name": "coupon_code", "type": ["null", "string"], "default": None})
    schema_id = SchemaRegistryClient({"url": emulator.registry_url}).register_schema(
        f"{route.topic}-value", Schema(json.dumps(writer), "AVRO")
    )
    parsed = parse(writer)
    f = SampleFactory(19)
    recs = [dict(f.record("purchase_completed"), coupon_code="SPRING") for _ in range(300)]
    values = [(r["event_id"].encode(), encode_confluent(parsed, r, schema_id)) for r in recs]
    values.append((b"unknown-id", encode_confluent(parsed, recs[0], 999_999)))
    produce(kafka_bootstrap, route.topic, values)

    worker, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= 301)
    assert code == 0
    assert zeotap_ids(emulator) == 300
    payloads = emulator.admin.payloads("zeotap")
    assert all("coupon_code" not in p["event"] for p in payloads)  # reader schema decides the fields
    dls = dead_letters(kafka_bootstrap, route.dlt)
    assert [m.key() for m, _ in dls] == [b"unknown-id"]
    assert "999999" in dls[0][1]["__connect.errors.exception.message"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_source_records(kafka_bootstrap, emulator, tmp_path, codec):
    from confluent_kafka import Producer

    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(40)
    p = Producer({"bootstrap.servers": kafka_bootstrap, "compression.type": codec, "linger.ms": 20})
    for key, value in encoded(cfg.schema_path(route), [f.record("purchase_completed") for _ in range(200)]):
        p.produce(route.topic, key=key, value=value)
    assert p.flush(30) == 0
    worker, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= 200)
    assert code == 0 and zeotap_ids(emulator) == 200


async def test_worker_creates_missing_dead_letter_topics(kafka_bootstrap, emulator, tmp_path):
    from confluent_kafka.admin import AdminClient

    cfg, _ = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    route = cfg.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic])  # the dead-letter topic does not exist yet
    worker, code = await run_worker_until(cfg, lambda w: True, timeout=30)
    assert code == 0
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert route.dlt in md
    assert len(md[route.dlt].partitions) == cfg.kafka.topic_partitions  # not a broker auto-create
