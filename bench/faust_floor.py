"""The ceiling of each way of consuming on this machine: consume and ack, no other work.

    python -m bench.faust_floor [--events 100000]

Produces N raw 440-byte records over 6 partitions, then lets a Faust agent read them with
`noack_take` + `ack` (as the worker does) and with plain `take`, and prints events/s and CPU
seconds; then Faust with its confluent-kafka driver, and the batch engine's path (confluent-kafka
`consume(1000)` + the offset ledger + commits). Whatever the bridge does per record comes on top.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable

import faust
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.dev.kafka import get_broker


def measure_batch(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """The batch engine's consuming path with no work: consume(1000), offset ledger, commits."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.engines.ledger import OffsetLedger

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"floor-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    c.subscribe([topic])
    ledger = OffsetLedger()
    got, t0, c0, next_commit = 0, 0.0, 0.0, 0.0
    while got < n:
        msgs = c.consume(1000, 0.1)
        if not msgs:
            continue
        if not t0:
            t0, c0, next_commit = time.perf_counter(), time.process_time(), time.monotonic() + 1
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is None:
                last[(m.topic(), m.partition())] = m.offset() + 1  # type: ignore[assignment,operator]
                got += 1
        ledger.settle([ledger.open(tp, off, 1) for tp, off in last.items()])
        if time.monotonic() >= next_commit:
            points = ledger.commit_points()
            c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in points.items()], asynchronous=False)
            ledger.committed(points)
            next_commit = time.monotonic() + 1
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    c.close()
    return n / elapsed, cpu


def measure(bootstrap: str, topic: str, n: int, mode: str, driver: str = "kafka") -> tuple[float, float]:
    app = faust.App(
        f"floor-{uuid.uuid4().hex[:6]}",
        broker=f"{driver}://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        stream_wait_empty=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    state: dict[str, float] = {"n": 0, "t0": 0.0}

    async def agent(stream: faust.StreamT) -> None:
        if mode == "take":
            async for values in stream.take(1000, within=0.05):
                state["t0"] = state["t0"] or time.perf_counter()
                state["n"] += len(values)
        else:
            async for events in stream.noack_take(1000, within=0.05):  # type: ignore[attr-defined]
                state["t0"] = state["t0"] or time.perf_counter()
                for e in events:
                    e.ack()
                state["n"] += len(events)

    app.agent(source)(agent)

    async def main() -> tuple[float, float]:
        await app.start()
        c0 = time.process_time()
        seen, since = 0.0, time.monotonic()
        while state["n"] < n:
            await asyncio.sleep(0.05)
            if state["n"] > seen:
                seen, since = state["n"], time.monotonic()
            elif time.monotonic() - since > 60:
                await app.stop()
                raise TimeoutError(f"consumed {int(seen)} of {n} records, then nothing for 60 s")
        elapsed, cpu = time.perf_counter() - state["t0"], time.process_time() - c0
        await app.stop()
        return n / elapsed, cpu

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.faust_floor")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--only", help="comma-separated name fragments, e.g. 'confluent,batch'")
    args = ap.parse_args()
    with get_broker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"floor-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        for i in range(args.events):
            p.produce(topic, key=str(i % 5000).encode(), value=b"x" * 440)
            if i % 10_000 == 0:
                p.poll(0)
        p.flush()
        runs: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            ("faust aiokafka noack_take+ack", lambda: measure(bootstrap, topic, args.events, "noack_take")),
            ("faust aiokafka take", lambda: measure(bootstrap, topic, args.events, "take")),
            ("faust confluent noack_take+ack", lambda: measure(bootstrap, topic, args.events, "noack_take", "confluent")),
            ("batch engine consume(1000)+ledger", lambda: measure_batch(bootstrap, topic, args.events)),
        ]
        for name, run in runs:
            if args.only and not any(o in name for o in args.only.split(",")):
                continue
            try:
                eps, cpu = run()
            except Exception as exc:  # a driver that does not work is a result too
                print(f"{name:<34} failed: {type(exc).__name__}: {exc}")
                continue
            print(f"{name:<34} {eps:>10,.0f} events/s   {cpu / args.events * 1e6:6.1f} µs CPU per event", flush=True)


if __name__ == "__main__":
    main()
