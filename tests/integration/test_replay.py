"""Replay from the dead-letter topic on the real broker: fix, replay, nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator

import orjson
import pytest
import yaml
from confluent_kafka.admin import AdminClient

from streams.config import load_config
from streams.deadletter import H_REASON, H_REPLAY_COUNT, H_ROUTE, H_STAGE
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import SampleFactory
from streams.replay import EXIT_KAFKA, Replayer, ReplayFilter, ReplayKafkaError, run_replay
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


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,))) as emu:
        yield emu


def with_mapping_bug(path, routes=("purchase_completed",)):
    """The same config with a mapping bug: order_value coerced to int fails on any fraction."""
    raw = yaml.safe_load(path.read_text())
    for route in routes:
        raw["routes"][route]["mapping"]["event"]["order_value"] = {"path": "order_value", "as": "int"}
    bug = path.with_name("bug-" + path.name)
    bug.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(bug)


async def test_replay_after_fixing_a_mapping_bug(kafka_bootstrap, emulator, tmp_path):
    fixed, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    buggy = with_mapping_bug(path)
    route = fixed.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(31)
    recs = [f.record("purchase_completed") for _ in range(400)]
    produce(kafka_bootstrap, route.topic, encoded(fixed.schema_path(route), recs))
    broken = {r["event_id"] for r in recs if not float(r["order_value"]).is_integer()}
    assert len(broken) > 300

    worker, code = await run_worker_until(buggy, lambda w: w.bridge.settled >= 400)
    assert code == 0
    dls = dead_letters(kafka_bootstrap, route.dlt)
    assert {m.key().decode() for m, _ in dls} == broken
    assert {h[H_STAGE] for _, h in dls} == {"map"}
    delivered_before = emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"]
    assert delivered_before == 400 - len(broken)

    # a dry run prints what would be sent and commits nothing
    out = io.BytesIO()
    summary = await Replayer(fixed, "purchase_completed", dry_run=True, out=out, progress=False).run()
    assert summary.delivered == len(broken)
    assert {orjson.loads(line)["event"]["eventId"] for line in out.getvalue().splitlines()} == broken
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == delivered_before

    # interrupted replay (limit), then resumed: everything delivered exactly once
    first = await Replayer(fixed, "purchase_completed", limit=100, progress=False).run()
    assert first.read == 100 and first.delivered == 100
    rest = await Replayer(fixed, "purchase_completed", progress=False).run()
    assert rest.delivered == len(broken) - 100 and rest.failed_again == 0
    stats = emulator.admin.stats()["destinations"]["zeotap"]
    assert stats["unique_ids"] == 400
    assert stats["duplicates"] == 0
    assert len(dead_letters(kafka_bootstrap, route.dlt)) == len(broken)  # nothing new dead-lettered

    # a second replay sends nothing new
    requests = stats["requests_total"]
    again = await Replayer(fixed, "purchase_completed", progress=False).run()
    assert again.read == 0 and again.delivered == 0
    assert emulator.admin.stats()["destinations"]["zeotap"]["requests_total"] == requests


async def test_replay_that_fails_again_counts_keeps_history_and_parks(kafka_bootstrap, emulator, tmp_path):
    fixed, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    buggy = with_mapping_bug(path)
    route = fixed.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(32)
    recs = [dict(f.record("purchase_completed"), order_value=10.5) for _ in range(30)]
    good_key = recs[0]["event_id"]
    produce(kafka_bootstrap, route.topic, encoded(fixed.schema_path(route), recs), headers=[("origin", b"shop")])
    await run_worker_until(buggy, lambda w: w.bridge.settled >= 30)
    assert len(dead_letters(kafka_bootstrap, route.dlt)) == 30

    # filters: nothing matches an HTTP status of 500
    none = await Replayer(
        buggy, "purchase_completed", group="g-filter", filters=ReplayFilter(statuses={500}), progress=False
    ).run()
    assert none.skipped_by_filter == 30 and none.replayed == 0

    # replay with the bug still there: each goes back with replay count 1 and its history
    s1 = await Replayer(buggy, "purchase_completed", max_replays=1, progress=False).run()
    assert s1.failed_again == 30 and s1.reasons == {"map:mapping_failed": 30}
    dls = dead_letters(kafka_bootstrap, route.dlt)
    assert len(dls) == 60
    again = [(m, h) for m, h in dls if h.get(H_REPLAY_COUNT) == "1"]
    assert len(again) == 30
    m, h = next((m, h) for m, h in again if m.key().decode() == good_key)
    assert h["origin"] == "shop"  # the record's own headers survive
    assert h["s2s-history.0.__connect.errors.stage"] == "map"  # the first failure is kept
    assert h[H_REASON] == "mapping_failed"
    # the bytes are still the original record's
    source = {mm.key(): mm.value() for mm in read_all(kafka_bootstrap, route.topic)}
    assert m.value() == source[m.key()]

    # past max_replays: parked, not replayed again
    s2 = await Replayer(buggy, "purchase_completed", max_replays=1, progress=False).run()
    assert s2.parked == 30 and s2.failed_again == 0
    assert len(read_all(kafka_bootstrap, route.dlt + ".parked")) == 30
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 0


async def test_replay_to_source(kafka_bootstrap, emulator, tmp_path):
    fixed, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    buggy = with_mapping_bug(path)
    route = fixed.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(33)
    recs = [dict(f.record("purchase_completed"), order_value=3.25) for _ in range(20)]
    produce(kafka_bootstrap, route.topic, encoded(fixed.schema_path(route), recs), headers=[("origin", b"shop")])
    await run_worker_until(buggy, lambda w: w.bridge.settled >= 20)
    s = await Replayer(fixed, "purchase_completed", to_source=True, progress=False).run()
    assert s.to_source == 20
    msgs = read_all(kafka_bootstrap, route.topic)
    assert len(msgs) == 40
    assert sum(1 for m in msgs if [k for k, _ in m.headers() or []] == ["origin"]) == 20  # the originals
    copies = [m for m in msgs if [k for k, _ in m.headers() or []] == ["origin", H_REPLAY_COUNT]]
    assert len(copies) == 20  # the record's own headers, plus the replay count (the loop guard)
    assert {dict(m.headers())[H_REPLAY_COUNT] for m in copies} == {b"1"}
    # the worker (fixed) picks the copies up and delivers them
    await run_worker_until(fixed, lambda w: emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] >= 20)
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 20


async def test_records_skipped_by_a_filter_stay_replayable(kafka_bootstrap, emulator, tmp_path):
    fixed, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    buggy = with_mapping_bug(path)
    route = fixed.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(34)
    recs = [dict(f.record("purchase_completed"), order_value=7.5) for _ in range(60)]
    produce(kafka_bootstrap, route.topic, encoded(fixed.schema_path(route), recs))
    await run_worker_until(buggy, lambda w: w.bridge.settled >= 60)
    dls = dead_letters(kafka_bootstrap, route.dlt)
    assert len(dls) == 60
    # dead-letter partitions follow the key, original partitions the producer: the filter skips
    # records in the middle of every dead-letter partition
    in_p0 = sum(1 for _, h in dls if h["__connect.errors.partition"] == "0")
    assert 0 < in_p0 < 60

    first = await Replayer(fixed, "purchase_completed", filters=ReplayFilter(partitions={0}), progress=False).run()
    assert first.delivered == in_p0 and first.skipped_by_filter == 60 - in_p0
    # another filter later: the records the first run skipped are still there for it
    second = await Replayer(fixed, "purchase_completed", filters=ReplayFilter(partitions={1, 2}), progress=False).run()
    assert second.delivered == 60 - in_p0
    assert second.already_replayed + second.skipped_by_filter == second.read - second.delivered
    stats = emulator.admin.stats()["destinations"]["zeotap"]
    assert stats["unique_ids"] == 60 and stats["duplicates"] == 0
    # everything is re-driven now: a plain replay sends nothing and the group's commit is at the end
    requests = stats["requests_total"]
    third = await Replayer(fixed, "purchase_completed", progress=False).run()
    assert third.replayed == 0 and third.delivered == 0
    assert emulator.admin.stats()["destinations"]["zeotap"]["requests_total"] == requests
    group = f"{fixed.kafka.group_id}-replay-purchase_completed"
    assert committed(kafka_bootstrap, group, route.dlt) == end_offsets(kafka_bootstrap, route.dlt)
    # the markers say offsets, never record contents
    assert all(b"@" not in (m.value() or b"") for m in read_all(kafka_bootstrap, route.dlt + ".replayed"))


def shared_dlt_config(tmp_path, bootstrap, emulator_url):
    """Two routes (two source topics) writing to one dead-letter topic."""
    cfg, path = make_config(tmp_path, bootstrap, emulator_url, extra_routes={"purchase_b": {"like": "purchase_completed"}})
    raw = yaml.safe_load(path.read_text())
    shared = f"{cfg.routes['purchase_completed'].topic}.shared.dlt"
    for r in raw["routes"].values():
        r["dead_letter_topic"] = shared
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path), path, shared


async def test_a_shared_dead_letter_topic_is_replayed_per_route(kafka_bootstrap, emulator, tmp_path):
    fixed, path, shared = shared_dlt_config(tmp_path, kafka_bootstrap, emulator.base_url)
    buggy = with_mapping_bug(path, routes=("purchase_completed", "purchase_b"))
    a, b = fixed.routes["purchase_completed"], fixed.routes["purchase_b"]
    create_topics(kafka_bootstrap, [a.topic, b.topic, shared])
    f = SampleFactory(35)
    recs_a = [dict(f.record("purchase_completed"), order_value=1.5) for _ in range(20)]
    recs_b = [dict(f.record("purchase_completed"), order_value=2.5) for _ in range(25)]
    produce(kafka_bootstrap, a.topic, encoded(fixed.schema_path(a), recs_a))
    produce(kafka_bootstrap, b.topic, encoded(fixed.schema_path(b), recs_b))
    await run_worker_until(buggy, lambda w: w.bridge.settled >= 45)
    dls = dead_letters(kafka_bootstrap, shared)
    assert sorted(h[H_ROUTE] for _, h in dls) == ["purchase_b"] * 25 + ["purchase_completed"] * 20
    # a dead letter without a route header: two routes write here, so neither claims it
    produce(kafka_bootstrap, shared, [(b"orphan", b"not avro")])

    sa = await Replayer(fixed, "purchase_completed", progress=False).run()
    assert sa.delivered == 20 and sa.other_route == 26 and sa.failed_again == 0
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 20
    sb = await Replayer(fixed, "purchase_b", progress=False).run()
    assert sb.delivered == 25 and sb.other_route == 21
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 45
    assert len(dead_letters(kafka_bootstrap, shared)) == 46  # nothing sent back


def test_only_the_sole_route_of_a_dead_letter_topic_claims_records_without_a_route_header(tmp_path):
    fixed, _, shared = shared_dlt_config(tmp_path, "127.0.0.1:1", "http://127.0.0.1:1")
    assert not Replayer(fixed, "purchase_completed", progress=False)._ours({})
    assert Replayer(fixed, "purchase_completed", progress=False)._ours({H_ROUTE: "purchase_completed"})
    assert not Replayer(fixed, "purchase_completed", progress=False)._ours({H_ROUTE: "purchase_b"})
    single, _ = make_config(tmp_path, "127.0.0.1:1", "http://127.0.0.1:1")
    assert Replayer(single, "purchase_completed", progress=False)._ours({})


async def test_to_source_round_trips_keep_the_count_and_end_parked(kafka_bootstrap, emulator, tmp_path):
    fixed, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    buggy = with_mapping_bug(path)
    route = fixed.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    f = SampleFactory(36)
    recs = [dict(f.record("purchase_completed"), order_value=4.5) for _ in range(10)]
    produce(kafka_bootstrap, route.topic, encoded(fixed.schema_path(route), recs))
    await run_worker_until(buggy, lambda w: w.bridge.settled >= 10)
    # the bug is not fixed: every copy put back on the source fails again
    for trip in (1, 2):
        s = await Replayer(buggy, "purchase_completed", to_source=True, max_replays=2, progress=False).run()
        assert s.to_source == 10 and s.parked == 0
        await run_worker_until(buggy, lambda w: w.bridge.settled >= 10)
        counts = sorted(h[H_REPLAY_COUNT] for _, h in dead_letters(kafka_bootstrap, route.dlt))
        assert counts == sorted(str(n) for n in range(trip + 1) for _ in range(10))  # the worker kept the count
    last = await Replayer(buggy, "purchase_completed", to_source=True, max_replays=2, progress=False).run()
    assert last.parked == 10 and last.to_source == 0  # the loop guard stops it after 2 round trips
    assert len(read_all(kafka_bootstrap, route.dlt + ".parked")) == 10
    assert len(read_all(kafka_bootstrap, route.topic)) == 30


def test_a_missing_dead_letter_topic_ends_with_a_kafka_error(kafka_bootstrap, tmp_path, caplog):
    fixed, _ = make_config(tmp_path, kafka_bootstrap, "http://127.0.0.1:1")
    replayer = Replayer(fixed, "purchase_completed", topic="no-such-topic.dlt", error_timeout=5, progress=False)
    with caplog.at_level(logging.CRITICAL, logger="streams.replay"):
        code, summary = run_replay(replayer)
    assert code == EXIT_KAFKA != 0 and summary.read == 0
    assert "no-such-topic.dlt" in caplog.text


def test_an_unreachable_broker_ends_within_the_error_timeout(tmp_path, caplog):
    fixed, _ = make_config(tmp_path, "127.0.0.1:1", "http://127.0.0.1:1")
    replayer = Replayer(fixed, "purchase_completed", error_timeout=2, progress=False)
    t0 = time.monotonic()
    with caplog.at_level(logging.CRITICAL, logger="streams.replay"):
        code, _ = run_replay(replayer)
    took = time.monotonic() - t0
    assert code == EXIT_KAFKA
    assert took < 10, took
    assert "replay stopped" in caplog.text and fixed.routes["purchase_completed"].dlt in caplog.text


async def test_a_dead_letter_topic_deleted_during_the_replay_ends_it(kafka_bootstrap, emulator, tmp_path):
    fixed, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    route = fixed.routes["purchase_completed"]
    create_topics(kafka_bootstrap, [route.dlt])
    produce(kafka_bootstrap, route.dlt, [(b"k", b"v")] * 30)

    class DeletedAfterTheSnapshot(Replayer):
        def _end_offsets(self, consumer):
            ends = super()._end_offsets(consumer)
            admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
            admin.delete_topics([route.dlt])[route.dlt].result(30)
            deadline = time.monotonic() + 30
            while route.dlt in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
                time.sleep(0.2)
            return ends

    replayer = DeletedAfterTheSnapshot(fixed, "purchase_completed", error_timeout=3, progress=False)
    t0 = time.monotonic()
    with pytest.raises(ReplayKafkaError, match=route.dlt):
        await asyncio.wait_for(replayer.run(), 60)
    assert time.monotonic() - t0 < 45
    assert replayer.summary.delivered == 0
