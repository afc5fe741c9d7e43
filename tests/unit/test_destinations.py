"""Destination request shapes and response classification (streams.destinations)."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from streams.destinations import Verdict, make_destination
from streams.destinations.activation import Activation, ActivationSettings
from streams.destinations.audiohook import Audiohook, AudiohookSettings
from streams.destinations.base import retry_after_seconds
from streams.destinations.zeotap import Zeotap, ZeotapSettings, auth_header
from streams.errors import MissingRequiredField, RecordError

DOC_WRITE_KEY = "fc3ab803-5762-44d3-88d3-7fbc94bca074"
DOC_AUTH = "Basic d19rOmZjM2FiODAzLTU3NjItNDRkMy04OGQzLTdmYmM5NGJjYTA3NA=="


def _zeotap(**kw: Any) -> Zeotap:
    settings: dict[str, Any] = {
        "type": "zeotap",
        "url": "https://api.zeotap.com/s2s/v1/events",
        "write_key": DOC_WRITE_KEY,
        "region": "EU",
    }
    settings.update(kw)
    dest = make_destination("zeotap", ZeotapSettings(**settings))
    assert isinstance(dest, Zeotap)
    return dest


EVENTS = [
    {"event": {"eventName": "purchase_completed", "eventId": "e1", "order_value": 12.5}, "user": {"userId": "u1"}},
    {"event": {"eventName": "page_view", "eventId": "e2"}, "user": {"email_sha256": "ab" * 32, "country": "DEU"}},
    {"event": {"eventName": "x", "eventId": "e3", "note": 'quotes " and \\ and ünïcödé'}, "user": {"userId": "u3"}},
]
ENCODED = [orjson.dumps(e) for e in EVENTS]


# --------------------------------------------------------------------------- Zeotap requests


def test_auth_header_for_the_doc_example() -> None:
    assert auth_header(DOC_WRITE_KEY) == DOC_AUTH
    assert base64.b64decode(DOC_AUTH.removeprefix("Basic ")) == f"w_k:{DOC_WRITE_KEY}".encode()


@pytest.mark.parametrize("mode", ["batch", "realtime"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_zeotap_request_headers(mode: str, gzipped: bool) -> None:
    req = _zeotap(mode=mode).request(b"{}", gzipped=gzipped)
    assert req.headers["Authorization"] == DOC_AUTH
    assert req.headers["Content-Type"].startswith("application/json")
    assert "utf-8" in req.headers["Content-Type"].lower()
    assert (req.headers.get("Content-Encoding") == "gzip") is gzipped
    assert req.body == b"{}"


@pytest.mark.parametrize(
    "url, region, expected_base, extra",
    [
        ("https://api.zeotap.com/s2s/v1/events", "EU", "https://api.zeotap.com/s2s/v1/events", {}),
        ("https://api.zeotap.com/s2s/v1/events/", "US", "https://api.zeotap.com/s2s/v1/events", {}),
        ("http://127.0.0.1:8080/zeotap", "IN", "http://127.0.0.1:8080/zeotap", {}),
        # the API URL as copied from the UI already carries the params: no second query string
        ("https://api.zeotap.com/s2s/v1/events?region=EU&eventType=s2s", "EU", "https://api.zeotap.com/s2s/v1/events", {}),
        ("https://api.zeotap.com/s2s?source=abc", "EU", "https://api.zeotap.com/s2s", {"source": ["abc"]}),
    ],
)
def test_zeotap_url_has_region_and_event_type(url: str, region: str, expected_base: str, extra: dict[str, Any]) -> None:
    req_url = _zeotap(url=url, region=region).request(b"{}").url
    parts = urlsplit(req_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == expected_base
    assert req_url.count("?") == 1
    assert parse_qs(parts.query) == {"region": [region], "eventType": ["s2s"], **extra}
    assert httpx.URL(req_url).params["eventType"] == "s2s"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_zeotap_batch_body(n: int) -> None:
    z = _zeotap(mode="batch")
    assert z.batched is True
    body = z.batch_body(ENCODED[:n])
    assert json.loads(body) == {"events": EVENTS[:n]}
    assert len(body) == sum(len(e) for e in ENCODED[:n]) + z.envelope_bytes(n)


def test_zeotap_realtime_sends_one_object() -> None:
    z = _zeotap(mode="realtime")
    assert z.batched is False
    body = z.batch_body([ENCODED[0]])
    assert json.loads(body) == EVENTS[0]
    assert "events" not in json.loads(body)
    assert z.envelope_bytes(1) == 0
    with pytest.raises(ValueError):
        z.batch_body(ENCODED[:2])


@pytest.mark.parametrize(
    "sections, nce, expected",
    [
        (
            {"event": {"eventName": "a"}, "user": {"userId": "u"}, "consent": {}, "page": {"url": "p"}, "device": {}},
            False,
            {"event": {"eventName": "a"}, "user": {"userId": "u"}, "page": {"url": "p"}},
        ),
        (
            {"event": {"eventName": "m", "MarketGLN": "1"}, "user": {"userId": "u"}, "page": {"url": "p"}},
            True,
            {"event": {"eventName": "m", "MarketGLN": "1"}},
        ),
    ],
)
def test_zeotap_payload(sections: dict[str, Any], nce: bool, expected: dict[str, Any]) -> None:
    assert _zeotap().payload(sections, nce) == expected


def test_zeotap_max_request_bytes_is_20MB() -> None:
    # "ensure that the payload size does not exceed 20 MB": decimal, the smaller reading
    assert _zeotap().max_request_bytes == 20_000_000


# --------------------------------------------------------------------------- Zeotap responses


TOO_LARGE_TEXT = "payload too large: 20000001 bytes > 20000000"  # the emulator's words


def _future_http_date(seconds: int) -> str:
    return format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    "status, headers, verdict, reason",
    [
        (204, {}, Verdict.DELIVERED, ""),
        (200, {}, Verdict.DELIVERED, ""),
        (400, {"x-zeo-debug": "invalid json payload at position 12"}, Verdict.BAD_REQUEST, "invalid json payload at position 12"),
        (400, {"X-Zeo-Debug": "eventName missing"}, Verdict.BAD_REQUEST, "eventName missing"),
        (400, {}, Verdict.BAD_REQUEST, ""),
        (422, {}, Verdict.BAD_REQUEST, ""),
        (400, {"x-zeo-debug": "Invalid region 'EUX'"}, Verdict.REFUSED, "Invalid region 'EUX'"),
        (400, {"x-zeo-debug": "eventType must be s2s"}, Verdict.REFUSED, "eventType must be s2s"),
        (400, {"x-zeo-debug": "missing Authorization header"}, Verdict.REFUSED, "missing Authorization header"),
        (400, {"x-zeo-debug": "invalid write key"}, Verdict.REFUSED, "invalid write key"),
        (400, {"x-zeo-debug": "events[4]: region must be a string"}, Verdict.BAD_REQUEST, "events[4]: region must be a string"),
        # the emulator's texts for request problems (streams/dev/emulator/zeotap.py, wire.py): never a record's
        *(
            (400, {"x-zeo-debug": text}, Verdict.REFUSED, text)
            for text in (
                "missing region query parameter (valid: EU, US)",
                "invalid eventType 'batch' (must be 's2s')",
                "Authorization header must be 'Basic base64(w_k:<write_key>)'",
                "Authorization header is not valid base64 of 'w_k:<write_key>'",
                "Authorization credentials must be 'w_k:<write_key>' (missing w_k: prefix)",
                "Content-Type must be application/json (UTF-8), got 'text/plain'",
                "Content-Encoding 'gzip' is not accepted: the API documents plain application/json bodies",
                "unsupported Content-Encoding 'br' (the API takes plain application/json)",
                "wrong charset latin-1",
                "Write-Key not yet active",
            )
        ),
        # the size of the request, not a record: split
        (400, {"x-zeo-debug": TOO_LARGE_TEXT}, Verdict.TOO_LARGE, TOO_LARGE_TEXT),
        # about one event: that record's fault (the sink splits to find it)
        *(
            (400, {"x-zeo-debug": text}, Verdict.BAD_REQUEST, text)
            for text in (
                "events[2]: event.eventTimestamp '2024-09-05 11:02' is neither a UNIX timestamp nor ISO 8601 with a time zone",
                "events[0]: NCE event without event.eventName (the event name is required)",
                "events[1]: user object has no user identifier of a documented kind",
                "events[3]: user.country is required (all data must contain the country information)",
                "user object has no user identifier of a documented kind",
                "invalid JSON: unexpected character",
            )
        ),
        (301, {}, Verdict.REFUSED, ""),
        (411, {}, Verdict.REFUSED, ""),
        (415, {}, Verdict.REFUSED, ""),
        (401, {}, Verdict.MISCONFIGURED, ""),
        (403, {"x-zeo-debug": "forbidden"}, Verdict.MISCONFIGURED, "forbidden"),
        (404, {}, Verdict.MISCONFIGURED, ""),
        (413, {}, Verdict.TOO_LARGE, ""),
        (408, {}, Verdict.RETRY, ""),
        (429, {}, Verdict.RETRY, ""),
        (500, {}, Verdict.RETRY, ""),
        (502, {}, Verdict.RETRY, ""),
        (503, {}, Verdict.RETRY, ""),
        (504, {}, Verdict.RETRY, ""),
    ],
)
def test_zeotap_classification(status: int, headers: dict[str, str], verdict: Verdict, reason: str) -> None:
    c = _zeotap().classify(status, httpx.Headers(headers))
    assert c.verdict is verdict
    assert c.status == status
    assert c.reason == reason
    if verdict is not Verdict.RETRY:
        assert c.retry_after_s is None


@pytest.mark.parametrize(
    "status, retry_after, low, high",
    [
        (429, "30", 30.0, 30.0),
        (429, "0", 0.0, 0.0),
        (429, "1.5", 1.5, 1.5),
        (503, "120", 120.0, 120.0),
        (429, "in-2-minutes", None, None),
        (429, "inf", None, None),
        (429, "nan", None, None),
        (429, "-5", 0.0, 0.0),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # in the past: retry now
        (429, "in 120 s", 100.0, 120.0),  # an HTTP-date, made when the test runs
        (503, "in 3600 s", 3500.0, 3600.0),
    ],
)
def test_retry_after_seconds_and_http_date(status: int, retry_after: str, low: float | None, high: float | None) -> None:
    if retry_after.startswith("in "):
        retry_after = _future_http_date(int(retry_after.split()[1]))
    c = _zeotap().classify(status, httpx.Headers({"Retry-After": retry_after}))
    assert c.verdict is Verdict.RETRY
    if low is None:
        assert c.retry_after_s is None
    else:
        assert c.retry_after_s is not None
        assert low <= c.retry_after_s <= (high or low)


def test_retry_after_without_header() -> None:
    assert retry_after_seconds(httpx.Headers({})) is None
    assert _zeotap().classify(429, httpx.Headers({})).retry_after_s is None


# --------------------------------------------------------------------------- the other destinations


def _audiohook() -> Audiohook:
    dest = make_destination("ah", AudiohookSettings(type="audiohook", url="https://listen.audiohook.com", pixel_id="px-1"))
    assert isinstance(dest, Audiohook)
    return dest


def _activation(**kw: Any) -> Activation:
    settings: dict[str, Any] = {"type": "activation", "url": "https://api.example.com/v1/events", "api_key": "secret-api-key"}
    settings.update(kw)
    dest = make_destination("act", ActivationSettings(**settings))
    assert isinstance(dest, Activation)
    return dest


def test_audiohook_request() -> None:
    ah = _audiohook()
    req = ah.request(ENCODED[0])
    assert req.url == "https://listen.audiohook.com/px-1/pixel.png"
    assert req.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in req.headers
    assert ah.request(b"x", gzipped=True).headers["Content-Encoding"] == "gzip"
    assert ah.batched is False
    assert ah.batch_body([ENCODED[1]]) == ENCODED[1]
    with pytest.raises(ValueError):
        ah.batch_body(ENCODED[:2])


@pytest.mark.parametrize(
    "device, missing",
    [
        ({"ipAddress": "1.2.3.4", "userAgent": "UA"}, None),
        ({"userAgent": "UA"}, "ip_address"),
        ({"ipAddress": "1.2.3.4"}, "user_agent"),
        ({"ipAddress": "", "userAgent": "UA"}, "ip_address"),
        ({}, "ip_address, user_agent"),
    ],
)
def test_audiohook_required_fields(device: dict[str, str], missing: str | None) -> None:
    sections = {
        "event": {"eventName": "page_view", "eventTimestamp": "2024-01-01T00:00:00.000Z"},
        "device": device,
        "user": {"anonymousId": "v-1"},
    }
    if missing is None:
        out = _audiohook().payload(sections, False)
        assert out["ip_address"] == "1.2.3.4" and out["user_agent"] == "UA" and out["event_name"] == "page_view"
    else:
        with pytest.raises(MissingRequiredField, match=missing):
            _audiohook().payload(sections, False)


ACT_EVENTS = [
    {"event": "purchase_completed", "timestamp": "2024-01-15T14:32:00Z", "customer_id": "c1", "event_id": "e1", "properties": {}},
    {"event": "consent_updated", "timestamp": "2024-01-15T14:33:00Z", "customer_id": "c2", "event_id": "e2", "properties": {}},
    {"event": "x", "timestamp": "2024-01-15T14:34:00Z", "customer_id": "c3", "event_id": "e3", "properties": {"n": 'q " \\ ü'}},
]
ACT_ENCODED = [orjson.dumps(e) for e in ACT_EVENTS]


def test_activation_request_single_event_by_default() -> None:
    act = _activation()
    req = act.request(ACT_ENCODED[0])
    assert req.url == "https://api.example.com/v1/events"  # the full URL: nothing appended
    assert req.headers["Authorization"] == "Bearer secret-api-key"
    assert req.headers["Idempotency-Key"] == ACT_EVENTS[0]["event_id"]
    assert act.request(gzip.compress(ACT_ENCODED[1]), gzipped=True).headers["Idempotency-Key"] == ACT_EVENTS[1]["event_id"]
    assert act.batched is False
    assert act.batch_body([ACT_ENCODED[0]]) == ACT_ENCODED[0]
    with pytest.raises(ValueError):
        act.batch_body(ACT_ENCODED[:2])
    assert act.envelope_bytes(1) == 0
    assert act.auth_probe().body == b"{}"


def test_activation_batches_with_the_configured_envelope() -> None:
    act = _activation(batch_key="items")
    assert act.batched is True
    for n in (1, 2, 3):
        body = act.batch_body(ACT_ENCODED[:n])
        assert json.loads(body) == {"items": ACT_EVENTS[:n]}
        assert len(body) == sum(len(e) for e in ACT_ENCODED[:n]) + act.envelope_bytes(n)
    # a batch request carries no idempotency header: each event's event_id is in the body
    assert "Idempotency-Key" not in act.request(act.batch_body(ACT_ENCODED[:2])).headers
    assert json.loads(act.auth_probe().body) == {"items": []}


def test_activation_idempotency_header_name_and_off() -> None:
    assert _activation(idempotency_header="X-Event-Id").request(ACT_ENCODED[0]).headers["X-Event-Id"] == ACT_EVENTS[0]["event_id"]
    headers = _activation(idempotency_header=None).request(ACT_ENCODED[0]).headers
    assert not {"Idempotency-Key", "X-Event-Id"} & set(headers)


def test_activation_auth_schemes_and_secrets() -> None:
    header = _activation(auth="header", auth_header="X-Api-Token").request(ACT_ENCODED[0]).headers
    assert header["X-Api-Token"] == "secret-api-key" and "Authorization" not in header
    basic = _activation(auth="basic", api_key=None, username="bridge", password="pw-secret")
    token = base64.b64encode(b"bridge:pw-secret").decode()
    assert basic.request(ACT_ENCODED[0]).headers["Authorization"] == f"Basic {token}"
    # the derived token is a secret too (check and the logs scrub it)
    assert {"pw-secret", token} <= set(basic.secrets())


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"api_key": None}, "api_key"),
        ({"auth": "header", "api_key": None}, "api_key"),
        ({"auth": "basic", "password": "p"}, "username"),
        ({"auth": "basic", "username": "u"}, "password"),
        ({"auth": "header", "auth_header": "X Bad"}, "auth_header"),
        ({"batch_key": ""}, "batch_key"),
        ({"idempotency_header": "Bad:Header"}, "idempotency_header"),
        ({"timestamp_format": "unix"}, "timestamp_format"),
    ],
)
def test_activation_bad_settings_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _activation(**settings)


ACT_SECTIONS: dict[str, dict[str, Any]] = {
    "event": {"eventName": "purchase_completed", "eventTimestamp": "2024-01-15T14:32:00Z", "eventId": "e-1", "order_id": "o-1"},
    "user": {"userId": "cust_12345", "anonymousId": "anon-1", "email_sha256": "a" * 64},
}


def test_activation_customer_id_is_one_configured_kind() -> None:
    out = _activation().payload(ACT_SECTIONS, False)
    assert out["customer_id"] == "cust_12345"
    assert out["properties"]["identifiers"] == {"anonymousId": "anon-1", "email_sha256": "a" * 64}
    assert _activation(customer_id="email_sha256").payload(ACT_SECTIONS, False)["customer_id"] == "a" * 64
    # no fallback to another kind of identifier: the record is dead-lettered instead
    no_user_id = {**ACT_SECTIONS, "user": {"anonymousId": "anon-1", "email_sha256": "a" * 64}}
    with pytest.raises(MissingRequiredField, match="user.userId") as exc:
        _activation().payload(no_user_id, False)
    assert (exc.value.stage, exc.value.reason) == ("encode", "missing_required_field")


@pytest.mark.parametrize(
    "event, reason, field",
    [
        ({"eventName": None}, "missing_required_field", "event"),
        ({"eventName": ""}, "missing_required_field", "event"),
        ({"eventTimestamp": None}, "missing_required_field", "timestamp"),
        ({"eventTimestamp": "15/01/2024 14:32"}, "invalid_field", "timestamp"),
        ({"eventTimestamp": "2024-01-15"}, "invalid_field", "timestamp"),
        ({"eventTimestamp": "2024-13-45T99:00:00Z"}, "invalid_field", "timestamp"),
        ({"eventName": 7}, "invalid_field", "event"),
    ],
)
def test_activation_validates_before_sending(event: dict[str, Any], reason: str, field: str) -> None:
    sections = {**ACT_SECTIONS, "event": {**ACT_SECTIONS["event"], **event}}
    with pytest.raises(RecordError, match=field) as exc:
        _activation().payload(sections, False)
    assert (exc.value.stage, exc.value.reason) == ("encode", reason)


def test_activation_refusal_reason_is_bounded_printable_and_scrubbed() -> None:
    act = _activation()
    body = orjson.dumps(
        {
            "error": "invalid_event",
            "message": "customer_id john.doe@example.com unknown, key secret-api-key, call +49 30 1234567\x07" + "x" * 500,
            "field": "customer_id",
        }
    )
    c = act.classify(400, {"X-Request-Id": "req-42"}, body)
    assert c.verdict is Verdict.BAD_REQUEST
    assert c.reason.startswith("invalid_event: customer_id <email> unknown, key ***, call <number>")
    assert "[request id req-42]" in c.reason
    assert len(c.reason) <= 300 and c.reason.isprintable()
    assert act.classify(400, {}, b"plain text\n\tbody").reason == "plain text body"
    assert act.classify(202, {}, b"").reason == ""


def test_activation_response_log_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    act = _activation(response_log_per_minute=3)
    caplog.set_level("DEBUG", logger="streams.destinations.activation")
    for _ in range(50):
        act.classify(202, {}, b"")
    for _ in range(20):
        act.classify(400, {"x-request-id": "r-1"}, b'{"error": "invalid_event", "message": "m"}')
    lines = [r for r in caplog.records if r.name == "streams.destinations.activation"]
    assert len(lines) == 3  # successes are not logged one by one; refusals capped per minute
    assert all(r.levelname == "WARNING" and "HTTP 400" in r.getMessage() and "r-1" in r.getMessage() for r in lines)
    assert "secret-api-key" not in caplog.text


@pytest.mark.parametrize(
    "status, verdict",
    [
        (200, Verdict.DELIVERED),
        (202, Verdict.DELIVERED),
        (400, Verdict.BAD_REQUEST),
        (401, Verdict.MISCONFIGURED),
        (413, Verdict.TOO_LARGE),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
    ],
)
def test_other_destinations_classification(status: int, verdict: Verdict) -> None:
    for dest in (_audiohook(), _activation()):
        assert dest.classify(status, httpx.Headers({})).verdict is verdict
