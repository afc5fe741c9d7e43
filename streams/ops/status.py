"""`s2s-bridge status`: per route the group's lag and the dead letters by stage and reason (from
Kafka), and what the workers' /metrics pages say: paused routes, refusing or unhealthy destinations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from streams.config import BridgeConfig
from streams.ops.kafka_probe import DeadLetterCounts, KafkaProbe, PartitionLag, listed_partitions
from streams.ops.scrub import Scrubber, exc_text
from streams.urls import safe_url


@dataclass
class PausedState:
    """Whether a route is paused, from the workers' `s2s_route_paused{route}` gauges."""

    known: bool
    paused_on: list[str] = field(default_factory=list)  # metrics URLs reporting 1
    running_on: list[str] = field(default_factory=list)  # metrics URLs reporting 0 / not set
    note: str = ""

    @property
    def text(self) -> str:
        if not self.known:
            return f"unknown ({self.note})" if self.note else "unknown"
        n = len(self.paused_on) + len(self.running_on)
        if self.paused_on:
            return f"PAUSED ({len(self.paused_on)}/{n} workers)"
        return "no" + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "paused": bool(self.paused_on) if self.known else None,
            "paused_on": self.paused_on,
            "running_on": self.running_on,
            "note": self.note,
        }


@dataclass
class RouteStatus:
    route: str
    topic: str
    destination: str
    partitions: list[PartitionLag] = field(default_factory=list)
    topic_error: str | None = None
    dead_letters: DeadLetterCounts | None = None
    paused: PausedState = field(default_factory=lambda: PausedState(False, note="no --metrics-url"))
    # the destination as the workers see it: "refusing" (breaker open), "unhealthy", "ok", or None
    destination_state: str | None = None

    @property
    def lag(self) -> int | None:
        return None if self.topic_error else sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "topic": self.topic,
            "destination": self.destination,
            "lag": self.lag,
            "topic_error": self.topic_error,
            "partitions": [p.as_dict() for p in self.partitions],
            "dead_letters": self.dead_letters.as_dict() if self.dead_letters else None,
            "paused": self.paused.as_dict(),
            "destination_state": self.destination_state,
        }


@dataclass
class MetricsScrape:
    url: str
    paused: dict[str, float] = field(default_factory=dict)  # route -> gauge value
    error: str | None = None
    refusing: dict[str, float] = field(default_factory=dict)  # destination -> s2s_destination_refusing
    unhealthy: dict[str, float] = field(default_factory=dict)  # destination -> s2s_destination_unhealthy


@dataclass
class StatusReport:
    group: str
    routes: list[RouteStatus] = field(default_factory=list)
    metrics: list[MetricsScrape] = field(default_factory=list)
    max_scan: int = 0
    error: str | None = None  # Kafka unreachable

    @property
    def ok(self) -> bool:
        """Everything could be read (says nothing about lag or dead letters)."""
        return (
            self.error is None
            and all(r.topic_error is None for r in self.routes)
            and all(r.dead_letters is None or r.dead_letters.error is None for r in self.routes)
            and all(m.error is None for m in self.metrics)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "group": self.group,
            "error": self.error,
            "max_scan": self.max_scan,
            "metrics": [{"url": m.url, "error": m.error, "route_paused": m.paused} for m in self.metrics],
            "routes": [r.as_dict() for r in self.routes],
        }


def metrics_endpoint(url: str) -> str:
    """A worker's metrics URL; a bare ``http://host:port`` gets ``/metrics``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urlunsplit(parts)


def parse_paused(text: str) -> dict[str, float]:
    """``s2s_route_paused{route=...}`` values from a Prometheus text page; KeyError if the metric is absent."""
    from prometheus_client.parser import text_string_to_metric_families

    found = False
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "s2s_route_paused":
            found = True
            for s in fam.samples:
                if "route" in s.labels:
                    out[s.labels["route"]] = s.value
    if not found:
        raise KeyError("s2s_route_paused")
    return out


def parse_destination_gauges(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """Per destination: ``s2s_destination_refusing`` and ``s2s_destination_unhealthy`` values."""
    from prometheus_client.parser import text_string_to_metric_families

    refusing: dict[str, float] = {}
    unhealthy: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        into = (
            refusing if fam.name == "s2s_destination_refusing" else unhealthy if fam.name == "s2s_destination_unhealthy" else None
        )
        if into is not None:
            for s in fam.samples:
                if "destination" in s.labels:
                    into[s.labels["destination"]] = s.value
    return refusing, unhealthy


def destination_state(destination: str, scrapes: Sequence[MetricsScrape]) -> str | None:
    """The worst state any worker reports for a destination; None without a readable scrape."""
    good = [s for s in scrapes if s.error is None]
    if not good:
        return None
    if any(s.refusing.get(destination, 0.0) >= 1 for s in good):
        return "refusing"
    if any(s.unhealthy.get(destination, 0.0) >= 1 for s in good):
        return "unhealthy"
    return "ok"


def scrape_metrics(url: str, timeout: float = 5.0, client: Any = None) -> MetricsScrape:
    import httpx

    endpoint = metrics_endpoint(url)
    out = MetricsScrape(safe_url(endpoint))
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        resp = client.get(endpoint)
        resp.raise_for_status()
        out.paused = parse_paused(resp.text)
        out.refusing, out.unhealthy = parse_destination_gauges(resp.text)
    except KeyError:
        out.error = "no s2s_route_paused metric (not a bridge worker's /metrics?)"
    except Exception as exc:
        out.error = exc_text(exc)[:300]
    finally:
        if own:
            client.close()
    return out


def paused_state(route: str, scrapes: Sequence[MetricsScrape]) -> PausedState:
    if not scrapes:
        return PausedState(False, note="no --metrics-url")
    good = [s for s in scrapes if s.error is None]
    failed = len(scrapes) - len(good)
    if not good:
        return PausedState(False, note=f"{failed} metrics URL(s) failed")
    st = PausedState(True)
    for s in good:
        # the gauge has no sample for a route that was never paused
        (st.paused_on if s.paused.get(route, 0.0) >= 1 else st.running_on).append(s.url)
    if failed:
        st.note = f"{failed} of {len(scrapes)} metrics URL(s) failed"
    return st


def gather_status(
    cfg: BridgeConfig,
    *,
    metrics_urls: Sequence[str] = (),
    max_scan: int = 100_000,
    timeout: float = 10.0,
    scan_timeout: float = 120.0,
    routes: Sequence[str] | None = None,
) -> StatusReport:
    scrub = Scrubber.for_config(cfg)
    report = StatusReport(cfg.kafka.group_id, max_scan=max_scan)
    for url in metrics_urls:
        s = scrape_metrics(url, timeout)
        s.url = scrub(s.url)
        s.error = scrub(s.error) if s.error else None
        report.metrics.append(s)
    probe = KafkaProbe(cfg, timeout, scrub)
    try:
        try:
            md = probe.topics()
        except Exception as exc:
            report.error = f"cannot connect to Kafka at {cfg.kafka.bootstrap_servers}: {probe.last_error() or exc_text(exc)}"
            md = None
        for name in routes or cfg.routes:
            route = cfg.routes[name]
            rs = RouteStatus(name, route.topic, route.destination, paused=paused_state(name, report.metrics))
            rs.destination_state = destination_state(route.destination, report.metrics)
            report.routes.append(rs)
            if md is None:
                rs.topic_error = "Kafka unreachable"
                continue
            parts, err = listed_partitions(md, route.topic)
            if parts is None:
                rs.topic_error = f"error: {err}" if err else "topic missing"
            else:
                try:
                    rs.partitions = probe.lag(route.topic, parts)
                except Exception as exc:
                    rs.topic_error = scrub(f"cannot read lag: {probe.last_error() or exc_text(exc)}")
            dparts, derr = listed_partitions(md, route.dlt)
            if dparts is None:
                rs.dead_letters = DeadLetterCounts(route.dlt, exists=False, error=f"error: {derr}" if derr else None)
            else:
                try:
                    rs.dead_letters = probe.scan_dead_letters(route.dlt, dparts, max_scan, scan_timeout)
                except Exception as exc:
                    rs.dead_letters = DeadLetterCounts(route.dlt, error=scrub(probe.last_error() or exc_text(exc)))
    finally:
        probe.close()
    if report.error:
        report.error = scrub(report.error)
    return report
