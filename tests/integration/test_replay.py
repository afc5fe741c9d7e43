"""Replay from the dead-letter topic on the real broker: fix, replay, nothing lost, nothing twice."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson
import pytest
import yaml

from streams.config import load_config
from streams.deadletter import H_REASON, H_REPLAY_COUNT, H_STAGE
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import SampleFactory
from streams.replay import Replayer, ReplayFilter
from tests.integration.harness import (
    API_KEY,
    WRITE_KEY,
    create_topics,
    dead_letters,
    encoded,
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


def with_mapping_bug(path):
    """The same config with a mapping bug: order_value coerced to int fails on any fraction."""
    raw = yaml.safe_load(path.read_text())
    raw["routes"]["purchase_completed"]["mapping"]["event"]["order_value"] = {"path": "order_value", "as": "int"}
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
    own = [m for m in msgs if [k for k, _ in m.headers() or []] == ["origin"]]
    assert len(own) == 40  # originals and copies carry only the record's own headers
    # the worker (fixed) picks the copies up and delivers them
    await run_worker_until(fixed, lambda w: emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] >= 20)
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 20
