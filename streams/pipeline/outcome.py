"""What the pipeline makes of one record (a payload to send, a rejection, or a deliberate filter),
and the catalogue of outcomes: every stage and every reason a record can end with.

The stage and reason are the ``__connect.errors.stage``/``s2s.reason`` dead-letter headers and the ``stage``/``reason``
labels of ``s2s_records_dead_lettered_total`` and ``s2s_records_filtered_total``. Produce them only
from these constants; ``docs/metrics.md``, the dashboard and the alert rules are checked against
this catalogue (``tests/unit/test_catalogue.py``). A new reason: add its constant and its line in
`DEAD_LETTERS` / `FILTERS`, then document it in ``docs/metrics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------- stages

DECODE = "decode"
MAP = "map"
ENRICH = "enrich"
CONSENT = "consent"
ROUTE = "route"
ENCODE = "encode"
DELIVER = "deliver"
INTERNAL = "internal"

STAGES: dict[str, str] = {
    DECODE: "bytes -> record: the framing, the writer schema and the Avro data",
    MAP: "record -> sections, by the route's mapping",
    ENRICH: "the country and the user identifiers (normalised, hashed)",
    CONSENT: "the destination's consent policy",
    ROUTE: "the route's own rules (forward: false)",
    ENCODE: "sections -> the destination's event (JSON), within its size limit",
    DELIVER: "the destination's answer to the requests that carried the event",
    INTERNAL: "a bug in the bridge, not a fault of the record",
}

# ---------------------------------------------------------------------------------------- reasons

UNDECODABLE = "undecodable"
TOO_MANY_ITEMS = "too_many_items"
UNKNOWN_SCHEMA_ID = "unknown_schema_id"
EMPTY_VALUE = "empty_value"
MAPPING_FAILED = "mapping_failed"
MISSING_COUNTRY = "missing_country"
MISSING_IDENTIFIER = "missing_identifier"
MISSING_REQUIRED_FIELD = "missing_required_field"
UNENCODABLE = "unencodable"
INVALID_FIELD = "invalid_field"
UNHASHED_IDENTIFIER = "unhashed_identifier"
INVALID_TIMESTAMP = "invalid_timestamp"
TOO_LARGE = "too_large"
BAD_REQUEST = "bad_request"
SERVER_ERROR = "server_error"
UNEXPECTED_ERROR = "unexpected_error"

TOMBSTONE = "tombstone"
CONSENT_DENIED = "consent_denied"
ROUTE_NOT_FORWARDED = "route_not_forwarded"

INVALID_JSON = "invalid_json"
SCHEMA_MISMATCH = "schema_mismatch"

# (stage, reason) -> meaning: every way a record is dead-lettered
DEAD_LETTERS: dict[tuple[str, str], str] = {
    (DECODE, UNDECODABLE): "the bytes are not a record of the route's schema (framing, writer schema or Avro data)",
    (DECODE, TOO_MANY_ITEMS): "an array or map declares more items than the record's bytes can hold",
    (DECODE, UNKNOWN_SCHEMA_ID): "the schema registry says the record's writer schema id does not exist",
    (DECODE, EMPTY_VALUE): "the value is empty (zero bytes): nothing that can be an event",
    (MAP, MAPPING_FAILED): "the record does not fit the mapping (a required field missing, a value not coercible)",
    (ENRICH, MISSING_COUNTRY): "no usable country field, phone region, IP or locale, and no default country",
    (ENRICH, MISSING_IDENTIFIER): "none of the route's user identifiers has a usable value",
    (ENCODE, MISSING_REQUIRED_FIELD): "the destination's event lacks a field its API requires",
    (ENCODE, UNENCODABLE): "the event cannot be encoded as JSON",
    (ENCODE, INVALID_FIELD): "a field of the destination's event has a value its API refuses (activation: not ISO 8601)",
    (ENCODE, UNHASHED_IDENTIFIER): "a field that must carry a SHA-256 digest (or an identifier) is plaintext (Audiohook)",
    (ENCODE, INVALID_TIMESTAMP): "the event's timestamp is not in the API's documented format (Audiohook)",
    (ENCODE, TOO_LARGE): "the encoded event alone is over the destination's request size limit",
    (DELIVER, BAD_REQUEST): "the destination answered 400 to this event alone, after the batch was split",
    (DELIVER, TOO_LARGE): "the destination answered 413 to this event alone (or it is over the size limit alone)",
    (DELIVER, SERVER_ERROR): "5xx/timeouts whenever this event was in the request, retry.poison_after times, while others passed",
    (INTERNAL, UNEXPECTED_ERROR): "a bug in the pipeline: the record is kept in the dead-letter topic, not lost",
}

# (stage, reason) -> meaning: every way a record is deliberately not sent (counted, not dead-lettered)
FILTERS: dict[tuple[str, str], str] = {
    (DECODE, TOMBSTONE): "the record has no value: a key's delete marker, no event",
    (CONSENT, CONSENT_DENIED): "the destination's consent policy denies this record",
    (ROUTE, ROUTE_NOT_FORWARDED): "the route forwards nothing (forward: false)",
}

# (stage, reason) -> meaning: rejections of the `transform` dry run's own input only (never a dead
# letter or a metric label: the worker reads Avro from Kafka, not JSON lines)
DRY_RUN_REJECTIONS: dict[tuple[str, str], str] = {
    (DECODE, INVALID_JSON): "an input line is not JSON",
    (DECODE, SCHEMA_MISMATCH): "an input line is not a JSON object that the route's schema can encode",
}

# ---------------------------------------------------------------------------------------- outcomes


@dataclass(slots=True)
class Payload:
    """One destination event, already encoded (JSON bytes): exactly what is sent."""

    event_id: str
    body: bytes


@dataclass(slots=True)
class Rejected:
    """A bad record: goes to the dead-letter topic.

    `stage`/`reason`: a pair of `DEAD_LETTERS` (or `DRY_RUN_REJECTIONS`); `detail` says more;
    `error_class` names the class in `streams.errors` or the exception that was raised."""

    stage: str
    reason: str
    detail: str
    error_class: str
    event_id: str | None = None


@dataclass(slots=True)
class Filtered:
    """Deliberately not sent (counted, not dead-lettered): `stage`/`reason` a pair of `FILTERS`."""

    stage: str
    reason: str
    detail: str
    event_id: str | None = None


Outcome = Payload | Rejected | Filtered
