"""The one writer of the consuming state on /metrics: `s2s_route_paused` and `s2s_consumer_lag`.

A route is paused while any cause holds: the batch engine paused its partitions (back-pressure:
the route holds its limit of unsettled records), the Faust engine saw its destination turn
unhealthy, or the bridge waits for the schema registry. Each source says when its cause starts and
ends; the gauge moves only when the first cause starts and the last one ends, so one source
resuming never hides another that still holds the route.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable

from streams.metrics import METRICS

TP = tuple[str, int]

BACKPRESSURE = "backpressure"  # the route holds worker.max_in_flight_events unsettled records
DESTINATION = "destination"  # the route's destination keeps failing
REGISTRY = "registry"  # the route waits for a writer schema the registry cannot serve yet


class ConsumingReport:
    """Pause causes per route and lag per partition, written to the metrics from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._causes: dict[str, set[str]] = {}

    def paused(self, route: str, cause: str, on: bool) -> None:
        """`cause` holds `route` (on) or no longer does."""
        with self._lock:
            causes = self._causes.setdefault(route, set())
            before = bool(causes)
            if on:
                causes.add(cause)
            else:
                causes.discard(cause)
            if bool(causes) != before:
                METRICS.paused.labels(route).set(1 if causes else 0)

    @staticmethod
    def lag(topic: str, partition: int, high: int | None, committed: int | None) -> None:
        """Records of the partition not committed yet (consumed but unsettled ones count as lag)."""
        if high is not None and high >= 0 and committed is not None:
            METRICS.lag.labels(topic, str(partition)).set(max(0, high - committed))

    @staticmethod
    def forget(tps: Iterable[TP]) -> None:
        """These partitions left this member: another member reports their lag now."""
        for t, p in tps:
            with contextlib.suppress(KeyError):
                METRICS.lag.remove(t, str(p))
