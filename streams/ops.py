"""Operator commands: `s2s-bridge check` (is everything the worker needs there and reachable?) and
`s2s-bridge status` (lag, dead letters by reason, paused routes).

Gathering returns plain dataclasses; rendering turns them into a `rich` table or a JSON document.
Nothing here writes to Kafka or commits offsets: lag is read with the bridge's group id (committed
offsets only, no join), dead-letter topics are scanned with `assign` (never `subscribe`) and never
committed. Destination probes send no events: each destination API offers its own credentials
probe (`DestinationAPI.auth_probe`: Zeotap and the activation API, an *empty* batch, which the API
answers with its credentials verdict); an API without one (Audiohook: no credentials, no
side-effect-free endpoint) is only connected to (TCP, TLS).

Every text that leaves this module passes `Scrubber`: configured secrets (the Kafka SASL / registry
/ TLS key passwords and OAuth client secret, and what each destination API names in its
`secrets()`: write keys, API keys, Zeotap's Basic token) never show up, even if an error message
were to quote one; URLs lose their user-info.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from streams.config import BridgeConfig
from streams.deadletter import H_EXC_CLASS, H_REASON, H_STAGE, header_dict
from streams.destinations import DestinationAPI, DestinationSettings, Verdict, make_destination
from streams.kafka import confluent_conf
from streams.urls import MASK, safe_url

_T = TypeVar("_T")
Level = Literal["ok", "warn", "fail", "skip"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "fail", "skip")

NO_PROBE = "not probed (API has no side-effect-free endpoint)"

_rdkafka_log = logging.getLogger("streams.ops.rdkafka")
_rdkafka_log.addHandler(logging.NullHandler())
_rdkafka_log.propagate = False


# --------------------------------------------------------------------------- secrets


class Scrubber:
    """Replaces every configured secret (and derived credential) in a text with ``***``."""

    MASK = MASK  # the mask safe_url puts on a secret query value, so both read the same

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # longest first, so a secret that contains another is masked whole
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    @classmethod
    def for_config(cls, cfg: BridgeConfig) -> Scrubber:
        found: list[str | None] = []
        k = cfg.kafka
        if k.sasl is not None:
            found += [_secret(k.sasl.password), _secret(k.sasl.oauth_client_secret)]
        if k.tls is not None:
            found.append(_secret(k.tls.key_password))
        if k.schema_registry is not None:
            found.append(_secret(k.schema_registry.password))
            found.append(urlsplit(k.schema_registry.url).password)
        for name, d in cfg.destinations.items():
            found += make_destination(name, d).secrets()
        return cls(found)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, self.MASK)
        if "://" in text:  # e.g. an HTTP client's error quoting the URL it was given
            text = _URL_IN_TEXT.sub(lambda m: safe_url(m.group(0)), text)
        return text


def _secret(v: Any) -> str | None:
    return v.get_secret_value() if v is not None else None


_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def _exc_text(exc: BaseException) -> str:
    err: Any = exc.args[0] if exc.args else None
    if hasattr(err, "str") and hasattr(err, "name"):  # a KafkaException's KafkaError
        return f"{err.name()}: {err.str()}" if err.str() else str(err.name())
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- check: data


@dataclass
class Check:
    """One row of `s2s-bridge check`."""

    check: str  # config, schema, kafka, topic, dead-letter topic, consumer group, schema registry, reachability, auth
    target: str  # what was checked: route, topic, destination, URL
    status: Level
    detail: str
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "status": self.status, "detail": self.detail, **self.info}


@dataclass
class CheckReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def counts(self) -> dict[str, int]:
        n = Counter(c.status for c in self.checks)
        return {lvl: n.get(lvl, 0) for lvl in LEVELS}

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts(), "checks": [c.as_dict() for c in self.checks]}


# --------------------------------------------------------------------------- Kafka


@dataclass
class PartitionLag:
    partition: int
    low: int
    high: int
    committed: int | None  # None: the group has committed nothing for this partition
    lag: int

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "low": self.low, "high": self.high, "committed": self.committed, "lag": self.lag}


def partition_lag(partition: int, low: int, high: int, committed: int | None, reset: str = "earliest") -> PartitionLag:
    """Records the group has still to consume: high watermark - committed offset; without a commit,
    what `auto_offset_reset` would make it consume (all retained records for ``earliest``)."""
    if committed is None or committed < 0:
        lag = high - low if reset == "earliest" else 0
        return PartitionLag(partition, low, high, None, max(0, lag))
    return PartitionLag(partition, low, high, committed, max(0, high - max(committed, low)))


@dataclass
class DeadLetterCounts:
    topic: str
    exists: bool = True
    total: int = 0  # records in the topic now (high - low watermarks, all partitions)
    scanned: int = 0
    capped: bool = False  # stopped at --max-scan
    timed_out: bool = False
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) -> records
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.exists and self.error is None and not self.capped and not self.timed_out and self.scanned >= self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "exists": self.exists,
            "total": self.total,
            "scanned": self.scanned,
            "capped": self.capped,
            "timed_out": self.timed_out,
            "complete": self.complete,
            "by_reason": [{"stage": s, "reason": r, "count": n} for (s, r), n in sorted(self.by_reason.items())],
            "error": self.error,
        }


def dead_letter_key(headers: Any) -> tuple[str, str]:
    """(stage, reason) of a dead letter: ``s2s.reason``, else the error class (as `replay --reason` matches)."""
    h = header_dict(headers)
    return h.get(H_STAGE) or "?", h.get(H_REASON) or h.get(H_EXC_CLASS) or "?"


class KafkaProbe:
    """The few read-only Kafka calls both commands need, with the config's security settings."""

    def __init__(self, cfg: BridgeConfig, timeout: float = 10.0, scrub: Scrubber | None = None) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.scrub = scrub or Scrubber.for_config(cfg)
        self.errors: list[str] = []
        self._admin: Any = None
        self._group_consumer: Any = None

    def _conf(self, **extra: Any) -> dict[str, Any]:
        return confluent_conf(
            self.cfg.kafka,
            **{"client.id": "s2s-bridge-ops", "logger": _rdkafka_log, "error_cb": self._on_error, **extra},
        )

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        if getattr(err, "code", lambda: None)() == KafkaError._ALL_BROKERS_DOWN:
            return  # says nothing the per-broker errors do not
        self.errors.append(err.str() if hasattr(err, "str") else str(err))

    def last_error(self) -> str:
        """librdkafka's own reason for the last failure (SASL, TLS, connect), from the error callback."""
        if not self.errors and self._admin is not None:
            self._admin.poll(0.5)  # serves the error callback
        return self.scrub(self.errors[-1]) if self.errors else ""

    @property
    def admin(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(self._conf())
        return self._admin

    @property
    def group_consumer(self) -> Any:
        """A consumer with the bridge's group id that never subscribes (so never joins) nor commits."""
        if self._group_consumer is None:
            from confluent_kafka import Consumer

            conf = {"group.id": self.cfg.kafka.group_id, "enable.auto.commit": False, "enable.auto.offset.store": False}
            self._group_consumer = Consumer(self._conf(**conf))
        return self._group_consumer

    def topics(self) -> Any:
        """Cluster metadata for all topics (a listing never auto-creates a topic)."""
        return self.admin.list_topics(timeout=self.timeout)

    def lag(self, topic: str, partitions: Iterable[int]) -> list[PartitionLag]:
        from confluent_kafka import TopicPartition

        c = self.group_consumer
        parts = sorted(partitions)
        got = _retry_coordinator(lambda: c.committed([TopicPartition(topic, p) for p in parts], timeout=self.timeout))
        committed = {tp.partition: tp.offset for tp in got}
        out = []
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
            off = committed.get(p)
            off = off if off is not None and off >= 0 else None
            out.append(partition_lag(p, low, high, off, self.cfg.kafka.auto_offset_reset))
        return out

    def group_state(self) -> tuple[str, int]:
        """(state, members) of the bridge's consumer group."""
        group = self.cfg.kafka.group_id
        desc = _retry_coordinator(
            lambda: self.admin.describe_consumer_groups([group], request_timeout=self.timeout)[group].result(self.timeout)
        )
        state = getattr(desc.state, "name", str(desc.state))
        return state, len(desc.members or [])

    def scan_dead_letters(
        self, topic: str, partitions: Iterable[int], max_scan: int, deadline_s: float = 60.0
    ) -> DeadLetterCounts:
        """Count a dead-letter topic's records by (stage, reason), beginning to high watermark, at most `max_scan`.

        Its own consumer: `assign` (no group join), no commits; the snapshot of high watermarks is
        taken first, so records arriving meanwhile are not waited for."""
        from confluent_kafka import Consumer, TopicPartition

        out = DeadLetterCounts(topic)
        c = Consumer(
            self._conf(
                **{
                    "group.id": f"{self.cfg.kafka.group_id}-ops-status",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        try:
            bounds = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout) for p in sorted(partitions)}
            out.total = sum(hi - lo for lo, hi in bounds.values())
            todo = {p: hi for p, (lo, hi) in bounds.items() if hi > lo}
            if not todo:
                return out
            if max_scan <= 0:
                out.capped = True
                return out
            c.assign([TopicPartition(topic, p, bounds[p][0]) for p in todo])
            deadline = time.monotonic() + deadline_s
            while todo:
                if out.scanned >= max_scan:
                    out.capped = True
                    break
                if time.monotonic() > deadline:
                    out.timed_out = True
                    break
                msgs = c.consume(min(500, max_scan - out.scanned), 1.0)
                for m in msgs:
                    if m.error() is not None:
                        continue
                    p, off = m.partition(), m.offset()
                    if p not in todo or off is None or off >= todo[p]:
                        continue
                    out.by_reason[dead_letter_key(m.headers())] += 1
                    out.scanned += 1
                    if off + 1 >= todo[p]:
                        del todo[p]
                if not msgs and todo:
                    # offsets up to the high watermark may hold no record (transaction markers, compaction)
                    for tp in c.position([TopicPartition(topic, p) for p in todo]):
                        if tp.offset >= todo.get(tp.partition, 0):
                            todo.pop(tp.partition, None)
        finally:
            c.close()
        return out

    def close(self) -> None:
        if self._group_consumer is not None:
            self._group_consumer.close()
            self._group_consumer = None
        self._admin = None


def _retry_coordinator(call: Callable[[], _T], attempts: int = 5, wait_s: float = 1.0) -> _T:
    """`call()`, asked again while the group coordinator is not ready (a fresh cluster, a moving coordinator)."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            text = _exc_text(exc)
            if attempt == attempts - 1 or not ("COORDINATOR" in text or "LOAD_IN_PROGRESS" in text):
                raise
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def _existing(md: Any, topic: str) -> tuple[list[int] | None, str | None]:
    """(partitions, error) of a topic in a full metadata listing; (None, None) when it is not listed."""
    t = md.topics.get(topic)
    if t is None:
        return None, None
    if t.error is not None:
        return None, t.error.str()
    return sorted(t.partitions), None


# --------------------------------------------------------------------------- destinations


@dataclass
class ProbeResult:
    status: Level
    detail: str
    http_status: int | None = None


def reach(url: str, timeout: float, verify_tls: bool = True) -> ProbeResult:
    """TCP connect (and TLS handshake for https) to the URL's host: no HTTP request at all."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            what = "TCP"
            if https:
                ctx = ssl.create_default_context()
                if not verify_tls:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(sock, server_hostname=host) as tls:
                    what = f"TCP + TLS ({tls.version()})"
    except ssl.SSLError as exc:
        return ProbeResult("fail", f"TLS handshake with {host}:{port} failed: {exc.reason or exc}")
    except OSError as exc:
        return ProbeResult("fail", f"cannot connect to {host}:{port}: {exc.strerror or _exc_text(exc)}")
    ms = (time.monotonic() - t0) * 1000
    return ProbeResult("ok", f"{what} to {host}:{port} in {ms:.0f} ms")


def probe_auth(name: str, settings: DestinationSettings, client: Any = None) -> ProbeResult:
    """Send the destination API's credentials probe (`DestinationAPI.auth_probe`, e.g. an empty
    batch) and read the credentials verdict from the answer.

    The worker's own classification decides: 2xx and "bad request" (the empty batch refused for its
    content, i.e. after the credentials were accepted) are OK; 401/403, a refusal (e.g. a Zeotap 400
    naming the Authorization header, write key, region or eventType), 404/405 (wrong URL) are not;
    408/429/5xx mean the API is unhealthy right now. An API without a probe is not probed."""
    import httpx

    api = make_destination(name, settings)
    req = api.auth_probe()
    if req is None:
        return ProbeResult("skip", _unprobed(api))
    own = client is None
    client = client or httpx.Client(verify=settings.verify_tls, timeout=settings.timeout_s, follow_redirects=False)
    try:
        resp = client.post(req.url, headers=dict(req.headers), content=req.body)
    except httpx.HTTPError as exc:
        return ProbeResult("fail", f"probe request failed: {_exc_text(exc)}")
    finally:
        if own:
            client.close()
    status = resp.status_code
    classified = api.classify(status, {k.lower(): v for k, v in resp.headers.items()})
    said = _response_text(resp, classified.reason)
    said_part = f": {said}" if said else ""
    if 300 <= status < 400:
        where = resp.headers.get("location", "?")
        return ProbeResult("fail", f"HTTP {status} redirect to {safe_url(where)}: check the destination url", status)
    verdict = classified.verdict
    if verdict is Verdict.DELIVERED:
        return ProbeResult("ok", f"credentials accepted (empty batch answered HTTP {status})", status)
    if verdict is Verdict.BAD_REQUEST:
        return ProbeResult("ok", f"credentials accepted (HTTP {status} refused the empty batch itself{said_part})", status)
    if verdict in (Verdict.MISCONFIGURED, Verdict.REFUSED):  # for a probe, both mean: fix the config
        what = "credentials rejected" if status in (401, 403) or _mentions_auth(said) else "misconfigured"
        return ProbeResult("fail", f"{what}: HTTP {status}{said_part}", status)
    if verdict is Verdict.RETRY:
        return ProbeResult("fail", f"destination unhealthy right now: HTTP {status}{said_part}", status)

    return ProbeResult("warn", f"unexpected answer HTTP {status}{said_part}", status)


def _mentions_auth(text: str) -> bool:
    t = text.lower()
    return any(w in t for w in ("authori", "write key", "write_key", "w_k", "credential", "api key", "unauthorized"))


def _unprobed(api: DestinationAPI) -> str:
    return f"{NO_PROBE}; {api.unprobed_because}" if api.unprobed_because else NO_PROBE


def _response_text(resp: Any, reason: str, limit: int = 200) -> str:
    """What the API said: the reason its classification read (e.g. Zeotap's ``x-zeo-debug``
    header), else a JSON ``message``/``error``, else nothing."""
    if reason:
        return reason[:limit]
    try:
        doc = resp.json()
    except Exception:
        return ""
    if isinstance(doc, dict):
        for k in ("message", "error", "detail"):
            if isinstance(doc.get(k), str):
                return doc[k][:limit]
    return ""


# --------------------------------------------------------------------------- check: gathering


def run_check(
    cfg: BridgeConfig,
    config_path: Path | str,
    *,
    timeout: float = 10.0,
    auth_probes: bool = True,
) -> CheckReport:
    """Everything `s2s-bridge check` looks at, in order; each problem is a row, never an exception."""
    scrub = Scrubber.for_config(cfg)
    report = CheckReport()

    def add(check: str, target: str, status: Level, detail: str, **info: Any) -> None:
        report.checks.append(Check(check, scrub(target), status, scrub(detail), info))

    add("config", str(config_path), "ok", f"valid: {len(cfg.routes)} route(s), {len(cfg.destinations)} destination(s)")
    _check_schemas(cfg, add)
    _check_kafka(cfg, timeout, scrub, add)
    _check_registry(cfg, timeout, add)
    for name, dest in cfg.destinations.items():
        target = f"{name} ({dest.type})"
        r = reach(dest.url, min(timeout, dest.timeout_s), dest.verify_tls)
        add("reachability", target, r.status, r.detail, url=safe_url(dest.url))
        probed = make_destination(name, dest).auth_probe() is not None
        if not auth_probes and probed:
            add("auth", target, "skip", "not probed (--no-auth-probe)")
        elif r.status == "fail" and probed:
            add("auth", target, "skip", "not probed: destination unreachable")
        else:
            p = probe_auth(name, dest)
            add("auth", target, p.status, p.detail, http_status=p.http_status)
    return report


def _check_schemas(cfg: BridgeConfig, add: Any) -> None:
    from streams.codec import SchemaStore, load_schema_file
    from streams.routes import build_pipelines

    store = SchemaStore()
    try:
        store.add_files(cfg.base_dir / p if not p.is_absolute() else p for p in cfg.schema_paths)
    except Exception as exc:
        add("schema", "schema_paths", "fail", f"cannot load: {_exc_text(exc)}"[:300])
    for name, route in cfg.routes.items():
        path = cfg.schema_path(route)
        try:
            schema = load_schema_file(path)
            store.add(schema)
            build_pipelines(cfg, store=store, routes=[name])
        except Exception as exc:
            add("schema", f"route {name}", "fail", f"{path}: {_exc_text(exc)}"[:300])
            continue
        add("schema", f"route {name}", "ok", f"{path.name}: {schema.get('name', '?')} ({route.framing} framing)")


def _check_kafka(cfg: BridgeConfig, timeout: float, scrub: Scrubber, add: Any) -> None:
    k = cfg.kafka
    probe = KafkaProbe(cfg, timeout, scrub)
    try:
        try:
            md = probe.topics()
        except Exception as exc:
            why = probe.last_error() or _exc_text(exc)
            add("kafka", k.bootstrap_servers, "fail", f"cannot connect ({k.security_protocol}): {why}")
            add("topic", "*", "skip", "not checked: Kafka unreachable")
            return
        security = k.security_protocol + (f" / {k.sasl.mechanism}" if k.sasl else "")
        add(
            "kafka",
            k.bootstrap_servers,
            "ok",
            f"connected ({security}): {len(md.brokers)} broker(s), {len(md.topics)} topic(s) visible",
            brokers=len(md.brokers),
        )
        for name, route in cfg.routes.items():
            parts, err = _existing(md, route.topic)
            if parts is None:
                why = f"error: {err}" if err else "missing (or not visible to this principal)"
                add("topic", route.topic, "fail", f"route {name}: source topic {why}", route=name, exists=False)
            else:
                try:
                    lags = probe.lag(route.topic, parts)
                    total = sum(x.lag for x in lags)
                    uncommitted = sum(1 for x in lags if x.committed is None)
                    lag_text = f"group lag {total}" + (f" ({uncommitted} partition(s) without commits)" if uncommitted else "")
                    add(
                        "topic",
                        route.topic,
                        "ok",
                        f"route {name}: {len(parts)} partition(s), {lag_text}",
                        route=name,
                        exists=True,
                        partitions=len(parts),
                        lag=total,
                    )
                except Exception as exc:
                    why = probe.last_error() or _exc_text(exc)
                    detail = f"route {name}: {len(parts)} partition(s); cannot read lag: {why}"
                    add("topic", route.topic, "fail", detail, route=name)
            parts, err = _existing(md, route.dlt)
            if parts is not None:
                add("dead-letter topic", route.dlt, "ok", f"route {name}: {len(parts)} partition(s)", route=name, exists=True)
            elif err:
                add("dead-letter topic", route.dlt, "fail", f"route {name}: error: {err}", route=name, exists=False)
            elif k.create_topics:
                add(
                    "dead-letter topic",
                    route.dlt,
                    "warn",
                    f"route {name}: missing; the worker creates it at start (kafka.create_topics: true)",
                    route=name,
                    exists=False,
                )
            else:
                add(
                    "dead-letter topic",
                    route.dlt,
                    "fail",
                    f"route {name}: missing and kafka.create_topics is false (create it, see docs/deploy.md)",
                    route=name,
                    exists=False,
                )
        try:
            state, members = probe.group_state()
            add("consumer group", k.group_id, "ok", f"state {state}, {members} member(s)", state=state, members=members)
        except Exception as exc:
            add("consumer group", k.group_id, "warn", f"cannot describe: {probe.last_error() or _exc_text(exc)}")
    finally:
        probe.close()


def _check_registry(cfg: BridgeConfig, timeout: float, add: Any) -> None:
    sr = cfg.kafka.schema_registry
    if sr is None:
        add("schema registry", "-", "skip", "not configured (Confluent-framed records cannot be decoded without it)")
        return
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    conf: dict[str, Any] = {"url": sr.url, "timeout": max(1, int(timeout)), "max.retries": 0}
    if sr.username:
        conf["basic.auth.user.info"] = f"{sr.username}:{_secret(sr.password) or ''}"
    target = safe_url(sr.url)
    try:
        subjects = SchemaRegistryClient(conf).get_subjects()
    except SchemaRegistryError as exc:
        what = "credentials rejected" if exc.http_status_code in (401, 403) else "error"
        add("schema registry", target, "fail", f"{what}: HTTP {exc.http_status_code}: {exc.error_message}"[:300])
        return
    except Exception as exc:
        add("schema registry", target, "fail", f"unreachable: {_exc_text(exc)}"[:300])
        return
    add("schema registry", target, "ok", f"reachable, {len(subjects)} subject(s)", subjects=len(subjects))


# --------------------------------------------------------------------------- status


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
        out.error = _exc_text(exc)[:300]
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
            report.error = f"cannot connect to Kafka at {cfg.kafka.bootstrap_servers}: {probe.last_error() or _exc_text(exc)}"
            md = None
        for name in routes or cfg.routes:
            route = cfg.routes[name]
            rs = RouteStatus(name, route.topic, route.destination, paused=paused_state(name, report.metrics))
            rs.destination_state = destination_state(route.destination, report.metrics)
            report.routes.append(rs)
            if md is None:
                rs.topic_error = "Kafka unreachable"
                continue
            parts, err = _existing(md, route.topic)
            if parts is None:
                rs.topic_error = f"error: {err}" if err else "topic missing"
            else:
                try:
                    rs.partitions = probe.lag(route.topic, parts)
                except Exception as exc:
                    rs.topic_error = scrub(f"cannot read lag: {probe.last_error() or _exc_text(exc)}")
            dparts, derr = _existing(md, route.dlt)
            if dparts is None:
                rs.dead_letters = DeadLetterCounts(route.dlt, exists=False, error=f"error: {derr}" if derr else None)
            else:
                try:
                    rs.dead_letters = probe.scan_dead_letters(route.dlt, dparts, max_scan, scan_timeout)
                except Exception as exc:
                    rs.dead_letters = DeadLetterCounts(route.dlt, error=scrub(probe.last_error() or _exc_text(exc)))
    finally:
        probe.close()
    if report.error:
        report.error = scrub(report.error)
    return report


# --------------------------------------------------------------------------- rendering

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_LABEL = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "skip": "-"}


def render_check(report: CheckReport, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="s2s-bridge check", title_justify="left", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.check, c.target, Text(_LABEL[c.status], style=_STYLE[c.status]), c.detail)
    console.print(table)
    n = report.counts()
    if report.ok:
        summary = Text(f"all OK ({n['ok']} ok, {n['warn']} warning(s), {n['skip']} not checked)", style="green")
    else:
        summary = Text(f"NOT OK: {n['fail']} failed, {n['warn']} warning(s), {n['ok']} ok", style="bold red")
    console.print(summary)


def dead_letter_text(d: DeadLetterCounts | None) -> str:
    if d is None:
        return "-"
    if d.error:
        return f"error: {d.error}"
    if not d.exists:
        return "no topic"
    if d.total == 0:
        return "0"
    if d.complete:
        return str(d.total)
    why = "capped by --max-scan" if d.capped else "timed out" if d.timed_out else "partial"
    return f"{d.total} (scanned {d.scanned}, {why})"


def render_status(report: StatusReport, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    if report.error:
        console.print(Text(report.error, style="bold red"))
    table = Table(title=f"s2s-bridge status (group {report.group})", title_justify="left")
    table.add_column("route", no_wrap=True)
    table.add_column("topic", overflow="fold")
    table.add_column("lag", justify="right")
    table.add_column("dead letters", overflow="fold")
    table.add_column("paused", overflow="fold")
    table.add_column("destination", overflow="fold")
    for r in report.routes:
        if r.topic_error:
            lag = Text(r.topic_error, style="red")
        else:
            lag = Text(str(r.lag))
            if any(p.committed is None for p in r.partitions):
                lag.append(" (no commits)", style="dim")
        paused = Text(r.paused.text, style="bold red" if r.paused.paused_on else ("dim" if not r.paused.known else ""))
        state = r.destination_state
        dest = Text(
            f"{r.destination}: {state.upper() if state in ('refusing', 'unhealthy') else state or 'unknown'}",
            style="bold red" if state in ("refusing", "unhealthy") else ("dim" if state is None else ""),
        )
        table.add_row(r.route, r.topic, lag, dead_letter_text(r.dead_letters), paused, dest)
    console.print(table)

    rows = [
        (r, stage, reason, n) for r in report.routes if r.dead_letters for (stage, reason), n in r.dead_letters.by_reason.items()
    ]
    if rows:
        by = Table(title="dead letters by stage and reason", title_justify="left")
        by.add_column("route", no_wrap=True)
        by.add_column("dead-letter topic", overflow="fold")
        by.add_column("stage", no_wrap=True)
        by.add_column("reason", overflow="fold")
        by.add_column("records", justify="right")
        for r, stage, reason, n in sorted(rows, key=lambda x: (x[0].route, -x[3], x[1], x[2])):
            assert r.dead_letters is not None
            by.add_row(r.route, r.dead_letters.topic, stage, reason, str(n))
        console.print(by)
    for r in report.routes:
        d = r.dead_letters
        if d is not None and d.exists and d.error is None and not d.complete and d.total:
            console.print(
                Text(
                    f"{r.route}: counted {d.scanned} of {d.total} dead letters "
                    f"({'--max-scan ' + str(report.max_scan) if d.capped else 'scan timed out'}); the breakdown is partial",
                    style="yellow",
                )
            )
    for m in report.metrics:
        if m.error:
            console.print(Text(f"metrics {m.url}: {m.error}", style="yellow"))


__all__ = [
    "Check",
    "CheckReport",
    "DeadLetterCounts",
    "KafkaProbe",
    "PartitionLag",
    "PausedState",
    "RouteStatus",
    "Scrubber",
    "StatusReport",
    "gather_status",
    "parse_paused",
    "partition_lag",
    "probe_auth",
    "reach",
    "render_check",
    "render_status",
    "run_check",
]
