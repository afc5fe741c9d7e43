"""The ceiling of a Faust consumer on this machine: consume and ack, no other work.

    python -m bench.faust_floor [--events 100000]

Produces N raw 440-byte records over 6 partitions, then lets a Faust agent read them with
`noack_take` + `ack` (as the worker does) and with plain `take`, and prints events/s and CPU
seconds. Whatever the bridge does per record comes on top of this.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import faust
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.dev.broker import get_broker


def measure(bootstrap: str, topic: str, n: int, mode: str) -> tuple[float, float]:
    app = faust.App(
        f"floor-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{bootstrap}",
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
        while state["n"] < n:
            await asyncio.sleep(0.05)
        elapsed, cpu = time.perf_counter() - state["t0"], time.process_time() - c0
        await app.stop()
        return n / elapsed, cpu

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.faust_floor")
    ap.add_argument("--events", type=int, default=100_000)
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
        for mode in ("noack_take+ack", "take"):
            eps, cpu = measure(bootstrap, topic, args.events, mode)
            print(f"{mode:<16} {eps:>10,.0f} events/s   {cpu / args.events * 1e6:6.1f} µs CPU per event")


if __name__ == "__main__":
    main()
