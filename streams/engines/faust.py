"""The `faust` engine: a Faust agent per route hands each take of events to the bridge.

Events come from `Stream.noack_take`, never `take`, which would ack them even when delivery fails.
Each take is opened in the offset ledger (streams.engines.ledger) one chunk per partition, and its
events are acked only when the ledger settles the chunk into the partition's settled prefix; Faust
commits what is acked. Faust's own web server is off: the worker serves /metrics and health.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT

from streams.app import Bridge
from streams.config import BridgeConfig
from streams.engines.ledger import TP, Handle, OffsetLedger
from streams.engines.report import DESTINATION, ConsumingReport
from streams.kafka import faust_credentials

LAG_INTERVAL_S = 5.0


class FaustRecord:
    """A Faust message seen through the bridge's `Record` interface."""

    __slots__ = ("_m",)

    def __init__(self, message: Any) -> None:
        self._m = message

    def topic(self) -> str:
        return str(self._m.topic)

    def partition(self) -> int:
        return int(self._m.partition)

    def offset(self) -> int:
        return int(self._m.offset)

    def key(self) -> bytes | None:
        return self._m.key

    def value(self) -> bytes | None:
        return self._m.value

    def headers(self) -> Any:
        return self._m.headers

    def timestamp(self) -> tuple[int, int]:
        ts = self._m.timestamp
        return (1, int(ts * 1000)) if ts else (0, -1)


Handler = Callable[[str, Sequence[EventT]], Awaitable[None]]


def build_app(config: BridgeConfig, bridge: Bridge, handle: Handler) -> faust.App:
    """The Faust app: one agent per route, each handing its takes to `handle(route, events)`."""
    k = config.kafka
    app = faust.App(
        k.group_id,
        broker=[f"kafka://{s.strip()}" for s in k.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(k),
        broker_client_id=k.client_id,
        broker_commit_interval=k.commit_interval_s,
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        # static membership (aiokafka sends group.instance.id; KIP-848 is refused by the config)
        consumer_group_instance_id=k.group_instance_id,
        consumer_auto_offset_reset=k.auto_offset_reset,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=k.topic_partitions,
        topic_replication_factor=k.replication_factor,
        topic_allow_declare=k.create_topics,
        topic_disable_leader=True,
        stream_wait_empty=False,  # our own drain handles shutdown with a bounded grace period
        stream_buffer_maxsize=2048,
        web_enabled=False,  # the worker serves /metrics, /healthz and /readyz for both engines
        store="memory://",
        # Faust creates its data directory (one level: mkdir without parents) even with the memory
        # store; the working directory is read-only in the shipped image (readOnlyRootFilesystem),
        # /tmp is an emptyDir
        datadir=str(Path(tempfile.gettempdir()) / ("s2s-bridge-faust-" + re.sub(r"[^A-Za-z0-9._-]", "_", k.group_id))),
        table_cleanup_interval=3600,
    )
    take_max = max(1, min(1000, max(a.settings.batch.max_events for a in bridge.apis.values())))

    for name, route in config.routes.items():
        topic = app.topic(route.topic, key_serializer="raw", value_serializer="raw", partitions=k.topic_partitions)
        # the sink lingers to fill requests; the take only gathers what the fetch already brought,
        # so a record does not wait for two lingers
        within = min(0.05, max(0.005, bridge.apis[route.destination].settings.batch.linger_ms / 1000.0))

        def make_agent(route_name: str, within_s: float) -> Any:
            async def consume(stream: faust.StreamT) -> None:
                async for events in stream.noack_take(take_max, within=within_s):  # type: ignore[attr-defined]
                    await handle(route_name, events)

            consume.__name__ = f"route_{route_name}"
            return consume

        app.agent(topic, name=f"s2s.route.{name}")(make_agent(name, within))

    return app


class FaustEngine:
    """Faust agents feed the bridge; acks reach Faust in offset order per partition, from the ledger."""

    def __init__(self, config: BridgeConfig, bridge: Bridge, report: ConsumingReport) -> None:
        self.config = config
        self.bridge = bridge
        self.report = report
        self.app = build_app(config, bridge, self.handle)
        self.ledger = OffsetLedger(lambda: self.app.consumer_generation_id)
        self.error: BaseException | None = None  # Faust stops on its own without telling us why
        self._lag: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for sink in self.bridge.sinks.values():
            sink.on_health_change.append(lambda unhealthy, s=sink: self._on_health(s.name, unhealthy))
        await self.app.start()
        self._lag = asyncio.ensure_future(self._report_lag())

    @property
    def stopped(self) -> bool:
        return bool(self.app.should_stop)

    def stop_fetching(self) -> None:
        """Pause every assigned partition (in-flight events still settle and get acked)."""
        consumer = self.app.consumer
        try:
            assignment = consumer.assignment()
            if assignment:
                consumer.pause_partitions(assignment)
        except Exception:  # consumer not started
            pass

    async def close(self) -> None:
        """Faust commits the acked offsets while stopping (stream_wait_empty is off) and leaves the group."""
        if self._lag is not None:
            self._lag.cancel()
        await self.app.stop()

    async def handle(self, route: str, events: Sequence[EventT]) -> None:
        """One take of a route's agent: open it in the ledger, run it through the bridge; its events
        are acked once settled, strictly in offset order per partition."""
        runs: dict[tuple[TP, int | None], list[EventT]] = {}
        for ev in events:  # a take is in offset order per partition
            m = ev.message
            runs.setdefault(((m.topic, m.partition), m.generation_id), []).append(ev)
        handles: list[Handle] = []
        for (tp, generation), evs in runs.items():
            # events of an older generation (their partition was revoked in a rebalance) are sent,
            # never acked: the partition's new owner re-consumes them from the last commit
            if self.ledger.follow(tp, generation):
                handles.append(self.ledger.open(tp, evs[-1].message.offset + 1, 1, evs))
        await self.bridge.process_batch(route, [FaustRecord(ev.message) for ev in events], lambda: self._ack(handles))

    def _ack(self, handles: Sequence[Handle]) -> None:
        # Never hand Faust an out-of-order ack: faust-streaming 0.15.3 commits up to the first gap in
        # the acked offsets, but its head-of-queue gap check (`Consumer._new_offset`) misses a gap of
        # exactly one record and any gap while the committed offset is unknown or 0, so acking 501
        # while 500 is still in flight can commit 502. The ledger returns settled events strictly in
        # offset order per partition, only once every earlier event of the partition is settled.
        for ev in self.ledger.settle(handles):
            ev.ack()

    def _on_health(self, destination: str, unhealthy: bool) -> None:
        # Faust pauses nothing itself: a route is reported paused while its destination keeps failing
        for name, route in self.config.routes.items():
            if route.destination == destination:
                self.report.paused(name, DESTINATION, unhealthy)

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(LAG_INTERVAL_S)
            with contextlib.suppress(Exception):  # lag is best effort
                consumer: Any = self.app.consumer  # its committed offsets are not public API
                for tp in consumer.assignment():
                    # committed, not position: consumed-but-unsettled records count as lag
                    self.report.lag(tp.topic, tp.partition, consumer.highwater(tp), consumer._committed_offset.get(tp))
