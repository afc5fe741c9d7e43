"""The systemic-rejection breaker of one destination: tells "the destination refuses us" from
"these records are bad".

A 400 is the record's fault only when the destination demonstrably accepts other requests. The
breaker keeps the evidence: `successes` counts delivered requests, and every refused request
remembers the count it was refused at. A refusal with no delivery since is *suspect*:

* a status or text that can never be about one record (3xx, 411, 415, Zeotap's Authorization or
  region text without an event index) opens the breaker at once;
* `refusals` suspect refusals in a row (single events or whole batches, no delivery in between)
  open it too: a bad `Authorization` header answered with 400 would otherwise bisect every batch
  down to single events and dead-letter the whole stream;
* a suspect single event waits (parks) for the evidence: a delivery elsewhere makes it the record's
  fault (dead-letter it); the breaker opening makes it held (sent again once it closes); in a stream
  too quiet to tell, it is dead-lettered after `probe_interval_s`.

While open, nothing is sent but one probe at a time (the first at once, then every
`probe_interval_s`, doubling up to `max_probe_interval_s`), preferably a request that was never
refused; everything else waits, so the routes back up and pause (back-pressure) and nothing is
committed. The first delivered request closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from streams.metrics import METRICS

log = logging.getLogger("streams.delivery")


class Breaker:
    def __init__(self, destination: str, *, refusals: int, probe_interval_s: float, max_probe_interval_s: float) -> None:
        self.destination = destination
        self.refusals = refusals
        self.probe_interval = probe_interval_s
        self.max_probe_interval = max(max_probe_interval_s, probe_interval_s)
        self.successes = 0  # delivered requests so far: the evidence a refusal is compared against
        self.open = False
        self.reason = ""
        self.status: int | None = None
        self.opened_at = 0.0
        self._in_a_row = 0  # suspect refusals since the last delivery
        self._interval = probe_interval_s
        self._next_probe = 0.0
        self._probing = False
        self._fresh_waiting = 0  # requests never refused, waiting to be sent while open
        self._changed = asyncio.Event()  # set (and replaced) at every delivery, opening and probe end
        self._m_open = METRICS.destination_refusing.labels(destination)
        self._m_trips = METRICS.breaker_trips.labels(destination)
        self.on_change: list = []  # callables(bool open)

    # ------------------------------------------------------------------ evidence

    def delivered(self) -> None:
        self.successes += 1
        self._in_a_row = 0
        if self.open:
            self._close()
        self._notify()

    def refused(self, status: int | None, reason: str) -> bool:
        """A suspect refusal of a whole request; True when it opened the breaker (hold the request)."""
        self._in_a_row += 1
        if self._in_a_row >= self.refusals:
            self.trip(status, reason)
        return self.open

    def trip(self, status: int | None, reason: str) -> None:
        """The destination refuses us: hold everything, probe."""
        if self.open:
            return
        self.open, self.status, self.reason = True, status, reason[:200]
        self.opened_at = time.monotonic()
        self._interval = self.probe_interval
        self._next_probe = 0.0  # the first probe at once: a false alarm costs one round trip
        self._m_open.set(1)
        self._m_trips.inc()
        log.error(
            "destination %s REFUSES our requests (%s%s): holding its routes, nothing is dead-lettered or committed "
            "for it; probing every %.0f-%.0fs",
            self.destination,
            f"HTTP {status}" if status else "refused",
            f": {self.reason}" if self.reason else "",
            self.probe_interval,
            self.max_probe_interval,
        )
        self._notify()
        self._report(True)

    async def judge(self, status: int | None, reason: str) -> bool:
        """A suspect single-event refusal: True if it is the record's fault (dead-letter it),
        False if the destination refuses us (hold it: it is sent again once the breaker closes)."""
        epoch = self.successes
        if self.refused(status, reason):
            return False
        deadline = time.monotonic() + self.probe_interval
        while True:
            if self.successes > epoch:
                return True
            if self.open:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True  # too quiet to tell; a few of these cannot flood anything
            await self._wait(left)

    # ------------------------------------------------------------------ sending while open

    async def admit(self, suspect: bool) -> bool:
        """Wait until a request may be sent; True when it is the breaker's probe (report its
        outcome with `delivered` or `probe_failed`)."""
        if not self.open:
            return False
        if not suspect:
            self._fresh_waiting += 1
        try:
            while self.open:
                wait = self._next_probe - time.monotonic()
                if not self._probing and wait <= 0 and (not suspect or not self._fresh_waiting):
                    self._probing = True
                    return True
                await self._wait(wait if wait > 0 and not self._probing else 1.0)
            return False
        finally:
            if not suspect:
                self._fresh_waiting -= 1

    def probe_failed(self) -> None:
        self._probing = False
        if self.open:
            self._next_probe = time.monotonic() + self._interval
            self._interval = min(self._interval * 2, self.max_probe_interval)
        self._notify()

    # ------------------------------------------------------------------ internals

    def _close(self) -> None:
        self.open = False
        self._probing = False
        self._m_open.set(0)
        log.warning(
            "destination %s accepts requests again after %.1fs: resuming its routes",
            self.destination,
            time.monotonic() - self.opened_at,
        )
        self._report(False)

    def _report(self, is_open: bool) -> None:
        for cb in self.on_change:
            with contextlib.suppress(Exception):
                cb(is_open)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.001, timeout))
