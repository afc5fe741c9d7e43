"""The contract every destination API implements: its settings model, payload shape, required
fields, request shape, response meaning, secrets and credentials probe."""

from __future__ import annotations

import abc
import builtins
import datetime as dt
import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from streams.destinations.settings import DestinationSettings


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


# a batch with no event in it: nothing can be ingested, yet the APIs that take batches still check
# the credentials of the request (the auth probe of `s2s-bridge check`)
EMPTY_BATCH = b'{"events":[]}'


class DestinationAPI(abc.ABC):
    """One destination API, as its documents describe it; pure (the sink sends, `check` probes).

    A new destination subclasses this in its own module, with its settings model (a subclass of
    `DestinationSettings` whose `type` is a `Literal` of its tag), and adds one line to
    `streams.destinations.registry.DESTINATIONS`: the config, `check` and the pipeline find it there.
    """

    type: ClassVar[str]
    # the config's `destinations.<name>` entries whose `type:` is this API's tag are parsed with it
    settings_model: ClassVar[builtins.type[DestinationSettings]]  # (`type` is the tag, just above)
    batched: bool = True
    max_request_bytes: int = 20 * 1024 * 1024
    # fields of the payload the API refuses an event without (`missing_fields`)
    required_fields: ClassVar[tuple[str, ...]] = ()
    # why `auth_probe` has no request to offer, shown by `check` (empty: the API can be probed)
    unprobed_because: ClassVar[str] = ""

    def __init__(self, name: str, settings: DestinationSettings) -> None:
        self.name = name
        self.settings = settings

    # -- pure -----------------------------------------------------------------
    @abc.abstractmethod
    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        """The API's event for a record's canonical sections (`streams.pipeline.sections`)."""

    def native_shape(self) -> dict[str, Any] | None:
        """What `payload` does, for the native core to write the same event itself (streams.native,
        docs/native.md); None: it has no native form, the route runs on the Python pipeline."""
        return None

    def missing_fields(self, event: Mapping[str, Any]) -> list[str]:
        """The `required_fields` the event lacks or leaves empty."""
        return [f for f in self.required_fields if not event.get(f)]

    @abc.abstractmethod
    def batch_body(self, events: Sequence[bytes]) -> bytes:
        """Request body for encoded events (one event when the API is not batched)."""

    def envelope_bytes(self, n_events: int) -> int:
        """Bytes the request body adds around n encoded events."""
        return 0

    @abc.abstractmethod
    def request(self, body: bytes, gzipped: bool = False) -> Request:
        """The HTTP request (URL, headers with the credentials) that carries a body."""

    def classify(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> Classified:
        """What the answer means. `body` is the response body of a refusal (status 300 and over;
        empty for a success): an API that explains itself in the body gives that reason here."""
        return classify_common(status, headers, "")

    # -- what `s2s-bridge check` needs ---------------------------------------------------------
    def secrets(self) -> list[str]:
        """Every value that must never be printed or logged: each `SecretStr` of the settings, a
        password in the URL, and what a subclass derives from them (e.g. an encoded token); a
        subclass with derived credentials extends this list, never replaces it."""
        values = (getattr(self.settings, f) for f in type(self.settings).model_fields)
        found = [v.get_secret_value() for v in values if isinstance(v, SecretStr)]
        password = urlsplit(self.settings.url).password
        if password:
            found.append(password)
        return found

    def auth_probe(self) -> Request | None:
        """A request that tests the credentials and ingests nothing, or None (`unprobed_because`)
        when the API has no such endpoint. None by default: a probe that could send an event is
        worse than no probe."""
        return None


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


# ----------------------------------------------------------------------------- a refusal's own words

REASON_MAX = 200
# an e-mail address as people write it (no spaces or brackets around the @, a dotted domain)
EMAIL_LIKE = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")
_SCRUBS = (
    (EMAIL_LIKE, "<email>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b[0-9a-fA-F]{16,}\b"), "<hex>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"(?<![\w.])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w.])"), "<ip>"),
    (re.compile(r"\+?\d[\d\s().-]{4,}\d"), "<number>"),
)


def scrub_text(text: str, secrets: Sequence[str] = ()) -> str:
    """Text from a destination fit for a log line and a dead-letter header: printable, the secrets
    replaced, anything that looks like an identifier masked (emails, ids, digests, IPs, phone-like
    numbers: headers and logs never carry PII), at most `REASON_MAX` characters."""
    # scrub a bounded head: the scrubs' cost grows with it
    text = "".join(c if c.isprintable() else " " for c in text[: 4 * REASON_MAX])
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern, mask in _SCRUBS:
        text = pattern.sub(mask, text)
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def refusal_reason(body: bytes, secrets: Sequence[str] = ()) -> str:
    """A refusal's reason, from its body: a JSON body's ``error``/``message``/``reason``/``detail``
    (with its ``field`` and ``index``), else the start of the text; scrubbed (`scrub_text`)."""
    if not body:
        return ""
    head = body[:4096]
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError:
        doc = None
    text = ""
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("error", "message", "reason", "detail") if isinstance(doc.get(k), str | int)]
        if isinstance(doc.get("field"), str):
            parts.append(f"field {doc['field']}")
        if isinstance(doc.get("index"), int):
            parts.append(f"index {doc['index']}")
        text = ": ".join(parts)
    if not text:
        text = head.decode("utf-8", errors="replace")
    return scrub_text(text, secrets)
