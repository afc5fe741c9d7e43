"""Zeotap CDP server-to-server source (HTTP API).

Documented contract: POST to the source's API URL with query ``region`` and ``eventType=s2s``;
``Content-Type: application/json``; ``Authorization: Basic base64("w_k:" + write_key)``; a real-time
call carries one object ``{event, user, consent, page, device}``, a batch call ``{"events": [...]}``
of at most 20 MB; ``204`` is success; ``400`` carries the reason in the ``x-zeo-debug`` header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr, model_validator

from streams.destinations.base import EMPTY_BATCH, Classified, DestinationAPI, Request, Verdict, classify_common
from streams.destinations.settings import BatchSettings, DestinationSettings
from streams.settings import FieldError

# "When setting up batched events, ensure that the payload size does not exceed 20 MB." Read as
# decimal megabytes, the smaller of the two readings (20 MiB would be 20,971,520), so a request we
# send is within the limit either way. The document never mentions compression: the limit bounds the
# JSON payload before any gzip (the sink cuts batches on it), which is within the limit whichever
# size the API measures (see README, "Zeotap").
ZEOTAP_MAX_REQUEST_BYTES = 20_000_000

# A 400 whose debug text names these is about the request, not a record (the doc's own
# troubleshooting list for a 400: "a valid region", "eventType is set to 's2s'", "the endpoint URL
# and headers", "the Authorization header"; and the headers it prescribes: "content-Type ...
# application/JSON and Charset to UTF-8"; a Content-Encoding it never mentions): a refusal for the
# breaker, unless the text points at one event of the batch (`events[3]: ...`), which makes it that
# record's fault. The breaker only believes a refusal while nothing else is delivered, so a
# record-level text that happens to name such a word costs a probe, never the stream.
_CONFIG_HINTS = re.compile(
    r"\b(region|eventtype|authori[sz]ation|write[ _-]?key|w_k|content[ _-]?type|content[ _-]?encoding|charset|endpoint)\b",
    re.IGNORECASE,
)
_EVENT_INDEX = re.compile(r"\bevents\[\d+\]")
# the document does not say how an oversized payload is answered (only 204 and 400 exist): a 400
# whose text says so is the size, so the sink splits the batch rather than suspecting a record
_TOO_LARGE = re.compile(r"\b(payload|request|body) (is )?too large\b", re.IGNORECASE)


class ZeotapSettings(DestinationSettings):
    type: Literal["zeotap"]
    write_key: SecretStr
    region: str
    mode: Literal["batch", "realtime"] = "batch"
    batch: BatchSettings = BatchSettings()
    country_format: Literal["alpha2", "alpha3"] = "alpha3"

    @model_validator(mode="after")
    def _zeotap_limits(self) -> ZeotapSettings:
        if self.batch.max_bytes > ZEOTAP_MAX_REQUEST_BYTES:
            raise FieldError(
                ("batch", "max_bytes"),
                f"{self.batch.max_bytes} exceeds Zeotap's 20 MB request limit ({ZEOTAP_MAX_REQUEST_BYTES})",
            )
        if not self.write_key.get_secret_value():
            raise FieldError(("write_key",), "must not be empty")
        return self


def auth_header(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"w_k:{write_key}".encode()).decode("ascii")


class Zeotap(DestinationAPI):
    type = "zeotap"
    settings_model = ZeotapSettings
    max_request_bytes = ZEOTAP_MAX_REQUEST_BYTES
    # "Note that you need to wait 30 minutes before using this write key to make API calls.": a
    # refused key may be right but new (`check` says so rather than only "wrong key")
    credentials_rejected_hint: ClassVar[str] = (
        "a write key created less than 30 minutes ago is not active yet (Zeotap: 'you need to wait "
        "30 minutes before using this write key'): if the source is new, wait and run check again; "
        "otherwise copy the write key from the source's IMPLEMENTATION DETAILS tab"
    )

    def __init__(self, name: str, settings: ZeotapSettings) -> None:
        super().__init__(name, settings)
        self.zsettings = settings
        self.batched = settings.mode == "batch"
        # the API URL copied from Zeotap's UI may already carry the query: merge, do not append a second one
        parts = urlsplit(settings.url)
        query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("region", "eventType")}
        query.update(region=settings.region, eventType="s2s")
        self._url = urlunsplit(parts._replace(query=urlencode(query)))
        self._headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": auth_header(settings.write_key.get_secret_value()),
        }
        self._gzip_headers = {**self._headers, "Content-Encoding": "gzip"}

    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]:
        if nce:
            return {"event": sections.get("event", {})}
        return {name: body for name, body in sections.items() if body}

    def native_shape(self) -> dict[str, Any]:
        return {"kind": "sections"}  # `payload`: the non-empty sections as they are (nce routes have no plan)

    def batch_body(self, events: Sequence[bytes]) -> bytes:
        if not self.batched:
            (only,) = events
            return only
        return b'{"events":[' + b",".join(events) + b"]}"

    def envelope_bytes(self, n_events: int) -> int:
        return (13 + max(0, n_events - 1)) if self.batched else 0

    def request(self, body: bytes, gzipped: bool = False) -> Request:
        return Request(self._url, self._gzip_headers if gzipped else self._headers, body)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> Classified:
        debug = headers.get("x-zeo-debug", "")
        # a whole word, so an event field such as `region_code` in the text is not mistaken for it
        if status == 400 and not _EVENT_INDEX.search(debug):
            if _CONFIG_HINTS.search(debug):
                return Classified(Verdict.REFUSED, status, debug)
            if _TOO_LARGE.search(debug):
                return Classified(Verdict.TOO_LARGE, status, debug)
        return classify_common(status, headers, debug)

    def secrets(self) -> list[str]:
        # the Basic token is base64 of the key: an error quoting the header would not show the key
        key = self.zsettings.write_key.get_secret_value()
        return [*super().secrets(), auth_header(key).removeprefix("Basic ")]

    def auth_probe(self) -> Request:
        # answered with the credentials verdict (400 "'events' array is empty" once they pass)
        return self.request(EMPTY_BATCH)
