"""The `Bridge`: consumed records -> route pipeline -> sinks -> settle (dead letters), for either engine.

Wiring only: the per-record work is `streams.pipeline`, sending is `streams.delivery`, dead
letters are `streams.deadletter`; consuming, acking and committing are the engines'
(`streams.engines`). Each record ends delivered, filtered or dead-lettered, and the engine hears
that a batch is settled (so its offsets may be committed) only once every outcome is durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from streams.codec import DecodeError, SchemaNeeded, SchemaRegistryUnavailable
from streams.config import BridgeConfig
from streams.deadletter import DEAD_LETTER_HEADROOM, DeadLetter, DeadLetterFailed, DeadLetterProducer, ReadOnce, read_headers
from streams.delivery.sink import Abandoned, DestinationMisconfigured, Failed, Lease, Sink
from streams.destinations import make_destination
from streams.engines.report import REGISTRY, ConsumingReport
from streams.errors import DestinationRejected
from streams.kafka import confluent_conf, connect_admin, max_message_bytes
from streams.metrics import METRICS
from streams.native import attach_plans
from streams.pipeline.outcome import DELIVER, INTERNAL, UNEXPECTED_ERROR, Filtered, Outcome, Payload, Rejected
from streams.pipeline.transform import RoutePipeline
from streams.replay import replay_count_of
from streams.routes import build_pipelines
from streams.urls import safe_url

log = logging.getLogger("streams.worker")

# a writer schema lookup runs in a thread; the registry client gives up after ~10 s itself (5 s
# timeout, one retry), this bounds the wait even if it did not
REGISTRY_FETCH_TIMEOUT_S = 15.0
# while the registry cannot answer, a route that needs a schema waits this long, doubling, between lookups
REGISTRY_BACKOFF_S = (0.5, 30.0)


class Record(Protocol):
    """What the bridge reads of a consumed record: confluent-kafka's `Message` interface."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


class Capacity:
    """Counts records held between consumption and settlement; bounds memory (back-pressure)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        async with self._cond:
            # a batch larger than the limit is let through alone
            await self._cond.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.used -= n
            self._cond.notify_all()


def _consume_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class Bridge:
    """Runtime state shared by the agents: pipelines, sinks, dead-letter producer."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.apis = {n: make_destination(n, s) for n, s in config.destinations.items()}
        self.pipelines: dict[str, RoutePipeline] = build_pipelines(config, destinations=self.apis)
        self.python_routes: dict[str, str] = {}  # routes without a native plan, and why (`start`)
        self.sinks: dict[str, Sink] = {}
        self.capacity: dict[str, Capacity] = {}
        self._transforming: dict[str, asyncio.Lock] = {}
        self._schema_fetches: dict[tuple[int, int], asyncio.Future[Any]] = {}  # (store, id): the lookup in flight
        self.dead_letters: DeadLetterProducer | None = None
        self.fatal: BaseException | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.settled = 0
        # the one writer of the consuming state (paused routes, lag), shared with the engine
        self.report = ConsumingReport()

    async def start(self) -> None:
        """Connect to Kafka (fails with KafkaUnavailable naming the reason: unreachable, TLS,
        authentication), create missing topics, open the sinks and the dead-letter producer."""
        self._warn_insecure()
        # the worker's routes get their native plans, said in the log (the dry run, peek and replay run
        # the Python pipeline, the reference, whose payloads the plans reproduce byte for byte)
        self.python_routes = attach_plans(self.pipelines, self.config.worker.native)
        admin, metadata = await asyncio.to_thread(connect_admin, self.config.kafka, 15.0)
        if self.config.kafka.create_topics:
            await asyncio.to_thread(self.create_topics, admin, set(metadata.topics))
        self.sinks = {n: Sink(api) for n, api in self.apis.items()}
        self.capacity = {r: Capacity(self.config.worker.max_in_flight_events) for r in self.config.routes}
        self._transforming = {r: asyncio.Lock() for r in self.config.routes}
        limits = await asyncio.to_thread(self.dead_letter_limits, admin)
        self.dead_letters = DeadLetterProducer(confluent_conf(self.config.kafka, **{"client.id": "s2s-bridge-dlt"}), limits)

    def _warn_insecure(self) -> None:
        for name, d in self.config.destinations.items():
            if d.url.startswith("http://") and d.allow_insecure_http:
                log.warning(
                    "SECURITY: destination %s is sent to over plain http (allow_insecure_http): %s", name, safe_url(d.url)
                )
            if not d.verify_tls:
                log.warning("SECURITY: destination %s: TLS certificates are NOT verified (verify_tls: false)", name)

    def create_topics(self, admin: Any, existing: set[str]) -> None:
        """Create missing source topics with the config's partitions and replication, then missing
        dead-letter topics with ``max.message.bytes`` at least their source topic's (plus room for
        our headers), so a record the source took can be dead-lettered as it is; nothing depends on
        broker-side auto-creation."""
        from confluent_kafka.admin import NewTopic

        k = self.config.kafka
        routes = list(self.config.routes.values())
        sources = {r.topic for r in routes}
        self._create(admin, [NewTopic(t, k.topic_partitions, k.replication_factor) for t in sorted(sources - existing)])
        dlts = {r.dlt for r in routes} - existing - sources
        if not dlts:
            return
        source_limits = max_message_bytes(admin, sorted({r.topic for r in routes if r.dlt in dlts}))
        wanted: dict[str, int] = {}
        for r in routes:
            if r.dlt in dlts:
                wanted[r.dlt] = max(wanted.get(r.dlt, 0), source_limits[r.topic] + DEAD_LETTER_HEADROOM)
        self._create(
            admin,
            [
                NewTopic(t, k.topic_partitions, k.replication_factor, config={"max.message.bytes": str(n)})
                for t, n in sorted(wanted.items())
            ],
        )

    @staticmethod
    def _create(admin: Any, topics: list[Any]) -> None:
        if not topics:
            return
        for topic, fut in admin.create_topics(topics).items():
            try:
                fut.result(30)
                log.info("created topic %s", topic)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"cannot create topic {topic}: {exc}") from None

    def dead_letter_limits(self, admin: Any) -> dict[str, int]:
        """Each dead-letter topic's ``max.message.bytes`` (for the dead-letter producer); warns about a
        dead-letter topic that takes less than its source topic (larger records go there reduced)."""
        routes = list(self.config.routes.values())
        limits = max_message_bytes(admin, sorted({t for r in routes for t in (r.topic, r.dlt)}))
        for r in routes:
            if limits[r.dlt] < limits[r.topic]:
                log.warning(
                    "dead-letter topic %s takes messages up to %d bytes, its source %s up to %d: larger records "
                    "are dead-lettered reduced (s2s.reduced)",
                    r.dlt,
                    limits[r.dlt],
                    r.topic,
                    limits[r.topic],
                )
        return {r.dlt: limits[r.dlt] for r in routes}

    async def stop(self) -> None:
        for sink in self.sinks.values():
            await sink.close()
        if self.dead_letters is not None:
            await asyncio.to_thread(self.dead_letters.close)

    # ------------------------------------------------------------------ per batch of events

    async def process_batch(
        self,
        route: str,
        records: Sequence[Record],
        on_settled: Callable[[], object],
        leases: Mapping[tuple[str, int], Lease] | None = None,
    ) -> None:
        """Run the pipeline over consumed records (in offset order per partition) and settle them in
        the background; `on_settled` runs once every outcome of the batch is durable. `leases` (per
        topic-partition) say whether this worker still owns a record's partition: events of a
        revoked one are not sent nor dead-lettered here (their new owner does it)."""
        if self.fatal is not None:
            await asyncio.sleep(3600)  # the worker is stopping: take nothing more
        n = len(records)
        METRICS.consumed.labels(route).inc(n)
        cap = self.capacity[route]
        await cap.acquire(n)
        METRICS.in_flight.labels(route).set(cap.used)
        pipeline = self.pipelines[route]
        outcomes: list[Any] = []
        # the payloads go to the sink together (one future for each group of them: per-event futures
        # cost more than a native transform), as soon as they are made: the whole batch after the
        # native plan, every 100 records on the Python pipeline, so the sink's requests fill, and
        # leave, while the rest of the batch is still transformed
        waits: list[tuple[list[int], asyncio.Future[list[Any]]]] = []
        submit_many = self.sinks[pipeline.destination.name].submit_many
        process = pipeline.process
        queued: list[int] = []  # indices of the records whose payloads wait for `submit_many`
        events: list[tuple[str, bytes, Lease | None]] = []
        # one batch at a time per route, in arrival order: interleaving batches would delay the
        # first one's delivery until all of them are transformed
        try:
            async with self._transforming[route]:
                # the native plan makes the whole batch's payloads in one call (µs per record);
                # what it hands back (None), and every record without a plan, runs the Python pipeline
                made: list[Payload | None] | None = None
                if pipeline.native is not None:
                    try:
                        made, handed_back = pipeline.native_payloads([m.value() for m in records])  # type: ignore[misc]
                    except Exception:  # a bug in the plan must not stop the stream: this batch runs on Python
                        log.exception("route %s: the native plan failed; the Python pipeline processes this batch", route)
                        handed_back = Counter({"plan_error": n})
                    for why, count in handed_back.items():
                        METRICS.native_handed_back.labels(route, why).inc(count)
                python_done = 0
                for i, m in enumerate(records):
                    out: Outcome | None = made[i] if made is not None else None
                    if out is None:
                        try:
                            out = process(m.value(), m.topic(), m.partition(), m.offset())
                        except Exception:  # rare (a writer schema to fetch, a bug): the slow path handles it
                            out = await self._process(pipeline, m)
                        python_done += 1
                        if python_done % 100 == 0:
                            if events:
                                waits.append((queued, submit_many(events)))
                                queued, events = [], []
                            await asyncio.sleep(0)  # let HTTP responses and settling in between (latency)
                    outcomes.append(out)
                    if type(out) is Payload:
                        queued.append(i)
                        events.append((out.event_id, out.body, leases.get((m.topic(), m.partition())) if leases else None))
                if events:
                    waits.append((queued, submit_many(events)))
        except asyncio.CancelledError:  # shutdown: the batch is never acked; quiet its submitted events
            for _, fut in waits:
                fut.add_done_callback(_consume_result)
            raise
        task = asyncio.ensure_future(self._settle(route, pipeline, records, outcomes, waits, on_settled))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _process(self, pipeline: RoutePipeline, m: Any) -> Any:
        """One record through the pipeline. A writer schema that is not cached yet is fetched off the
        event loop, then the record is processed again; while the registry cannot answer, the route
        waits (backoff 0.5 s doubling to 30 s, reported paused, a log line) and the loop serves the rest.
        An id the registry refuses (404) comes back from the pipeline as the record's rejection."""
        backoff = 0.0
        while True:
            try:
                out = pipeline.process(m.value(), m.topic(), m.partition(), m.offset())
            except (SchemaNeeded, SchemaRegistryUnavailable) as exc:
                # (SchemaRegistryUnavailable: a store that fetches on a miss itself; not the worker's)
                failed = await self._fetch_schema(pipeline, exc.schema_id) if isinstance(exc, SchemaNeeded) else str(exc)
                if failed is not None:
                    if not backoff:
                        self.report.paused(pipeline.name, REGISTRY, True)
                    backoff = min(backoff * 2, REGISTRY_BACKOFF_S[1]) if backoff else REGISTRY_BACKOFF_S[0]
                    log.warning("route %s paused: %s; looking the schema up again in %.1fs", pipeline.name, failed, backoff)
                    await asyncio.sleep(backoff)
                continue
            except Exception as exc:  # a bug must not stop the stream or lose the record
                log.exception("route %s: unexpected error at %s/%d/%d", pipeline.name, m.topic(), m.partition(), m.offset())
                out = Rejected(INTERNAL, UNEXPECTED_ERROR, f"{type(exc).__name__} in the pipeline", type(exc).__name__)
            if backoff:
                self.report.paused(pipeline.name, REGISTRY, False)
                log.info("route %s resumed: the schema registry answered", pipeline.name)
            return out

    async def _fetch_schema(self, pipeline: RoutePipeline, schema_id: int) -> str | None:
        """Fetch and cache a writer schema in a thread (one lookup per id at a time, shared by every
        route waiting for it); None once the store knows the answer (a refused id included: it is
        remembered, and processing the record again dead-letters it), else why the registry failed."""
        assert pipeline.decoder is not None
        store = pipeline.decoder.store
        key = (id(store), schema_id)
        fut = self._schema_fetches.get(key)
        if fut is None:
            lookup = asyncio.to_thread(store.fetch, schema_id)
            fut = self._schema_fetches[key] = asyncio.ensure_future(asyncio.wait_for(lookup, REGISTRY_FETCH_TIMEOUT_S))
            fut.add_done_callback(_consume_result)
            fut.add_done_callback(lambda _: self._schema_fetches.pop(key, None))
        try:
            await asyncio.shield(fut)  # one route cancelled (shutdown) does not cancel the others' lookup
        except DecodeError:
            return None
        except SchemaRegistryUnavailable as exc:
            return str(exc)
        except TimeoutError:
            return f"schema registry did not answer within {REGISTRY_FETCH_TIMEOUT_S:.0f}s"
        return None

    async def _settle(
        self,
        route: str,
        pipeline: RoutePipeline,
        records: Sequence[Record],
        outcomes: list[Any],
        waits: list[tuple[list[int], asyncio.Future[list[Any]]]],
        on_settled: Callable[[], object],
    ) -> None:
        """Wait for the batch's deliveries (`waits`: record indices, their sink future), dead-letter what
        was rejected or refused, then ack the batch."""
        cap = self.capacity[route]
        dest = pipeline.destination.name
        try:
            dead: list[tuple[int, DeadLetter]] = []
            src: dict[int, ReadOnce] = {}  # the records to dead-letter, their headers read at most once
            for i, out in enumerate(outcomes):
                if isinstance(out, Rejected):
                    src[i] = ReadOnce(records[i])
                    dead.append((i, self._dead_letter(route, dest, src[i], out)))
            delivered = 0
            for indices, fut in waits:
                results = await fut  # raises DestinationMisconfigured
                for i, result in zip(indices, results, strict=True):
                    if not isinstance(result, Failed):
                        delivered += type(result) is not Abandoned
                        continue
                    out = outcomes[i]
                    src[i] = ReadOnce(records[i])
                    dl = self._dead_letter(
                        route,
                        dest,
                        src[i],
                        Rejected(
                            DELIVER, result.reason, f"{dest} rejected the event", DestinationRejected.__name__, out.event_id
                        ),
                    )
                    dl.http_status, dl.debug, dl.attempts = result.status, result.debug, result.attempts
                    dl.first_failure, dl.last_failure = result.first_failure, result.last_failure
                    dead.append((i, dl))
            assert self.dead_letters is not None
            # as they are, or reduced when they cannot be (too large, unwritable headers); raises
            # DeadLetterFailed only when Kafka refuses the dead-letter topic itself
            dlt = pipeline.route.dlt
            await asyncio.gather(*(self.dead_letters.send_dead_letter(dlt, dl, src[i]) for i, dl in dead))
            # every outcome is durable now: ack (in offset order per partition)
            on_settled()
            self.settled += len(records)
            if delivered:
                METRICS.delivered.labels(route, dest).inc(delivered)
            for _, dl in dead:
                METRICS.dead_lettered.labels(route, dl.stage, dl.reason).inc()
            for out in outcomes:
                if isinstance(out, Filtered):
                    METRICS.filtered.labels(route, out.stage, out.reason).inc()
        except (DestinationMisconfigured, DeadLetterFailed) as exc:
            self._fail(exc)
            for _, fut in waits:  # the other events of the batch failed the same way
                if fut.done() and not fut.cancelled():
                    fut.exception()
        except asyncio.CancelledError:
            pass  # abandoned at shutdown: never acked (nor anything after it), re-consumed later
        except Exception as exc:  # a bug: these records can never be acked, so stop loudly instead of stalling
            log.exception("route %s: settling a batch failed", route)
            self._fail(exc)
        finally:
            await cap.release(len(records))
            METRICS.in_flight.labels(route).set(cap.used)

    def _dead_letter(self, route: str, dest: str, m: Record, rej: Rejected) -> DeadLetter:
        ts_type, ts = m.timestamp()
        return DeadLetter(
            route=route,
            destination=dest,
            topic=m.topic(),
            partition=m.partition(),
            offset=m.offset(),
            timestamp_ms=ts if ts_type and ts >= 0 else None,
            stage=rej.stage,
            reason=rej.reason,
            error_class=rej.error_class,
            message=rej.detail,
            event_id=rej.event_id,
            replay_count=replay_count_of(read_headers(m)),  # a copy `replay --to-source` put back keeps its count
        )

    def _fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
            log.critical("stopping: %s (nothing more is acked; unsettled records are re-consumed after the fix)", exc)

    async def drain(self, grace: float) -> bool:
        """Wait up to `grace` seconds for in-flight records to settle; abandon the rest (not acked)."""
        deadline = time.monotonic() + grace
        for sink in self.sinks.values():
            sink.send_pending()
        while self.tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self.tasks), timeout=max(0.0, deadline - time.monotonic()))
        left = list(self.tasks)
        for t in left:
            t.cancel()
        if left:
            log.warning("shutdown: abandoned %d in-flight batches (they will be re-consumed)", len(left))
        return not left


__all__ = ["Bridge"]
