"""`s2s-bridge replay`: re-drive dead-lettered records through today's pipeline and delivery.

Reads a route's dead-letter topic with its own consumer group up to the end offsets seen at the
start (records it dead-letters again land after them, so a run always ends), filters, and runs each
record from its original bytes exactly as the worker would: the same `RoutePipeline`, the same
`Sink`, the same dead-letter format. A record that fails again goes back to the dead-letter topic
with `s2s.replay.count` incremented and its earlier failure headers kept under `s2s-history.N.`;
`--to-source` carries the incremented count on the copy it puts back on the source topic, and the
worker keeps it when it dead-letters the copy again. Past `--max-replays` a record is parked
instead, so neither path loops.

Progress: a record is *re-driven* once its outcome is durable (delivered, filtered, dead-lettered
again, parked or put back on its source topic). A record this run does not re-drive (skipped by a
filter, dead-lettered by another route sharing the topic, `--park skip`) stays replayable. So the
replay group's committed offset only moves over records that were re-driven (it stops at the first
one that was not), and the re-driven records after that point are remembered as markers on
`<dlt>.replayed` (offsets only, per replay group): a later run starts at the committed offset and
passes over the records its group already re-drove. An interrupted replay resumes where it
stopped and a second replay re-drives nothing twice.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import BridgeConfig
from streams.deadletter import (
    CONNECT,
    H_EXC_CLASS,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_REPLAY_COUNT,
    H_ROUTE,
    H_STAGE,
    H_STATUS,
    H_TIMESTAMP,
    H_TOPIC,
    DeadLetter,
    DeadLetterProducer,
    header_dict,
)
from streams.delivery.sink import Delivered, DestinationMisconfigured, RateLimiter, Sink
from streams.destinations import make_destination
from streams.errors import DestinationRejected, FatalError
from streams.kafka import confluent_conf
from streams.logs import rdkafka_logger
from streams.pipeline.outcome import DELIVER, Filtered, Payload, Rejected
from streams.pipeline.transform import RoutePipeline
from streams.routes import build_pipelines

log = logging.getLogger("streams.replay")
HISTORY = "s2s-history."
MARKERS = ".replayed"  # <dlt>.replayed: which dead-letter offsets each replay group re-drove
EXIT_KAFKA = 4  # the dead-letter topic could not be read (missing, not authorised, unreachable)


class ReplayKafkaError(FatalError):
    """Kafka kept answering with errors (or not at all): the replay stopped instead of waiting forever."""

    exit_code = EXIT_KAFKA


@dataclass
class ReplayFilter:
    stages: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)  # matches s2s.reason or the exception class name
    statuses: set[int] = field(default_factory=set)
    partitions: set[int] = field(default_factory=set)  # original partition
    min_offset: int | None = None  # original offset range (inclusive)
    max_offset: int | None = None
    since_ms: int | None = None  # original record timestamp range
    until_ms: int | None = None

    def accepts(self, h: dict[str, str]) -> bool:
        if self.stages and h.get(H_STAGE) not in self.stages:
            return False
        if self.reasons and h.get(H_REASON) not in self.reasons and h.get(H_EXC_CLASS) not in self.reasons:
            return False
        if self.statuses and _int(h.get(H_STATUS)) not in self.statuses:
            return False
        if self.partitions and _int(h.get(H_PARTITION)) not in self.partitions:
            return False
        off = _int(h.get(H_OFFSET))
        if self.min_offset is not None and (off is None or off < self.min_offset):
            return False
        if self.max_offset is not None and (off is None or off > self.max_offset):
            return False
        ts = _int(h.get(H_TIMESTAMP))
        if self.since_ms is not None and (ts is None or ts < self.since_ms):
            return False
        return not (self.until_ms is not None and (ts is None or ts > self.until_ms))


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _pairs(m: Any) -> list[tuple[str, bytes]]:
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in (m.headers() or [])]


def replay_count_of(headers: Any) -> int:
    """The `s2s.replay.count` a record carries (0 without one, or when unreadable)."""
    return max(_int(header_dict(headers).get(H_REPLAY_COUNT)) or 0, 0)


def parse_time(value: str) -> int:
    """ISO 8601 (naive = UTC) or epoch millis -> epoch millis."""
    if value.isdigit():
        return int(value)
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


class OffsetSet:
    """Offsets of one partition as sorted, disjoint [start, end) ranges (re-driven runs are contiguous)."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        pairs = sorted([*zip(self._starts, self._ends, strict=True), (start, end)])
        starts: list[int] = []
        ends: list[int] = []
        for a, b in pairs:
            if starts and a <= ends[-1]:
                ends[-1] = max(ends[-1], b)
            else:
                starts.append(a)
                ends.append(b)
        self._starts, self._ends = starts, ends

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        i = bisect.bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._ends[i]


def _ranges(offsets: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for o in sorted(offsets):
        if out and o == out[-1][1]:
            out[-1][1] = o + 1
        else:
            out.append([o, o + 1])
    return out


@dataclass
class ReplaySummary:
    read: int = 0
    replayed: int = 0
    delivered: int = 0
    failed_again: int = 0
    filtered: int = 0
    skipped_by_filter: int = 0
    other_route: int = 0  # dead-lettered by another route sharing the topic: left for that route
    already_replayed: int = 0  # re-driven by an earlier run of this replay group
    parked: int = 0
    to_source: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "reasons"}
        d["failed_again_by_reason"] = dict(self.reasons)
        return d


class Replayer:
    def __init__(
        self,
        config: BridgeConfig,
        route: str,
        *,
        topic: str | None = None,
        group: str | None = None,
        filters: ReplayFilter | None = None,
        limit: int | None = None,
        rate: float | None = None,
        dry_run: bool = False,
        to_source: bool = False,
        max_replays: int = 5,
        park: str = "topic",  # topic | skip
        batch_size: int = 500,
        out: IO[bytes] | None = None,
        progress: bool = True,
        error_timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.route_name = route
        self.route = config.routes[route]
        self.topic = topic or self.route.dlt
        self.group = group or f"{config.kafka.group_id}-replay-{route}"
        self.filters = filters or ReplayFilter()
        self.limit = limit
        self.rate = RateLimiter(rate) if rate else None
        self.dry_run = dry_run
        self.to_source = to_source
        self.max_replays = max_replays
        self.park = park
        self.park_topic = f"{self.topic}.parked"
        self.marker_topic = f"{self.topic}{MARKERS}"
        # a dead letter without an s2s.route header is ours only when no other route writes here
        self.owns_unlabelled = [n for n, r in config.routes.items() if r.dlt == self.topic] == [route]
        self.error_timeout = error_timeout
        self.last_error: str | None = None
        self.done: dict[int, OffsetSet] = {}
        self.batch_size = batch_size
        self.out = out or sys.stdout.buffer
        self.progress = progress
        self.summary = ReplaySummary()

    # ------------------------------------------------------------------ plumbing

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = err.str()
        log.debug("kafka: %s", self.last_error)

    def _consumer(self, group: str | None = None) -> Consumer:
        return Consumer(
            confluent_conf(
                self.config.kafka,
                **{
                    "group.id": group or self.group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "client.id": "s2s-bridge-replay",
                    "error_cb": self._on_error,
                    "logger": rdkafka_logger("replay"),
                },
            )
        )

    def _kafka(self, what: str, call: Any, *args: Any, **kw: Any) -> Any:
        """A bounded Kafka call; its failure names what could not be done and librdkafka's reason."""
        try:
            return call(*args, timeout=self.error_timeout, **kw)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            reason = err.str() if isinstance(err, KafkaError) else str(err)
            if self.last_error and self.last_error not in reason:
                reason = f"{reason} ({self.last_error})"
            raise ReplayKafkaError(f"{what}: {reason}") from None

    def _end_offsets(self, consumer: Consumer) -> dict[int, int]:
        md = self._kafka(f"listing topic {self.topic}", consumer.list_topics, self.topic).topics.get(self.topic)
        if md is None or md.error is not None:
            reason = md.error.str() if md is not None and md.error is not None else "not found"
            raise ReplayKafkaError(f"dead-letter topic {self.topic}: {reason}")
        tps = [TopicPartition(self.topic, p) for p in md.partitions]
        return {tp.partition: self._kafka(f"reading {self.topic}", consumer.get_watermark_offsets, tp)[1] for tp in tps}

    def _load_markers(self) -> None:
        """What this replay group re-drove already, from `<dlt>.replayed` (a missing topic: nothing)."""
        reader = self._consumer(f"{self.group}-markers")
        try:
            md = self._kafka(f"listing topic {self.marker_topic}", reader.list_topics, self.marker_topic)
            tmd = md.topics.get(self.marker_topic)
            if tmd is None or tmd.error is not None:
                return
            want: dict[int, int] = {}
            tps = []
            for p in tmd.partitions:
                lo, hi = self._kafka(
                    f"reading {self.marker_topic}", reader.get_watermark_offsets, TopicPartition(self.marker_topic, p)
                )
                if hi > lo:
                    want[p] = hi
                    tps.append(TopicPartition(self.marker_topic, p, lo))
            if not tps:
                return
            reader.assign(tps)
            quiet_since = time.monotonic()
            while want:
                m = reader.poll(0.5)
                if m is None or m.error() is not None:
                    if time.monotonic() - quiet_since > self.error_timeout:
                        raise ReplayKafkaError(f"reading {self.marker_topic}: {self.last_error or 'no records arrived'}")
                    continue
                quiet_since = time.monotonic()
                p, o = m.partition() or 0, m.offset() or 0
                if o + 1 >= want.get(p, 0):
                    want.pop(p, None)
                if m.key() != self.group.encode():
                    continue
                try:
                    marker = orjson.loads(m.value() or b"")
                    done = self.done.setdefault(int(marker["partition"]), OffsetSet())
                    for a, b in marker["offsets"]:
                        done.add(int(a), int(b))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.warning("ignored an unreadable marker at %s[%d]@%d", self.marker_topic, m.partition(), m.offset())
        finally:
            reader.close()

    def _ensure_marker_topic(self) -> None:
        """Create `<dlt>.replayed` when the bridge may create topics (otherwise it must exist, see docs/deploy.md)."""
        k = self.config.kafka
        if not k.create_topics:
            return
        admin = AdminClient(confluent_conf(k, **{"client.id": "s2s-bridge-replay", "logger": rdkafka_logger("replay")}))
        fut = admin.create_topics([NewTopic(self.marker_topic, 1, k.replication_factor)])[self.marker_topic]
        try:
            fut.result(self.error_timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                log.warning("could not create %s: %s", self.marker_topic, err.str() if isinstance(err, KafkaError) else exc)

    # ------------------------------------------------------------------ run

    async def run(self) -> ReplaySummary:
        api = make_destination(self.route.destination, self.config.destinations[self.route.destination])
        pipeline = build_pipelines(self.config, routes=[self.route_name], destinations={api.name: api})[self.route_name]
        sink = None if self.dry_run or self.to_source else Sink(api)
        producer = (
            None if self.dry_run else DeadLetterProducer(confluent_conf(self.config.kafka, **{"client.id": "s2s-bridge-replay"}))
        )
        consumer = self._consumer()
        try:
            ends = self._end_offsets(consumer)
            committed = self._kafka(
                f"reading the committed offsets of group {self.group}",
                consumer.committed,
                [TopicPartition(self.topic, p) for p in ends],
            )
            starts = {
                tp.partition: max(tp.offset, self._kafka(f"reading {self.topic}", consumer.get_watermark_offsets, tp)[0])
                for tp in committed
            }
            todo = {p: e for p, e in ends.items() if e > starts[p]}
            total = sum(e - starts[p] for p, e in todo.items())
            if self.limit is not None:
                total = min(total, self.limit)
            if not todo:
                return self.summary
            await asyncio.to_thread(self._load_markers)
            if producer is not None:
                await asyncio.to_thread(self._ensure_marker_topic)
            consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in todo])
            await self._loop(consumer, pipeline, sink, producer, todo, total, starts)
        finally:
            consumer.close()
            if sink is not None:
                await sink.close()
            if producer is not None:
                await asyncio.to_thread(producer.close)
        return self.summary

    async def _loop(
        self,
        consumer: Consumer,
        pipeline: RoutePipeline,
        sink: Sink | None,
        producer: DeadLetterProducer | None,
        todo: dict[int, int],
        total: int,
        starts: dict[int, int],
    ) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("replay {task.fields[topic]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("delivered {task.fields[d]} failed {task.fields[f]} skipped {task.fields[s]} parked {task.fields[p]}"),
            TimeRemainingColumn(),
            disable=not self.progress,
            transient=False,
        )
        s = self.summary
        # per partition: the committed offset can move up to the first record not re-driven, not past it
        frontier = {p: starts[p] for p in todo}
        blocked: set[int] = set()
        last_progress = time.monotonic()
        self.last_error = None
        with progress:
            task = progress.add_task("replay", total=total, topic=self.topic, d=0, f=0, s=0, p=0)
            remaining = dict(todo)
            while remaining and (self.limit is None or s.read < self.limit):
                want = self.batch_size if self.limit is None else min(self.batch_size, self.limit - s.read)
                msgs: list[Any] = await asyncio.to_thread(consumer.consume, want, 1.0)
                batch: list[Any] = []
                for m in msgs:
                    if m.error() is not None:
                        self.last_error = m.error().str()
                        if m.error().fatal():
                            raise ReplayKafkaError(f"reading {self.topic}: {self.last_error}")
                        continue
                    p = m.partition()
                    if p not in remaining or m.offset() >= remaining[p]:
                        continue
                    batch.append(m)
                    if m.offset() + 1 >= remaining[p]:
                        del remaining[p]
                if not batch:
                    if not msgs:
                        # nothing more arrives before the snapshot ends: check positions
                        pos = consumer.position([TopicPartition(self.topic, p) for p in remaining])
                        for tp in pos:
                            if tp.offset >= remaining.get(tp.partition, 0):
                                remaining.pop(tp.partition, None)
                                last_progress = time.monotonic()
                    if remaining and time.monotonic() - last_progress > self.error_timeout:
                        # missing topic, no authorisation, broker gone: it would never end
                        raise ReplayKafkaError(
                            f"reading {self.topic}: no record for {self.error_timeout:g} s before the end of the "
                            f"topic was reached; last error: {self.last_error or 'none reported'}"
                        )
                    continue
                redriven = await self._settle_batch(batch, pipeline, sink, producer)
                last_progress = time.monotonic()
                if not self.dry_run:
                    await self._record_progress(consumer, producer, batch, redriven, frontier, blocked)
                progress.update(task, advance=len(batch), d=s.delivered, f=s.failed_again, s=s.skipped_by_filter, p=s.parked)

    async def _record_progress(
        self,
        consumer: Consumer,
        producer: DeadLetterProducer | None,
        batch: list[Any],
        redriven: set[tuple[int, int]],
        frontier: dict[int, int],
        blocked: set[int],
    ) -> None:
        """Markers for what was re-driven past a record that was not, then commit the re-driven prefix."""
        beyond: dict[int, list[int]] = {}
        moved: set[int] = set()
        for m in batch:  # in offset order per partition
            p, o = m.partition(), m.offset()
            if (p, o) not in redriven:
                blocked.add(p)  # not re-driven here: it stays replayable, so nothing commits past it
            elif p in blocked:
                beyond.setdefault(p, []).append(o)
            else:
                frontier[p] = o + 1
                moved.add(p)
        if beyond:
            assert producer is not None
            await asyncio.gather(
                *(
                    producer.send(
                        self.marker_topic,
                        self.group.encode(),
                        orjson.dumps({"group": self.group, "route": self.route_name, "partition": p, "offsets": _ranges(offs)}),
                        [],
                    )
                    for p, offs in beyond.items()
                )
            )
        if moved:
            offsets = [TopicPartition(self.topic, p, frontier[p]) for p in sorted(moved)]
            try:
                await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else exc
                reason = err.str() if isinstance(err, KafkaError) else str(err)
                raise ReplayKafkaError(f"committing the offsets of group {self.group}: {reason}") from None

    def _ours(self, h: dict[str, str]) -> bool:
        route = h.get(H_ROUTE)
        return self.owns_unlabelled if route is None else route == self.route_name

    async def _settle_batch(
        self, batch: list[Any], pipeline: RoutePipeline, sink: Sink | None, producer: DeadLetterProducer | None
    ) -> set[tuple[int, int]]:
        """Run the batch; returns the (partition, offset) of the records re-driven (outcome durable)."""
        s = self.summary
        redriven: set[tuple[int, int]] = set()
        durable: list[asyncio.Future[Any]] = []
        deliveries: list[tuple[Any, dict[str, str], Payload, asyncio.Future[Any]]] = []
        for m in batch:
            s.read += 1
            done = self.done.get(m.partition())
            if done is not None and m.offset() in done:
                s.already_replayed += 1
                redriven.add((m.partition(), m.offset()))  # by an earlier run: the commit may pass it
                continue
            h = header_dict(m.headers())
            if not self._ours(h):
                s.other_route += 1
                continue
            if not self.filters.accepts(h):
                s.skipped_by_filter += 1
                continue
            count = _int(h.get(H_REPLAY_COUNT)) or 0
            if count >= self.max_replays:
                s.parked += 1
                if self.park == "topic" and producer is not None:
                    durable.append(producer.send(self.park_topic, m.key(), m.value(), _pairs(m)))
                    redriven.add((m.partition(), m.offset()))
                elif self.park == "skip":
                    log.warning(
                        "skipped %s/%s/%s: replayed %d times already", h.get(H_TOPIC), h.get(H_PARTITION), h.get(H_OFFSET), count
                    )
                continue
            redriven.add((m.partition(), m.offset()))
            if self.rate is not None:
                await self.rate.acquire()
            s.replayed += 1
            origin = self._origin(h)
            if self.to_source:
                s.to_source += 1
                if producer is not None:
                    # the copy carries the replay count on: the worker keeps it if it dead-letters the copy again
                    original = [(k, v) for k, v in _pairs(m) if not k.startswith((CONNECT, "s2s.", HISTORY))]
                    original.append((H_REPLAY_COUNT, str(count + 1).encode()))
                    durable.append(producer.send(origin[0], m.key(), m.value(), original))
                else:
                    self._print({"replay": "to_source", "topic": origin[0], "partition": origin[1], "offset": origin[2]})
                continue
            out = pipeline.process_blocking(m.value(), *origin)  # replay serves nothing else: may fetch schemas
            if self.dry_run:
                if isinstance(out, Payload):
                    self.out.write(out.body + b"\n")
                    s.delivered += 1
                else:
                    self._print(
                        {
                            "eventId": out.event_id,
                            "outcome": "filtered" if isinstance(out, Filtered) else "rejected",
                            "stage": out.stage,
                            "reason": out.reason,
                            "detail": out.detail,
                        }
                    )
                    if isinstance(out, Filtered):
                        s.filtered += 1
                    else:
                        s.failed_again += 1
                        s.reasons[f"{out.stage}:{out.reason}"] += 1
                continue
            if isinstance(out, Payload):
                assert sink is not None
                deliveries.append((m, h, out, sink.submit(out.event_id, out.body)))
            elif isinstance(out, Filtered):
                s.filtered += 1
            else:
                durable.append(self._again(producer, m, h, out, origin, count))
        for m, h, out, fut in deliveries:
            result = await fut  # DestinationMisconfigured propagates: nothing committed
            if isinstance(result, Delivered):
                s.delivered += 1
            else:
                rej = Rejected(
                    DELIVER,
                    result.reason,
                    f"{pipeline.destination.name} rejected the event",
                    DestinationRejected.__name__,
                    out.event_id,
                )
                origin = self._origin(h)
                durable.append(
                    self._again(producer, m, h, rej, origin, _int(h.get(H_REPLAY_COUNT)) or 0, result.status, result.debug)
                )
        await asyncio.gather(*durable)
        return redriven

    def _again(
        self,
        producer: DeadLetterProducer | None,
        m: Any,
        h: dict[str, str],
        rej: Rejected,
        origin: tuple[str, int, int],
        count: int,
        status: int | None = None,
        debug: str = "",
    ) -> asyncio.Future[Any]:
        """Back to the dead-letter topic: replay count + 1, the earlier failure kept as history."""
        assert producer is not None
        s = self.summary
        s.failed_again += 1
        s.reasons[f"{rej.stage}:{rej.reason}"] += 1
        history = [(f"{HISTORY}{count}.{k}" if k.startswith((CONNECT, "s2s.")) else k, v) for k, v in _pairs(m)]
        dl = DeadLetter(
            route=self.route_name,
            destination=self.route.destination,
            topic=origin[0],
            partition=origin[1],
            offset=origin[2],
            timestamp_ms=_int(h.get(H_TIMESTAMP)),
            stage=rej.stage,
            reason=rej.reason,
            error_class=rej.error_class,
            message=rej.detail,
            event_id=rej.event_id,
            http_status=status,
            debug=debug,
            replay_count=count + 1,
        )
        return producer.send(self.topic, m.key(), m.value(), dl.headers(history))

    def _origin(self, h: dict[str, str]) -> tuple[str, int, int]:
        """Where the dead letter came from (keeps fallback eventIds stable across replays)."""
        return h.get(H_TOPIC) or self.route.topic, _int(h.get(H_PARTITION)) or 0, _int(h.get(H_OFFSET)) or 0

    def _print(self, obj: dict[str, Any]) -> None:
        sys.stderr.buffer.write(orjson.dumps(obj) + b"\n")
        sys.stderr.flush()


def run_replay(replayer: Replayer) -> tuple[int, ReplaySummary]:
    """Run a replay: exit code 0, 3 (destination refuses our credentials) or 4 (Kafka kept failing)."""
    try:
        summary = asyncio.run(replayer.run())
    except (DestinationMisconfigured, ReplayKafkaError) as exc:
        log.critical("replay stopped: %s", exc)
        return exc.exit_code, replayer.summary
    return 0, summary


__all__ = [
    "EXIT_KAFKA",
    "OffsetSet",
    "ReplayFilter",
    "ReplayKafkaError",
    "ReplaySummary",
    "Replayer",
    "parse_time",
    "replay_count_of",
    "run_replay",
]
