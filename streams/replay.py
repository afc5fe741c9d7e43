"""`s2s-bridge replay`: re-drive dead-lettered records through today's pipeline and delivery.

Reads a route's dead-letter topic with its own consumer group up to the end offsets seen at the
start (records it dead-letters again land after them, so a run always ends), filters, and runs each
record from its original bytes exactly as the worker would: the same `RoutePipeline`, the same
`Sink`, the same dead-letter format. A record that fails again goes back to the dead-letter topic
with `s2s.replay.count` incremented and its earlier failure headers kept under `s2s-history.N.`;
past `--max-replays` it is parked instead, so a replay never loops. Offsets of the replay group are
committed only once every record before them has a durable outcome, so an interrupted replay
resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.config import BridgeConfig
from streams.deadletter import (
    CONNECT,
    H_EXC_CLASS,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_REPLAY_COUNT,
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
from streams.kafka import confluent_conf
from streams.pipeline.outcome import Filtered, Payload, Rejected
from streams.pipeline.transform import RoutePipeline, build_pipelines

log = logging.getLogger("streams.replay")
HISTORY = "s2s-history."


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


def parse_time(value: str) -> int:
    """ISO 8601 (naive = UTC) or epoch millis -> epoch millis."""
    if value.isdigit():
        return int(value)
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


@dataclass
class ReplaySummary:
    read: int = 0
    replayed: int = 0
    delivered: int = 0
    failed_again: int = 0
    filtered: int = 0
    skipped_by_filter: int = 0
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
        self.batch_size = batch_size
        self.out = out or sys.stdout.buffer
        self.progress = progress
        self.summary = ReplaySummary()

    # ------------------------------------------------------------------ plumbing

    def _consumer(self) -> Consumer:
        return Consumer(
            confluent_conf(
                self.config.kafka,
                **{
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "client.id": "s2s-bridge-replay",
                },
            )
        )

    def _end_offsets(self, consumer: Consumer) -> dict[int, int]:
        md = consumer.list_topics(self.topic, timeout=15).topics.get(self.topic)
        if md is None or md.error is not None:
            raise KafkaException(f"dead-letter topic {self.topic} not found")
        return {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=15)[1] for p in md.partitions}

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
            committed = consumer.committed([TopicPartition(self.topic, p) for p in ends], timeout=15)
            starts = {tp.partition: max(tp.offset, consumer.get_watermark_offsets(tp, timeout=15)[0]) for tp in committed}
            todo = {p: e for p, e in ends.items() if e > starts[p]}
            total = sum(e - starts[p] for p, e in todo.items())
            if self.limit is not None:
                total = min(total, self.limit)
            if not todo:
                return self.summary
            consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in todo])
            await self._loop(consumer, pipeline, sink, producer, todo, total)
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
        with progress:
            task = progress.add_task("replay", total=total, topic=self.topic, d=0, f=0, s=0, p=0)
            remaining = dict(todo)
            while remaining and (self.limit is None or s.read < self.limit):
                want = self.batch_size if self.limit is None else min(self.batch_size, self.limit - s.read)
                msgs: list[Any] = await asyncio.to_thread(consumer.consume, want, 1.0)
                batch: list[Any] = []
                for m in msgs:
                    if m.error() is not None:
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
                    continue
                await self._settle_batch(batch, pipeline, sink, producer)
                if not self.dry_run:
                    # every record in the batch has a durable outcome: commit past it
                    last: dict[int, int] = {}
                    for m in batch:
                        last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
                    offsets = [TopicPartition(self.topic, p, o + 1) for p, o in last.items()]
                    await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)
                progress.update(task, advance=len(batch), d=s.delivered, f=s.failed_again, s=s.skipped_by_filter, p=s.parked)

    async def _settle_batch(
        self, batch: list[Any], pipeline: RoutePipeline, sink: Sink | None, producer: DeadLetterProducer | None
    ) -> None:
        s = self.summary
        durable: list[asyncio.Future[Any]] = []
        deliveries: list[tuple[Any, dict[str, str], Payload, asyncio.Future[Any]]] = []
        for m in batch:
            s.read += 1
            h = header_dict(m.headers())
            if not self.filters.accepts(h):
                s.skipped_by_filter += 1
                continue
            count = _int(h.get(H_REPLAY_COUNT)) or 0
            if count >= self.max_replays:
                s.parked += 1
                if self.park == "topic" and producer is not None:
                    durable.append(producer.send(self.park_topic, m.key(), m.value(), _pairs(m)))
                elif self.park == "skip":
                    log.warning(
                        "skipped %s/%s/%s: replayed %d times already", h.get(H_TOPIC), h.get(H_PARTITION), h.get(H_OFFSET), count
                    )
                continue
            if self.rate is not None:
                await self.rate.acquire()
            s.replayed += 1
            origin = self._origin(h)
            if self.to_source:
                s.to_source += 1
                if producer is not None:
                    original = [(k, v) for k, v in _pairs(m) if not k.startswith((CONNECT, "s2s.", HISTORY))]
                    durable.append(producer.send(origin[0], m.key(), m.value(), original))
                else:
                    self._print({"replay": "to_source", "topic": origin[0], "partition": origin[1], "offset": origin[2]})
                continue
            out = pipeline.process(m.value(), *origin)
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
                    "deliver",
                    result.reason,
                    f"{pipeline.destination.name} rejected the event",
                    "DestinationRejected",
                    out.event_id,
                )
                origin = self._origin(h)
                durable.append(
                    self._again(producer, m, h, rej, origin, _int(h.get(H_REPLAY_COUNT)) or 0, result.status, result.debug)
                )
        await asyncio.gather(*durable)

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
    try:
        summary = asyncio.run(replayer.run())
    except DestinationMisconfigured as exc:
        log.critical("replay stopped: %s", exc)
        return 3, replayer.summary
    return 0, summary


__all__ = ["ReplayFilter", "ReplaySummary", "Replayer", "parse_time", "run_replay", "time"]
