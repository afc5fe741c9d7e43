"""Batched HTTP delivery to one destination.

A `Sink` takes encoded events from any number of routes, cuts them into requests bounded by
event count, bytes and linger time, sends them with bounded concurrency and a rate limit, and
tells each event's caller what became of it:

* `Delivered`: the destination acknowledged the request that carried it;
* `Failed`: the destination says this event is bad (a 400 isolated by splitting the batch, too
  large on its own, or a 5xx it alone keeps causing while other requests pass): the caller
  dead-letters it;
* `DestinationMisconfigured` is raised to the caller when the destination answers 401/403 (or
  the like): nothing is dead-lettered, the worker stops.

A destination that refuses *us* rather than a record (every request 400 for the same reason, a
redirect, 411/415) is held by its `Breaker` (streams.delivery.breaker): nothing is dead-lettered,
one probe at a time until it accepts requests again. Unhealthy destinations (429, 5xx, timeouts,
connection errors) are retried with exponential backoff and full jitter, honouring `Retry-After`
up to `retry.max_retry_after_s`, for as long as it takes: the callers' awaits do not return, so
consumption stops (back-pressure) instead of flooding the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from prometheus_client import Gauge

from streams.delivery.breaker import Breaker
from streams.destinations import DestinationAPI, Verdict
from streams.errors import FatalError
from streams.metrics import METRICS
from streams.pipeline.outcome import BAD_REQUEST, SERVER_ERROR, TOO_LARGE

log = logging.getLogger("streams.delivery")


class DestinationMisconfigured(FatalError):
    """The destination rejects our credentials or endpoint: stop, do not dead-letter."""

    def __init__(self, destination: str, status: int, reason: str) -> None:
        super().__init__(
            f"destination {destination!r} answered HTTP {status}"
            + (f" ({reason})" if reason else "")
            + ": check its url, credentials and region in the config"
        )
        self.destination = destination
        self.status = status


@dataclass(slots=True)
class Delivered:
    attempts: int


@dataclass(slots=True)
class Failed:
    reason: str  # the dead letter's reason at stage deliver: BAD_REQUEST | TOO_LARGE | SERVER_ERROR
    status: int | None
    debug: str
    attempts: int
    first_failure: float
    last_failure: float


@dataclass(slots=True)
class Abandoned:
    """Not sent: the partition it came from was revoked from this worker while it waited (its new
    owner consumes it again from the last commit); neither delivered nor dead-lettered here."""


class Lease(Protocol):
    """Whether this worker still owns the partition an event came from."""

    revoked: bool


Result = Delivered | Failed | Abandoned


class Outcomes:
    """The results of events submitted together (`Sink.submit_many`), in submission order: `future`
    resolves with the list once every event has one, or with the exception that stopped the
    destination. One future per consumed batch, not one per event: the per-event futures, their
    callbacks and awaits were a tenth of the worker's time once the transform was native."""

    __slots__ = ("future", "pending", "results", "single")

    def __init__(self, n: int, single: bool = False) -> None:
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.results: list[Result | None] = [None] * n
        self.pending = n
        self.single = single  # `submit`: the future resolves with the one result, not a list

    def resolve(self, index: int, result: Result) -> None:
        if self.results[index] is not None or self.future.done():
            return
        self.results[index] = result
        self.pending -= 1
        if self.pending == 0:
            self.future.set_result(result if self.single else self.results)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def cancel(self) -> None:
        if not self.future.done():
            self.future.cancel()


@dataclass(slots=True)
class _Item:
    event_id: str
    body: bytes
    outcomes: Outcomes
    index: int  # in `outcomes`
    attempts: int = 0
    first_failure: float = 0.0
    refused_at: int = -1  # the breaker's delivery count when a request carrying it was last refused
    lease: Lease | None = None

    def resolve(self, result: Result) -> None:
        self.outcomes.resolve(self.index, result)


class _Family:
    """The requests one cut batch became (itself, or its halves after splits)."""

    __slots__ = ("successes",)

    def __init__(self) -> None:
        self.successes = 0  # of its requests, delivered


class RateLimiter:
    """Token bucket in requests per second (burst = 1 s worth, at least one request: a rate
    below 1/s must still send)."""

    def __init__(self, rps: float | None) -> None:
        self.rps = rps
        self._burst = max(1.0, rps or 0.0)
        self._tokens = self._burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if not self.rps:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rps)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rps)


class ConcurrencyLimit:
    """How many requests may be in flight to a destination: fixed, or adaptive (AIMD, after
    Vector's adaptive request concurrency).

    Adaptive: starts at `maximum`; a push-back (429, 5xx, timeout, connection error) halves it,
    and it grows back by one per round trip (each response that came back while every slot was
    busy or callers were queued adds 1/limit) up to `maximum`. So a destination that throttles or
    fails under load gets fewer parallel requests instead of more retries, and full concurrency
    again once it copes. Response times alone do not lower it: measured from a busy event loop
    they rise with our own CPU load, not the destination's (a benchmark run with a latency rule
    halved throughput at the same load and quadrupled the p50 latency).
    """

    def __init__(self, maximum: int, adaptive: bool, gauge: Gauge | None = None) -> None:
        self.maximum = maximum
        self.adaptive = adaptive
        self.limit = maximum
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._credit = 0.0  # growth earned towards the next +1
        self._gauge = gauge  # reports the current limit
        self._report()

    async def acquire(self) -> None:
        """Wait for a slot."""
        while self.in_use >= self.limit:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # pass the slot we were given on
                raise
        self.in_use += 1

    def release(self, pushed_back: bool) -> None:
        # the limit is what holds us back when every slot is busy or callers are queued
        saturated = self.in_use >= self.limit or bool(self._waiters)
        self.in_use -= 1
        if self.adaptive:
            if pushed_back:
                self.limit = max(1, self.limit // 2)
                self._credit = 0.0
            elif saturated and self.limit < self.maximum:
                self._credit += 1.0 / self.limit
                if self._credit >= 1.0:
                    self.limit += 1
                    self._credit = 0.0
            self._report()
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_use
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    def _report(self) -> None:
        if self._gauge is not None:
            self._gauge.set(self.limit)


def _release(resp: httpx.Response) -> None:
    """Break httpx 0.28's response <-> stream reference cycle (`BoundAsyncStream._response`,
    encode/httpx#3733) once the response is read: without it every response, and the request body
    it references (~300 KB for 500 events), waits for a full garbage-collector pass."""
    stream = resp.stream
    if getattr(stream, "_response", None) is resp:
        stream._response = None  # type: ignore[union-attr]


class Sink:
    """Batching, retrying HTTP sender for one destination."""

    def __init__(self, api: DestinationAPI, client: httpx.AsyncClient | None = None) -> None:
        self.api = api
        s = api.settings
        self.name = api.name
        self.max_events = s.batch.max_events if api.batched else 1
        self.max_bytes = min(s.batch.max_bytes, api.max_request_bytes)
        self.linger = s.batch.linger_ms / 1000.0
        self.gzip = s.gzip
        self.retry = s.retry
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(s.timeout_s),
            limits=httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency),
            verify=s.verify_tls,
        )
        self._own_client = client is None
        self._slots = ConcurrencyLimit(s.concurrency, s.adaptive_concurrency, METRICS.concurrency_limit.labels(self.name))
        self._rate = RateLimiter(s.worker_rate_rps)  # this worker's share of the deployment's budget
        b = s.breaker
        self.breaker = Breaker(
            self.name, refusals=b.refusals, probe_interval_s=b.probe_interval_s, max_probe_interval_s=b.max_probe_interval_s
        )
        self._pending: list[_Item] = []
        self._pending_bytes = 0
        self._linger_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._families: set[_Family] = set()  # batches being delivered (in flight or backing off)
        self._not_before = 0.0  # monotonic time before which nothing is sent (Retry-After)
        self.unhealthy = False
        self._recovered = asyncio.Event()  # set (and replaced) when an unhealthy destination answers again
        self._consecutive_failures = 0
        self.on_health_change: list = []  # callables(bool unhealthy)
        # a destination refusing us is unhealthy too (the Faust engine pauses its routes on this);
        # the first delivery after it makes it healthy again
        self.breaker.on_change.append(self._on_breaker)
        self._m_events = METRICS.batch_events.labels(self.name)
        self._m_latency = METRICS.request_latency.labels(self.name)

    # ------------------------------------------------------------------ public

    def submit(self, event_id: str, body: bytes, lease: Lease | None = None) -> asyncio.Future[Result]:
        """Queue one encoded event; the future resolves when its fate is known (`Abandoned`, unsent,
        if its `lease` is revoked before it is sent)."""
        outcomes = Outcomes(1, single=True)
        self._queue(_Item(event_id, body, outcomes, 0, lease=lease))
        return outcomes.future

    def submit_many(self, events: Sequence[tuple[str, bytes, Lease | None]]) -> asyncio.Future[list[Result]]:
        """Queue encoded events `(event_id, body, lease)`; one future resolves with their results,
        in order, once all are known (`submit`'s rules per event)."""
        outcomes = Outcomes(len(events))
        queue = self._queue
        for index, (event_id, body, lease) in enumerate(events):
            queue(_Item(event_id, body, outcomes, index, lease=lease))
        return outcomes.future

    def _queue(self, item: _Item) -> None:
        size = len(item.body) + 1
        pending = self._pending
        if pending and (
            len(pending) >= self.max_events
            or self._pending_bytes + size + self.api.envelope_bytes(len(pending) + 1) > self.max_bytes
        ):
            self._cut()
            pending = self._pending
        pending.append(item)
        self._pending_bytes += size
        if len(pending) >= self.max_events:
            self._cut()
        elif self._linger_task is None:
            self._linger_task = asyncio.ensure_future(self._linger())

    async def send(self, events: Sequence[tuple[str, bytes]]) -> list[Result]:
        """Submit events and wait for all of their results (raises DestinationMisconfigured)."""
        futs = [self.submit(eid, body) for eid, body in events]
        self.flush()
        return list(await asyncio.gather(*futs))

    def flush(self) -> None:
        """With `linger_ms: 0`, send what is pending now; otherwise the linger timer (or a full
        batch) cuts the request, so that requests fill up."""
        if self._pending and self.linger == 0:
            self._cut()

    def send_pending(self) -> None:
        """Cut what is pending into a request now, whatever the linger time (shutdown)."""
        if self._pending:
            self._cut()

    async def drain(self) -> None:
        """Send everything pending and wait for in-flight requests."""
        self.send_pending()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._linger_task:
            self._linger_task.cancel()
        if self._own_client:
            await self.client.aclose()

    # ------------------------------------------------------------------ batching

    async def _linger(self) -> None:
        try:
            await asyncio.sleep(self.linger)
            self._linger_task = None
            if self._pending:
                self._cut()
        except asyncio.CancelledError:
            pass

    def _cut(self) -> None:
        items, self._pending, self._pending_bytes = self._pending, [], 0
        if self._linger_task is not None:
            self._linger_task.cancel()
            self._linger_task = None
        task = asyncio.ensure_future(self._deliver(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ sending

    async def _deliver(self, items: list[_Item]) -> None:
        family = _Family()
        self._families.add(family)
        try:
            await self._deliver_items(items, family)
        except DestinationMisconfigured as exc:
            for it in items:
                it.outcomes.fail(exc)
        except asyncio.CancelledError:
            for it in items:
                it.outcomes.cancel()
            raise
        except Exception as exc:  # a bug: never leave a caller hanging
            log.exception("delivery to %s failed unexpectedly", self.name)
            for it in items:
                it.outcomes.fail(exc)
        finally:
            self._families.discard(family)

    async def _deliver_items(self, items: list[_Item], family: _Family, attempt: int = 0) -> None:
        """Send until every item has a result. `attempt` counts the tries of this request and of
        the ones it was split from (its backoff, and how long it has been failing)."""
        breaker = self.breaker
        born = breaker.successes  # deliveries when this request was made: later ones are evidence
        while True:
            items = self._owned(items)
            if not items:
                return
            attempt += 1
            for it in items:
                it.attempts += 1
            # while the breaker is open, wait for a turn (a request never refused goes first)
            probe = breaker.open and await breaker.admit(any(it.refused_at >= 0 for it in items))
            verdict, status, reason, retry_after = await self._post(items)
            if probe and verdict is not Verdict.DELIVERED:
                breaker.probe_failed()
            now = time.time()
            if verdict is Verdict.DELIVERED:
                breaker.delivered()
                family.successes += 1
                self._healthy()
                for it in items:
                    it.resolve(Delivered(it.attempts))
                METRICS.delivered_events.labels(self.name).inc(len(items))
                return
            if verdict is Verdict.MISCONFIGURED:
                raise DestinationMisconfigured(self.name, status or 0, reason)
            if verdict is Verdict.TOO_LARGE:
                self._healthy()
                if len(items) == 1:
                    self._fail(items[0], TOO_LARGE, status, reason, now)
                    return
                await self._split(items, family, attempt)
                return
            if verdict in (Verdict.BAD_REQUEST, Verdict.REFUSED):
                # the record's fault only if the destination delivered something since these items
                # were last refused; otherwise the refusal is suspect (see streams.delivery.breaker)
                evidence = all(0 <= it.refused_at < breaker.successes for it in items)
                for it in items:
                    it.refused_at = breaker.successes
                    it.first_failure = it.first_failure or now
                if not evidence:
                    if verdict is Verdict.REFUSED:
                        breaker.trip(status, reason)
                        continue  # held until the breaker closes, then sent again
                    if len(items) == 1:
                        if not await breaker.judge(status, reason):
                            continue
                    elif breaker.refused(status, reason):
                        continue
                if len(items) == 1:
                    self._fail(items[0], BAD_REQUEST, status, reason, now)
                    return
                await self._split(items, family, attempt)
                return
            # RETRY: destination unhealthy or throttling, or this request makes the server fail.
            # The server choking on a record (a 5xx, a timeout, a dropped connection; a 429 is only
            # ever "slow down", and splitting would make it worse) shows as: other requests
            # delivered since this one was made, or - when nothing else is being sent - parts of
            # this very batch delivered. While the destination fails as a whole neither holds (a
            # batch made just before an outage may be split once), so an outage dead-letters nothing.
            chokes = status is None or status >= 500
            evidence = breaker.successes > born
            alone = len(self._families) == 1
            if chokes and len(items) > 1 and attempt >= self.retry.isolate_after and (evidence or alone):
                await self._split(items, family, attempt)
                return
            if (
                chokes
                and len(items) == 1
                and attempt >= self.retry.poison_after
                and (evidence or (alone and family.successes > 0))
            ):
                items[0].first_failure = items[0].first_failure or now
                self._fail(items[0], SERVER_ERROR, status, reason or "timeout", now)
                return
            for it in items:
                it.first_failure = it.first_failure or now
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.retry.unhealthy_after and not self.unhealthy:
                self._set_unhealthy(True)
            METRICS.retries.labels(self.name, str(status or "error")).inc()
            cap = min(self.retry.max_backoff_s, self.retry.initial_backoff_s * (2 ** min(attempt - 1, 20)))
            delay = random.uniform(0, cap)
            if retry_after is not None:
                if retry_after > self.retry.max_retry_after_s:
                    log.warning(
                        "destination %s asked for Retry-After %.0fs; waiting retry.max_retry_after_s (%.0fs) instead",
                        self.name,
                        retry_after,
                        self.retry.max_retry_after_s,
                    )
                    retry_after = self.retry.max_retry_after_s
                delay = max(delay, retry_after)
                # the destination asked for quiet: no request at all to it before then
                self._not_before = max(self._not_before, time.monotonic() + retry_after)
            log.warning(
                "destination %s: %s, retrying %d events in %.2fs (attempt %d)",
                self.name,
                f"HTTP {status}" if status else reason,
                len(items),
                delay,
                attempt,
            )
            if self.unhealthy and retry_after is None:
                # once any request gets through again, everything backing off is retried at once
                # (within the concurrency limit) instead of sleeping out its backoff
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._recovered.wait(), delay)
            else:
                await asyncio.sleep(delay)

    @staticmethod
    def _owned(items: list[_Item]) -> list[_Item]:
        """The items whose partition this worker still owns; the others are abandoned unsent (a
        rebalance gave them to another member, which sends them itself: sending them here too is
        a duplicate, and after a long freeze a whole in-flight window of them)."""
        if all(it.lease is None or not it.lease.revoked for it in items):
            return items
        kept = []
        for it in items:
            if it.lease is not None and it.lease.revoked:
                it.resolve(Abandoned())
            else:
                kept.append(it)
        return kept

    async def _split(self, items: list[_Item], family: _Family, attempt: int) -> None:
        """Bisect: the halves are sent on their own, so the bad records end up alone."""
        METRICS.batch_splits.labels(self.name).inc()
        mid = len(items) // 2
        await asyncio.gather(self._deliver_items(items[:mid], family, attempt), self._deliver_items(items[mid:], family, attempt))

    @staticmethod
    def _fail(it: _Item, reason: str, status: int | None, debug: str, now: float) -> None:
        it.resolve(Failed(reason, status, debug, it.attempts, it.first_failure or now, now))

    async def _post(self, items: list[_Item]) -> tuple[Verdict, int | None, str, float | None]:
        body = self.api.batch_body([it.body for it in items])
        gzipped = False
        if self.gzip:
            body = gzip.compress(body, compresslevel=5)
            gzipped = True
        req = self.api.request(body, gzipped)
        await self._slots.acquire()
        pushed_back = True
        try:
            while (wait := self._not_before - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await self._rate.acquire()
            t0 = time.perf_counter()
            try:
                resp = await self.client.post(req.url, content=req.body, headers=req.headers)
            except httpx.TimeoutException:
                return Verdict.RETRY, None, "timeout", None
            except httpx.TransportError as exc:
                return Verdict.RETRY, None, f"connection error ({type(exc).__name__})", None
            finally:
                self._m_latency.observe(time.perf_counter() - t0)
            _release(resp)
            # a success's body is not read (the APIs answer 2xx with nothing the bridge uses)
            c = self.api.classify(resp.status_code, resp.headers, resp.content if resp.status_code >= 300 else b"")
            pushed_back = c.verdict is Verdict.RETRY
        finally:
            self._slots.release(pushed_back)
        METRICS.requests.labels(self.name, str(resp.status_code)).inc()
        self._m_events.observe(len(items))
        return c.verdict, c.status, c.reason, c.retry_after_s

    def _on_breaker(self, is_open: bool) -> None:
        if is_open and not self.unhealthy:
            self._set_unhealthy(True)

    def _healthy(self) -> None:
        self._consecutive_failures = 0
        if self.unhealthy:
            self._set_unhealthy(False)

    def _set_unhealthy(self, value: bool) -> None:
        self.unhealthy = value
        if not value:
            self._recovered.set()
            self._recovered = asyncio.Event()
        METRICS.destination_unhealthy.labels(self.name).set(1 if value else 0)
        log.warning("destination %s is %s", self.name, "UNHEALTHY: pausing its routes" if value else "healthy again")
        for cb in self.on_health_change:
            with contextlib.suppress(Exception):
                cb(value)
