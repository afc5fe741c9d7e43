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

    stage: str  # decode | map | enrich | encode | deliver | internal
    # e.g. undecodable, too_many_items, missing_country, missing_identifier, bad_request,
    # server_error (docs/metrics.md lists them all)
    reason: str
    detail: str
    error_class: str
    event_id: str | None = None


@dataclass(slots=True)
class Filtered:
    """Deliberately not sent (counted, not dead-lettered)."""

    stage: str  # decode (a tombstone) | consent | route
    reason: str  # tombstone | consent_denied | route_not_forwarded
    detail: str
    event_id: str | None = None


Outcome = Payload | Rejected | Filtered
