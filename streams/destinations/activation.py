"""Generic event-activation API (the server-side events guide, `/work/shared/seeds/001_…`).

What the guide fixes: each event is ``event`` (a stable name), ``timestamp`` (ISO 8601),
``customer_id`` (one stable identifier) and ``properties``; it is sent with an HTTPS POST and API
credentials; 401 bad credentials, 400 malformed payload, 429 rate limited, 5xx platform issue;
validate payloads before sending, log API responses, dedupe retries with an idempotency key or an
event id.

What it leaves to the configuration (each a setting below, defaults in README "Activation API"):
the endpoint (``url`` is the full URL, nothing is appended), the auth scheme (``auth``), whether a
request may carry several events (``batch_key``), the idempotency header (``idempotency_header``)
and which identifier is the ``customer_id`` (``customer_id``).
"""

from __future__ import annotations

import base64
import gzip
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, SecretStr, model_validator

from streams.destinations.base import REASON_MAX, Classified, DestinationAPI, Request, classify_common, refusal_reason, scrub_text
from streams.destinations.settings import DestinationSettings
from streams.errors import MissingRequiredField, RecordError
from streams.pipeline.outcome import ENCODE, INVALID_FIELD, MISSING_REQUIRED_FIELD
from streams.pipeline.sections import EVENT_ID, EVENT_NAME, EVENT_TS, RESERVED_EVENT_KEYS
from streams.settings import FieldError

log = logging.getLogger("streams.destinations.activation")

# an HTTP header name (RFC 9110 token)
_TOKEN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
# a JSON object key for the batch envelope: printable, no quote or backslash (it is written as is)
_KEY = r'^[^"\\\x00-\x1f]+$'
# the guide's step 2: the four fields every event has (event_id is ours, for deduplication)
REQUIRED_FIELDS = ("event", "timestamp", "customer_id", "properties")
# a refusal's reason: at most this many characters reach the dead letter and the log
# a date and a time (the guide's example "2024-01-15T14:32:00Z"); the zone is optional
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id")


class InvalidField(RecordError):
    """A field of the destination's event has a value its API refuses."""

    stage = ENCODE
    reason = INVALID_FIELD


class ActivationSettings(DestinationSettings):
    type: Literal["activation"]
    # the guide gives no auth scheme: Authorization: Bearer <api_key> (bearer), Basic
    # username:password (basic), or <auth_header>: <api_key> (header)
    auth: Literal["bearer", "basic", "header"] = "bearer"
    api_key: SecretStr | None = None
    auth_header: Annotated[str, Field(pattern=_TOKEN)] = "X-API-Key"
    username: str | None = None
    password: SecretStr | None = None
    # the guide shows one event per request: several only when the API takes an envelope
    # {"<batch_key>": [...]}; None sends one event per request
    batch_key: Annotated[str, Field(min_length=1, pattern=_KEY)] | None = None
    # single events carry their event id in this header (None: only in the body's event_id)
    idempotency_header: Annotated[str, Field(pattern=_TOKEN)] | None = "Idempotency-Key"
    # the one key of the user section that is the customer_id (never a fallback to another kind)
    customer_id: Annotated[str, Field(min_length=1)] = "userId"
    # refusals logged at warning per minute at most (the rest are counted in the next line)
    response_log_per_minute: Annotated[int, Field(ge=0)] = 10
    country_format: Literal["alpha2", "alpha3"] = "alpha2"
    # the guide: "ISO 8601 format recommended"; its troubleshooting blames other formats for delays
    timestamp_format: Literal["iso"] = "iso"

    @model_validator(mode="after")
    def _credentials_for_scheme(self) -> ActivationSettings:
        if self.auth in ("bearer", "header") and self.api_key is None:
            raise FieldError(("api_key",), f"an api_key is required with auth: {self.auth}")
        if self.auth == "basic":
            if not self.username:
                raise FieldError(("username",), "a username is required with auth: basic")
            if self.password is None:
                raise FieldError(("password",), "a password is required with auth: basic")
            if ":" in self.username:
                raise FieldError(("username",), "the username must not contain ':' (basic auth joins username:password)")
        return self


class ResponseLog:
    """The guide's "generate a log of API responses", bounded: a refusal is logged at warning (status,
    reason, request id) at most `per_minute` times a minute, the others counted in the next line;
    successes are never logged one by one, only a summary of statuses at most once a minute (info)."""

    def __init__(self, name: str, per_minute: int, clock: Any = time.monotonic) -> None:
        self.name = name
        self.per_minute = per_minute
        self._clock = clock
        self._window = clock()
        self._logged = 0
        self._suppressed = 0
        self._statuses: Counter[int] = Counter()

    def record(self, status: int, reason: str, request_id: str) -> None:
        now = self._clock()
        if now - self._window >= 60.0:
            if self._statuses:
                counts = ", ".join(f"{s}x{n}" for s, n in sorted(self._statuses.items()))
                log.info("destination %s: responses in the last minute: %s", self.name, counts)
            self._window, self._logged, self._statuses = now, 0, Counter()
        self._statuses[status] += 1
        if status < 300:
            return
        if self._logged >= self.per_minute:
            self._suppressed += 1
            return
        self._logged += 1
        more = f" (+{self._suppressed} refusals not logged)" if self._suppressed else ""
        self._suppressed = 0
        log.warning(
            "destination %s answered HTTP %d: %s [request id %s]%s", self.name, status, reason or "-", request_id or "-", more
        )


def is_iso_datetime(value: Any) -> bool:
    """An ISO 8601 date-time string (a date and a time, the zone optional)."""
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def validate_event(event: Mapping[str, Any]) -> None:
    """The guide's "validate payloads before sending": raise (stage encode, the field named) if a
    required field is absent, null or empty, or the timestamp is not an ISO 8601 date-time."""
    missing = [f for f in REQUIRED_FIELDS if event.get(f) is None or event.get(f) == ""]
    if missing:
        raise MissingRequiredField(f"activation event requires {', '.join(missing)}", stage=ENCODE, reason=MISSING_REQUIRED_FIELD)
    if not isinstance(event["event"], str):
        raise InvalidField("event: must be a string (the event name)")
    if not isinstance(event["customer_id"], str):
        raise InvalidField("customer_id: must be a string")
    if not isinstance(event["properties"], dict):
        raise InvalidField("properties: must be a JSON object")
    if not is_iso_datetime(event["timestamp"]):
        raise InvalidField("timestamp: not an ISO 8601 date-time")


class Activation(DestinationAPI):
    type = "activation"
    settings_model = ActivationSettings
    max_request_bytes = 5 * 1024 * 1024
    required_fields = REQUIRED_FIELDS

    def __init__(self, name: str, settings: ActivationSettings) -> None:
        super().__init__(name, settings)
        self.cfg = settings
        self.batched = settings.batch_key is not None
        self._url = settings.url
        self._headers = {"Content-Type": "application/json"}
        self._token = ""  # a credential derived from the settings (basic), hidden like them
        if settings.auth == "bearer":
            assert settings.api_key is not None
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        elif settings.auth == "header":
            assert settings.api_key is not None
            self._headers[settings.auth_header] = settings.api_key.get_secret_value()
        else:
            assert settings.password is not None
            raw = f"{settings.username}:{settings.password.get_secret_value()}".encode()
            self._token = base64.b64encode(raw).decode("ascii")
            self._headers["Authorization"] = f"Basic {self._token}"
        self._open = b'{"' + (settings.batch_key or "").encode() + b'":['
        self.responses = ResponseLog(name, settings.response_log_per_minute)

    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        event = sections.get("event", {})
        user = sections.get("user", {})
        key = self.cfg.customer_id
        props = {k: v for k, v in event.items() if k not in RESERVED_EVENT_KEYS}
        identifiers = {k: v for k, v in user.items() if k != key}
        if identifiers:
            props.setdefault("identifiers", identifiers)
        for extra in ("page", "device", "consent"):
            if sections.get(extra):
                props.setdefault(extra, sections[extra])
        customer_id = user.get(key)
        if customer_id is None or customer_id == "":
            # one identifier kind only: another kind in the same field sends events to the wrong
            # profile (the guide's "identifier mismatch")
            raise MissingRequiredField(
                f"activation event requires customer_id: the record has no user.{key} (destination setting customer_id)",
                stage=ENCODE,
                reason=MISSING_REQUIRED_FIELD,
            )
        out = {
            "event": event.get(EVENT_NAME),
            "timestamp": event.get(EVENT_TS),
            "customer_id": customer_id,
            "event_id": event.get(EVENT_ID),
            "properties": props,
        }
        validate_event(out)
        return out

    def native_shape(self) -> dict[str, Any]:
        # `payload` and `validate_event` above; the native core hands back every event they would refuse
        return {"kind": "activation", "customer_id": self.cfg.customer_id}

    def batch_body(self, events: Sequence[bytes]) -> bytes:
        if not self.batched:
            (only,) = events
            return only
        return self._open + b",".join(events) + b"]}"

    def envelope_bytes(self, n_events: int) -> int:
        return len(self._open) + 2 + max(n_events - 1, 0) if self.batched else 0

    def request(self, body: bytes, gzipped: bool = False) -> Request:
        headers = dict(self._headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        header = self.cfg.idempotency_header
        if header and not self.batched:
            # the event id: the same on every retry of the event, so the API can drop the repeat
            event_id = _event_id(body, gzipped)
            if event_id:
                headers[header] = event_id
        return Request(self._url, headers, body)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> Classified:
        if status < 300:  # counted, never logged one by one
            self.responses.record(status, "", "")
            return classify_common(status, headers, "")
        reason = refusal_reason(body, self.secrets())
        lowered = {k.lower(): v for k, v in headers.items()}
        request_id = next((lowered[h] for h in _REQUEST_ID_HEADERS if lowered.get(h)), "")
        request_id = scrub_text(request_id, self.secrets())[:64]
        self.responses.record(status, reason, request_id)
        if request_id:
            reason = f"{reason} [request id {request_id}]" if reason else f"[request id {request_id}]"
        return classify_common(status, headers, reason[: REASON_MAX + 80])

    def secrets(self) -> list[str]:
        found = super().secrets()
        if self._token:
            found.append(self._token)
        return found

    def auth_probe(self) -> Request:
        # nothing an API can ingest: an empty envelope when batched, else an empty object; bad
        # credentials get 401, good ones a 400 for the body
        return Request(self._url, dict(self._headers), self._open + b"]}" if self.batched else b"{}")


def _event_id(body: bytes, gzipped: bool) -> str:
    """The event id of one encoded event ("" if the body is not one)."""
    try:
        doc = orjson.loads(gzip.decompress(body) if gzipped else body)
    except (OSError, EOFError, orjson.JSONDecodeError):
        return ""
    value = doc.get("event_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""
