"""Destination request shapes and response classification (streams.destinations)."""

from __future__ import annotations

import base64
import datetime as dt
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
from streams.errors import MissingRequiredField

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
    assert _zeotap().max_request_bytes == 20 * 1024 * 1024


# --------------------------------------------------------------------------- Zeotap responses


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


def _activation() -> Activation:
    dest = make_destination(
        "act",
        ActivationSettings(type="activation", url="https://api.example.com/v1/", api_key="secret-api-key"),
    )
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
    sections = {"event": {"eventName": "page_view", "eventTimestamp": "2024-01-01T00:00:00.000Z"}, "device": device}
    if missing is None:
        out = _audiohook().payload(sections, False)
        assert out["ip_address"] == "1.2.3.4" and out["user_agent"] == "UA" and out["event_name"] == "page_view"
    else:
        with pytest.raises(MissingRequiredField, match=missing):
            _audiohook().payload(sections, False)


def test_activation_request_and_batches() -> None:
    act = _activation()
    req = act.request(ENCODED[0])
    assert req.url == "https://api.example.com/v1/events"
    assert req.headers["Authorization"] == "Bearer secret-api-key"
    assert act.batch_body([ENCODED[0]]) == ENCODED[0]
    for n in (2, 3):
        body = act.batch_body(ENCODED[:n])
        assert json.loads(body) == {"events": EVENTS[:n]}
        assert len(body) == sum(len(e) for e in ENCODED[:n]) + act.envelope_bytes(n)


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
