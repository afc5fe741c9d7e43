"""Generic event-activation API (server-side events guide).

Payload: ``event``, ``timestamp`` (ISO 8601), ``customer_id``, ``properties``; the event id for
idempotency in the body (``event_id``). No ``Idempotency-Key`` header is sent yet (the
destinations issue makes its name configurable).
Errors: 401 bad credentials, 400 malformed payload, 429 rate limited, 5xx platform issue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import SecretStr

from streams.destinations.base import EMPTY_BATCH, DestinationAPI, Request
from streams.destinations.settings import DestinationSettings
from streams.pipeline.sections import EVENT_ID, EVENT_NAME, EVENT_TS, RESERVED_EVENT_KEYS


class ActivationSettings(DestinationSettings):
    type: Literal["activation"]
    api_key: SecretStr
    country_format: Literal["alpha2", "alpha3"] = "alpha2"


class Activation(DestinationAPI):
    type = "activation"
    settings_model = ActivationSettings
    batched = True
    max_request_bytes = 5 * 1024 * 1024

    def __init__(self, name: str, settings: ActivationSettings) -> None:
        super().__init__(name, settings)
        self._url = f"{settings.url}/events"
        self._headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
        }

    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        event = sections.get("event", {})
        user = sections.get("user", {})
        props = {k: v for k, v in event.items() if k not in RESERVED_EVENT_KEYS}
        identifiers = {k: v for k, v in user.items() if k not in ("userId",)}
        if identifiers:
            props.setdefault("identifiers", identifiers)
        for extra in ("page", "device", "consent"):
            if sections.get(extra):
                props.setdefault(extra, sections[extra])
        return {
            "event": event.get(EVENT_NAME),
            "timestamp": event.get(EVENT_TS),
            # "Customer ID, email hash, or another stable identifier" (the guide's step 2)
            "customer_id": user.get("userId") or user.get("anonymousId") or user.get("email_sha256") or user.get("phone_sha256"),
            "event_id": event.get(EVENT_ID),
            "properties": props,
        }

    def batch_body(self, events: Sequence[bytes]) -> bytes:
        if len(events) == 1:
            return events[0]
        return b'{"events":[' + b",".join(events) + b"]}"

    def envelope_bytes(self, n_events: int) -> int:
        return 0 if n_events <= 1 else 13 + n_events - 1

    def request(self, body: bytes, gzipped: bool = False) -> Request:
        headers = dict(self._headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return Request(self._url, headers, body)

    def auth_probe(self) -> Request:
        # an empty batch: 401 for bad credentials, else 400 for the batch itself (nothing ingested)
        return self.request(EMPTY_BATCH)
