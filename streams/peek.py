"""`s2s-bridge peek`: the live dry run — a route's pipeline over real records of its topic.

Which records (`Selection`): the ``last`` or ``first`` N of the topic (of one partition with
``partition``), or an offset range of one partition. The last N of a topic are the N newest by
record timestamp: each partition's last N by offset, merged by (timestamp, partition, offset), the N
newest kept; the first N likewise the N oldest. They are reported oldest first, a range in offset
order. The high watermarks are read once, first: records produced after that are not waited for.

Nothing is touched: the records are read with a consumer of their own that is `assign`ed its
partitions (never `subscribe`: no group join, no rebalance of the real group) under a throw-away
group id (``<group>-peek-<uuid>``, needed by librdkafka, never committed: auto commit and offset
store off, no `commit`). Nothing is sent either: no destination request, no dead letter. Each
record's outcome is the worker's (`RoutePipeline.process`; a writer schema not cached yet is
fetched from the registry in place, as replay does) and is printed by the file dry run's report
(`streams.dryrun.DryRunReport`), located by ``partition:offset``.

Every wait is bounded by ``timeout``: metadata, watermarks, and the reading (no record for that long
while some are still missing). Kafka not answering is `KafkaUnavailable`, the registry not
answering `SchemaRegistryUnavailable` (the worker would hold the route: nothing is dead-lettered
for it); a selection that does not fit the topic is a `ConfigError`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

from streams.codec import SchemaRegistryUnavailable
from streams.config import BridgeConfig, KafkaSettings
from streams.dryrun import DryRunReport
from streams.errors import ConfigError
from streams.kafka import KafkaUnavailable, confluent_conf, connect_admin
from streams.logs import rdkafka_logger
from streams.pipeline.outcome import Outcome
from streams.routes import build_pipelines

DEFAULT_COUNT = 10


@dataclass(frozen=True)
class Selection:
    """Which records of the route's topic to peek at.

    ``last``/``first``: `count` records (of `partition`, else of the whole topic); ``range``: offsets
    `offset_from` to `offset_to` (inclusive; None: to the newest record) of `partition`."""

    mode: Literal["last", "first", "range"] = "last"
    count: int = DEFAULT_COUNT
    partition: int | None = None
    offset_from: int = 0
    offset_to: int | None = None

    @classmethod
    def from_options(
        cls,
        last: int | None = None,
        first: int | None = None,
        partition: int | None = None,
        offset_from: int | None = None,
        offset_to: int | None = None,
    ) -> Selection:
        """The selection the command-line options ask for; ConfigError naming the option that does not fit."""
        if partition is not None and partition < 0:
            raise ConfigError(f"--partition must be >= 0, not {partition}")
        if offset_from is None:
            if offset_to is not None:
                raise ConfigError("--offset-to needs --offset-from (and --partition)")
            if last is not None and first is not None:
                raise ConfigError("give --last or --first, not both")
            count, option = (first, "--first") if first is not None else (last, "--last")
            if count is not None and count < 1:
                raise ConfigError(f"{option} must be >= 1, not {count}")
            return cls("first" if first is not None else "last", count or DEFAULT_COUNT, partition)
        if last is not None or first is not None:
            raise ConfigError("--offset-from selects a range: give it without --last or --first")
        if partition is None:
            raise ConfigError("--offset-from needs --partition (a range is on one partition)")
        if offset_from < 0:
            raise ConfigError(f"--offset-from must be >= 0, not {offset_from}")
        if offset_to is not None and offset_to < offset_from:
            raise ConfigError(f"--offset-to {offset_to} is before --offset-from {offset_from}")
        return cls("range", 0, partition, offset_from, offset_to)


@dataclass(frozen=True)
class Fetched:
    """A record as read from the topic."""

    partition: int
    offset: int
    timestamp_ms: int  # -1 when the record has none
    value: bytes | None


@dataclass(frozen=True)
class Peeked:
    """A record and what the worker would make of it."""

    partition: int
    offset: int
    timestamp_ms: int
    outcome: Outcome


def _span(first: int, end: int) -> str:
    return f"offsets {first}-{end - 1}" if end > first else f"no records (next offset {end})"


def offset_ranges(topic: str, selection: Selection, watermarks: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per partition, the offsets [start, end) to read, from each partition's (low, high) watermarks;
    partitions with nothing to read are left out. ConfigError when the selection does not fit."""
    if selection.partition is not None and selection.partition not in watermarks:
        have = f"0-{max(watermarks)}" if watermarks else "none"
        raise ConfigError(f"--partition {selection.partition}: topic {topic!r} has partitions {have}")
    if selection.mode == "range":
        p = selection.partition
        assert p is not None
        low, high = watermarks[p]
        to = high - 1 if selection.offset_to is None else selection.offset_to
        for option, offset in (("--offset-from", selection.offset_from), ("--offset-to", to)):
            if not low <= offset < high:
                raise ConfigError(f"{option} {offset}: partition {p} of {topic!r} holds {_span(low, high)}")
        return {p: (selection.offset_from, to + 1)}
    parts = [selection.partition] if selection.partition is not None else sorted(watermarks)
    out: dict[int, tuple[int, int]] = {}
    for p in parts:
        low, high = watermarks[p]
        if selection.mode == "first":
            start, end = low, min(high, low + selection.count)
        else:
            start, end = max(low, high - selection.count), high
        if end > start:
            out[p] = (start, end)
    return out


def chosen(selection: Selection, records: Iterable[Fetched]) -> list[Fetched]:
    """The selected records in the order they are reported: a range in offset order; the first/last
    N the N oldest/newest by (timestamp, partition, offset), oldest first."""
    ordered = sorted(records, key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    if selection.mode == "range":
        return sorted(ordered, key=lambda r: r.offset)
    return ordered[: selection.count] if selection.mode == "first" else ordered[-selection.count :]


class _Reader:
    """The peek's own consumer: assigned, never subscribed, never committing."""

    def __init__(self, k: KafkaSettings, timeout: float) -> None:
        from confluent_kafka import Consumer

        self.k = k
        self.timeout = timeout
        self.errors: list[str] = []
        self.consumer = Consumer(
            confluent_conf(
                k,
                **{
                    # librdkafka wants a group id; this one is never joined nor committed to
                    "group.id": f"{k.group_id}-peek-{uuid.uuid4().hex[:12]}",
                    "client.id": "s2s-bridge-peek",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "error_cb": self._on_error,
                    "logger": rdkafka_logger("peek"),
                },
            )
        )

    def _on_error(self, err: Any) -> None:
        self.errors.append(err.str())

    def unavailable(self, what: str, reason: str) -> KafkaUnavailable:
        why = f"{reason} ({self.errors[-1]})" if self.errors and self.errors[-1] not in reason else reason
        return KafkaUnavailable(f"cannot use Kafka at {self.k.bootstrap_servers}: {what}: {why}")

    def watermarks(self, topic: str, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        from confluent_kafka import KafkaException, TopicPartition

        out: dict[int, tuple[int, int]] = {}
        for p in partitions:
            try:
                out[p] = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
            except KafkaException as exc:
                raise self.unavailable(f"reading the offsets of {topic}[{p}]", exc.args[0].str()) from None
        return out

    def read(self, topic: str, ranges: dict[int, tuple[int, int]]) -> list[Fetched]:
        """Every record in `ranges`; offsets without a record (transaction markers, compacted away) are skipped."""
        from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, TopicPartition

        todo = {p: end for p, (start, end) in ranges.items()}
        self.consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
        out: list[Fetched] = []
        wanted = sum(end - start for start, end in ranges.values())
        deadline = time.monotonic() + self.timeout
        while todo:
            # consume() returns when it has that many records or after its timeout: ask for no more than are left
            wanted_now = max(1, min(500, wanted - len(out)))
            msgs = self.consumer.consume(wanted_now, max(0.0, min(1.0, deadline - time.monotonic())))
            done: list[int] = []
            for m in msgs:
                p, offset = m.partition(), m.offset()
                if m.error() is not None or p not in todo or offset is None or offset >= todo[p] or offset < ranges[p][0]:
                    continue
                kind, ts = m.timestamp()
                out.append(Fetched(p, offset, ts if kind != TIMESTAMP_NOT_AVAILABLE else -1, m.value()))
                deadline = time.monotonic() + self.timeout
                if offset + 1 >= todo[p]:
                    done.append(p)
            if not msgs:  # the last offsets may hold no record: the position says the range is read
                positions = self.consumer.position([TopicPartition(topic, p) for p in todo])
                done += [tp.partition for tp in positions if tp.offset >= todo[tp.partition]]
            for p in done:
                todo.pop(p, None)
                self.consumer.pause([TopicPartition(topic, p)])  # read to its end: fetch nothing more of it
            if todo and time.monotonic() >= deadline:
                parts = ", ".join(str(p) for p in sorted(todo))
                raise self.unavailable(f"reading {topic}", f"no record of partitions {parts} arrived within {self.timeout:g}s")
        return out

    def close(self) -> None:
        self.consumer.close()  # commits nothing: auto commit is off and nothing was stored


def read_records(config: BridgeConfig, topic: str, selection: Selection, timeout: float = 10.0) -> list[Fetched]:
    """The selected records of `topic`, in the order they are reported (`chosen`)."""
    _, md = connect_admin(config.kafka, timeout)  # KafkaUnavailable, naming the servers and librdkafka's reason
    listed = md.topics.get(topic)
    if listed is None:
        raise ConfigError(f"topic {topic!r} does not exist on {config.kafka.bootstrap_servers}")
    if listed.error is not None:
        raise KafkaUnavailable(f"cannot use Kafka at {config.kafka.bootstrap_servers}: topic {topic!r}: {listed.error.str()}")
    reader = _Reader(config.kafka, timeout)
    try:
        ranges = offset_ranges(topic, selection, reader.watermarks(topic, sorted(listed.partitions)))
        return chosen(selection, reader.read(topic, ranges) if ranges else [])
    finally:
        reader.close()


def peek(config: BridgeConfig, route: str, selection: Selection, timeout: float = 10.0) -> Iterator[Peeked]:
    """What the worker would make of the selected records of the route's topic, one by one (read
    first, all of them, then processed). Raises ConfigError (unknown route, a selection that does not
    fit the topic), KafkaUnavailable, SchemaRegistryUnavailable (naming the record it stopped at)."""
    if route not in config.routes:
        raise ConfigError(f"unknown route {route!r} (known: {', '.join(config.routes)})")
    pipeline = build_pipelines(config, routes=[route])[route]
    topic = config.routes[route].topic
    for rec in read_records(config, topic, selection, timeout):
        try:
            outcome = pipeline.process_blocking(rec.value, topic, rec.partition, rec.offset)
        except SchemaRegistryUnavailable as exc:
            raise SchemaRegistryUnavailable(
                f"schema registry unavailable at record {rec.partition}:{rec.offset} ({exc}): "
                "the worker would hold the route here, nothing would be dead-lettered"
            ) from None
        yield Peeked(rec.partition, rec.offset, rec.timestamp_ms, outcome)


def run_peek(
    config: BridgeConfig, route: str, selection: Selection, out: IO[bytes], err: IO[bytes], timeout: float = 10.0
) -> DryRunReport:
    """Print each selected record's outcome as the file dry run does, located by ``partition:offset``;
    returns the report (its counts and summary)."""
    report = DryRunReport(out, err, locate_payloads=True)
    try:
        for rec in peek(config, route, selection, timeout):
            report.add({"record": f"{rec.partition}:{rec.offset}"}, rec.outcome)
    finally:
        report.flush()
    return report
