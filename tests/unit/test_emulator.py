"""Contract tests of the local API emulator (streams/dev/emulator/), over real HTTP."""

from __future__ import annotations

import base64
import gzip
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from streams.dev.emulator import (
    DEFAULT_API_KEY,
    DOC_WRITE_KEY,
    PIXEL_PNG,
    ZEOTAP_MAX_BODY,
    Emulator,
    EmulatorConfig,
    EmulatorProcess,
    FaultConfig,
    zeotap_authorization,
)
from tests.unit.test_contract_audiohook import DOC_PAGEVIEW

DOC_AUTH = "Basic d19rOmZjM2FiODAzLTU3NjItNDRkMy04OGQzLTdmYmM5NGJjYTA3NA=="
ZEO_HEADERS = {"Authorization": DOC_AUTH, "Content-Type": "application/JSON; charset=UTF-8"}
ACT_HEADERS = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Content-Type": "application/json"}
AH_HEADERS = {"Content-Type": "application/json"}

# the documentation's real-time sample
DOC_REALTIME = {
    "page": {"url": "https://www.carseller.com/"},
    "user": {
        "age": 35,
        "userId": "1234567890",
        "country": "ESP",
        "email": "example@mail.com",
        "test": "true",
        "first_name": "Name",
        "last_name": "Surname",
    },
    "consent": {"marketing": "Yes", "personalisation": "Yes", "email": "Yes"},
}
# the documentation's NCE batch sample
DOC_NCE_BATCH = {
    "events": [
        {
            "event": {
                "eventName": "market_offer_assignment",
                "eventId": "1df964e5-6073-41e0-8fd3-41e0b1e9a186",
                "ValidFrom": "2026-03-01",
                "eventTimestamp": "2026-03-03T09:00:00.000Z",
            }
        },
        {
            "event": {
                "eventName": "market_offer_assignment",
                "eventId": "2c2ca32e-4b16-4640-6bee-4296765b9a70",
                "eventTimestamp": "2026-03-16T13:59:23.000Z",
            }
        },
    ]
}
# shaped like the documentation's customer batch sample: country only in event.countryCode
DOC_CUSTOMER_BATCH = {
    "events": [
        {
            "user": {"visitorId": "123436", "email": "example1@gmail.com", "contactId": "con12346"},
            "event": {"eventType": "View Product", "timestamp": "1687113601", "countryCode": "DEU"},
            "consent": {"gdpr_consent_marketing": "yes"},
            "page": {"eventUrl": "https://www.example.com/Esmara", "pageTitle": "Phone"},
        }
    ]
}


def zevent(eid: str, **user: Any) -> dict[str, Any]:
    return {
        "event": {
            "eventId": eid,
            "eventName": "purchase_completed",
            "eventTimestamp": "2024-01-15T14:32:00Z",
        },
        "user": user or {"userId": "u-1", "country": "DEU"},
    }


def ah_event(eid: str | None = "ah-1", **overrides: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_name": "purchase",
        "timestamp": "2024-01-15T10:30:00.000Z",
        "ip_address": "203.0.113.195",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "url": "https://example.com/checkout/success",
    }
    if eid is not None:
        ev["event_id"] = eid
    ev.update(overrides)
    return {k: v for k, v in ev.items() if v is not None}


def act_event(eid: str | None = "act-1", **overrides: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event": "purchase_completed",
        "timestamp": "2024-01-15T14:32:00Z",
        "customer_id": "cust_12345",
        "properties": {"order_id": "ord_98765", "order_value": 149.99, "currency": "EUR"},
    }
    if eid is not None:
        ev["event_id"] = eid
    ev.update(overrides)
    return {k: v for k, v in ev.items() if v is not None}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=7, audiohook_pixel_ids=("px-1", "px-2"), max_kept_events=10_000)
    with Emulator(config) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _clean(emu: Emulator) -> None:
    emu.reset(faults=True)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def factory(**config: Any) -> Emulator:
        emulator = Emulator(EmulatorConfig(**config)).start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


def zpost(http: httpx.Client, emu: Emulator, body: Any, *, region: str = "EU", **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return http.post(emu.zeotap_url(region), content=content, headers={**ZEO_HEADERS, **headers})


def zstats(emu: Emulator, dest: str = "zeotap") -> dict[str, Any]:
    result: dict[str, Any] = emu.admin.stats()["destinations"][dest]
    return result


# --------------------------------------------------------------------------------------------
# Zeotap


def test_zeotap_authorization_matches_the_documented_example() -> None:
    assert zeotap_authorization("fc3ab803-5762-44d3-88d3-7fbc94bca074") == DOC_AUTH
    assert zeotap_authorization(DOC_WRITE_KEY) == DOC_AUTH


def test_zeotap_realtime_doc_sample_gets_204_and_is_recorded(emu: Emulator, http: httpx.Client) -> None:
    resp = zpost(http, emu, DOC_REALTIME)
    assert resp.status_code == 204
    assert resp.content == b""
    records = emu.admin.events("zeotap")
    assert [r["payload"] for r in records] == [DOC_REALTIME]
    assert records[0]["context"]["region"] == "EU"
    assert records[0]["context"]["batch"] is False
    stats = zstats(emu)
    assert stats["requests"] == {"204": 1}
    assert stats["events_received"] == 1
    assert stats["events_without_id"] == 1  # the doc sample carries no event.eventId


def test_zeotap_batch_doc_nce_sample(emu: Emulator, http: httpx.Client) -> None:
    resp = zpost(http, emu, DOC_NCE_BATCH, region="US")
    assert resp.status_code == 204
    assert emu.admin.payloads("zeotap") == DOC_NCE_BATCH["events"]
    receipts = emu.admin.receipts("zeotap")["zeotap"]
    assert set(receipts) == {ev["event"]["eventId"] for ev in DOC_NCE_BATCH["events"]}


@pytest.mark.parametrize(
    ("authorization", "status", "debug"),
    [
        (None, 401, "missing Authorization"),
        (zeotap_authorization("wrong-key"), 401, "invalid write key"),
        ("Bearer " + DOC_WRITE_KEY, 400, "Basic"),
        ("Basic !!!not-base64!!!", 400, "base64"),
        ("Basic " + "ZmMzYWI4MDMtNTc2Mi00NGQzLTg4ZDMtN2ZiYzk0YmNhMDc0", 400, "w_k:"),  # key without prefix
    ],
)
def test_zeotap_bad_credentials(emu: Emulator, http: httpx.Client, authorization: str | None, status: int, debug: str) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = http.post(emu.zeotap_url(), content=orjson.dumps(DOC_REALTIME), headers=headers)
    assert resp.status_code == status
    assert debug in resp.headers["x-zeo-debug"]
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert zstats(emu)["events_received"] == 0


def test_zeotap_auth_scheme_is_case_insensitive(emu: Emulator, http: httpx.Client) -> None:
    lower = "basic " + DOC_AUTH.split(" ", 1)[1]
    assert zpost(http, emu, DOC_REALTIME, Authorization=lower).status_code == 204


def test_zeotap_auth_status_is_configurable_and_several_keys_work(
    make_emulator: Callable[..., Emulator], http: httpx.Client
) -> None:
    emulator = make_emulator(zeotap_write_keys=("k1", "k2"), zeotap_auth_status=400)
    for key in ("k1", "k2"):
        resp = http.post(
            emulator.zeotap_url(),
            content=orjson.dumps(DOC_REALTIME),
            headers={"Authorization": zeotap_authorization(key), "Content-Type": "application/json"},
        )
        assert resp.status_code == 204
    resp = http.post(
        emulator.zeotap_url(),
        content=orjson.dumps(DOC_REALTIME),
        headers={"Authorization": DOC_AUTH, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"] == "invalid write key"


@pytest.mark.parametrize(
    ("query", "debug"),
    [
        ("eventType=s2s", "missing region"),
        ("region=XX&eventType=s2s", "invalid region 'XX'"),
        ("region=eu&eventType=s2s", "invalid region 'eu'"),
        ("region=EU", "missing eventType"),
        ("region=EU&eventType=web", "invalid eventType 'web'"),
    ],
)
def test_zeotap_region_and_event_type(emu: Emulator, http: httpx.Client, query: str, debug: str) -> None:
    resp = http.post(f"{emu.base_url}/zeotap?{query}", content=orjson.dumps(DOC_REALTIME), headers=ZEO_HEADERS)
    assert resp.status_code == 400
    assert debug in resp.headers["x-zeo-debug"]


@pytest.mark.parametrize("region", ["EU", "US", "IN", "UK"])
def test_zeotap_valid_regions(emu: Emulator, http: httpx.Client, region: str) -> None:
    assert zpost(http, emu, DOC_REALTIME, region=region).status_code == 204


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 204),
        ("application/JSON", 204),
        ("Application/Json; Charset=utf-8", 204),
        ("application/json;charset=UTF-8", 204),
        ("application/json; charset=iso-8859-1", 400),
        ("text/plain", 400),
        ("application/x-www-form-urlencoded", 400),
    ],
)
def test_zeotap_content_type(emu: Emulator, http: httpx.Client, content_type: str, status: int) -> None:
    resp = zpost(http, emu, DOC_REALTIME, **{"Content-Type": content_type})
    assert resp.status_code == status
    if status == 400:
        assert "Content-Type" in resp.headers["x-zeo-debug"]


def test_zeotap_missing_content_type(emu: Emulator, http: httpx.Client) -> None:
    resp = http.post(emu.zeotap_url(), content=orjson.dumps(DOC_REALTIME), headers={"Authorization": DOC_AUTH})
    assert resp.status_code == 400


@pytest.mark.parametrize(
    ("body", "debug"),
    [
        (b"{not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'"text"', "body must be a JSON object"),
        (b'{"events": {"event": {}}}', "'events' must be an array"),
        (b'{"events": []}', "'events' array is empty"),
        (b'{"events": [{"event": {}}], "user": {}}', "only contain the 'events' array"),
        (b'{"events": [{"event": {"eventId": "a", "eventName": "e"}}, 42]}', "events[1]: event must be a JSON object"),
    ],
)
def test_zeotap_malformed_bodies(emu: Emulator, http: httpx.Client, body: bytes, debug: str) -> None:
    resp = zpost(http, emu, body)
    assert resp.status_code == 400
    assert debug in resp.headers["x-zeo-debug"]
    assert zstats(emu)["events_received"] == 0


@pytest.mark.parametrize(
    ("event", "debug"),
    [
        ({"event": {"eventId": "x"}, "properties": {}}, "unknown top-level key(s): properties"),
        ({}, "empty event object"),
        ({"event": "purchase"}, "'event' must be a JSON object"),
        ({"event": {"eventId": "x"}, "page": {"url": "u"}}, "without a 'user' object"),
        ({"user": {"country": "DEU", "age": 3, "first_name": "A"}}, "no user identifier"),
        ({"user": {"userId": "", "country": "DEU"}}, "no user identifier"),
        ({"user": {"email": "a@b.c"}}, "user.country is required"),
        ({"user": {"email": "a@b.c", "country": "  "}}, "user.country is required"),
        # an identifier is one of the documented kinds, not any key containing "id"
        ({"user": {"anonymousId": "a-1", "country": "DEU"}}, "no user identifier of a documented kind"),
        ({"user": {"paid": "yes", "idle": "1", "country": "DEU"}}, "no user identifier of a documented kind"),
        # "Use either a UNIX timestamp or a fully time-zone-qualified format according to ISO 8601"
        ({**zevent("t"), "event": {"eventName": "x", "eventTimestamp": "2024-09-05T11:02:44"}}, "event.eventTimestamp"),
        ({**zevent("t"), "event": {"eventName": "x", "timestamp": "2024-09-05 11:02:44Z"}}, "event.timestamp"),
        ({**zevent("t"), "event": {"eventName": "x", "timestamp": "yesterday"}}, "neither a UNIX timestamp nor ISO 8601"),
        ({**zevent("t"), "event": {"eventName": "x", "timestamp": True}}, "event.timestamp is a boolean"),
        # an NCE event still needs its event name (the NCE sample: eventName in every event)
        ({"event": {"eventId": "x", "eventTimestamp": "2026-03-03T09:00:00.000Z"}}, "NCE event without event.eventName"),
        ({"event": {"eventName": " ", "eventId": "x"}}, "NCE event without event.eventName"),
    ],
)
def test_zeotap_strict_validation(emu: Emulator, http: httpx.Client, event: dict[str, Any], debug: str) -> None:
    resp = zpost(http, emu, event)
    assert resp.status_code == 400
    assert debug in resp.headers["x-zeo-debug"]
    # in a batch the debug text names the offending index, so a client can split the batch
    resp = zpost(http, emu, {"events": [zevent("ok-1"), event]})
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"].startswith("events[1]: ")
    assert zstats(emu)["events_received"] == 0


@pytest.mark.parametrize(
    "stamp",
    # the document's own examples (its "-12:00" is written with U+2212), a UNIX string as in its
    # batch sample, UNIX numbers, milliseconds
    ["2024-09-05T11:02:44Z", "2024-09-04T23:02:44\u221212:00", "2024-09-05T11:02:44+00:00", "2026-03-03T09:00:00.000Z",
     "2024-09-04T23:02:44-12:00", "1687113601", 1687113601, 1687113601123, 1687113601.5],
)  # fmt: skip
def test_zeotap_documented_timestamps(emu: Emulator, http: httpx.Client, stamp: Any) -> None:
    event = {"user": {"userId": "u", "country": "DEU"}, "event": {"eventName": "x", "eventTimestamp": stamp}}
    assert zpost(http, emu, event).status_code == 204
    nce = {"event": {"eventName": "market_offer_assignment", "timestamp": stamp}}
    assert zpost(http, emu, nce).status_code == 204


def test_zeotap_identifier_and_timestamp_rules_are_options(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    lenient = make_emulator(zeotap_user_id_keys=("anonymousId",), zeotap_timestamps=False)
    event = {"user": {"anonymousId": "a-1", "country": "DEU"}, "event": {"eventName": "x", "timestamp": "today"}}
    assert zpost(http, lenient, event).status_code == 204
    old_rule = make_emulator(zeotap_user_id_markers=("id",))
    assert zpost(http, old_rule, {"user": {"paid": "yes", "country": "DEU"}}).status_code == 204


@pytest.mark.parametrize(
    "user",
    [
        {"userId": "1", "country": "ESP"},
        {"email_sha256": "ab" * 32, "country": "DEU"},
        {"cellphone": "+4915112345678", "country": "DEU"},
        {"visitorId": "123436", "country": "DEU"},
        {"loginID": "abc", "country": "DEU"},
    ],
)
def test_zeotap_user_identifiers(emu: Emulator, http: httpx.Client, user: dict[str, Any]) -> None:
    assert zpost(http, emu, {"user": user, "event": {"eventName": "x"}}).status_code == 204


def test_zeotap_doc_customer_batch_needs_country_unless_disabled(
    emu: Emulator, make_emulator: Callable[..., Emulator], http: httpx.Client
) -> None:
    resp = zpost(http, emu, DOC_CUSTOMER_BATCH)
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"] == ("events[0]: user.country is required (all data must contain the country information)")
    lenient = make_emulator(zeotap_require_country=False)
    assert zpost(http, lenient, DOC_CUSTOMER_BATCH).status_code == 204


def test_zeotap_non_strict_accepts_any_objects(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    lenient = make_emulator(zeotap_strict=False)
    resp = zpost(http, lenient, {"events": [{"anything": 1}, {"event": "not-an-object"}]})
    assert resp.status_code == 204
    assert lenient.admin.stats()["destinations"]["zeotap"]["events_received"] == 2


def _exact_size_event(size: int) -> bytes:
    skeleton = orjson.dumps({"event": {"eventId": "big", "eventName": "e", "pad": ""}})
    body = orjson.dumps({"event": {"eventId": "big", "eventName": "e", "pad": "x" * (size - len(skeleton))}})
    assert len(body) == size
    return body


TWENTY_MB = 20_000_000  # "ensure that the payload size does not exceed 20 MB", read as decimal MB


def test_zeotap_20mb_limit(emu: Emulator, http: httpx.Client) -> None:
    assert ZEOTAP_MAX_BODY == TWENTY_MB
    resp = zpost(http, emu, _exact_size_event(TWENTY_MB))
    assert resp.status_code == 204
    resp = zpost(http, emu, _exact_size_event(TWENTY_MB + 1))
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"].startswith("payload too large")
    assert zstats(emu)["events_received"] == 1


def test_zeotap_20mb_limit_without_content_length(emu: Emulator, http: httpx.Client) -> None:
    body = _exact_size_event(ZEOTAP_MAX_BODY + 100)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    resp = http.post(emu.zeotap_url(), content=chunks(), headers=ZEO_HEADERS)
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"].startswith("payload too large")


GZ = {"Content-Encoding": "gzip"}


def test_zeotap_refuses_gzip_by_default(emu: Emulator, http: httpx.Client) -> None:
    # the document never mentions compression: a gzipped body is a request problem (400 with a
    # debug text about the Content-Encoding), whatever is inside
    batch = {"events": [zevent("gz-0")]}
    resp = zpost(http, emu, gzip.compress(orjson.dumps(batch)), **GZ)
    assert resp.status_code == 400
    assert "Content-Encoding 'gzip' is not accepted" in resp.headers["x-zeo-debug"]
    assert zstats(emu)["events_received"] == 0


@pytest.mark.parametrize("limit_of", ["json", "wire"])
def test_zeotap_gzip_when_the_option_says_so(make_emulator: Callable[..., Emulator], http: httpx.Client, limit_of: str) -> None:
    emu = make_emulator(gzip_destinations=("zeotap",), zeotap_limit_of=limit_of)
    batch = {"events": [zevent(f"gz-{i}") for i in range(50)]}
    resp = zpost(http, emu, gzip.compress(orjson.dumps(batch)), **GZ)
    assert resp.status_code == 204
    assert emu.admin.payloads("zeotap") == batch["events"]


def test_zeotap_bad_gzip_and_encodings(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emu = make_emulator(gzip_destinations=("zeotap",))
    resp = zpost(http, emu, b"\x1f\x8bnot really gzip", **GZ)
    assert resp.status_code == 400
    assert "gzip" in resp.headers["x-zeo-debug"]
    resp = zpost(http, emu, orjson.dumps(DOC_REALTIME), **GZ)
    assert resp.status_code == 400
    resp = zpost(http, emu, orjson.dumps(DOC_REALTIME), **{"Content-Encoding": "br"})
    assert resp.status_code == 400
    assert "unsupported Content-Encoding" in resp.headers["x-zeo-debug"]
    truncated = gzip.compress(orjson.dumps(DOC_REALTIME))[:-12]
    assert zpost(http, emu, truncated, **GZ).status_code == 400


def test_zeotap_gzip_json_reading_bounds_the_inflated_payload(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    # default reading: the 20 MB are the JSON payload's, however small the gzipped body is
    emu = make_emulator(gzip_destinations=("zeotap",))
    assert zpost(http, emu, gzip.compress(_exact_size_event(TWENTY_MB)), **GZ).status_code == 204
    bomb = gzip.compress(_exact_size_event(TWENTY_MB + 1))
    assert len(bomb) < 1024 * 1024
    resp = zpost(http, emu, bomb, **GZ)
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"].startswith("payload too large")


def test_zeotap_gzip_wire_reading_bounds_the_bytes_sent(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    # the other reading: the 20 MB are the bytes on the wire; a JSON payload over 20 MB passes
    # gzipped, a gzipped body over 20 MB does not, and the inflated size is still bounded
    emu = make_emulator(gzip_destinations=("zeotap",), zeotap_limit_of="wire")
    assert zpost(http, emu, gzip.compress(_exact_size_event(TWENTY_MB + 1)), **GZ).status_code == 204
    incompressible = gzip.compress(_exact_size_event(TWENTY_MB + 1), compresslevel=0)
    assert len(incompressible) > TWENTY_MB
    resp = zpost(http, emu, incompressible, **GZ)
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"].startswith("payload too large")
    resp = zpost(http, emu, gzip.compress(_exact_size_event(10 * TWENTY_MB + 1)), **GZ)
    assert resp.status_code == 400
    assert "decompressed size" in resp.headers["x-zeo-debug"]


@pytest.mark.parametrize(("path", "dest"), [("audiohook", "audiohook"), ("activation", "activation")])
def test_json_apis_refuse_gzip_unless_the_option_says_so(
    emu: Emulator, make_emulator: Callable[..., Emulator], http: httpx.Client, path: str, dest: str
) -> None:
    # neither document mentions compression: 415 (a request problem, never one record's)
    if dest == "audiohook":
        url, headers, body = emu.audiohook_url("px-1"), AH_HEADERS, ah_event()
    else:
        url, headers, body = emu.activation_url, ACT_HEADERS, act_event()
    resp = http.post(url, content=gzip.compress(orjson.dumps(body)), headers={**headers, **GZ})
    assert resp.status_code == 415
    assert resp.json()["error"] == "unsupported_content_encoding"
    lenient = make_emulator(gzip_destinations=(dest,))
    url = lenient.audiohook_url("px-1") if dest == "audiohook" else lenient.activation_url
    resp = http.post(url, content=gzip.compress(orjson.dumps(body)), headers={**headers, **GZ})
    assert resp.status_code != 415


def test_zeotap_counters_and_duplicates(emu: Emulator, http: httpx.Client) -> None:
    batch = {"events": [zevent("d-1"), zevent("d-2"), zevent("d-3")]}
    assert zpost(http, emu, batch).status_code == 204
    first = emu.admin.receipts("zeotap")["zeotap"]
    time.sleep(0.01)
    assert zpost(http, emu, batch).status_code == 204
    assert zpost(http, emu, {"events": [zevent("d-4"), zevent("d-4")]}).status_code == 204
    assert zpost(http, emu, b"nope").status_code == 400
    stats = zstats(emu)
    assert stats["requests"] == {"204": 3, "400": 1}
    assert stats["requests_total"] == 4
    assert stats["events_received"] == 8
    assert stats["unique_ids"] == 4
    assert stats["duplicates"] == 4
    receipts = emu.admin.receipts("zeotap")["zeotap"]
    assert {k: receipts[k] for k in first} == first  # first receipt only
    assert abs(receipts["d-1"] - time.time() * 1000) < 60_000
    totals = emu.admin.stats()["totals"]
    assert totals["unique_ids"] == 4 and totals["duplicates"] == 4


# --------------------------------------------------------------------------------------------
# Audiohook


def test_audiohook_success_returns_a_png_pixel(emu: Emulator, http: httpx.Client) -> None:
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ah_event("a-1")), headers=AH_HEADERS)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.content == PIXEL_PNG
    assert resp.content.startswith(b"\x89PNG\r\n\x1a\n")
    records = emu.admin.events("audiohook")
    assert records[0]["context"]["pixel_id"] == "px-1"
    assert records[0]["payload"] == ah_event("a-1")
    assert set(emu.admin.receipts("audiohook")["audiohook"]) == {"a-1"}


def test_audiohook_doc_example_without_event_id(emu: Emulator, http: httpx.Client) -> None:
    doc_example = dict(DOC_PAGEVIEW)  # the document's page-view example, verbatim
    resp = http.post(emu.audiohook_url("px-2"), content=orjson.dumps(doc_example), headers=AH_HEADERS)
    assert resp.status_code == 200
    assert zstats(emu, "audiohook")["events_without_id"] == 1


def test_audiohook_event_id_in_event_payload(emu: Emulator, http: httpx.Client) -> None:
    ev = ah_event(None, event_payload={"event_id": "nested-1", "value": 3})
    assert http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ev), headers=AH_HEADERS).status_code == 200
    ev = ah_event("top-1", event_payload={"event_id": "nested-2"})
    assert http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ev), headers=AH_HEADERS).status_code == 200
    assert set(emu.admin.receipts("audiohook")["audiohook"]) == {"nested-1", "top-1"}


@pytest.mark.parametrize("missing", ["ip_address", "user_agent", "event_name"])
def test_audiohook_required_fields(emu: Emulator, http: httpx.Client, missing: str) -> None:
    ev = ah_event()
    del ev[missing]
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ev), headers=AH_HEADERS)
    assert resp.status_code == 400
    assert resp.json()["field"] == missing
    assert missing in resp.json()["message"]
    ev[missing] = ""
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ev), headers=AH_HEADERS)
    assert resp.status_code == 400
    assert zstats(emu, "audiohook")["events_received"] == 0


def test_audiohook_other_rejections(emu: Emulator, http: httpx.Client) -> None:
    body = orjson.dumps(ah_event())
    resp = http.post(emu.audiohook_url("px-unknown"), content=body, headers=AH_HEADERS)
    assert resp.status_code == 404
    resp = http.post(emu.audiohook_url("px-1"), content=body, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_content_type"
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps([ah_event()]), headers=AH_HEADERS)
    assert resp.status_code == 400
    resp = http.post(emu.audiohook_url("px-1"), content=b"{", headers=AH_HEADERS)
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_json"
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ah_event(ip_address="not-an-ip")), headers=AH_HEADERS)
    assert resp.status_code == 400
    assert resp.json()["field"] == "ip_address"
    ipv6 = orjson.dumps(ah_event(ip_address="2001:db8::1"))
    assert http.post(emu.audiohook_url("px-1"), content=ipv6, headers=AH_HEADERS).status_code == 200


def test_audiohook_any_pixel_id_when_not_configured(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emulator = make_emulator()
    resp = http.post(emulator.audiohook_url("whatever"), content=orjson.dumps(ah_event()), headers=AH_HEADERS)
    assert resp.status_code == 200


# --------------------------------------------------------------------------------------------
# Activation API


def act_post(http: httpx.Client, emu: Emulator, body: Any, **headers: str) -> httpx.Response:
    return http.post(emu.activation_url, content=orjson.dumps(body), headers={**ACT_HEADERS, **headers})


def test_activation_doc_example_is_accepted(emu: Emulator, http: httpx.Client) -> None:
    doc_example = act_event(None)
    resp = act_post(http, emu, doc_example)
    assert resp.status_code == 202
    assert resp.json() == {"status": "accepted", "events": 1, "duplicates": 0}
    assert emu.admin.payloads("activation") == [doc_example]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        (f"Basic {DEFAULT_API_KEY}", 401),
        ("Bearer", 401),
        (f"bearer {DEFAULT_API_KEY}", 202),
    ],
)
def test_activation_auth(emu: Emulator, http: httpx.Client, authorization: str | None, status: int) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = http.post(emu.activation_url, content=orjson.dumps(act_event()), headers=headers)
    assert resp.status_code == status
    if status == 401:
        assert resp.json()["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event": None}, "event"),
        ({"event": ""}, "event"),
        ({"event": 3}, "event"),
        ({"timestamp": None}, "timestamp"),
        ({"timestamp": "yesterday at noon"}, "timestamp"),
        ({"timestamp": "2024-01-15"}, "timestamp"),
        ({"timestamp": 1705329120}, "timestamp"),
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": 12345}, "customer_id"),
        ({"properties": None}, "properties"),
        ({"properties": ["a"]}, "properties"),
        ({"event_id": 17}, "event_id"),
    ],
)
def test_activation_required_fields(
    emu: Emulator, make_emulator: Callable[..., Emulator], http: httpx.Client, overrides: dict[str, Any], field: str
) -> None:
    ev = act_event()
    for key, value in overrides.items():
        if value is None:
            del ev[key]
        else:
            ev[key] = value
    resp = act_post(http, emu, ev)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_event"
    assert body["field"] == field
    assert field in body["message"]
    assert zstats(emu, "activation")["events_received"] == 0
    batching = make_emulator(activation_batch_key="events")
    resp = act_post(http, batching, {"events": [act_event("b-0"), ev]})
    assert resp.status_code == 400
    assert (resp.json()["index"], resp.json()["field"]) == (1, field)
    assert zstats(batching, "activation")["events_received"] == 0


@pytest.mark.parametrize("timestamp", ["2024-01-15T14:32:00Z", "2024-09-04T23:02:44-12:00", "2024-01-15T14:32:00.123"])
def test_activation_timestamps(emu: Emulator, http: httpx.Client, timestamp: str) -> None:
    assert act_post(http, emu, act_event(timestamp=timestamp)).status_code == 202


def test_activation_idempotency(emu: Emulator, http: httpx.Client) -> None:
    ev = act_event(None)
    first = act_post(http, emu, ev, **{"Idempotency-Key": "idem-1"})
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    again = act_post(http, emu, ev, **{"Idempotency-Key": "idem-1"})
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["duplicates"] == 1
    # body event_id works the same way
    assert act_post(http, emu, act_event("body-1")).status_code == 202
    assert act_post(http, emu, act_event("body-1")).json()["duplicates"] == 1
    stats = zstats(emu, "activation")
    assert stats["events_received"] == 4
    assert stats["unique_ids"] == 2
    assert stats["duplicates"] == 2
    assert set(emu.admin.receipts("activation")["activation"]) == {"idem-1", "body-1"}


def test_activation_is_single_event_by_default(emu: Emulator, http: httpx.Client) -> None:
    # the guide shows one event per request and no batch form: a batch is a malformed payload
    resp = act_post(http, emu, {"events": [act_event("b-1"), act_event("b-2")]})
    assert resp.status_code == 400
    assert "one event per request" in resp.json()["message"]
    assert act_post(http, emu, [act_event()]).status_code == 400
    assert zstats(emu, "activation")["events_received"] == 0


@pytest.mark.parametrize("key", ["events", "data"])
def test_activation_batch_when_configured(make_emulator: Callable[..., Emulator], http: httpx.Client, key: str) -> None:
    emu = make_emulator(activation_batch_key=key)
    batch = {key: [act_event("b-1"), act_event("b-2"), act_event(None)]}
    resp = act_post(http, emu, batch, **{"Idempotency-Key": "req-9"})
    assert resp.status_code == 202
    assert resp.json() == {"status": "accepted", "events": 3, "duplicates": 0}
    assert set(emu.admin.receipts("activation")["activation"]) == {"b-1", "b-2", "req-9#2"}
    assert act_post(http, emu, {key: []}).status_code == 400
    assert act_post(http, emu, [act_event()]).status_code == 400
    assert act_post(http, emu, act_event("bare")).status_code == 400  # a batch API takes the envelope only
    other = "data" if key == "events" else "events"
    assert act_post(http, emu, {other: [act_event("b-3")]}).status_code == 400
    assert act_post(http, emu, {key: [act_event("b-1")]}).json()["duplicates"] == 1


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    ("options", "headers", "status"),
    [
        ({"activation_auth": "basic"}, {"Authorization": _basic(f"emulator:{DEFAULT_API_KEY}")}, 202),
        ({"activation_auth": "basic"}, {"Authorization": _basic("emulator:wrong")}, 401),
        ({"activation_auth": "basic"}, {"Authorization": _basic(f"other:{DEFAULT_API_KEY}")}, 401),
        ({"activation_auth": "basic"}, {"Authorization": "Basic !!"}, 401),
        ({"activation_auth": "basic"}, {"Authorization": f"Bearer {DEFAULT_API_KEY}"}, 401),
        ({"activation_auth": "header"}, {"X-API-Key": DEFAULT_API_KEY}, 202),
        ({"activation_auth": "header", "activation_auth_header": "X-Token"}, {"X-Token": DEFAULT_API_KEY}, 202),
        ({"activation_auth": "header", "activation_auth_header": "X-Token"}, {"X-API-Key": DEFAULT_API_KEY}, 401),
        ({"activation_auth": "header"}, {"Authorization": f"Bearer {DEFAULT_API_KEY}"}, 401),
        ({"activation_auth": "header"}, {"X-API-Key": "wrong"}, 401),
    ],
)
def test_activation_auth_schemes(
    make_emulator: Callable[..., Emulator], http: httpx.Client, options: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    emu = make_emulator(**options)
    body = orjson.dumps(act_event())
    resp = http.post(emu.activation_url, content=body, headers={"Content-Type": "application/json", **headers})
    assert resp.status_code == status
    if status == 401:
        assert resp.json()["error"] == "unauthorized" and "WWW-Authenticate" in resp.headers


def test_activation_path_and_idempotency_header_options(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emu = make_emulator(activation_path="/v2/ingest", activation_idempotency_header="X-Event-Id")
    assert emu.activation_url == f"{emu.base_url}/v2/ingest"
    default_path = f"{emu.base_url}/activation/events"
    assert http.post(default_path, content=orjson.dumps(act_event()), headers=ACT_HEADERS).status_code == 404
    assert act_post(http, emu, act_event(None), **{"X-Event-Id": "k-1"}).status_code == 202
    assert act_post(http, emu, act_event(None), **{"X-Event-Id": "k-1"}).json()["duplicates"] == 1
    # another header name is not the idempotency key: the body's event_id is
    assert act_post(http, emu, act_event("e-1"), **{"Idempotency-Key": "k-1"}).json()["duplicates"] == 0
    assert set(emu.admin.receipts("activation")["activation"]) == {"k-1", "e-1"}
    off = make_emulator(activation_idempotency_header=None)
    act_post(http, off, act_event("e-2"), **{"Idempotency-Key": "k-2"})
    assert set(off.admin.receipts("activation")["activation"]) == {"e-2"}


def test_activation_gzip_only_when_an_option_says_so(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    body = gzip.compress(orjson.dumps(act_event()))
    headers = {**ACT_HEADERS, "Content-Encoding": "gzip"}
    assert http.post(make_emulator().activation_url, content=body, headers=headers).status_code == 415
    taking_gzip = make_emulator(gzip_destinations=("activation",))
    assert http.post(taking_gzip.activation_url, content=body, headers=headers).status_code == 202


def test_activation_content_type_and_size(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emulator = make_emulator(max_body_bytes=1000)
    resp = http.post(
        emulator.activation_url,
        content=orjson.dumps(act_event()),
        headers={"Authorization": ACT_HEADERS["Authorization"], "Content-Type": "text/json"},
    )
    assert resp.status_code == 400
    big = act_event(properties={"pad": "x" * 2000})
    resp = http.post(emulator.activation_url, content=orjson.dumps(big), headers=ACT_HEADERS)
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"


def test_activation_429_and_5xx(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("activation", throttle_rate=1.0, retry_after=7)
    resp = act_post(http, emu, act_event())
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["error"] == "throttle"
    emu.set_faults("activation", error_rate=1.0, error_status=500)
    assert act_post(http, emu, act_event()).status_code == 500
    emu.set_faults("activation", error_rate=1.0)
    assert act_post(http, emu, act_event()).status_code == 503
    stats = zstats(emu, "activation")
    assert stats["events_received"] == 0
    assert stats["requests"] == {"429": 1, "500": 1, "503": 1}
    assert stats["faults"] == {"throttle": 1, "error": 2}


# --------------------------------------------------------------------------------------------
# fault injection


def test_throttle_carries_retry_after_on_every_destination(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults(None, throttle_rate=1.0, retry_after=3)
    responses = [
        zpost(http, emu, DOC_REALTIME),
        http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ah_event()), headers=AH_HEADERS),
        act_post(http, emu, act_event()),
    ]
    for resp in responses:
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "3"
        assert resp.headers["x-emulator-fault"] == "throttle"
    assert responses[0].headers["x-zeo-debug"] == "emulated fault: throttle"
    assert emu.admin.stats()["totals"]["events_received"] == 0


def test_drop_gives_a_connection_error(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("zeotap", drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        zpost(http, emu, DOC_REALTIME)
    stats = zstats(emu)
    assert stats["requests"] == {"dropped": 1}
    assert stats["events_received"] == 0
    emu.set_faults("zeotap")  # no knobs: faults removed
    assert zpost(http, emu, DOC_REALTIME).status_code == 204


def test_slow_exceeds_a_short_client_timeout_but_is_then_processed(emu: Emulator) -> None:
    emu.set_faults("zeotap", slow_rate=1.0, slow_seconds=0.6)
    with httpx.Client(timeout=0.2) as short, pytest.raises(httpx.ReadTimeout):
        zpost(short, emu, {"events": [zevent("slow-1")]})
    with httpx.Client(timeout=5) as patient:
        started = time.monotonic()
        assert zpost(patient, emu, {"events": [zevent("slow-1")]}).status_code == 204
        assert time.monotonic() - started >= 0.55
    # the timed-out request was still processed, so the retry shows up as a duplicate
    deadline = time.monotonic() + 2
    while zstats(emu)["events_received"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = zstats(emu)
    assert stats["unique_ids"] == 1
    assert stats["duplicates"] == 1
    assert stats["faults"]["slow"] == 2


def test_outage_window_ends(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("zeotap", outage_for_seconds=0.5)
    resp = zpost(http, emu, DOC_REALTIME)
    assert resp.status_code == 503
    assert resp.headers["x-emulator-fault"] == "outage"
    assert act_post(http, emu, act_event()).status_code == 202  # other destinations unaffected
    remaining = emu.admin.faults()["zeotap"]["outage_remaining_s"]
    assert 0 < remaining <= 0.5
    time.sleep(0.6)
    assert zpost(http, emu, DOC_REALTIME).status_code == 204
    assert zstats(emu)["requests"] == {"503": 1, "204": 1}


def test_outage_in_drop_mode(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults(None, outage_for_seconds=0.4, outage_mode="drop")
    with pytest.raises(httpx.TransportError):
        act_post(http, emu, act_event())
    time.sleep(0.5)
    assert act_post(http, emu, act_event()).status_code == 202


def test_poison_ids_reject_the_whole_request(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults(None, poison_ids=["bad-1"])
    resp = zpost(http, emu, {"events": [zevent("ok-1"), zevent("bad-1"), zevent("ok-2")]})
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"] == "poison event bad-1"
    assert zpost(http, emu, {"events": [zevent("ok-1"), zevent("ok-2")]}).status_code == 204
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ah_event("bad-1")), headers=AH_HEADERS)
    assert resp.status_code == 400
    assert resp.json() == {"error": "poison", "message": "poison event bad-1"}
    resp = act_post(http, emu, act_event(None), **{"Idempotency-Key": "bad-1"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "poison"
    assert set(emu.admin.receipts("zeotap")["zeotap"]) == {"ok-1", "ok-2"}
    assert emu.admin.stats()["totals"]["events_received"] == 2


def test_server_poison_ids_fail_their_request_with_a_5xx(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults(None, server_poison_ids=["choke-1"], server_poison_status=502)
    resp = zpost(http, emu, {"events": [zevent("ok-1"), zevent("choke-1")]})
    assert resp.status_code == 502
    assert resp.headers["x-emulator-fault"] == "server_poison"
    assert zpost(http, emu, {"events": [zevent("ok-1")]}).status_code == 204
    assert set(emu.admin.receipts("zeotap")["zeotap"]) == {"ok-1"}
    assert zstats(emu)["faults"]["server_poison"] == 1


def test_reject_status_refuses_every_request_with_its_debug_text(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("zeotap", reject_status=400, reject_debug="Authorization header value rejected")
    resp = zpost(http, emu, {"events": [zevent("ok-1")]})
    assert resp.status_code == 400
    assert resp.headers["x-zeo-debug"] == "Authorization header value rejected"
    emu.set_faults("activation", reject_status=415, reject_debug="unsupported media type")
    resp = act_post(http, emu, act_event())
    assert resp.status_code == 415
    assert resp.json() == {"error": "reject", "message": "unsupported media type"}
    assert emu.admin.stats()["totals"]["events_received"] == 0


@pytest.mark.parametrize("value", ["99999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_retry_after_can_be_any_header_value(emu: Emulator, http: httpx.Client, value: str) -> None:
    emu.set_faults(None, throttle_rate=1.0, retry_after=value)
    resp = zpost(http, emu, {"events": [zevent("ok-1")]})
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == value


@pytest.mark.parametrize(
    "knobs",
    [{"reject_status": 200}, {"server_poison_status": 400}, {"retry_after": "a\r\nb"}, {"server_poison_ids": "x"}],
)
def test_new_fault_knobs_are_validated(emu: Emulator, knobs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultConfig.from_dict(knobs)


def test_forced_auth_failure(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults(None, auth_fail=True)
    resp = zpost(http, emu, DOC_REALTIME)
    assert resp.status_code == 401
    assert "invalid write key" in resp.headers["x-zeo-debug"]
    assert act_post(http, emu, act_event()).status_code == 401
    resp = http.post(emu.audiohook_url("px-1"), content=orjson.dumps(ah_event()), headers=AH_HEADERS)
    assert resp.status_code == 401
    assert emu.admin.stats()["totals"]["events_received"] == 0


def test_destination_faults_override_global_ones(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults(None, error_rate=1.0)
    emu.set_faults("zeotap", throttle_rate=1.0)
    assert zpost(http, emu, DOC_REALTIME).status_code == 429
    assert act_post(http, emu, act_event()).status_code == 503


def test_error_rate_is_a_share_and_seed_makes_it_deterministic(emu: Emulator, http: httpx.Client) -> None:
    def run() -> list[int]:
        emu.set_faults("audiohook", error_rate=0.3, throttle_rate=0.2, seed=42)
        body = orjson.dumps(ah_event())
        return [http.post(emu.audiohook_url("px-1"), content=body, headers=AH_HEADERS).status_code for _ in range(200)]

    first, second = run(), run()
    assert first == second
    assert 40 <= first.count(503) <= 80
    assert 20 <= first.count(429) <= 60
    assert first.count(200) == 200 - first.count(503) - first.count(429)
    stats = zstats(emu, "audiohook")
    assert stats["events_received"] == 2 * first.count(200)


def test_faults_from_config_at_start(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emulator = make_emulator(faults={"zeotap": FaultConfig(error_rate=1.0, error_status=502)}, seed=1)
    assert zpost(http, emulator, DOC_REALTIME).status_code == 502


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(error_rate=0.6, throttle_rate=0.6)
    with pytest.raises(ValueError, match="within"):
        FaultConfig(slow_rate=2)
    with pytest.raises(ValueError, match="unknown fault setting"):
        FaultConfig.from_dict({"eror_rate": 0.1})
    with pytest.raises(ValueError, match="unknown destination"):
        EmulatorConfig(faults={"zeotapp": FaultConfig()})


# --------------------------------------------------------------------------------------------
# admin API


def test_admin_faults_api(emu: Emulator, http: httpx.Client) -> None:
    base = f"{emu.base_url}/_emulator"
    resp = http.post(f"{base}/faults", json={"destination": "zeotap", "error_rate": 0.2, "poison_ids": ["p"]})
    assert resp.status_code == 200
    assert resp.json()["zeotap"]["error_rate"] == 0.2
    assert resp.json()["zeotap"]["poison_ids"] == ["p"]
    resp = http.post(f"{base}/faults", json={"destination": "zeotap", "merge": True, "retry_after": 9})
    assert resp.json()["zeotap"]["error_rate"] == 0.2
    assert resp.json()["zeotap"]["retry_after"] == 9
    resp = http.post(f"{base}/faults", json={"destination": "zeotap", "retry_after": 9})
    assert resp.json() == {}  # replaced by a profile without active knobs
    assert http.post(f"{base}/faults", json={"destination": "nowhere"}).status_code == 400
    assert http.post(f"{base}/faults", json={"error_rat": 1}).status_code == 400
    assert http.post(f"{base}/faults", content=b"[").status_code == 400
    resp = http.post(f"{base}/faults", json={"error_rate": 1.0})  # no destination: global
    assert list(resp.json()) == ["*"]
    assert http.get(f"{base}/faults").json()["*"]["error_rate"] == 1.0
    assert http.delete(f"{base}/faults").status_code == 200
    assert http.get(f"{base}/faults").json() == {}


def test_admin_events_receipts_stats_reset(emu: Emulator, http: httpx.Client) -> None:
    base = f"{emu.base_url}/_emulator"
    zpost(http, emu, {"events": [zevent("r-1"), zevent("r-2")]})
    act_post(http, emu, act_event("r-3"))
    body = http.get(f"{base}/events").json()
    assert body["count"] == 3
    assert {r["destination"] for r in body["events"]} == {"zeotap", "activation"}
    assert http.get(f"{base}/events", params={"destination": "zeotap", "limit": 1}).json()["count"] == 1
    assert http.get(f"{base}/events", params={"destination": "nope"}).status_code == 400
    receipts = http.get(f"{base}/receipts").json()
    assert set(receipts) == {"zeotap", "audiohook", "activation"}
    assert set(receipts["zeotap"]) == {"r-1", "r-2"}
    stats = http.get(f"{base}/stats").json()
    assert stats["totals"]["events_received"] == 3
    assert stats["destinations"]["zeotap"]["events_kept"] == 2
    assert http.get(f"{base}/health").json() == {"ok": True}
    assert http.post(f"{base}/reset").json() == {"reset": True}
    assert http.get(f"{base}/stats").json()["totals"]["events_received"] == 0
    assert http.get(f"{base}/receipts").json()["zeotap"] == {}


def test_keep_events_off_keeps_only_ids(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emulator = make_emulator(keep_events=False)
    assert zpost(http, emulator, {"events": [zevent("k-1"), zevent("k-2")]}).status_code == 204
    assert emulator.admin.events("zeotap") == []
    assert set(emulator.admin.receipts("zeotap")["zeotap"]) == {"k-1", "k-2"}
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 2


def test_kept_events_are_capped(make_emulator: Callable[..., Emulator], http: httpx.Client) -> None:
    emulator = make_emulator(max_kept_events=3)
    assert zpost(http, emulator, {"events": [zevent(f"c-{i}") for i in range(5)]}).status_code == 204
    payloads = emulator.admin.payloads("zeotap")
    assert [p["event"]["eventId"] for p in payloads] == ["c-2", "c-3", "c-4"]
    assert emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 5


# --------------------------------------------------------------------------------------------
# Schema Registry, checked with confluent-kafka's own client

AVRO_V1 = (
    '{"type": "record", "name": "PurchaseCompleted", "namespace": "shop",'
    ' "fields": [{"name": "order_id", "type": "string"}, {"name": "value", "type": "double"}]}'
)
AVRO_V2 = (
    '{"type": "record", "name": "PurchaseCompleted", "namespace": "shop",'
    ' "fields": [{"name": "order_id", "type": "string"}, {"name": "value", "type": "double"},'
    ' {"name": "currency", "type": "string", "default": "EUR"}]}'
)


def test_schema_registry_with_the_real_client(emu: Emulator) -> None:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    emu.admin.reset(registry=True)
    client = SchemaRegistryClient({"url": emu.registry_url})
    schema_id = client.register_schema("purchases-value", Schema(AVRO_V1, "AVRO"))
    assert schema_id == 1
    # same schema (modulo whitespace), same id; also under another subject
    fresh = SchemaRegistryClient({"url": emu.registry_url})
    assert fresh.register_schema("purchases-value", Schema(" " + AVRO_V1.replace(", ", ","), "AVRO")) == 1
    assert fresh.register_schema("other-value", Schema(AVRO_V1, "AVRO")) == 1
    assert fresh.register_schema("purchases-value", Schema(AVRO_V2, "AVRO")) == 2

    reader = SchemaRegistryClient({"url": emu.registry_url})
    fetched = reader.get_schema(1)
    assert fetched.schema_str == AVRO_V1
    assert fetched.schema_type == "AVRO"
    latest = reader.get_latest_version("purchases-value")
    assert (latest.schema_id, latest.version, latest.subject) == (2, 2, "purchases-value")
    assert latest.schema.schema_str == AVRO_V2
    looked_up = reader.lookup_schema("purchases-value", Schema(AVRO_V1, "AVRO"))
    assert (looked_up.schema_id, looked_up.version) == (1, 1)
    assert reader.get_version("purchases-value", 1).schema_id == 1
    assert reader.get_versions("purchases-value") == [1, 2]
    assert sorted(reader.get_subjects()) == ["other-value", "purchases-value"]

    with pytest.raises(SchemaRegistryError) as missing_id:
        reader.get_schema(99)
    assert (missing_id.value.http_status_code, missing_id.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as missing_subject:
        reader.get_latest_version("nope-value")
    assert missing_subject.value.error_code == 40401
    with pytest.raises(SchemaRegistryError) as unknown_schema:
        reader.lookup_schema("other-value", Schema(AVRO_V2, "AVRO"))
    assert unknown_schema.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as invalid:
        reader.register_schema(
            "bad-value",
            Schema('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nosuch"}]}', "AVRO"),
        )
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)


def test_schema_registry_serde_round_trip(emu: Emulator) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    emu.admin.reset(registry=True)
    ctx = SerializationContext("purchases", MessageField.VALUE)
    serializer = AvroSerializer(SchemaRegistryClient({"url": emu.registry_url}), AVRO_V1)
    data = serializer({"order_id": "ord_1", "value": 9.5}, ctx)
    assert data is not None
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == 1  # Confluent wire format, schema id 1
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": emu.registry_url}))
    assert deserializer(data, ctx) == {"order_id": "ord_1", "value": 9.5}


def test_schema_registry_basic_auth(make_emulator: Callable[..., Emulator]) -> None:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    emulator = make_emulator(registry_basic_auth=("sr-user", "sr-secret"))
    anonymous = SchemaRegistryClient({"url": emulator.registry_url})
    with pytest.raises(SchemaRegistryError) as denied:
        anonymous.register_schema("s-value", Schema(AVRO_V1, "AVRO"))
    assert denied.value.http_status_code == 401
    wrong = SchemaRegistryClient({"url": emulator.registry_url, "basic.auth.user.info": "sr-user:nope"})
    with pytest.raises(SchemaRegistryError):
        wrong.get_subjects()
    client = SchemaRegistryClient({"url": emulator.registry_url, "basic.auth.user.info": "sr-user:sr-secret"})
    assert client.register_schema("s-value", Schema(AVRO_V1, "AVRO")) == 1
    assert client.get_latest_version("s-value").schema_id == 1


# --------------------------------------------------------------------------------------------
# as a separate process (the benchmark setup; same code path as the CLI entry point)


def test_emulator_process(http: httpx.Client) -> None:
    with EmulatorProcess("--write-key", "proc-key", "--no-keep-events", "--seed", "3") as proc:
        assert proc.base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": zeotap_authorization("proc-key"), "Content-Type": "application/json"}
        resp = http.post(proc.zeotap_url("UK"), content=orjson.dumps({"events": [zevent("p-1")]}), headers=headers)
        assert resp.status_code == 204
        assert proc.admin.stats()["destinations"]["zeotap"]["unique_ids"] == 1
        proc.admin.set_faults("zeotap", error_rate=1.0)
        assert http.post(proc.zeotap_url(), content=b"{}", headers=headers).status_code == 503
        pid_process = proc.process
        assert pid_process is not None and pid_process.poll() is None  # running while in use
    assert pid_process.poll() is not None  # and gone when the block is left


def test_cli_gzip_and_limit_options() -> None:
    from streams.dev.emulator.cli import build_parser

    args = build_parser().parse_args(["--gzip", "zeotap", "--gzip", "activation", "--zeotap-limit-of", "wire"])
    assert (args.gzip, args.zeotap_limit_of) == (["zeotap", "activation"], "wire")
    args = build_parser().parse_args([])
    assert (args.gzip, args.zeotap_limit_of) == ([], "json")
    with pytest.raises(ValueError, match="unknown destination"):
        EmulatorConfig(gzip_destinations=("zeotapp",))


def test_cli_activation_options() -> None:
    from streams.dev.emulator.cli import _activation_options, build_parser

    assert _activation_options(build_parser().parse_args([])) == {}  # every activation default kept
    argv = ["--activation-path", "/v2/ingest", "--activation-auth", "header", "--activation-auth-header", "X-Token"]
    argv += ["--activation-batch-key", "data", "--activation-idempotency-header", "none", "--activation-username", "u"]
    options = _activation_options(build_parser().parse_args(argv))
    assert options == {
        "path": "/v2/ingest",
        "auth": "header",
        "auth_header": "X-Token",
        "username": "u",
        "batch_key": "data",
        "idempotency_header": None,
    }
    config = EmulatorConfig(**{f"activation_{k}": v for k, v in options.items()})
    assert (config.activation_path, config.activation_batch_key) == ("/v2/ingest", "data")
    assert config.activation_idempotency_header is None
    with pytest.raises(ValueError, match="activation_auth"):
        EmulatorConfig(activation_auth="digest")  # type: ignore[arg-type]
