"""What the pipeline makes of one record: a payload to send, a rejection, or a deliberate filter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Payload:
    """One destination event, already encoded (JSON bytes): exactly what is sent."""

    event_id: str
    body: bytes


@dataclass(slots=True)
class Rejected:
    """A bad record: goes to the dead-letter topic. `reason` is a stable code, `detail` says more."""

    stage: str  # decode | map | enrich | encode | deliver
    reason: str  # e.g. invalid_avro, missing_country, missing_identifier, too_large
    detail: str
    error_class: str
    event_id: str | None = None


@dataclass(slots=True)
class Filtered:
    """Deliberately not sent (counted, not dead-lettered)."""

    stage: str  # consent | route
    reason: str
    detail: str
    event_id: str | None = None


Outcome = Payload | Rejected | Filtered
