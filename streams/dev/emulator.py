"""Local emulator of the three destination APIs, plus a minimal Confluent Schema Registry.

One aiohttp process serves:

* ``POST /zeotap?region=EU&eventType=s2s`` -- Zeotap server-to-server source (real-time and batch),
* ``POST /audiohook/{pixel_id}/pixel.png`` -- Audiohook S2S pixel,
* ``POST /activation/events`` -- the generic event-activation API,
* ``/registry/...`` -- the Schema Registry endpoints ``SchemaRegistryClient`` uses,
* ``/_emulator/...`` -- the admin API (stats, received events, receipts, faults, reset).

Each API follows its published document; where a document is silent the choice is listed in
``docs/emulator.md``. Fault injection (5xx, 429 + Retry-After, slow answers, dropped connections,
outage windows, poison event ids, forced auth failures) is settable at start and at runtime.

Three ways to run it: :class:`Emulator` (background thread, for tests), :class:`EmulatorProcess`
(a child ``python -m streams.dev.emulator``, for benchmarks) and :func:`run_emulator` /
:func:`main_dev_emulator` (blocking, for the CLI).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import gc
import ipaddress
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from aiohttp import web

__all__ = [
    "ACTIVATION_PATH",
    "AUDIOHOOK_PATH",
    "DEFAULT_API_KEY",
    "DESTINATIONS",
    "DOC_WRITE_KEY",
    "REGISTRY_PREFIX",
    "ZEOTAP_PATH",
    "Emulator",
    "EmulatorClient",
    "EmulatorConfig",
    "EmulatorProcess",
    "EmulatorState",
    "FaultConfig",
    "main_dev_emulator",
    "make_app",
    "make_runner",
    "run_emulator",
    "zeotap_authorization",
]

DESTINATIONS: tuple[str, ...] = ("zeotap", "audiohook", "activation")
GLOBAL = "*"
#: The write key used as the example in Zeotap's documentation.
DOC_WRITE_KEY = "fc3ab803-5762-44d3-88d3-7fbc94bca074"
DEFAULT_API_KEY = "emulator-api-key"
ZEOTAP_PATH = "/zeotap"
AUDIOHOOK_PATH = "/audiohook/{pixel_id}/pixel.png"
ACTIVATION_PATH = "/activation/events"
REGISTRY_PREFIX = "/registry"
ADMIN_PREFIX = "/_emulator"

ZEOTAP_MAX_BODY = 20 * 1024 * 1024
ZEOTAP_TOP_LEVEL_KEYS = frozenset({"event", "user", "consent", "page", "device"})
#: A user key counts as an identifier when its lower-cased name contains one of these.
USER_ID_MARKERS: tuple[str, ...] = (
    "id",
    "email",
    "phone",
    "cell",
    "mobile",
    "maid",
    "cookie",
    "idfa",
    "gaid",
    "login",
)
AUDIOHOOK_REQUIRED = ("ip_address", "user_agent", "event_name")

_DROPPED = 0  # pseudo status under which dropped connections are counted
_GZIP_MAGIC = b"\x1f\x8b"
_JSON_CT = "application/json"
_SR_CT = "application/vnd.schemaregistry.v1+json"


def zeotap_authorization(write_key: str) -> str:
    """The Authorization header Zeotap documents: ``Basic base64("w_k:" + write_key)``."""
    return "Basic " + base64.b64encode(f"w_k:{write_key}".encode()).decode("ascii")


def _png_1x1() -> bytes:
    """A valid 1x1 fully transparent RGBA PNG (what a tracking pixel answers)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00")) + chunk(b"IEND", b"")
    )


PIXEL_PNG = _png_1x1()


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class FaultConfig:
    """Faults injected into one destination (or all of them, under the ``"*"`` key).

    ``drop_rate + throttle_rate + error_rate`` must not exceed 1: one uniform draw per request
    picks at most one of them. ``slow_rate`` is drawn separately; a slow request is then
    processed normally (so a client that timed out may later retry an event that *was* received).
    """

    error_rate: float = 0.0
    error_status: int = 503
    throttle_rate: float = 0.0
    retry_after: int | str = 1  # seconds, or any raw header value (an HTTP-date, an absurd number)
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    drop_rate: float = 0.0
    outage_for_seconds: float = 0.0
    outage_mode: Literal["error", "drop"] = "error"
    outage_status: int = 503
    poison_ids: frozenset[str] = frozenset()
    auth_fail: bool = False
    # the destination refuses every request, not one record (a gateway's bad-auth or wrong-content
    # 400, a redirect, 411/415, ...): 0 is off
    reject_status: int = 0
    reject_debug: str = "Authorization header rejected"
    # a request carrying one of these ids makes the server fail (5xx) while other requests pass
    server_poison_ids: frozenset[str] = frozenset()
    server_poison_status: int = 500

    def __post_init__(self) -> None:
        self.poison_ids = frozenset(str(p) for p in self.poison_ids)
        self.server_poison_ids = frozenset(str(p) for p in self.server_poison_ids)
        if self.reject_status and not 300 <= self.reject_status <= 599:
            raise ValueError(f"reject_status must be 0 (off) or a 3xx/4xx/5xx status, got {self.reject_status!r}")
        if not 500 <= self.server_poison_status <= 599:
            raise ValueError(f"server_poison_status must be a 5xx status, got {self.server_poison_status!r}")
        for name in ("error_rate", "throttle_rate", "slow_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.drop_rate + self.throttle_rate + self.error_rate > 1.0 + 1e-9:
            raise ValueError("drop_rate + throttle_rate + error_rate must not exceed 1")
        for name in ("error_status", "outage_status"):
            status = getattr(self, name)
            if not 400 <= status <= 599:
                raise ValueError(f"{name} must be a 4xx/5xx status, got {status!r}")
        if isinstance(self.retry_after, str):
            if not self.retry_after.strip() or any(c in self.retry_after for c in "\r\n"):
                raise ValueError("retry_after must be a number of seconds or a one-line header value")
        elif self.retry_after < 0:
            raise ValueError("retry_after, slow_seconds and outage_for_seconds must be >= 0")
        if self.slow_seconds < 0 or self.outage_for_seconds < 0:
            raise ValueError("retry_after, slow_seconds and outage_for_seconds must be >= 0")
        if self.outage_mode not in ("error", "drop"):
            raise ValueError(f"outage_mode must be 'error' or 'drop', got {self.outage_mode!r}")

    @property
    def active(self) -> bool:
        return bool(
            self.error_rate
            or self.throttle_rate
            or self.slow_rate
            or self.drop_rate
            or self.outage_for_seconds
            or self.poison_ids
            or self.auth_fail
            or self.reject_status
            or self.server_poison_ids
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON-like mapping; unknown keys are an error (typos must not pass silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        kwargs = dict(data)
        for ids in ("poison_ids", "server_poison_ids"):
            if ids in kwargs:
                raw = kwargs[ids]
                if isinstance(raw, str) or not isinstance(raw, Iterable):
                    raise ValueError(f"{ids} must be a list of event ids")
                kwargs[ids] = frozenset(str(p) for p in raw)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # pragma: no cover - defensive, keys were checked
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["poison_ids"] = sorted(self.poison_ids)
        data["server_poison_ids"] = sorted(self.server_poison_ids)
        return data


def _default_faults() -> dict[str, FaultConfig]:
    return {}


@dataclass
class EmulatorConfig:
    """Everything that decides how the emulated APIs answer."""

    # Zeotap
    zeotap_write_keys: tuple[str, ...] = (DOC_WRITE_KEY,)
    zeotap_regions: tuple[str, ...] = ("EU", "US", "IN", "UK")
    zeotap_auth_status: int = 401  # wrong/missing write key; the doc itself only knows 400
    zeotap_max_body_bytes: int = ZEOTAP_MAX_BODY
    zeotap_strict: bool = True  # top-level keys, object values, user identifier for customer events
    zeotap_require_country: bool = True  # customer events need user.country (only when strict)
    zeotap_user_id_markers: tuple[str, ...] = USER_ID_MARKERS
    # Audiohook
    audiohook_pixel_ids: tuple[str, ...] | None = None  # None: any pixel id is known
    audiohook_validate_ip: bool = True
    # Activation API
    activation_api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    # Body limit of the Audiohook and activation endpoints (their docs are silent): 413 above it.
    max_body_bytes: int = 5 * 1024 * 1024
    # Recording
    keep_events: bool = True  # False: keep only ids/receipts (benchmarks)
    max_kept_events: int | None = 100_000  # per destination; oldest are evicted; None: unbounded
    # Faults, by destination name or "*" for all destinations
    faults: dict[str, FaultConfig] = field(default_factory=_default_faults)
    seed: int | None = None
    # Schema Registry
    registry_prefix: str = REGISTRY_PREFIX
    registry_basic_auth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.zeotap_write_keys = tuple(self.zeotap_write_keys)
        self.zeotap_regions = tuple(self.zeotap_regions)
        self.activation_api_keys = tuple(self.activation_api_keys)
        if self.audiohook_pixel_ids is not None:
            self.audiohook_pixel_ids = tuple(self.audiohook_pixel_ids)
        for dest in self.faults:
            _check_destination(dest, allow_global=True)
        if not self.registry_prefix.startswith("/") or self.registry_prefix.endswith("/"):
            raise ValueError("registry_prefix must start with '/' and not end with '/'")


def _check_destination(dest: str, *, allow_global: bool = False) -> str:
    if dest in DESTINATIONS or (allow_global and dest == GLOBAL):
        return dest
    valid = ", ".join(DESTINATIONS + ((GLOBAL,) if allow_global else ()))
    raise ValueError(f"unknown destination {dest!r} (valid: {valid})")


# --------------------------------------------------------------------------------------------
# state


class _FaultCounter(Counter[str]):
    """Counts injected faults and remembers when the last 1000 happened (epoch ms), for timing tests."""

    def __init__(self) -> None:
        super().__init__()
        self.times: deque[tuple[float, str]] = deque(maxlen=1000)

    def __setitem__(self, key: str, value: int) -> None:
        if value > self.get(key, 0):
            self.times.append((time.time() * 1000, key))
        super().__setitem__(key, value)


class DestinationStats:
    """Counters and records of one destination. Mutated only on the emulator's event loop."""

    __slots__ = (
        "name",
        "requests",
        "events_received",
        "duplicates",
        "events_without_id",
        "bytes_received",
        "client_disconnects",
        "faults",
        "receipts",
        "events",
    )

    def __init__(self, name: str, max_kept: int | None) -> None:
        self.name = name
        self.requests: Counter[int] = Counter()  # status -> count; 0 means dropped connection
        self.events_received = 0  # events in accepted requests, duplicates included
        self.duplicates = 0
        self.events_without_id = 0
        self.bytes_received = 0
        self.client_disconnects = 0  # the client hung up before its body was read
        self.faults = _FaultCounter()
        self.receipts: dict[str, float] = {}  # event id -> first receipt, epoch ms
        self.events: deque[tuple[float, dict[str, Any], Any]] = deque(maxlen=max_kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": {("dropped" if k == _DROPPED else str(k)): v for k, v in sorted(self.requests.items())},
            "requests_total": sum(self.requests.values()),
            "events_received": self.events_received,
            "unique_ids": len(self.receipts),
            "duplicates": self.duplicates,
            "events_without_id": self.events_without_id,
            "bytes_received": self.bytes_received,
            "client_disconnects": self.client_disconnects,
            "faults": dict(self.faults),
            "fault_times": [{"ms": ms, "kind": kind} for ms, kind in self.faults.times],
            "events_kept": len(self.events),
        }


class EmulatorState:
    """Counters, records and fault settings of one emulator app."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.started = time.time()
        self.rng = random.Random(config.seed)
        self.faults: dict[str, FaultConfig] = {}
        self.outage_until: dict[str, float] = {}
        self.request_seq = 0
        self.dest: dict[str, DestinationStats] = {}
        self.reset_records()
        for dest, faults in config.faults.items():
            self.set_faults(dest, faults)

    # -- records
    def reset_records(self) -> None:
        self.dest = {d: DestinationStats(d, self.config.max_kept_events) for d in DESTINATIONS}
        self.started = time.time()

    def record(
        self,
        st: DestinationStats,
        events: Sequence[Any],
        ids: Sequence[str | None],
        context: dict[str, Any],
    ) -> int:
        """Record accepted events; returns how many of them were duplicates."""
        now = time.time_ns() / 1e6
        receipts = st.receipts
        dups = 0
        missing = 0
        for eid in ids:
            if eid is None:
                missing += 1
            elif eid in receipts:
                dups += 1
            else:
                receipts[eid] = now
        st.events_received += len(ids)
        st.duplicates += dups
        st.events_without_id += missing
        if self.config.keep_events:
            st.events.extend((now, context, ev) for ev in events)
        return dups

    def stats(self) -> dict[str, Any]:
        per = {d: s.to_dict() for d, s in self.dest.items()}
        totals = {
            key: sum(p[key] for p in per.values())
            for key in ("requests_total", "events_received", "unique_ids", "duplicates", "events_without_id")
        }
        return {"uptime_s": round(time.time() - self.started, 3), "destinations": per, "totals": totals}

    def events(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        names = [_check_destination(destination)] if destination else list(DESTINATIONS)
        out: list[dict[str, Any]] = []
        for name in names:
            for ts, ctx, payload in list(self.dest[name].events):
                out.append({"destination": name, "received_ms": ts, "context": ctx, "payload": payload})
        out.sort(key=lambda r: r["received_ms"])
        return out[-limit:] if limit else out

    def receipts(self, destination: str | None = None) -> dict[str, dict[str, float]]:
        names = [_check_destination(destination)] if destination else list(DESTINATIONS)
        return {name: dict(self.dest[name].receipts) for name in names}

    # -- faults
    def set_faults(self, destination: str, faults: FaultConfig) -> None:
        _check_destination(destination, allow_global=True)
        if not faults.active:
            self.faults.pop(destination, None)
            self.outage_until.pop(destination, None)
            return
        self.faults[destination] = faults
        if faults.outage_for_seconds > 0:
            self.outage_until[destination] = time.monotonic() + faults.outage_for_seconds
        else:
            self.outage_until.pop(destination, None)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.outage_until.clear()

    def faults_view(self) -> dict[str, Any]:
        now = time.monotonic()
        view: dict[str, Any] = {}
        for dest, faults in self.faults.items():
            entry = faults.to_dict()
            until = self.outage_until.get(dest)
            entry["outage_remaining_s"] = round(max(0.0, until - now), 3) if until else 0.0
            view[dest] = entry
        return view

    def reseed(self, seed: int | None) -> None:
        self.rng = random.Random(seed)


STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)


# --------------------------------------------------------------------------------------------
# helpers shared by the handlers


class _BodyTooLarge(Exception):
    pass


class _BadBody(Exception):
    pass


class _ClientGone(Exception):
    pass


_ct_cache: dict[str, bool] = {}


def _is_json_content_type(value: str | None) -> bool:
    """``application/json`` in any case, optionally with a UTF-8 charset."""
    if not value:
        return False
    cached = _ct_cache.get(value)
    if cached is not None:
        return cached
    media, *params = value.split(";")
    ok = media.strip().lower() == _JSON_CT
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            ok = False
    if len(_ct_cache) < 256:
        _ct_cache[value] = ok
    return ok


def _header_safe(text: str, limit: int = 400) -> str:
    """Header values must be single-line latin-1; debug text may quote client input."""
    text = text.replace("\r", " ").replace("\n", " ")
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _read_body(request: web.Request, limit: int, decompresses: bool) -> bytes:
    """The request body, gunzipped if needed; raises _BodyTooLarge / _BadBody."""
    length = request.content_length
    if length is not None and length > limit:
        raise _BodyTooLarge(f"payload too large: {length} bytes > {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _BodyTooLarge(f"payload too large: > {limit} bytes") from exc
    except ConnectionError as exc:
        raise _ClientGone from exc
    if len(body) > limit:
        raise _BodyTooLarge(f"payload too large: {len(body)} bytes > {limit}")
    encoding = request.headers.get("Content-Encoding")
    if encoding and encoding.strip().lower() not in ("identity", ""):
        if encoding.strip().lower() != "gzip":
            raise _BadBody(f"unsupported Content-Encoding {encoding!r} (gzip or identity)")
        if body[:2] == _GZIP_MAGIC:
            body = _gunzip(body, limit)
        elif not decompresses:
            raise _BadBody("Content-Encoding is gzip but the body is not gzip data")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _BadBody(f"invalid gzip body: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise _BodyTooLarge(f"payload too large: decompressed size > {limit} bytes")
    if not inflater.eof:
        raise _BadBody("invalid gzip body: truncated")
    return out


def _json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type=_JSON_CT, headers=headers)


def _has_value(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    return bool(value)


ZeotapValidator = Callable[[dict[str, Any]], "str | None"]


def make_zeotap_validator(cfg: EmulatorConfig) -> ZeotapValidator:
    """The strict per-event check: returns why one event breaks the contract, or None.

    Built once per app, so the hot path (~1 us per event) only does dict lookups.
    """
    allowed = ZEOTAP_TOP_LEVEL_KEYS
    markers = tuple(m.lower() for m in cfg.zeotap_user_id_markers)
    require_country = cfg.zeotap_require_country
    id_keys: dict[str, bool] = {}

    def is_id_key(key: str) -> bool:
        hit = id_keys.get(key)
        if hit is None:
            low = key.lower()
            hit = low != "country" and any(m in low for m in markers)
            if len(id_keys) < 4096:
                id_keys[key] = hit
        return hit

    def problem(ev: dict[str, Any]) -> str | None:
        if not ev:
            return "empty event object"
        if not ev.keys() <= allowed:
            unknown = ", ".join(sorted(ev.keys() - allowed))
            return f"unknown top-level key(s): {unknown} (allowed: consent, device, event, page, user)"
        for key, value in ev.items():
            if value.__class__ is not dict:
                return f"'{key}' must be a JSON object"
        user = ev.get("user")
        if user is None:
            if len(ev) == 1 and "event" in ev:
                return None  # non-customer-entity (NCE) event: only the event object is needed
            return "customer event without a 'user' object (all data must contain at least one user id)"
        for key, value in user.items():
            if value and is_id_key(key) and _has_value(value):
                break
        else:
            return "user object has no user identifier (all data must contain at least one user id)"
        if require_country:
            country = user.get("country")
            if country.__class__ is not str or not country.strip():
                return "user.country is required (all data must contain the country information)"
        return None

    return problem


def _zeotap_event_id(ev: dict[str, Any]) -> str | None:
    inner = ev.get("event")
    if inner.__class__ is dict:
        eid = inner.get("eventId")
        if eid is not None:
            return eid if eid.__class__ is str else str(eid)
    return None


def _audiohook_event_id(ev: dict[str, Any]) -> str | None:
    eid = ev.get("event_id")
    if eid is None:
        payload = ev.get("event_payload")
        if isinstance(payload, dict):
            eid = payload.get("event_id")
    if eid is None:
        return None
    return eid if isinstance(eid, str) else str(eid)


def _activation_problem(ev: Any) -> tuple[str, str] | None:
    """(field, message) of the first contract violation of one activation event, or None."""
    if not isinstance(ev, dict):
        return "", "event must be a JSON object"
    name = ev.get("event")
    if not isinstance(name, str) or not name.strip():
        return "event", "required: non-empty string (event name)"
    ts = ev.get("timestamp")
    if not isinstance(ts, str) or len(ts) <= 10:
        return "timestamp", "required: ISO 8601 date-time string"
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        return "timestamp", f"not an ISO 8601 date-time: {ts[:64]!r}"
    cid = ev.get("customer_id")
    if not isinstance(cid, str) or not cid.strip():
        return "customer_id", "required: non-empty string"
    if not isinstance(ev.get("properties"), dict):
        return "properties", "required: JSON object"
    eid = ev.get("event_id")
    if eid is not None and (not isinstance(eid, str) or not eid):
        return "event_id", "must be a non-empty string when present"
    return None


# --------------------------------------------------------------------------------------------
# the destination APIs


_Impl = Callable[[web.Request, "DestinationStats", "FaultConfig | None"], Awaitable[web.StreamResponse]]


class _Api:
    """Request handlers of the three destinations and the admin API."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.cfg = state.config
        self.decompresses = True  # set False by make_runner (server-side auto-decompression off)
        self._zeotap_auth_ok = frozenset(zeotap_authorization(k) for k in self.cfg.zeotap_write_keys)
        self._zeotap_keys = frozenset(self.cfg.zeotap_write_keys)
        self._regions = frozenset(self.cfg.zeotap_regions)
        self._zeotap_validate = make_zeotap_validator(self.cfg) if self.cfg.zeotap_strict else None
        self._pixels = None if self.cfg.audiohook_pixel_ids is None else frozenset(self.cfg.audiohook_pixel_ids)
        self._bearers = frozenset(f"Bearer {k}" for k in self.cfg.activation_api_keys)
        self._api_keys = frozenset(self.cfg.activation_api_keys)

    # -- faults ------------------------------------------------------------------------------

    def _profile(self, dest: str) -> FaultConfig | None:
        faults = self.state.faults
        if not faults:
            return None
        return faults.get(dest) or faults.get(GLOBAL)

    def _handler(self, dest: str, impl: _Impl) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a destination handler with the gateway-level faults and slow answers."""

        async def handle(request: web.Request) -> web.StreamResponse:
            st = self.state.dest[dest]
            prof = self._profile(dest)
            if prof is None:
                return await impl(request, st, None)
            fault = self._infra_fault(request, dest, st, prof)
            if fault is not None:
                return fault
            slow = bool(prof.slow_rate) and self.state.rng.random() < prof.slow_rate
            resp = await impl(request, st, prof)
            if slow:
                # the request is processed (and recorded) first: a client that times out and
                # retries produces a duplicate, as with a real slow server
                st.faults["slow"] += 1
                await asyncio.sleep(prof.slow_seconds)
            return resp

        return handle

    def _infra_fault(self, request: web.Request, dest: str, st: DestinationStats, prof: FaultConfig) -> web.StreamResponse | None:
        """Faults that happen before the API looks at the request (gateway-level)."""
        state = self.state
        key = dest if dest in state.faults else GLOBAL
        until = state.outage_until.get(key)
        if until is not None:
            if time.monotonic() < until:
                st.faults["outage"] += 1
                if prof.outage_mode == "drop":
                    return self._drop(request, st)
                return self._fault_response(dest, st, prof.outage_status, "outage")
            del state.outage_until[key]
        if prof.reject_status:
            st.faults["reject"] += 1
            return self._fault_response(dest, st, prof.reject_status, "reject", detail=prof.reject_debug)
        if prof.drop_rate or prof.throttle_rate or prof.error_rate:
            draw = state.rng.random()
            if draw < prof.drop_rate:
                st.faults["drop"] += 1
                return self._drop(request, st)
            draw -= prof.drop_rate
            if draw < prof.throttle_rate:
                st.faults["throttle"] += 1
                return self._fault_response(dest, st, 429, "throttle", {"Retry-After": str(prof.retry_after)})
            draw -= prof.throttle_rate
            if draw < prof.error_rate:
                st.faults["error"] += 1
                return self._fault_response(dest, st, prof.error_status, "error")
        return None

    def _drop(self, request: web.Request, st: DestinationStats) -> web.StreamResponse:
        st.requests[_DROPPED] += 1
        transport = request.transport
        if transport is not None:
            transport.close()
        # aiohttp swallows the ConnectionError of writing to the closed transport.
        return web.Response(status=204)

    def _client_gone(self, st: DestinationStats) -> web.StreamResponse:
        st.client_disconnects += 1
        return web.Response(status=499)  # never delivered: the connection is gone

    def _fault_response(
        self,
        dest: str,
        st: DestinationStats,
        status: int,
        kind: str,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> web.Response:
        st.requests[status] += 1
        hdrs = {"x-emulator-fault": kind}
        if headers:
            hdrs.update(headers)
        message = detail or f"emulated fault: {kind}"
        if dest == "zeotap":
            hdrs["x-zeo-debug"] = _header_safe(message)
            return web.Response(status=status, headers=hdrs)
        return _json_response(status, {"error": kind, "message": message}, hdrs)

    # -- Zeotap ------------------------------------------------------------------------------

    def _zeotap_error(self, st: DestinationStats, status: int, debug: str, **headers: str) -> web.Response:
        st.requests[status] += 1
        hdrs = {"x-zeo-debug": _header_safe(debug)}
        hdrs.update(headers)
        return web.Response(status=status, headers=hdrs)

    def _zeotap_auth_problem(self, header: str | None) -> tuple[int, str] | None:
        if header in self._zeotap_auth_ok:
            return None
        auth_status = self.cfg.zeotap_auth_status
        if not header:
            return auth_status, "missing Authorization header: expected Basic base64(w_k:<write_key>)"
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            return 400, "Authorization header must be 'Basic base64(w_k:<write_key>)'"
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return 400, "Authorization header is not valid base64 of 'w_k:<write_key>'"
        if not decoded.startswith("w_k:"):
            return 400, "Authorization credentials must be 'w_k:<write_key>' (missing w_k: prefix)"
        if decoded[4:] in self._zeotap_keys:
            return None
        return auth_status, "invalid write key"

    async def _zeotap(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        if prof is not None and prof.auth_fail:
            st.faults["auth_fail"] += 1
            return self._fault_response(
                "zeotap",
                st,
                self.cfg.zeotap_auth_status,
                "auth_fail",
                {"WWW-Authenticate": 'Basic realm="zeotap"'},
                "invalid write key (emulated auth failure)",
            )
        problem = self._zeotap_auth_problem(request.headers.get("Authorization"))
        if problem is not None:
            status, debug = problem
            extra = {"WWW-Authenticate": 'Basic realm="zeotap"'} if status == 401 else {}
            return self._zeotap_error(st, status, debug, **extra)

        query = request.query
        region = query.get("region")
        if region not in self._regions:
            valid = ", ".join(self.cfg.zeotap_regions)
            what = "missing region query parameter" if region is None else f"invalid region {region!r}"
            return self._zeotap_error(st, 400, f"{what} (valid: {valid})")
        event_type = query.get("eventType")
        if event_type != "s2s":
            what = "missing eventType query parameter" if event_type is None else f"invalid eventType {event_type!r}"
            return self._zeotap_error(st, 400, f"{what} (must be 's2s')")
        if not _is_json_content_type(request.headers.get("Content-Type")):
            ct = request.headers.get("Content-Type")
            return self._zeotap_error(st, 400, f"Content-Type must be application/json (UTF-8), got {ct!r}")
        try:
            body = await _read_body(request, self.cfg.zeotap_max_body_bytes, self.decompresses)
        except (_BodyTooLarge, _BadBody) as exc:
            return self._zeotap_error(st, 400, str(exc))
        except _ClientGone:
            return self._client_gone(st)
        st.bytes_received += len(body)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._zeotap_error(st, 400, f"invalid JSON: {exc}")
        if not isinstance(doc, dict):
            return self._zeotap_error(st, 400, 'body must be a JSON object (an event, or {"events": [...]})')

        if "events" in doc:
            events = doc["events"]
            if not isinstance(events, list):
                return self._zeotap_error(st, 400, "'events' must be an array of event objects")
            if len(doc) != 1:
                return self._zeotap_error(st, 400, "a batch body must only contain the 'events' array")
            if not events:
                return self._zeotap_error(st, 400, "'events' array is empty")
            batch = True
        else:
            events = [doc]
            batch = False

        validate = self._zeotap_validate
        ids: list[str | None] = []
        append = ids.append
        for index, ev in enumerate(events):
            if ev.__class__ is not dict:
                return self._zeotap_error(st, 400, f"events[{index}]: event must be a JSON object")
            if validate is not None:
                why = validate(ev)
                if why is not None:
                    where = f"events[{index}]: " if batch else ""
                    return self._zeotap_error(st, 400, where + why)
            append(_zeotap_event_id(ev))

        poisoned = self._poisoned("zeotap", st, prof, ids)
        if poisoned is not None:
            return poisoned

        self.state.request_seq += 1
        self.state.record(st, events, ids, {"region": region, "batch": batch, "request": self.state.request_seq})
        st.requests[204] += 1
        return web.Response(status=204)

    # -- Audiohook ---------------------------------------------------------------------------

    def _poisoned(
        self, dest: str, st: DestinationStats, prof: FaultConfig | None, ids: Sequence[str | None]
    ) -> web.StreamResponse | None:
        """A poison event id makes its whole request a 400 (each API's own error shape); a
        server-poison id makes it fail with a 5xx, as a record the server chokes on would."""
        if prof is None or not (prof.poison_ids or prof.server_poison_ids):
            return None
        for eid in ids:
            if eid is None:
                continue
            if eid in prof.poison_ids:
                st.faults["poison"] += 1
                return self._fault_response(dest, st, 400, "poison", detail=f"poison event {eid}")
            if eid in prof.server_poison_ids:
                st.faults["server_poison"] += 1
                return self._fault_response(dest, st, prof.server_poison_status, "server_poison", detail="internal error")
        return None

    async def _json_body(self, request: web.Request, st: DestinationStats, error: Any) -> Any:
        """The request's JSON document, or the error response (Audiohook and activation share the rules)."""
        if not _is_json_content_type(request.headers.get("Content-Type")):
            ct = request.headers.get("Content-Type")
            return error(st, 400, "invalid_content_type", f"Content-Type must be application/json, got {ct!r}")
        try:
            body = await _read_body(request, self.cfg.max_body_bytes, self.decompresses)
        except _ClientGone:
            return self._client_gone(st)
        except _BodyTooLarge as exc:
            return error(st, 413, "payload_too_large", str(exc))
        except _BadBody as exc:
            return error(st, 400, "invalid_body", str(exc))
        st.bytes_received += len(body)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error(st, 400, "invalid_json", str(exc))

    def _ah_error(self, st: DestinationStats, status: int, error: str, message: str, **extra: Any) -> web.Response:
        st.requests[status] += 1
        return _json_response(status, {"error": error, "message": message, **extra})

    async def _audiohook(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        pixel_id = request.match_info["pixel_id"]
        if prof is not None and prof.auth_fail:
            st.faults["auth_fail"] += 1
            return self._fault_response("audiohook", st, 401, "auth_fail")
        if self._pixels is not None and pixel_id not in self._pixels:
            return self._ah_error(st, 404, "unknown_pixel", f"unknown Audiohook id {pixel_id!r}")
        ev = await self._json_body(request, st, self._ah_error)
        if isinstance(ev, web.StreamResponse):
            return ev
        if not isinstance(ev, dict):
            return self._ah_error(st, 400, "invalid_event", "body must be one JSON event object")
        for name in AUDIOHOOK_REQUIRED:
            value = ev.get(name)
            if not isinstance(value, str) or not value.strip():
                return self._ah_error(st, 400, "missing_field", f"required field {name!r} is missing or empty", field=name)
        if self.cfg.audiohook_validate_ip:
            try:
                ipaddress.ip_address(ev["ip_address"].strip())
            except ValueError:
                return self._ah_error(st, 400, "invalid_field", "ip_address is not an IPv4/IPv6 address", field="ip_address")
        eid = _audiohook_event_id(ev)
        poisoned = self._poisoned("audiohook", st, prof, (eid,))
        if poisoned is not None:
            return poisoned
        self.state.request_seq += 1
        self.state.record(st, (ev,), (eid,), {"pixel_id": pixel_id, "request": self.state.request_seq})
        st.requests[200] += 1
        return web.Response(status=200, body=PIXEL_PNG, content_type="image/png")

    # -- Activation API ----------------------------------------------------------------------

    def _act_error(self, st: DestinationStats, status: int, error: str, message: str, **extra: Any) -> web.Response:
        st.requests[status] += 1
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _json_response(status, {"error": error, "message": message, **extra}, headers)

    async def _activation(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        if prof is not None and prof.auth_fail:
            st.faults["auth_fail"] += 1
            return self._fault_response(
                "activation",
                st,
                401,
                "auth_fail",
                {"WWW-Authenticate": "Bearer"},
                "invalid API key (emulated)",
            )
        auth = request.headers.get("Authorization")
        if auth not in self._bearers:
            scheme, _, token = (auth or "").strip().partition(" ")
            if not (scheme.lower() == "bearer" and token.strip() in self._api_keys):
                message = "missing credentials" if not auth else "invalid credentials"
                return self._act_error(st, 401, "unauthorized", f"{message}: expected 'Authorization: Bearer <api_key>'")
        doc = await self._json_body(request, st, self._act_error)
        if isinstance(doc, web.StreamResponse):
            return doc
        if not isinstance(doc, dict):
            return self._act_error(st, 400, "invalid_payload", 'body must be an event object or {"events": [...]}')
        idem = request.headers.get("Idempotency-Key") or None
        batch = "events" in doc and "event" not in doc
        if batch:
            events = doc["events"]
            if not isinstance(events, list) or not events:
                return self._act_error(st, 400, "invalid_payload", "'events' must be a non-empty array", field="events")
        else:
            events = [doc]
        ids: list[str | None] = []
        for index, ev in enumerate(events):
            problem = _activation_problem(ev)
            if problem is not None:
                fname, message = problem
                extra: dict[str, Any] = {"field": fname}
                if batch:
                    extra["index"] = index
                return self._act_error(st, 400, "invalid_event", f"{fname or 'event'}: {message}", **extra)
            eid = ev.get("event_id")
            if not batch and idem is not None:
                eid = idem
            elif eid is None and idem is not None:
                eid = f"{idem}#{index}"
            ids.append(eid)
        poisoned = self._poisoned("activation", st, prof, ids)
        if poisoned is not None:
            return poisoned
        self.state.request_seq += 1
        context = {"batch": batch, "idempotency_key": idem, "request": self.state.request_seq}
        dups = self.state.record(st, events, ids, context)
        st.requests[202] += 1
        headers = {"Idempotent-Replayed": "true"} if (not batch and dups) else None
        return _json_response(202, {"status": "accepted", "events": len(events), "duplicates": dups}, headers)

    # -- admin -------------------------------------------------------------------------------

    async def admin_stats(self, request: web.Request) -> web.Response:
        return _json_response(200, self.state.stats())

    async def admin_events(self, request: web.Request) -> web.Response:
        dest = request.query.get("destination") or None
        try:
            limit = int(request.query["limit"]) if "limit" in request.query else None
            events = self.state.events(dest, limit)
        except ValueError as exc:
            return _json_response(400, {"error": str(exc)})
        return _json_response(200, {"count": len(events), "events": events})

    async def admin_receipts(self, request: web.Request) -> web.Response:
        dest = request.query.get("destination") or None
        try:
            return _json_response(200, self.state.receipts(dest))
        except ValueError as exc:
            return _json_response(400, {"error": str(exc)})

    async def admin_get_faults(self, request: web.Request) -> web.Response:
        return _json_response(200, self.state.faults_view())

    async def admin_set_faults(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read() or b"{}")
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            apply_fault_request(self.state, data)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _json_response(400, {"error": str(exc)})
        return _json_response(200, self.state.faults_view())

    async def admin_clear_faults(self, request: web.Request) -> web.Response:
        self.state.clear_faults()
        return _json_response(200, {})

    async def admin_reset(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            return _json_response(400, {"error": str(exc)})
        options = data if isinstance(data, dict) else {}
        self.state.reset_records()
        if options.get("faults"):
            self.state.clear_faults()
        registry = request.app.get(REGISTRY_KEY)
        if options.get("registry") and registry is not None:
            registry.clear()
        return _json_response(200, {"reset": True})

    async def admin_health(self, request: web.Request) -> web.Response:
        return _json_response(200, {"ok": True})


_API_KEY: web.AppKey[_Api] = web.AppKey("emulator_api", _Api)


def apply_fault_request(state: EmulatorState, data: Mapping[str, Any]) -> None:
    """Apply a ``POST /_emulator/faults`` body.

    ``destination`` (a destination name, ``"*"``/``"all"``/absent for all), ``merge`` (update only
    the given knobs instead of replacing the profile), ``seed`` (re-seed the RNG), plus
    :class:`FaultConfig` knobs. A profile without active knobs removes the faults of that target.
    """
    knobs = dict(data)
    dest = knobs.pop("destination", None) or GLOBAL
    if dest == "all":
        dest = GLOBAL
    _check_destination(dest, allow_global=True)
    merge = bool(knobs.pop("merge", False))
    if "seed" in knobs:
        seed = knobs.pop("seed")
        if seed is not None and not isinstance(seed, int):
            raise ValueError("seed must be an integer or null")
        state.reseed(seed)
    if merge and dest in state.faults:
        base = state.faults[dest].to_dict()
        base.update(knobs)
        knobs = base
    state.set_faults(dest, FaultConfig.from_dict(knobs))


# --------------------------------------------------------------------------------------------
# minimal Confluent Schema Registry


@dataclass
class _StoredSchema:
    id: int
    guid: str
    schema: str
    schema_type: str
    references: list[dict[str, Any]]


class SchemaRegistry:
    """The subset of the Schema Registry REST API that confluent-kafka's client calls for
    ``register_schema``, ``get_schema``, ``get_schema_by_guid``, ``lookup_schema``,
    ``get_latest_version``, ``get_version``, ``get_versions``, ``get_subjects``,
    ``delete_subject`` and ``get_compatibility``. No compatibility checks are enforced.
    """

    def __init__(self, basic_auth: tuple[str, str] | None = None) -> None:
        self.basic_auth = basic_auth
        self._auth_header = (
            None if basic_auth is None else "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        )
        self.clear()

    def clear(self) -> None:
        self.schemas: list[_StoredSchema] = []
        self.by_key: dict[tuple[str, str, bytes], int] = {}
        self.by_guid: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}  # subject -> schema id per version (index + 1)

    # -- core operations (also used directly by tests)
    @staticmethod
    def _canonical(schema: str, schema_type: str) -> str:
        if schema_type in ("AVRO", "JSON"):
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.dumps(orjson.loads(schema), option=orjson.OPT_SORT_KEYS).decode()
        return schema

    def register(self, subject: str, schema: str, schema_type: str, references: list[dict[str, Any]]) -> int:
        key = (
            schema_type,
            self._canonical(schema, schema_type),
            orjson.dumps(references, option=orjson.OPT_SORT_KEYS),
        )
        schema_id = self.by_key.get(key)
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator-schema-{schema_id}-{key[1]}"))
            self.schemas.append(_StoredSchema(schema_id, guid, schema, schema_type, references))
            self.by_key[key] = schema_id
            self.by_guid[guid] = schema_id
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def lookup(self, subject: str, schema: str, schema_type: str, references: list[dict[str, Any]]) -> int | None:
        key = (
            schema_type,
            self._canonical(schema, schema_type),
            orjson.dumps(references, option=orjson.OPT_SORT_KEYS),
        )
        schema_id = self.by_key.get(key)
        if schema_id is None or schema_id not in self.subjects.get(subject, ()):
            return None
        return schema_id

    def _schema_body(self, stored: _StoredSchema) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema": stored.schema,
            "schemaType": stored.schema_type,
            "guid": stored.guid,
        }
        if stored.references:
            body["references"] = stored.references
        return body

    def _version_body(self, subject: str, version: int) -> dict[str, Any]:
        stored = self.schemas[self.subjects[subject][version - 1] - 1]
        return {"subject": subject, "version": version, "id": stored.id, **self._schema_body(stored)}

    # -- HTTP
    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.Response(status=status, body=orjson.dumps({"error_code": code, "message": message}), content_type=_JSON_CT)

    @staticmethod
    def _ok(data: Any) -> web.Response:
        return web.Response(body=orjson.dumps(data), content_type=_SR_CT)

    @web.middleware
    async def auth_middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if self._auth_header is not None and request.headers.get("Authorization") != self._auth_header:
            resp = self._error(401, 40101, "Unauthorized")
            resp.headers["WWW-Authenticate"] = 'Basic realm="schema-registry"'
            return resp
        result: web.StreamResponse = await handler(request)
        return result

    async def _schema_request(self, request: web.Request) -> tuple[str, str, list[dict[str, Any]]] | web.Response:
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return self._error(422, 42201, f"Invalid schema request: {exc}")
        if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
            return self._error(422, 42201, "Invalid schema request: 'schema' (string) is required")
        schema_type = (data.get("schemaType") or "AVRO").upper()
        if schema_type not in ("AVRO", "JSON", "PROTOBUF"):
            return self._error(422, 42201, f"Invalid schema type {schema_type}")
        references = data.get("references") or []
        if not isinstance(references, list):
            return self._error(422, 42201, "Invalid schema request: 'references' must be an array")
        if schema_type == "AVRO" and not references:
            problem = _avro_problem(data["schema"])
            if problem is not None:
                return self._error(422, 42201, f"Invalid schema: {problem}")
        return data["schema"], schema_type, references

    async def post_version(self, request: web.Request) -> web.Response:
        parsed = await self._schema_request(request)
        if isinstance(parsed, web.Response):
            return parsed
        return self._ok({"id": self.register(request.match_info["subject"], *parsed)})

    async def post_lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        parsed = await self._schema_request(request)
        if isinstance(parsed, web.Response):
            return parsed
        if subject not in self.subjects:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        schema_id = self.lookup(subject, *parsed)
        if schema_id is None:
            return self._error(404, 40403, "Schema not found")
        version = self.subjects[subject].index(schema_id) + 1
        return self._ok(self._version_body(subject, version))

    async def get_schema_by_id(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        schema_id = int(raw) if raw.isdigit() else 0
        if not 1 <= schema_id <= len(self.schemas):
            return self._error(404, 40403, f"Schema {raw} not found")
        return self._ok(self._schema_body(self.schemas[schema_id - 1]))

    async def get_schema_by_guid(self, request: web.Request) -> web.Response:
        schema_id = self.by_guid.get(request.match_info["guid"])
        if schema_id is None:
            return self._error(404, 40403, f"Schema {request.match_info['guid']} not found")
        return self._ok(self._schema_body(self.schemas[schema_id - 1]))

    async def get_subjects(self, request: web.Request) -> web.Response:
        return self._ok(sorted(self.subjects))

    async def get_versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if subject not in self.subjects:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        return self._ok(list(range(1, len(self.subjects[subject]) + 1)))

    async def get_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self.subjects.get(subject)
        if versions is None:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        raw = request.match_info["version"]
        try:
            version = len(versions) if raw in ("latest", "-1") else int(raw)
        except ValueError:
            return self._error(422, 42202, f"Invalid version {raw!r}")
        if not 1 <= version <= len(versions):
            return self._error(404, 40402, f"Version {raw} not found.")
        return self._ok(self._version_body(subject, version))

    async def delete_subject(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self.subjects.pop(subject, None)
        if versions is None:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        return self._ok(list(range(1, len(versions) + 1)))

    async def get_types(self, request: web.Request) -> web.Response:
        return self._ok(["AVRO", "JSON", "PROTOBUF"])

    async def get_config(self, request: web.Request) -> web.Response:
        return self._ok({"compatibilityLevel": "NONE"})

    async def root(self, request: web.Request) -> web.Response:
        return self._ok({})

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth_middleware])
        app.router.add_get("/", self.root)
        app.router.add_get("/subjects", self.get_subjects)
        app.router.add_post("/subjects/{subject}/versions", self.post_version)
        app.router.add_get("/subjects/{subject}/versions", self.get_versions)
        app.router.add_get("/subjects/{subject}/versions/{version}", self.get_version)
        app.router.add_post("/subjects/{subject}", self.post_lookup)
        app.router.add_delete("/subjects/{subject}", self.delete_subject)
        app.router.add_get("/schemas/ids/{id}", self.get_schema_by_id)
        app.router.add_get("/schemas/guids/{guid}", self.get_schema_by_guid)
        app.router.add_get("/schemas/types", self.get_types)
        app.router.add_get("/config", self.get_config)
        return app


def _avro_problem(schema: str) -> str | None:
    try:
        parsed = orjson.loads(schema)
    except orjson.JSONDecodeError:
        # a bare primitive name such as "string" is not JSON but a valid Avro schema
        parsed = schema
    try:
        import fastavro

        fastavro.parse_schema(parsed)
    except ImportError:  # pragma: no cover - fastavro is a project dependency
        return None
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        return str(exc)
    return None


REGISTRY_KEY: web.AppKey[SchemaRegistry] = web.AppKey("emulator_registry", SchemaRegistry)


# --------------------------------------------------------------------------------------------
# app factory and runners


def make_app(config: EmulatorConfig | None = None) -> web.Application:
    """The emulator as an aiohttp application (destinations, admin API and Schema Registry)."""
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    api = _Api(state)
    limit = max(config.zeotap_max_body_bytes, config.max_body_bytes)
    app = web.Application(client_max_size=limit + 1)
    app[STATE_KEY] = state
    app[_API_KEY] = api
    app.router.add_post(ZEOTAP_PATH, api._handler("zeotap", api._zeotap))
    app.router.add_post(AUDIOHOOK_PATH, api._handler("audiohook", api._audiohook))
    app.router.add_post(ACTIVATION_PATH, api._handler("activation", api._activation))
    app.router.add_get(f"{ADMIN_PREFIX}/stats", api.admin_stats)
    app.router.add_get(f"{ADMIN_PREFIX}/events", api.admin_events)
    app.router.add_get(f"{ADMIN_PREFIX}/receipts", api.admin_receipts)
    app.router.add_get(f"{ADMIN_PREFIX}/faults", api.admin_get_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/faults", api.admin_set_faults)
    app.router.add_delete(f"{ADMIN_PREFIX}/faults", api.admin_clear_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", api.admin_reset)
    app.router.add_get(f"{ADMIN_PREFIX}/health", api.admin_health)
    registry = SchemaRegistry(config.registry_basic_auth)
    app[REGISTRY_KEY] = registry
    app.add_subapp(config.registry_prefix, registry.make_app())
    return app


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """An AppRunner tuned for throughput: no access log, no server-side body auto-decompression
    (the handlers inflate gzip themselves, bounded by the size limit)."""
    app[_API_KEY].decompresses = False
    kwargs.setdefault("access_log", None)
    kwargs.setdefault("handle_signals", False)
    return web.AppRunner(app, auto_decompress=False, **kwargs)


def _bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    raise RuntimeError("emulator is not listening")


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _Urls:
    base_url: str
    registry_prefix: str = REGISTRY_PREFIX

    @property
    def registry_url(self) -> str:
        """Pass as ``SchemaRegistryClient({"url": ...})``: the client keeps the path prefix."""
        return self.base_url + self.registry_prefix

    def zeotap_url(self, region: str = "EU", event_type: str = "s2s") -> str:
        return f"{self.base_url}{ZEOTAP_PATH}?region={region}&eventType={event_type}"

    def audiohook_url(self, pixel_id: str = "test-pixel") -> str:
        return f"{self.base_url}/audiohook/{pixel_id}/pixel.png"

    @property
    def activation_url(self) -> str:
        return self.base_url + ACTIVATION_PATH


class EmulatorClient(_Urls):
    """Admin API client (works against an in-thread emulator, a child process or the CLI one)."""

    def __init__(self, base_url: str, timeout: float = 30.0, registry_prefix: str = REGISTRY_PREFIX) -> None:
        self.base_url = base_url.rstrip("/")
        self.registry_prefix = registry_prefix
        self._timeout = timeout

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = httpx.request(method, f"{self.base_url}{ADMIN_PREFIX}/{path}", timeout=self._timeout, **kwargs)
        resp.raise_for_status()
        return orjson.loads(resp.content)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "stats")
        return result

    def events(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if destination:
            params["destination"] = destination
        if limit:
            params["limit"] = limit
        result: list[dict[str, Any]] = self._request("GET", "events", params=params)["events"]
        return result

    def payloads(self, destination: str) -> list[Any]:
        """Just the received event payloads of one destination, oldest first."""
        return [record["payload"] for record in self.events(destination)]

    def receipts(self, destination: str | None = None) -> dict[str, dict[str, float]]:
        params = {"destination": destination} if destination else {}
        result: dict[str, dict[str, float]] = self._request("GET", "receipts", params=params)
        return result

    def set_faults(self, destination: str | None = None, *, merge: bool = False, **knobs: Any) -> dict[str, Any]:
        """Replace (or with ``merge=True`` update) the faults of a destination, or of all when None."""
        body: dict[str, Any] = {"destination": destination or GLOBAL, "merge": merge, **knobs}
        if isinstance(body.get("poison_ids"), set | frozenset):
            body["poison_ids"] = sorted(body["poison_ids"])
        result: dict[str, Any] = self._request("POST", "faults", content=orjson.dumps(body))
        return result

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "faults")
        return result

    def clear_faults(self) -> None:
        self._request("DELETE", "faults")

    def reset(self, *, faults: bool = False, registry: bool = False) -> None:
        self._request("POST", "reset", content=orjson.dumps({"faults": faults, "registry": registry}))


class Emulator(_Urls):
    """The emulator on a background thread with its own event loop (for tests).

    >>> with Emulator(EmulatorConfig(seed=1)) as emu:
    ...     httpx.post(emu.zeotap_url(), ...)
    ...     emu.admin.stats()
    """

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.registry_prefix = self.config.registry_prefix
        self.host = host
        self.port = port
        self.base_url = ""
        self.app = make_app(self.config)
        self.state = self.app[STATE_KEY]
        self.registry = self.app[REGISTRY_KEY]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def admin(self) -> EmulatorClient:
        return EmulatorClient(self.base_url, registry_prefix=self.registry_prefix)

    def start(self) -> Emulator:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                runner = make_runner(self.app, shutdown_timeout=0.5)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
                loop.run_until_complete(site.start())
                self._runner = runner
                self.port = _bound_port(runner)
                self.base_url = f"http://{_url_host(self.host)}:{self.port}"
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="s2s-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (the only thread that mutates its state)."""
        if self._loop is None or self._thread is None:
            return fn()

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    def set_faults(self, destination: str | None = None, **knobs: Any) -> None:
        """Replace the faults of a destination (or of all when None) without going through HTTP."""
        self.call(lambda: apply_fault_request(self.state, {"destination": destination or GLOBAL, **knobs}))

    def reset(self, *, faults: bool = False) -> None:
        def do() -> None:
            self.state.reset_records()
            if faults:
                self.state.clear_faults()

        self.call(do)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call(self.state.stats)
        return result

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorProcess(_Urls):
    """The emulator as a child process (``python -m streams.dev.emulator``), for benchmarks:
    it then never competes with the code under test for the GIL."""

    def __init__(
        self,
        *cli_args: str,
        host: str = "127.0.0.1",
        port: int = 0,
        python: str = sys.executable,
        startup_timeout: float = 20.0,
    ) -> None:
        self.args = [python, "-m", "streams.dev.emulator", "--host", host, "--port", str(port), *cli_args]
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self.process: subprocess.Popen[str] | None = None

    @property
    def admin(self) -> EmulatorClient:
        return EmulatorClient(self.base_url, registry_prefix=self.registry_prefix)

    def start(self) -> EmulatorProcess:
        repo_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, env=env)
        stdout = self.process.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        first = line[0].strip() if line else ""
        if not first.startswith("emulator: "):
            self.stop()
            raise RuntimeError(f"emulator process did not start (first line: {first!r})")
        self.base_url = first.split(" ", 1)[1]
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=stdout.read, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_emulator(
    host: str = "127.0.0.1",
    port: int = 8080,
    config: EmulatorConfig | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    tune_gc: bool = True,
) -> None:
    """Serve the emulator until SIGINT/SIGTERM (blocking). ``on_ready`` gets the base URL.

    ``tune_gc`` raises the cyclic GC thresholds of this process (it owns the process)."""

    if tune_gc:
        # Parsed batches are big trees of short-lived dicts; the default gen0 threshold (700)
        # would run the cyclic collector every few requests and rescan the kept events.
        gc.set_threshold(100_000, 50, 100)

    async def serve() -> None:
        app = make_app(config)
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if tune_gc:
            gc.freeze()
        if on_ready is not None:
            on_ready(f"http://{_url_host(host)}:{_bound_port(runner)}")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def main_dev_emulator(
    host: str = "127.0.0.1",
    port: int = 8080,
    write_key: str | Sequence[str] = DOC_WRITE_KEY,
    api_key: str | Sequence[str] = DEFAULT_API_KEY,
    regions: Sequence[str] = ("EU", "US", "IN", "UK"),
    pixel_ids: Sequence[str] | None = None,
    keep_events: bool = True,
    max_kept_events: int | None = 100_000,
    strict: bool = True,
    require_country: bool = True,
    auth_status: int = 401,
    seed: int | None = None,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    registry_auth: str | None = None,
) -> None:
    """Entry point of ``s2s-bridge dev emulator``: prints ``emulator: <base url>`` first, then
    the endpoint URLs, and serves until Ctrl-C.

    ``faults`` maps a destination (or ``"*"``) to :class:`FaultConfig` knobs;
    ``registry_auth`` is ``"user:password"`` for Schema Registry basic auth.
    """
    basic: tuple[str, str] | None = None
    if registry_auth:
        user, sep, password = registry_auth.partition(":")
        if not sep:
            raise ValueError("registry_auth must be 'user:password'")
        basic = (user, password)
    config = EmulatorConfig(
        zeotap_write_keys=(write_key,) if isinstance(write_key, str) else tuple(write_key),
        zeotap_regions=tuple(regions),
        zeotap_auth_status=auth_status,
        zeotap_strict=strict,
        zeotap_require_country=require_country,
        audiohook_pixel_ids=tuple(pixel_ids) if pixel_ids else None,
        activation_api_keys=(api_key,) if isinstance(api_key, str) else tuple(api_key),
        keep_events=keep_events,
        max_kept_events=max_kept_events,
        faults={dest: FaultConfig.from_dict(knobs) for dest, knobs in (faults or {}).items()},
        seed=seed,
        registry_basic_auth=basic,
    )

    def ready(base_url: str) -> None:
        urls = EmulatorClient(base_url, registry_prefix=config.registry_prefix)
        print(f"emulator: {base_url}", flush=True)
        print(f"  zeotap:          POST {urls.zeotap_url()}", flush=True)
        print(f"  audiohook:       POST {urls.audiohook_url('<pixel_id>')}", flush=True)
        print(f"  activation:      POST {urls.activation_url}", flush=True)
        print(f"  schema registry: {urls.registry_url}", flush=True)
        print(f"  admin:           {base_url}{ADMIN_PREFIX}/stats", flush=True)

    run_emulator(host, port, config, on_ready=ready)


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m streams.dev.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--write-key", action="append", help="Zeotap write key (repeatable)")
    parser.add_argument("--api-key", action="append", help="activation API key (repeatable)")
    parser.add_argument("--region", action="append", help="valid Zeotap region (repeatable)")
    parser.add_argument("--pixel-id", action="append", help="known Audiohook id (repeatable; default: any)")
    parser.add_argument("--no-keep-events", action="store_true", help="keep only ids and receipt times")
    parser.add_argument("--max-kept-events", type=int, default=100_000, help="per destination; 0: unbounded")
    parser.add_argument("--no-strict", action="store_true", help="no Zeotap per-event validation")
    parser.add_argument("--no-require-country", action="store_true")
    parser.add_argument("--auth-status", type=int, default=401, help="Zeotap status for a bad write key")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--faults", help='JSON: {"*": {"error_rate": 0.1}, "zeotap": {...}}')
    parser.add_argument("--registry-auth", help="user:password for Schema Registry basic auth")
    for knob in (
        "error_rate",
        "throttle_rate",
        "slow_rate",
        "drop_rate",
        "slow_seconds",
        "outage_for_seconds",
    ):
        parser.add_argument("--" + knob.replace("_", "-"), type=float, help="global fault knob")
    parser.add_argument("--retry-after", type=int, help="global fault knob")
    parser.add_argument("--error-status", type=int, help="global fault knob")
    return parser.parse_args(argv)


def _main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    faults: dict[str, dict[str, Any]] = orjson.loads(args.faults) if args.faults else {}
    knobs = {
        k: getattr(args, k)
        for k in (
            "error_rate",
            "throttle_rate",
            "slow_rate",
            "drop_rate",
            "slow_seconds",
            "outage_for_seconds",
            "retry_after",
            "error_status",
        )
        if getattr(args, k) is not None
    }
    if knobs:
        faults.setdefault(GLOBAL, {}).update(knobs)
    main_dev_emulator(
        host=args.host,
        port=args.port,
        write_key=args.write_key or DOC_WRITE_KEY,
        api_key=args.api_key or DEFAULT_API_KEY,
        regions=args.region or ("EU", "US", "IN", "UK"),
        pixel_ids=args.pixel_id,
        keep_events=not args.no_keep_events,
        max_kept_events=args.max_kept_events or None,
        strict=not args.no_strict,
        require_country=not args.no_require_country,
        auth_status=args.auth_status,
        seed=args.seed,
        faults=faults,
        registry_auth=args.registry_auth,
    )


if __name__ == "__main__":
    _main()
