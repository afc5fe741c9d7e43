"""Prometheus metrics of the bridge. Labels never carry secrets or PII (routes, destinations, stages, codes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("s2s_records_consumed", "Records consumed", ["route"], registry=r)
        self.delivered = Counter(
            "s2s_records_delivered", "Records acknowledged by their destination", ["route", "destination"], registry=r
        )
        self.filtered = Counter("s2s_records_filtered", "Records deliberately not sent", ["route", "stage", "reason"], registry=r)
        self.dead_lettered = Counter(
            "s2s_records_dead_lettered",
            "Records written to the dead-letter topic",
            ["route", "stage", "reason"],
            registry=r,
        )
        self.dead_letters_reduced = Counter(
            "s2s_dead_letters_reduced",
            "Dead letters written in a reduced form (the original could not be written as it was)",
            ["route", "cut"],
            registry=r,
        )
        self.requests = Counter("s2s_http_requests", "HTTP requests by response status", ["destination", "status"], registry=r)
        self.request_latency = Histogram(
            "s2s_http_request_duration_seconds",
            "HTTP request latency",
            ["destination"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_events = Histogram(
            "s2s_batch_events",
            "Events per HTTP request",
            ["destination"],
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.delivered_events = Counter("s2s_destination_events_delivered", "Events acknowledged", ["destination"], registry=r)
        self.concurrency_limit = Gauge(
            "s2s_http_concurrency_limit",
            "Requests the destination may have in flight now (adaptive concurrency's current limit)",
            ["destination"],
            registry=r,
        )
        self.retries = Counter("s2s_http_retries", "Retried requests by cause", ["destination", "status"], registry=r)
        self.batch_splits = Counter("s2s_batch_splits", "Batches split to isolate a bad record", ["destination"], registry=r)
        self.destination_unhealthy = Gauge(
            "s2s_destination_unhealthy",
            "1 while the destination keeps failing (its routes are paused)",
            ["destination"],
            registry=r,
        )
        self.destination_refusing = Gauge(
            "s2s_destination_refusing",
            "1 while the destination refuses our requests, not single records (breaker open: its routes are held)",
            ["destination"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "s2s_breaker_trips", "Times the destination was found refusing our requests", ["destination"], registry=r
        )
        self.native_handed_back = Counter(
            "s2s_native_handed_back",
            "Records a route's native plan handed to the Python pipeline, by why",
            ["route", "reason"],
            registry=r,
        )
        self.paused = Gauge("s2s_route_paused", "1 while consumption of the route is paused", ["route"], registry=r)
        self.in_flight = Gauge("s2s_in_flight_records", "Records consumed and not yet settled", ["route"], registry=r)
        self.lag = Gauge("s2s_consumer_lag", "Consumer lag (high watermark - position)", ["topic", "partition"], registry=r)


METRICS = Metrics()
