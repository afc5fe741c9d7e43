"""The contract every destination API implements: payload shape, request shape, response meaning."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.config import DestinationSettings


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    BAD_REQUEST = "bad_request"  # some record in the request is bad: split the batch to find it
    TOO_LARGE = "too_large"  # the request is over the destination's size limit: split it
    RETRY = "retry"  # destination unhealthy or throttling: back off and retry
    REFUSED = "refused"  # the destination refuses us, not a record (3xx, 411, 415, auth text): hold, probe
    MISCONFIGURED = "misconfigured"  # auth / endpoint / region wrong: stop loudly


@dataclass(frozen=True, slots=True)
class Classified:
    verdict: Verdict
    status: int
    reason: str = ""  # the destination's own debug text, when it gives one
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes


# well-known keys of the canonical sections that destinations other than Zeotap translate
EVENT_NAME, EVENT_ID, EVENT_TS = "eventName", "eventId", "eventTimestamp"
RESERVED_EVENT_KEYS = frozenset({EVENT_NAME, EVENT_ID, EVENT_TS})


class DestinationAPI:
    """Base: subclasses shape payloads and requests per their documented API."""

    type: str = ""
    batched: bool = True
    max_request_bytes: int = 20 * 1024 * 1024

    def __init__(self, name: str, settings: DestinationSettings) -> None:
        self.name = name
        self.settings = settings

    # -- pure -----------------------------------------------------------------
    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        raise NotImplementedError

    def batch_body(self, events: Sequence[bytes]) -> bytes:
        """Request body for encoded events (one event when the API is not batched)."""
        raise NotImplementedError

    def envelope_bytes(self, n_events: int) -> int:
        """Bytes the request body adds around n encoded events."""
        return 0

    def request(self, body: bytes, gzipped: bool = False) -> Request:
        raise NotImplementedError

    def classify(self, status: int, headers: Mapping[str, str]) -> Classified:
        return classify_common(status, headers, "")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf" would wait forever and "nan" is no delay at all: neither is usable
        return max(0.0, seconds) if math.isfinite(seconds) else None
    # not a number: an HTTP-date
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the asctime form carries no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def classify_common(status: int, headers: Mapping[str, str], reason: str) -> Classified:
    if 200 <= status < 300:
        return Classified(Verdict.DELIVERED, status)
    if status in (401, 403, 404, 405):
        return Classified(Verdict.MISCONFIGURED, status, reason)
    # never about one record: a redirect (we do not follow them), a missing length, a media type
    if 300 <= status < 400 or status in (411, 415):
        return Classified(Verdict.REFUSED, status, reason)
    if status == 413:
        return Classified(Verdict.TOO_LARGE, status, reason)
    if status in (408, 425, 429) or status >= 500:
        return Classified(Verdict.RETRY, status, reason, retry_after_seconds(headers))
    return Classified(Verdict.BAD_REQUEST, status, reason)
