"""`s2s-bridge check`: is everything the worker needs there and reachable? Every problem is a row
(`Check`), never an exception.

Destination probes send no events: each destination API offers its own credentials probe
(`DestinationAPI.auth_probe`: Zeotap and the activation API, an *empty* batch, which the API
answers with its credentials verdict); an API without one (Audiohook: no credentials, no
side-effect-free endpoint) is only connected to (TCP, TLS).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from streams.config import BridgeConfig
from streams.destinations import DestinationAPI, DestinationSettings, Verdict, make_destination
from streams.ops.kafka_probe import KafkaProbe, listed_partitions
from streams.ops.scrub import Scrubber, exc_text, secret_value
from streams.urls import safe_url

Level = Literal["ok", "warn", "fail", "skip"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "fail", "skip")

NO_PROBE = "not probed (API has no side-effect-free endpoint)"


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
        return ProbeResult("fail", f"cannot connect to {host}:{port}: {exc.strerror or exc_text(exc)}")
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
        return ProbeResult("fail", f"probe request failed: {exc_text(exc)}")
    finally:
        if own:
            client.close()
    status = resp.status_code
    classified = api.classify(status, {k.lower(): v for k, v in resp.headers.items()}, resp.content if status >= 300 else b"")
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
        # an API may refuse brand-new credentials for a while (Zeotap: a new write key for 30 minutes)
        hint = getattr(api, "credentials_rejected_hint", "") if what == "credentials rejected" else ""
        return ProbeResult("fail", f"{what}: HTTP {status}{said_part}" + (f"; {hint}" if hint else ""), status)
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


# --------------------------------------------------------------------------- gathering


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
        add("schema", "schema_paths", "fail", f"cannot load: {exc_text(exc)}"[:300])
    for name, route in cfg.routes.items():
        path = cfg.schema_path(route)
        try:
            schema = load_schema_file(path)
            store.add(schema)
            build_pipelines(cfg, store=store, routes=[name])
        except Exception as exc:
            add("schema", f"route {name}", "fail", f"{path}: {exc_text(exc)}"[:300])
            continue
        add("schema", f"route {name}", "ok", f"{path.name}: {schema.get('name', '?')} ({route.framing} framing)")


def _check_kafka(cfg: BridgeConfig, timeout: float, scrub: Scrubber, add: Any) -> None:
    k = cfg.kafka
    probe = KafkaProbe(cfg, timeout, scrub)
    try:
        try:
            md = probe.topics()
        except Exception as exc:
            why = probe.last_error() or exc_text(exc)
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
            parts, err = listed_partitions(md, route.topic)
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
                    why = probe.last_error() or exc_text(exc)
                    detail = f"route {name}: {len(parts)} partition(s); cannot read lag: {why}"
                    add("topic", route.topic, "fail", detail, route=name)
            parts, err = listed_partitions(md, route.dlt)
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
            add("consumer group", k.group_id, "warn", f"cannot describe: {probe.last_error() or exc_text(exc)}")
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
        conf["basic.auth.user.info"] = f"{sr.username}:{secret_value(sr.password) or ''}"
    target = safe_url(sr.url)
    try:
        subjects = SchemaRegistryClient(conf).get_subjects()
    except SchemaRegistryError as exc:
        what = "credentials rejected" if exc.http_status_code in (401, 403) else "error"
        add("schema registry", target, "fail", f"{what}: HTTP {exc.http_status_code}: {exc.error_message}"[:300])
        return
    except Exception as exc:
        add("schema registry", target, "fail", f"unreachable: {exc_text(exc)}"[:300])
        return
    add("schema registry", target, "ok", f"reachable, {len(subjects)} subject(s)", subjects=len(subjects))
