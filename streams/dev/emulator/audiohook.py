"""Audiohook's S2S pixel: ``POST /audiohook/{pixel_id}/pixel.png``, one JSON event, a 1x1 PNG back."""

from __future__ import annotations

import ipaddress
import struct
import zlib
from typing import Any

from aiohttp import web

from streams.dev.emulator.api import DestinationApi
from streams.dev.emulator.config import FaultConfig
from streams.dev.emulator.faults import Gateway
from streams.dev.emulator.state import DestinationStats, EmulatorState
from streams.dev.emulator.wire import json_response

AUDIOHOOK_PATH = "/audiohook/{pixel_id}/pixel.png"
AUDIOHOOK_REQUIRED = ("ip_address", "user_agent", "event_name")


def _png_1x1() -> bytes:
    """A valid 1x1 fully transparent RGBA PNG (what a tracking pixel answers)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00")) + chunk(b"IEND", b"")
    )


PIXEL_PNG = _png_1x1()


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
        for name in AUDIOHOOK_REQUIRED:
            value = ev.get(name)
            if not isinstance(value, str) or not value.strip():
                return self._error(st, 400, "missing_field", f"required field {name!r} is missing or empty", field=name)
        if self.cfg.audiohook_validate_ip:
            try:
                ipaddress.ip_address(ev["ip_address"].strip())
            except ValueError:
                return self._error(st, 400, "invalid_field", "ip_address is not an IPv4/IPv6 address", field="ip_address")
        eid = _event_id(ev)
        poisoned = self.gateway.poisoned("audiohook", st, prof, (eid,))
        if poisoned is not None:
            return poisoned
        self.state.request_seq += 1
        self.state.record(st, (ev,), (eid,), {"pixel_id": pixel_id, "request": self.state.request_seq})
        st.requests[200] += 1
        return web.Response(status=200, body=PIXEL_PNG, content_type="image/png")
