"""Audiohook S2S pixel.

Documented contract: one JSON event per POST to ``https://listen.audiohook.com/<id>/pixel.png``,
``Content-Type: application/json``; required ``ip_address``, ``user_agent``, ``event_name``;
recommended ``url``, ``referrer``, ``persistent_anonymous_user_id``, ``session_id``,
``event_payload``; every example carries ``timestamp`` and ``visitor_id``; timestamps ISO 8601
``YYYY-MM-DDTHH:mm:ss.sssZ``; PII SHA-256 hashed; HTTPS.

What this module adds where the document is silent (README "Audiohook", docs/emulator.md):

- PII is never sent in plaintext: the settings refuse ``identity.hash: false``; before sending, a
  field whose name says SHA-256, email or phone must hold a 64 lowercase hex digest, every field of
  the ``user`` section but the visitor id and ``country`` too (a customer id is an identifier), and
  no string anywhere may look like an email address. A violation is a dead letter
  (``encode``/``unhashed_identifier``), never a request.
- ``visitor_id`` is the user key ``visitor_id_from`` (default ``anonymousId``), required unless
  ``require_visitor_id: false``.
- ``timestamp`` is required and must be ``YYYY-MM-DDTHH:mm:ss.sssZ`` (``timestamp_format: iso``
  only): missing is ``encode``/``missing_required_field``, another form ``encode``/``invalid_timestamp``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import model_validator

from streams.destinations.base import EMAIL_LIKE, Classified, DestinationAPI, Request, classify_common, refusal_reason
from streams.destinations.settings import DestinationSettings
from streams.errors import MissingRequiredField, RecordError
from streams.pipeline.outcome import ENCODE, INVALID_TIMESTAMP, MISSING_REQUIRED_FIELD, UNHASHED_IDENTIFIER
from streams.pipeline.sections import EVENT_ID, EVENT_NAME, EVENT_TS, RESERVED_EVENT_KEYS
from streams.settings import FieldError

# canonical section key -> Audiohook field
_PAGE = {"url": "url", "referrer": "referrer"}
_DEVICE = {"ipAddress": "ip_address", "userAgent": "user_agent", "sessionId": "session_id"}

# the document's timestamp format, exactly: YYYY-MM-DDTHH:mm:ss.sssZ
ISO_MILLIS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# a key that names a digest or a kind of PII the document says to hash (email, phone)
_DIGEST_KEY = re.compile(r"sha-?256|e-?mail|phone", re.IGNORECASE)
# fields the document requires as they are (a bot's user agent may quote its contact address)
_AS_IS = frozenset({"user_agent"})
# user-section keys that are not identifiers
_PLAIN_USER_KEYS = frozenset({"country"})


class UnhashedIdentifier(RecordError):
    """An identifier would reach Audiohook in plaintext (or a SHA-256 field holds no digest)."""

    stage = ENCODE
    reason = UNHASHED_IDENTIFIER


class InvalidTimestamp(RecordError):
    """The event's timestamp is not in the document's ``YYYY-MM-DDTHH:mm:ss.sssZ`` form."""

    stage = ENCODE
    reason = INVALID_TIMESTAMP


class AudiohookSettings(DestinationSettings):
    type: Literal["audiohook"]
    pixel_id: str
    country_format: Literal["alpha2", "alpha3"] = "alpha2"
    # the canonical user key whose value is sent as `visitor_id` (every example of the document has one)
    visitor_id_from: str = "anonymousId"
    require_visitor_id: bool = True

    @model_validator(mode="after")
    def _as_documented(self) -> AudiohookSettings:
        # "Hash any Personally Identifiable Information ... Use SHA-256 for hashing."
        if not self.identity.hash:
            raise FieldError(("identity", "hash"), "Audiohook takes PII SHA-256 hashed only; identity.hash must be true")
        # "Use ISO 8601 format (YYYY-MM-DDTHH:mm:ss.sssZ) for all timestamps."
        if self.timestamp_format != "iso":
            raise FieldError(
                ("timestamp_format",),
                f"Audiohook takes ISO 8601 timestamps (YYYY-MM-DDTHH:mm:ss.sssZ) only, not {self.timestamp_format!r}",
            )
        if not self.visitor_id_from.strip():
            raise FieldError(("visitor_id_from",), "must name a key of the user section (e.g. anonymousId)")
        return self


class Audiohook(DestinationAPI):
    type = "audiohook"
    settings_model = AudiohookSettings
    batched = False
    max_request_bytes = 1024 * 1024
    required_fields = ("ip_address", "user_agent", "event_name", "timestamp")
    # no credentials, and every request to the pixel is an event
    unprobed_because = "Audiohook takes no credentials, the pixel id is not verified"

    def __init__(self, name: str, settings: AudiohookSettings) -> None:
        super().__init__(name, settings)
        self._url = f"{settings.url}/{settings.pixel_id}/pixel.png"
        self._headers = {"Content-Type": "application/json"}
        self._gzip_headers = {**self._headers, "Content-Encoding": "gzip"}
        self._visitor_from = settings.visitor_id_from
        self._required = (*self.required_fields, "visitor_id") if settings.require_visitor_id else self.required_fields

    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        event = sections.get("event", {})
        page = sections.get("page", {})
        device = sections.get("device", {})
        user = sections.get("user", {})
        out: dict[str, Any] = {"event_name": event.get(EVENT_NAME), "timestamp": event.get(EVENT_TS)}
        if EVENT_ID in event:
            out["event_id"] = event[EVENT_ID]
        visitor = user.get(self._visitor_from)
        if visitor is not None and str(visitor).strip():
            out["visitor_id"] = str(visitor).strip()
        for src, dst in _PAGE.items():
            if src in page:
                out[dst] = page[src]
        for src, dst in _DEVICE.items():
            if src in device:
                out[dst] = device[src]
        if "anonymousId" in user:
            out["persistent_anonymous_user_id"] = user["anonymousId"]
        # hashed identifiers (email_sha256, phone_sha256, ...) and the country travel flat; any other
        # user field is an identifier, and Audiohook takes identifiers hashed only
        for k, v in user.items():
            if k in ("anonymousId", self._visitor_from):
                continue
            if k not in _PLAIN_USER_KEYS and not (isinstance(v, str) and SHA256_HEX.fullmatch(v)):
                raise UnhashedIdentifier(f"user.{k} is not a SHA-256 digest: Audiohook takes identifiers hashed only")
            out[k] = v
        props = {k: v for k, v in event.items() if k not in RESERVED_EVENT_KEYS}
        if props:
            out["event_payload"] = props
        missing = self.missing_fields(out)
        if missing:
            raise MissingRequiredField(f"Audiohook requires {', '.join(missing)}", stage=ENCODE, reason=MISSING_REQUIRED_FIELD)
        check_event(out)
        return out

    def native_shape(self) -> dict[str, Any]:
        # `payload`, `missing_fields` and `check_event`; the native core hands back every event they might refuse
        return {"kind": "audiohook", "visitor_from": self._visitor_from, "require_visitor_id": "visitor_id" in self._required}

    def missing_fields(self, event: Mapping[str, Any]) -> list[str]:
        """The required fields (with `visitor_id` unless `require_visitor_id: false`) the event lacks."""
        return [f for f in self._required if not event.get(f)]

    def batch_body(self, events: Sequence[bytes]) -> bytes:
        (only,) = events
        return only

    def request(self, body: bytes, gzipped: bool = False) -> Request:
        return Request(self._url, self._gzip_headers if gzipped else self._headers, body)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> Classified:
        return classify_common(status, headers, refusal_reason(body) if status >= 300 else "")


def check_event(event: Mapping[str, Any]) -> None:
    """The document's rules an encoded event must meet, checked before it is ever sent: the timestamp
    form, and no plaintext PII (digest fields, email/phone fields, email-like strings) at any depth."""
    ts = event.get("timestamp")
    if not isinstance(ts, str) or not ISO_MILLIS_Z.fullmatch(ts):
        # the value itself is not quoted: a mis-mapped field could be anything
        raise InvalidTimestamp(f"timestamp is not YYYY-MM-DDTHH:mm:ss.sssZ (got a {type(ts).__name__} of another form)")
    for path, key, value in _leaves(event, ""):
        if isinstance(value, bool) or value is None or path in _AS_IS:
            continue
        if _DIGEST_KEY.search(key) and not (isinstance(value, str) and SHA256_HEX.fullmatch(value)):
            raise UnhashedIdentifier(f"{path} is not a SHA-256 digest (64 lowercase hex): Audiohook takes PII hashed only")
        if isinstance(value, str) and _looks_like_email(value):
            raise UnhashedIdentifier(f"{path} holds an email address in plaintext: Audiohook takes PII hashed only")


def _looks_like_email(value: str) -> bool:
    """An email address anywhere in `value`; each '@' is looked at in a bounded window (an address
    is at most 254 characters), so a long string costs linear time, not the regex's quadratic."""
    at = value.find("@")
    while at != -1:
        if EMAIL_LIKE.search(value, max(0, at - 64), at + 256):
            return True
        at = value.find("@", at + 1)
    return False


def _leaves(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(dotted path, key, value) of every scalar under `node`; list items carry their parent's key."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves_of(v, f"{path}.{k}" if path else str(k), str(k))
    else:
        yield path, path.rsplit(".", 1)[-1], node


def _leaves_of(value: Any, path: str, key: str) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, Mapping):
        yield from _leaves(value, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _leaves_of(item, f"{path}[{i}]", key)
    else:
        yield path, key, value
