"""The `batch` engine: a confluent-kafka consumer that hands records to the bridge a batch at a time.

Faust's per-message path costs ~73 µs of CPU per record on a 2-core machine (see
docs/performance.md), more than the whole transform. This engine consumes with
`Consumer.consume(n)` on a thread of its own and gives the event loop one call per batch; the rest
of the bridge (pipeline, sinks, dead letters) is the same code the Faust engine runs.

Offsets are committed by this module, never automatically: the offset ledger
(streams.engines.ledger) keeps, per partition, the consumed records as chunks in offset order, and
the commit point of a partition only moves past a chunk once every record of it (and of every
chunk before it) is settled: delivered, filtered or dead-lettered. When partitions are revoked in a
rebalance, the consumer waits (up to `worker.rebalance_wait_s`) for their in-flight records to
settle and commits them before letting go, so a scale-out does not re-deliver what was already on
its way.

Back-pressure: each route holds at most `worker.max_in_flight_events` records between consumption
and settlement; a route over its limit has its topics' partitions paused (the consumer keeps
polling, so it stays in the group however long a destination outage lasts), reported as the
route's back-pressure pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.config import BridgeConfig, KafkaSettings
from streams.engines.ledger import TP, Handle, OffsetLedger, Partition
from streams.engines.report import BACKPRESSURE, ConsumingReport
from streams.kafka import confluent_conf
from streams.logs import rdkafka_logger

# the batch engine's log lines keep the logger name they always had (operators filter on it)
log = logging.getLogger("streams.consumer")


class BatchEngine:
    """Consumes every route's topic on its own thread and hands batches to `bridge.process_batch`."""

    def __init__(
        self, config: BridgeConfig, bridge: Any, loop: asyncio.AbstractEventLoop, report: ConsumingReport | None = None
    ) -> None:
        self.config = config
        self.bridge = bridge
        self.loop = loop
        self.report = report or ConsumingReport()
        k = config.kafka
        w = config.worker
        self.batch_size = w.batch_size
        self.limit = w.max_in_flight_events
        self.commit_interval = k.commit_interval_s
        self.rebalance_wait = w.rebalance_wait_s
        self.routes_of: dict[str, list[str]] = {}
        for name, route in config.routes.items():
            self.routes_of.setdefault(route.topic, []).append(name)
        self.held: dict[str, int] = dict.fromkeys(config.routes, 0)
        self._held_lock = threading.Lock()
        self.ledger = OffsetLedger()
        self.assignment: set[TP] = set()
        self.paused: set[TP] = set()
        self._over: set[str] = set()  # routes holding their limit of in-flight records (paused)
        self._stop_fetching = threading.Event()
        self._closing = False
        self._stopped = threading.Event()
        self.error: BaseException | None = None
        # rebalance callbacks that ran during the current `_consume` (they run inside consume/poll)
        self._seq = 0
        self._events: list[tuple[int, str, frozenset[TP]]] = []
        self._reset = k.auto_offset_reset
        conf = confluent_conf(
            k,
            **{
                "group.id": k.group_id,
                "client.id": k.client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": k.auto_offset_reset,
                **group_membership(k),
                # bounded prefetch: memory, not throughput, is what the defaults (64 MB) cost us
                "queued.max.messages.kbytes": 16384,
                "queued.min.messages": 20000,
                "fetch.min.bytes": k.fetch_min_bytes,
                "fetch.wait.max.ms": k.fetch_max_wait_ms,
            },
        )
        self.consumer = Consumer(conf, logger=rdkafka_logger("consumer"))
        self._thread = threading.Thread(target=self._run, name="s2s-consume", daemon=True)

    # ------------------------------------------------------------------ lifecycle (event loop side)

    async def start(self) -> None:
        self.consumer.subscribe(
            sorted(self.routes_of), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._thread.start()

    def stop_fetching(self) -> None:
        """Take no more records (in-flight ones still settle and get committed)."""
        self._stop_fetching.set()

    async def close(self) -> None:
        """Stop consuming, commit what is settled, leave the group."""
        self._stop_fetching.set()
        self._closing = True
        await asyncio.to_thread(self._stopped.wait)

    @property
    def stopped(self) -> bool:
        """The consuming thread ended (on its own only with an `error`)."""
        return self.error is not None or self._stopped.is_set()

    # ------------------------------------------------------------------ the consuming thread

    def _run(self) -> None:
        next_commit = time.monotonic() + self.commit_interval
        next_lag = time.monotonic() + 5.0
        try:
            while not self._closing:
                if self._stop_fetching.is_set():
                    self._pause(set(self.assignment) - self.paused)
                else:
                    self._apply_backpressure()
                # polling also while everything is paused keeps the member in the group and serves
                # the rebalance callbacks; what was fetched before a pause took effect is still ours
                msgs = self._consume()
                if msgs:
                    self._dispatch(msgs)
                now = time.monotonic()
                if now >= next_commit:
                    self._commit()
                    next_commit = now + self.commit_interval
                if now >= next_lag:
                    self._report_lag()
                    next_lag = now + 5.0
        except BaseException as exc:  # the thread must never die silently
            log.exception("consumer thread failed")
            self.error = exc
        finally:
            try:
                self._commit()
            finally:
                with contextlib.suppress(Exception):
                    self.consumer.close()
                self._stopped.set()

    def _consume(self) -> list[Message]:
        """What is there, up to batch_size; else wait (at most 50 ms) for the first record only.

        `consume(n, timeout)` would wait for n records or the whole timeout: at moderate rates every
        record would sit up to 50 ms in the client before the bridge sees it."""
        self._events.clear()
        calls: list[tuple[int, list[Message]]] = []  # (callbacks seen before the call, what it returned)
        seq = self._seq
        msgs = self.consumer.consume(self.batch_size, 0)
        if msgs:
            calls.append((seq, msgs))
        else:
            first = self.consumer.poll(0.05)
            if first is not None:
                calls.append((seq, [first]))
                if self.batch_size > 1:
                    seq = self._seq
                    calls.append((seq, self.consumer.consume(self.batch_size - 1, 0)))
        if not self._events:
            return [m for _, got in calls for m in got]
        return self._still_owned(calls)

    def _still_owned(self, calls: list[tuple[int, list[Message]]]) -> list[Message]:
        """Drop records whose partition a rebalance callback revoked or lost after they were fetched.

        The callbacks run inside `consume`/`poll`, so a record returned by one call (or earlier in
        the same call) can belong to a partition revoked by the next. It must never be dispatched:
        the ledger would track it and its offset would be committed for a partition this member no
        longer owns. Dropping it loses nothing: it was never dispatched, so the offset committed for
        the partition (ours at revoke time, or an earlier one) is <= its offset, and the partition's
        new owner starts from that commit. A partition revoked and assigned back to us (or lost and
        assigned back) also restarts from the committed offset, but within one call we cannot tell
        the records of the old assignment from the first ones of the new: all of them are dropped
        and the partition is rewound to its committed offset (rare; it costs one offset fetch)."""
        dropped: set[TP] = set()
        for seq, got in calls:
            for m in got:
                if m.error() is not None:
                    continue
                tp = (m.topic() or "", m.partition() or 0)
                kinds = [kind for n, kind, tps in self._events if n > seq and tp in tps]
                # assigned during the call and untouched otherwise: whatever came of it is of this assignment
                if kinds and kinds != ["assign"]:
                    dropped.add(tp)
        if not dropped:
            return [m for _, got in calls for m in got]
        kept = [m for _, got in calls for m in got if m.error() is not None or (m.topic(), m.partition()) not in dropped]
        rewind = sorted(dropped & self.assignment)
        if rewind:
            self._rewind(rewind)
        log.info("dropped fetched records of %s: revoked by a rebalance after they were fetched", _fmt(dropped))
        return kept

    def _rewind(self, tps: list[TP]) -> None:
        """Restart the fetch of these (re-assigned) partitions at their committed offsets."""
        got = self.consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=10)
        reset = OFFSET_BEGINNING if self._reset == "earliest" else OFFSET_END
        for tp in got:
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else reset))

    def _dispatch(self, msgs: list[Message]) -> None:
        by_route: dict[str, list[Message]] = {}
        chunks: dict[str, list[Handle]] = {}
        next_offsets: dict[TP, int] = {}  # per partition: the offset after its last record here
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", err.str())
                    if err.fatal():
                        raise KafkaException(err)
                continue
            topic = m.topic()
            assert topic is not None
            next_offsets[(topic, m.partition() or 0)] = m.offset() + 1  # type: ignore[operator]
            for route in self.routes_of.get(topic, ()):
                by_route.setdefault(route, []).append(m)
        leases: dict[TP, Partition] = {}
        for tp, next_offset in next_offsets.items():
            routes = self.routes_of.get(tp[0], ())
            handle = self.ledger.open(tp, next_offset, len(routes))
            leases[tp] = handle[0]
            for route in routes:
                chunks.setdefault(route, []).append(handle)
        for route, records in by_route.items():
            with self._held_lock:
                self.held[route] += len(records)
            handles = chunks[route]
            self.loop.call_soon_threadsafe(self._submit, route, records, handles, leases)

    def _submit(self, route: str, records: list[Message], handles: list[Handle], leases: dict[TP, Partition]) -> None:
        """On the event loop: start processing one route's share of a batch."""
        n = len(records)

        def settled() -> None:
            self.ledger.settle(handles)
            with self._held_lock:
                self.held[route] -= n

        task = asyncio.ensure_future(self.bridge.process_batch(route, records, settled, leases))
        self.bridge.tasks.add(task)
        task.add_done_callback(self.bridge.tasks.discard)

    def _apply_backpressure(self) -> None:
        over = {r for r, n in self.held.items() if n >= self.limit}
        if over != self._over:
            for route in over ^ self._over:
                self.report.paused(route, BACKPRESSURE, route in over)
            self._over = over
        want_paused = {tp for tp in self.assignment if any(r in over for r in self.routes_of.get(tp[0], ()))}
        self._pause(want_paused - self.paused)
        self._resume((self.paused - want_paused) & self.assignment)

    def _pause(self, tps: set[TP]) -> None:
        if tps:
            self.consumer.pause([TopicPartition(t, p) for t, p in sorted(tps)])
            self.paused |= tps

    def _resume(self, tps: set[TP]) -> None:
        if tps:
            self.consumer.resume([TopicPartition(t, p) for t, p in sorted(tps)])
            self.paused -= tps

    def _commit(self, tps: Sequence[TP] | None = None) -> None:
        # the ledger only tracks assigned partitions; this is the second fence
        points = {tp: o for tp, o in self.ledger.commit_points(tps).items() if tp in self.assignment}
        if not points:
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in points.items()], asynchronous=False)
        except KafkaException as exc:  # retried at the next interval; nothing moves past an unsettled record
            log.warning("commit failed (retried): %s", exc.args[0].str() if exc.args else exc)
            return
        self.ledger.committed(points)

    def _report_lag(self) -> None:
        for t, p in list(self.assignment):
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            self.report.lag(t, p, high, self.ledger.last_committed((t, p)))

    # ------------------------------------------------------------------ rebalance callbacks (consuming thread)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self._note("assign", tps)
        self.ledger.assign(list(tps))  # a partition we get back starts from its committed offset
        self.assignment |= tps
        # librdkafka keeps a partition's pause flag across a revoke and a later re-assignment, while
        # `self.paused` forgets a partition when it leaves: one that left paused would come back
        # paused for good. So assign here and resume: the loop pauses them again if the route is full.
        consumer.incremental_assign(partitions)
        consumer.resume(partitions)
        log.info("assigned %s", _fmt(tps))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self._note("revoke", tps)
        # let what is in flight on these partitions settle, then commit it, before letting them go:
        # the new owner starts where we stopped instead of re-delivering our in-flight records
        # (when closing, the worker has already drained: what is still pending was abandoned)
        deadline = time.monotonic() + (0 if self._closing else self.rebalance_wait)
        while self.ledger.pending(tps) and time.monotonic() < deadline and self.bridge.fatal is None:
            time.sleep(0.01)
        left = self.ledger.pending(tps)
        self._commit(tps)
        self._forget(tps)
        if left:
            log.warning("revoked %s with %d unsettled batches (they are re-consumed by the new owner)", _fmt(tps), left)
        else:
            log.info("revoked %s", _fmt(tps))

    def _note(self, kind: str, tps: Any) -> None:
        self._seq += 1
        self._events.append((self._seq, kind, frozenset(tps)))

    def _forget(self, tps: list[TP]) -> None:
        self.ledger.drop(tps)
        self.assignment -= set(tps)
        self.paused -= set(tps)
        self.report.forget(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self._note("lost", tps)
        self._forget(tps)  # no commit: the group has moved on
        log.warning("lost %s (session timed out): in-flight records are re-consumed by the new owner", _fmt(tps))


def group_membership(k: KafkaSettings) -> dict[str, Any]:
    """librdkafka's group settings: the protocol, static membership, and (classic protocol only:
    with KIP-848 the broker owns them and librdkafka refuses them) session, heartbeat and assignor.

    Both protocols assign incrementally, so the rebalance callbacks are the same."""
    conf: dict[str, Any] = {"group.protocol": k.group_protocol}
    if k.group_instance_id:
        conf["group.instance.id"] = k.group_instance_id
    if k.group_protocol == "classic":
        conf["session.timeout.ms"] = int(k.session_timeout_s * 1000)
        conf["heartbeat.interval.ms"] = int(k.heartbeat_interval_s * 1000)
        conf["partition.assignment.strategy"] = "cooperative-sticky"
    return conf


def _fmt(tps: Any) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(tps)) or "nothing"
