"""Audiohook S2S pixel.

Documented contract: one JSON event per POST to ``https://listen.audiohook.com/<id>/pixel.png``,
``Content-Type: application/json``; required ``ip_address``, ``user_agent``, ``event_name``;
recommended ``url``, ``referrer``, ``persistent_anonymous_user_id``, ``session_id``,
``event_payload``; timestamps ISO 8601 ``YYYY-MM-DDTHH:mm:ss.sssZ``; PII SHA-256 hashed; HTTPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from streams.destinations.base import DestinationAPI, Request
from streams.destinations.settings import DestinationSettings
from streams.errors import MissingRequiredField
from streams.pipeline.outcome import ENCODE, MISSING_REQUIRED_FIELD
from streams.pipeline.sections import EVENT_ID, EVENT_NAME, EVENT_TS, RESERVED_EVENT_KEYS

# canonical section key -> Audiohook field
_PAGE = {"url": "url", "referrer": "referrer"}
_DEVICE = {"ipAddress": "ip_address", "userAgent": "user_agent", "sessionId": "session_id"}


class AudiohookSettings(DestinationSettings):
    type: Literal["audiohook"]
    pixel_id: str
    country_format: Literal["alpha2", "alpha3"] = "alpha2"


class Audiohook(DestinationAPI):
    type = "audiohook"
    settings_model = AudiohookSettings
    batched = False
    max_request_bytes = 1024 * 1024
    required_fields = ("ip_address", "user_agent", "event_name")
    # no credentials, and every request to the pixel is an event
    unprobed_because = "Audiohook takes no credentials, the pixel id is not verified"

    def __init__(self, name: str, settings: AudiohookSettings) -> None:
        super().__init__(name, settings)
        self._url = f"{settings.url}/{settings.pixel_id}/pixel.png"
        self._headers = {"Content-Type": "application/json"}
        self._gzip_headers = {**self._headers, "Content-Encoding": "gzip"}

    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        event = sections.get("event", {})
        page = sections.get("page", {})
        device = sections.get("device", {})
        user = sections.get("user", {})
        out: dict[str, Any] = {"event_name": event.get(EVENT_NAME), "timestamp": event.get(EVENT_TS)}
        if EVENT_ID in event:
            out["event_id"] = event[EVENT_ID]
        for src, dst in _PAGE.items():
            if src in page:
                out[dst] = page[src]
        for src, dst in _DEVICE.items():
            if src in device:
                out[dst] = device[src]
        if "anonymousId" in user:
            out["persistent_anonymous_user_id"] = user["anonymousId"]
        # hashed identifiers (email_sha256, phone_sha256, ...) and the country travel flat
        for k, v in user.items():
            if k not in ("anonymousId",):
                out[k] = v
        props = {k: v for k, v in event.items() if k not in RESERVED_EVENT_KEYS}
        if props:
            out["event_payload"] = props
        missing = self.missing_fields(out)
        if missing:
            raise MissingRequiredField(f"Audiohook requires {', '.join(missing)}", stage=ENCODE, reason=MISSING_REQUIRED_FIELD)
        return out

    def batch_body(self, events: Sequence[bytes]) -> bytes:
        (only,) = events
        return only

    def request(self, body: bytes, gzipped: bool = False) -> Request:
        return Request(self._url, self._gzip_headers if gzipped else self._headers, body)
