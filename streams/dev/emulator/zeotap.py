"""Zeotap's server-to-server source API: ``POST /zeotap?region=EU&eventType=s2s`` (real-time and batch)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from streams.dev.emulator.api import DestinationApi
from streams.dev.emulator.config import WIRE_INFLATE_FACTOR, EmulatorConfig, FaultConfig
from streams.dev.emulator.faults import Gateway
from streams.dev.emulator.state import DestinationStats, EmulatorState
from streams.dev.emulator.wire import BadBody, BodyTooLarge, ClientGone, client_gone, header_safe, is_json_content_type, read_body

ZEOTAP_PATH = "/zeotap"
ZEOTAP_TOP_LEVEL_KEYS = frozenset({"event", "user", "consent", "page", "device"})


def zeotap_authorization(write_key: str) -> str:
    """The Authorization header Zeotap documents: ``Basic base64("w_k:" + write_key)``."""
    return "Basic " + base64.b64encode(f"w_k:{write_key}".encode()).decode("ascii")


def _has_value(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    return bool(value)


ZeotapValidator = Callable[[dict[str, Any]], "str | None"]


# "Use either a UNIX timestamp or a fully time-zone-qualified format according to ISO 8601 (For
# example, 2024-09-05T11:02:44Z, 2024-09-04T23:02:44-12:00, 2024-09-05T11:02:44+00:00)"
_ISO_WITH_ZONE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+\-\u2212]\d{2}:?\d{2})")
_UNIX = re.compile(r"\d{1,13}")
#: the event keys the document uses for the time of the event (NCE sample, customer batch sample)
TIMESTAMP_KEYS = ("eventTimestamp", "timestamp")
_HASH_SUFFIXES = ("sha256", "sha1", "md5", "hashed", "hash")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def user_id_kind(key: str) -> str:
    """A user key's name reduced to its kind: lower case, no separators, no hash suffix."""
    name = _NOT_ALNUM.sub("", key.lower())
    for suffix in _HASH_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def timestamp_problem(value: Any) -> str | None:
    """Why a timestamp is neither UNIX nor ISO 8601 with a zone, or None."""
    if isinstance(value, bool):
        return "is a boolean"
    if isinstance(value, int):
        return None if value >= 0 else "is a negative UNIX timestamp"
    if isinstance(value, float):
        return None if value >= 0 and value == value else "is not a UNIX timestamp"
    if isinstance(value, str):
        text = value.strip()
        if _UNIX.fullmatch(text) or _ISO_WITH_ZONE.fullmatch(text):
            return None
        return f"{value[:40]!r} is neither a UNIX timestamp nor ISO 8601 with a time zone"
    return "must be a UNIX timestamp or an ISO 8601 string with a time zone"


def make_zeotap_validator(cfg: EmulatorConfig) -> ZeotapValidator:
    """The strict per-event check: returns why one event breaks the contract, or None.

    Built once per app, so the hot path (~1 us per event) only does dict lookups.
    """
    allowed = ZEOTAP_TOP_LEVEL_KEYS
    kinds = frozenset(user_id_kind(k) for k in cfg.zeotap_user_id_keys)
    markers = tuple(m.lower() for m in cfg.zeotap_user_id_markers)
    require_country = cfg.zeotap_require_country
    check_timestamps = cfg.zeotap_timestamps
    id_keys: dict[str, bool] = {}

    def is_id_key(key: str) -> bool:
        hit = id_keys.get(key)
        if hit is None:
            low = key.lower()
            hit = user_id_kind(key) in kinds or (low != "country" and any(m in low for m in markers))
            if len(id_keys) < 4096:
                id_keys[key] = hit
        return hit

    def event_problem(inner: dict[str, Any] | None, nce: bool) -> str | None:
        if inner is None:
            return None
        if nce:
            name = inner.get("eventName")
            if name.__class__ is not str or not name.strip():
                return "NCE event without event.eventName (the event name is required)"
        if check_timestamps:
            for key in TIMESTAMP_KEYS:
                if key in inner and inner[key] is not None:
                    why = timestamp_problem(inner[key])
                    if why is not None:
                        return f"event.{key} {why}"
        return None

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
                # non-customer-entity (NCE) event: only the event object is needed
                return event_problem(ev["event"], nce=True)
            return "customer event without a 'user' object (all data must contain at least one user id)"
        for key, value in user.items():
            if value and is_id_key(key) and _has_value(value):
                break
        else:
            return (
                "user object has no user identifier of a documented kind (email, loginID, cell phone, "
                "cookie or MAID id; all data must contain at least one user id)"
            )
        if require_country:
            country = user.get("country")
            if country.__class__ is not str or not country.strip():
                return "user.country is required (all data must contain the country information)"
        return event_problem(ev.get("event"), nce=False)

    return problem


def _event_id(ev: dict[str, Any]) -> str | None:
    inner = ev.get("event")
    if inner.__class__ is dict:
        eid = inner.get("eventId")
        if eid is not None:
            return eid if eid.__class__ is str else str(eid)
    return None


class ZeotapApi(DestinationApi):
    """Write-key auth, region and event type, the body rules and the strict per-event contract."""

    name = "zeotap"

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        super().__init__(state, gateway)
        self._auth_ok = frozenset(zeotap_authorization(k) for k in self.cfg.zeotap_write_keys)
        self._keys = frozenset(self.cfg.zeotap_write_keys)
        self._regions = frozenset(self.cfg.zeotap_regions)
        self._validate = make_zeotap_validator(self.cfg) if self.cfg.zeotap_strict else None

    def _error(self, st: DestinationStats, status: int, debug: str, **headers: str) -> web.Response:
        st.requests[status] += 1
        hdrs = {"x-zeo-debug": header_safe(debug)}
        hdrs.update(headers)
        return web.Response(status=status, headers=hdrs)

    def _auth_problem(self, header: str | None) -> tuple[int, str] | None:
        if header in self._auth_ok:
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
        if decoded[4:] in self._keys:
            return None
        return auth_status, "invalid write key"

    async def handle(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        challenge = {"WWW-Authenticate": 'Basic realm="zeotap"'}
        forced = "invalid write key (emulated auth failure)"
        failed = self._forced_auth_failure(st, prof, self.cfg.zeotap_auth_status, challenge, forced)
        if failed is not None:
            return failed
        problem = self._auth_problem(request.headers.get("Authorization"))
        if problem is not None:
            status, debug = problem
            extra = {"WWW-Authenticate": 'Basic realm="zeotap"'} if status == 401 else {}
            return self._error(st, status, debug, **extra)

        query = request.query
        region = query.get("region")
        if region not in self._regions:
            valid = ", ".join(self.cfg.zeotap_regions)
            what = "missing region query parameter" if region is None else f"invalid region {region!r}"
            return self._error(st, 400, f"{what} (valid: {valid})")
        event_type = query.get("eventType")
        if event_type != "s2s":
            what = "missing eventType query parameter" if event_type is None else f"invalid eventType {event_type!r}"
            return self._error(st, 400, f"{what} (must be 's2s')")
        if not is_json_content_type(request.headers.get("Content-Type")):
            ct = request.headers.get("Content-Type")
            return self._error(st, 400, f"Content-Type must be application/json (UTF-8), got {ct!r}")
        try:
            body = await read_body(
                request,
                self.cfg.zeotap_max_body_bytes,
                self.decompresses,
                gzip_ok="zeotap" in self.cfg.gzip_destinations,
                limit_of=self.cfg.zeotap_limit_of,
                inflate_factor=WIRE_INFLATE_FACTOR,
            )
        except (BodyTooLarge, BadBody) as exc:
            return self._error(st, 400, str(exc))
        except ClientGone:
            return client_gone(st)
        st.bytes_received += len(body)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._error(st, 400, f"invalid JSON: {exc}")
        if not isinstance(doc, dict):
            return self._error(st, 400, 'body must be a JSON object (an event, or {"events": [...]})')

        if "events" in doc:
            events = doc["events"]
            if not isinstance(events, list):
                return self._error(st, 400, "'events' must be an array of event objects")
            if len(doc) != 1:
                return self._error(st, 400, "a batch body must only contain the 'events' array")
            if not events:
                return self._error(st, 400, "'events' array is empty")
            batch = True
        else:
            events = [doc]
            batch = False

        validate = self._validate
        ids: list[str | None] = []
        append = ids.append
        for index, ev in enumerate(events):
            if ev.__class__ is not dict:
                return self._error(st, 400, f"events[{index}]: event must be a JSON object")
            if validate is not None:
                why = validate(ev)
                if why is not None:
                    where = f"events[{index}]: " if batch else ""
                    return self._error(st, 400, where + why)
            append(_event_id(ev))

        poisoned = self.gateway.poisoned("zeotap", st, prof, ids)
        if poisoned is not None:
            return poisoned

        self.state.request_seq += 1
        self.state.record(st, events, ids, {"region": region, "batch": batch, "request": self.state.request_seq})
        st.requests[204] += 1
        return web.Response(status=204)
