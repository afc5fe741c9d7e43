"""The workload: realistic purchase_completed records, Confluent-framed, produced fast or at a fixed rate."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.common import PARTITIONS, ROUTE, SCHEMA_FILE

CHUNK = 10_000


def _encode_chunk(args: tuple[int, int, int, int]) -> list[tuple[bytes, bytes]]:
    """Records [start, start+count) of the workload, encoded (key = eventId, value = Confluent wire format).

    Each chunk has its own seed; `SampleFactory.n` starts at `start`, so emails, order ids and
    customer ids are distinct across the whole workload (identity caches never hit by accident)."""
    import fastavro

    from streams.codec import encode_confluent, load_schema_file
    from streams.dev.samples import SampleFactory

    start, count, schema_id, seed = args
    schema = fastavro.parse_schema(load_schema_file(SCHEMA_FILE))
    f = SampleFactory(seed=seed * 1_000_003 + start)
    f.n = start
    out = []
    for _ in range(count):
        rec = f.record(ROUTE)
        out.append((rec["event_id"].encode(), encode_confluent(schema, rec, schema_id)))
    return out


def generate(n: int, schema_id: int, *, offset: int = 0, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """n encoded records, built on a process pool (one worker per CPU)."""
    tasks = [(offset + s, min(CHUNK, n - s), schema_id, seed) for s in range(0, n, CHUNK)]
    workers = max(1, min(len(tasks), len(os.sched_getaffinity(0))))
    if workers == 1:
        chunks = [_encode_chunk(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            chunks = list(pool.map(_encode_chunk, tasks))
    return [kv for chunk in chunks for kv in chunk]


def register_schema(registry_url: str, topic: str) -> int:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    return int(client.register_schema(f"{topic}-value", Schema(SCHEMA_FILE.read_text(), "AVRO")))


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, partitions, 1)])[topic]
    fut.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not ready")


def _producer(bootstrap: str, **extra: Any) -> Any:
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    conf.update(extra)
    return Producer(conf)


def produce_all(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> float:
    """Produce every record as fast as possible; returns seconds taken."""
    p = _producer(bootstrap)
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)

    t0 = time.monotonic()
    for i, (key, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left or errors:
        raise RuntimeError(f"producing to {topic} failed: {left} undelivered, errors {errors[:3]}")
    return time.monotonic() - t0


def produce_at_rate(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]], rate: float
) -> tuple[dict[str, int], float]:
    """Produce `records` at `rate` records/s, each with an explicit Kafka timestamp (CreateTime, epoch
    ms) taken at the produce() call. Returns eventId -> timestamp ms and the achieved rate."""
    p = _producer(bootstrap, **{"linger.ms": 5, "batch.size": 262_144})
    ts_by_id: dict[str, int] = {}
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)

    n = len(records)
    t0 = time.monotonic()
    i = 0
    while i < n:
        due = min(n, int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            key, value = records[i]
            now_ms = time.time_ns() // 1_000_000
            p.produce(topic, value=value, key=key, timestamp=now_ms, on_delivery=on_delivery)
            ts_by_id[key.decode()] = now_ms
            i += 1
        p.poll(0)
        if i < n:
            # sleep until the next record is due (at most 5 ms, so bursts stay small)
            next_due = t0 + i / rate
            with contextlib.suppress(ValueError):
                time.sleep(min(0.005, max(0.0, next_due - time.monotonic())))
    elapsed = time.monotonic() - t0
    left = p.flush(60)
    if left or errors:
        raise RuntimeError(f"producing to {topic} failed: {left} undelivered, errors {errors[:3]}")
    return ts_by_id, n / elapsed if elapsed > 0 else float("nan")
