"""Audiohook's S2S pixel: ``POST /audiohook/{pixel_id}/pixel.png``, one JSON event, a 1x1 PNG back.

Written from the document (``002_…``), not from our sender: the required fields; timestamps in
ISO 8601 ``YYYY-MM-DDTHH:mm:ss.sssZ`` (``audiohook_timestamps: iso8601`` takes any zoned ISO 8601,
as the document's own code examples send); "Hash any PII (e.g., email, phone number) ... Use
SHA-256": a field named for a digest, an email or a phone holds 64 hex characters, and no value
looks like an email address. A refusal is 400 with ``{"error", "message", "field"}`` (the message
never quotes the value).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from streams.dev.emulator.api import DestinationApi
from streams.dev.emulator.config import FaultConfig
from streams.dev.emulator.faults import Gateway
from streams.dev.emulator.state import DestinationStats, EmulatorState
from streams.dev.emulator.wire import json_response

AUDIOHOOK_PATH = "/audiohook/{pixel_id}/pixel.png"
AUDIOHOOK_REQUIRED = ("ip_address", "user_agent", "event_name")
# what every example of the document carries besides the required fields
AUDIOHOOK_EXAMPLE_FIELDS = ("timestamp", "visitor_id")
_ISO_MILLIS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_ISO_ZONED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_PII_KEY = re.compile(r"sha-?256|e-?mail|phone", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")


def _png_1x1() -> bytes:
    """A valid 1x1 fully transparent RGBA PNG (what a tracking pixel answers)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00")) + chunk(b"IEND", b"")
    )


PIXEL_PNG = _png_1x1()


def timestamp_problem(value: Any, form: str) -> str | None:
    """Why `value` is not a timestamp of the document's form (``strict``) or of ISO 8601 (``iso8601``)."""
    if not isinstance(value, str):
        return "timestamp must be an ISO 8601 string"
    if form == "strict":
        if not _ISO_MILLIS_Z.fullmatch(value):
            return "timestamp must be ISO 8601 YYYY-MM-DDTHH:mm:ss.sssZ"
    elif not _ISO_ZONED.fullmatch(value):
        return "timestamp must be ISO 8601 with a zone"
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "timestamp is not a valid date and time"
    return None


def _scalars(node: Any, path: str, key: str) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every scalar in the event; list items keep their parent's key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _scalars(v, f"{path}.{k}" if path else str(k), str(k))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _scalars(item, f"{path}[{i}]", key)
    else:
        yield path, key, node


def pii_problem(ev: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) of the first plaintext PII in the event: the document says to hash it with SHA-256."""
    for path, key, value in _scalars(ev, "", ""):
        if value is None or isinstance(value, bool) or path == "user_agent":  # the UA is required as it is
            continue
        if _PII_KEY.search(key) and not (isinstance(value, str) and _HEX64.fullmatch(value)):
            return path, f"{path} must be a SHA-256 digest (64 hex characters)"
        if isinstance(value, str) and "@" in value and _EMAIL.search(value):
            return path, f"{path} holds an email address in plaintext; hash PII with SHA-256"
    return None


def _event_id(ev: dict[str, Any]) -> str | None:
    eid = ev.get("event_id")
    if eid is None:
        payload = ev.get("event_payload")
        if isinstance(payload, dict):
            eid = payload.get("event_id")
    if eid is None:
        return None
    return eid if isinstance(eid, str) else str(eid)


class AudiohookApi(DestinationApi):
    """Known pixel ids, the required fields and a valid IP address."""

    name = "audiohook"

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        super().__init__(state, gateway)
        self._pixels = None if self.cfg.audiohook_pixel_ids is None else frozenset(self.cfg.audiohook_pixel_ids)

    def _error(self, st: DestinationStats, status: int, error: str, message: str, **extra: Any) -> web.Response:
        st.requests[status] += 1
        return json_response(status, {"error": error, "message": message, **extra})

    async def handle(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        pixel_id = request.match_info["pixel_id"]
        failed = self._forced_auth_failure(st, prof, 401)
        if failed is not None:
            return failed
        if self._pixels is not None and pixel_id not in self._pixels:
            return self._error(st, 404, "unknown_pixel", f"unknown Audiohook id {pixel_id!r}")
        ev = await self._json_object(request, st, self._error, "invalid_event", "body must be one JSON event object")
        if isinstance(ev, web.StreamResponse):
            return ev
        required = AUDIOHOOK_REQUIRED + (AUDIOHOOK_EXAMPLE_FIELDS if self.cfg.audiohook_require_example_fields else ())
        for name in required:
            value = ev.get(name)
            if not isinstance(value, str) or not value.strip():
                return self._error(st, 400, "missing_field", f"required field {name!r} is missing or empty", field=name)
        if self.cfg.audiohook_validate_ip:
            try:
                ipaddress.ip_address(ev["ip_address"].strip())
            except ValueError:
                return self._error(st, 400, "invalid_field", "ip_address is not an IPv4/IPv6 address", field="ip_address")
        if "timestamp" in ev:
            why = timestamp_problem(ev["timestamp"], self.cfg.audiohook_timestamps)
            if why is not None:
                return self._error(st, 400, "invalid_field", why, field="timestamp")
        pii = pii_problem(ev)
        if pii is not None:
            return self._error(st, 400, "invalid_field", pii[1], field=pii[0])
        eid = _event_id(ev)
        poisoned = self.gateway.poisoned("audiohook", st, prof, (eid,))
        if poisoned is not None:
            return poisoned
        self.state.request_seq += 1
        self.state.record(st, (ev,), (eid,), {"pixel_id": pixel_id, "request": self.state.request_seq})
        st.requests[200] += 1
        return web.Response(status=200, body=PIXEL_PNG, content_type="image/png")
