"""`s2s-bridge peek` on the real broker: which records it reads, what it says of each, and that it
touches nothing (no group, no commit, no dead letter, no destination request)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.codec import encode_confluent, encode_plain, load_schema_file, parse
from streams.config import BridgeConfig
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import SampleFactory
from streams.peek import Selection, peek
from streams.pipeline.outcome import Filtered, Payload
from streams.routes import build_pipelines
from tests.integration.harness import API_KEY, REPO, WRITE_KEY, committed, create_topics, make_config

pytestmark = pytest.mark.kafka

ROUTE = "purchase_completed"
PARTITIONS = 2
# the records in timestamp order; the i-th goes to partition i % 2 at offset i // 2
KINDS = ["good", "good", "denied", "no_ids", "good", "undecodable", "no_country", "good", "unknown_id", "denied", "good"]
EXPECTED = {
    "good": ("sent", None, None),
    "denied": ("filtered", "consent", "consent_denied"),
    "no_ids": ("rejected", "enrich", "missing_identifier"),
    "no_country": ("rejected", "enrich", "missing_country"),
    "undecodable": ("rejected", "decode", "undecodable"),
    "unknown_id": ("rejected", "decode", "unknown_schema_id"),  # Confluent framing only; else a good one
}
UNDECODABLE = b"\xff\xfe this is not Avro at all"


def _at(i: int) -> str:
    return f"{i % PARTITIONS}:{i // PARTITIONS}"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,))) as emu:
        yield emu


class Topic:
    """A fresh topic holding KINDS, its config and what the records were."""

    def __init__(self, tmp_path: Path, bootstrap: str, emulator: Emulator, *, confluent: bool) -> None:
        kafka = {"schema_registry": {"url": emulator.registry_url}} if confluent else {}
        self.cfg, self.path = make_config(tmp_path, bootstrap, emulator.base_url, kafka=kafka, partitions=PARTITIONS)
        self.bootstrap = bootstrap
        self.route = self.cfg.routes[ROUTE]
        self.kinds = [k if confluent or k != "unknown_id" else "good" for k in KINDS]
        create_topics(bootstrap, [self.route.topic], PARTITIONS)  # the dead-letter topic is not created
        schema = load_schema_file(self.cfg.schema_path(self.route))
        parsed = parse(schema)
        schema_id = 0
        if confluent:
            registry = SchemaRegistryClient({"url": emulator.registry_url})
            schema_id = registry.register_schema(f"{self.route.topic}-value", Schema(json.dumps(schema), "AVRO"))
        f = SampleFactory(seed=15)
        self.records: list[dict[str, Any] | None] = []
        self.values: list[bytes] = []
        for kind in self.kinds:
            rec: dict[str, Any] | None
            if kind == "undecodable":
                rec = None
            elif kind == "no_country":
                rec = f.record(ROUTE, country=False)
                rec["customer"]["phone"] = None  # an international number would give the country
            else:
                rec = f.record(ROUTE, identifiers=kind != "no_ids", consent_granted=kind != "denied")
            self.records.append(rec)
            if rec is None:
                self.values.append(UNDECODABLE)
            elif confluent:
                self.values.append(encode_confluent(parsed, rec, 999_999 if kind == "unknown_id" else schema_id))
            else:
                self.values.append(encode_plain(parsed, rec))
        # timestamps set, a second apart, so that "newest" does not depend on when the producer ran
        base = int(time.time() * 1000) - 60_000
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        for i, value in enumerate(self.values):
            p.produce(self.route.topic, value=value, partition=i % PARTITIONS, timestamp=base + i * 1000)
        assert p.flush(30) == 0

    def expected_body(self, i: int) -> bytes:
        """What the worker's pipeline makes of record i (built here, not by peek)."""
        pipeline = build_pipelines(self.cfg, routes=[ROUTE])[ROUTE]
        outcome = pipeline.process_blocking(self.values[i], self.route.topic, i % PARTITIONS, i // PARTITIONS)
        assert isinstance(outcome, Payload)
        return outcome.body


def _cli(path: Path, *args: str, route: str = ROUTE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "streams", "peek", "--config", str(path), "--route", route, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _peeked(cfg: BridgeConfig, selection: Selection) -> list[tuple[str, str, str | None, str | None]]:
    """(partition:offset, outcome, stage, reason) of each record peek reports, in its order."""
    out = []
    for rec in peek(cfg, ROUTE, selection, timeout=20):
        o = rec.outcome
        kind = "sent" if isinstance(o, Payload) else "filtered" if isinstance(o, Filtered) else "rejected"
        stage, reason = (None, None) if isinstance(o, Payload) else (o.stage, o.reason)
        out.append((f"{rec.partition}:{rec.offset}", kind, stage, reason))
    return out


def _expected(topic: Topic, indexes: list[int]) -> list[tuple[str, str, str | None, str | None]]:
    return [(_at(i), *EXPECTED[topic.kinds[i]]) for i in indexes]


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets, asked again while a fresh broker's group coordinator is not ready."""
    for attempt in range(20):
        try:
            return committed(bootstrap, group, topic, PARTITIONS)
        except KafkaException as exc:
            if attempt == 19 or "COORDINATOR" not in str(exc):
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _assert_nothing_touched(topic: Topic, emulator: Emulator) -> None:
    """No group of the config's group id (nor a peek group) exists or has offsets, no dead letter was
    written, no destination was asked."""
    admin = AdminClient({"bootstrap.servers": topic.bootstrap})
    groups = admin.list_consumer_groups(request_timeout=10).result(10)
    group_id = topic.cfg.kafka.group_id
    assert [g.group_id for g in groups.valid if g.group_id.startswith(group_id)] == []
    assert all(offset < 0 for offset in _committed(topic.bootstrap, group_id, topic.route.topic).values())
    assert topic.route.dlt not in admin.list_topics(timeout=10).topics
    stats = emulator.admin.stats()["destinations"]
    assert sum(d["requests_total"] for d in stats.values()) == 0, stats


@pytest.mark.parametrize("confluent", [False, True], ids=["plain", "confluent"])
def test_peek_through_the_cli(kafka_bootstrap: str, emulator: Emulator, tmp_path: Path, confluent: bool) -> None:
    topic = Topic(tmp_path, kafka_bootstrap, emulator, confluent=confluent)
    done = _cli(topic.path, "--last", "5", "--json")
    assert done.returncode == 0, done.stderr
    newest = range(len(KINDS) - 5, len(KINDS))
    stdout = done.stdout.splitlines()
    assert json.loads(stdout[-1]) == {
        "records": 5,
        "sent": sum(topic.kinds[i] == "good" for i in newest),
        "rejected": sum(EXPECTED[topic.kinds[i]][0] == "rejected" for i in newest),
        "filtered": sum(topic.kinds[i] == "denied" for i in newest),
    }
    sent = [json.loads(line) for line in stdout[:-1]]
    assert [s["record"] for s in sent] == [_at(i) for i in newest if topic.kinds[i] == "good"]
    for s in sent:  # each payload exactly as the worker's pipeline makes it
        i = next(i for i in newest if _at(i) == s["record"])
        assert s["payload"] == json.loads(topic.expected_body(i))
        assert s["payload"]["event"]["eventId"] == topic.records[i]["event_id"]  # type: ignore[index]
    *not_sent, summary = done.stderr.splitlines()
    counts = json.loads(stdout[-1])
    assert summary == (
        f"5 records: {counts['sent']} would be sent, {counts['filtered']} filtered, {counts['rejected']} dead-lettered"
    )
    lines = [json.loads(line) for line in not_sent]
    assert [(e["record"], e["outcome"], e["stage"], e["reason"]) for e in lines] == [
        x for x in _expected(topic, list(newest)) if x[1] != "sent"
    ]
    # no raw e-mail or phone, nor the write key, in what peek prints
    text = done.stdout + done.stderr
    for rec in topic.records:
        if rec is not None:
            for pii in (rec["customer"]["email"], rec["customer"]["phone"]):
                assert not pii or pii not in text
    assert WRITE_KEY not in text
    _assert_nothing_touched(topic, emulator)


@pytest.mark.parametrize("confluent", [False, True], ids=["plain", "confluent"])
def test_selections(kafka_bootstrap: str, emulator: Emulator, tmp_path: Path, confluent: bool) -> None:
    topic = Topic(tmp_path, kafka_bootstrap, emulator, confluent=confluent)
    n = len(KINDS)
    cases = [
        # the newest/oldest across both partitions by timestamp, reported oldest first
        (Selection.from_options(last=4), list(range(n - 4, n))),
        (Selection.from_options(), list(range(n - 10, n))),
        (Selection.from_options(last=50), list(range(n))),
        (Selection.from_options(first=3), [0, 1, 2]),
        # one partition: partition 1 holds the odd ones
        (Selection.from_options(last=2, partition=1), [7, 9]),
        (Selection.from_options(first=2, partition=0), [0, 2]),
        # a range on one partition, offset-to inclusive, default the newest
        (Selection.from_options(partition=0, offset_from=1, offset_to=3), [2, 4, 6]),
        (Selection.from_options(partition=1, offset_from=2), [5, 7, 9]),
        (Selection.from_options(partition=0, offset_from=5, offset_to=5), [10]),
    ]
    for selection, indexes in cases:
        assert _peeked(topic.cfg, selection) == _expected(topic, indexes), selection
    _assert_nothing_touched(topic, emulator)


def test_an_empty_topic_says_no_records(kafka_bootstrap: str, emulator: Emulator, tmp_path: Path) -> None:
    cfg, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url, partitions=PARTITIONS)
    create_topics(kafka_bootstrap, [cfg.routes[ROUTE].topic], PARTITIONS)
    done = _cli(path, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "no records"
    assert json.loads(done.stdout) == {"records": 0, "sent": 0, "rejected": 0, "filtered": 0}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--partition", "2"], "--partition 2: topic '{topic}' has partitions 0-1"),
        (["--partition", "0", "--offset-from", "6"], "--offset-from 6: partition 0 of '{topic}' holds offsets 0-5"),
        (
            ["--partition", "1", "--offset-from", "0", "--offset-to", "5"],
            "--offset-to 5: partition 1 of '{topic}' holds offsets 0-4",
        ),
        (["--first", "0"], "--first must be >= 1, not 0"),
    ],
)
def test_selection_errors_exit_2(kafka_bootstrap: str, emulator: Emulator, tmp_path: Path, args: list[str], message: str) -> None:
    topic = Topic(tmp_path, kafka_bootstrap, emulator, confluent=False)
    done = _cli(topic.path, *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {message.format(topic=topic.route.topic)}\n"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_config_and_kafka_errors(kafka_bootstrap: str, emulator: Emulator, tmp_path: Path) -> None:
    cfg, path = make_config(tmp_path, kafka_bootstrap, emulator.base_url)
    done = _cli(path, route="purchase")
    assert done.returncode == 2
    assert done.stderr == f"error: unknown route 'purchase' (known: {ROUTE})\n"

    done = _cli(path)  # the route's topic was never created
    assert done.returncode == 2
    assert done.stderr == f"error: topic {cfg.routes[ROUTE].topic!r} does not exist on {kafka_bootstrap}\n"

    nowhere = f"127.0.0.1:{_unused_port()}"
    _, unreachable = make_config(tmp_path, nowhere, emulator.base_url)
    started = time.monotonic()
    done = _cli(unreachable, "--timeout", "3")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot use Kafka at {nowhere} (PLAINTEXT): ")
    assert len(done.stderr.splitlines()) == 1  # librdkafka's own lines are not printed raw
    assert time.monotonic() - started < 60  # bounded by --timeout (and a loaded machine's start-up)


def test_registry_unavailable_exits_1_naming_the_record(kafka_bootstrap: str, emulator: Emulator, tmp_path: Path) -> None:
    topic = Topic(tmp_path, kafka_bootstrap, emulator, confluent=True)
    dead = f"http://127.0.0.1:{_unused_port()}/registry"
    # the same topic, read with a config whose registry does not answer
    raw = yaml.safe_load(topic.path.read_text())
    raw["kafka"]["schema_registry"]["url"] = dead
    path = tmp_path / "dead-registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = _cli(path, "--first", "1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: schema registry unavailable at record 0:0 (schema registry unreachable")
    assert "the worker would hold the route here, nothing would be dead-lettered" in done.stderr
    _assert_nothing_touched(topic, emulator)
