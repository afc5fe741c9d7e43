"""Route pipelines over the reference config and the other destinations (streams.pipeline.transform)."""

from __future__ import annotations

import builtins
import copy
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams import errors
from streams.codec import encode_plain
from streams.config import BridgeConfig, load_config
from streams.dev.samples import EVENTS, SampleFactory
from streams.pipeline.outcome import DEAD_LETTERS, FILTERS, Filtered, Outcome, Payload, Rejected
from streams.pipeline.transform import RoutePipeline, fallback_event_id
from streams.routes import build_pipelines

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.yaml"
ENV = {"ZEOTAP_WRITE_KEY": "test-write-key", "ACTIVATION_API_KEY": "test-api-key"}

# The Zeotap doc's NCE batch sample (docs.zeotap.com, "Sample Payload Request for NCE Batch API"):
# what the bridge must send for a market_offer_assignment record, event by event.
NCE_DOC_SAMPLE = {
    "events": [
        {
            "event": {
                "eventName": "market_offer_assignment",
                "eventId": "1df964e5-6073-41e0-8fd3-41e0b1e9a186",
                "ValidFrom": "2026-03-01",
                "ValidTo": "2026-03-31",
                "MarketGLN": "1234567890173",
                "OfferIDs": "101,102,103",
                "eventTimestamp": "2026-03-03T09:00:00.000Z",
            }
        },
        {
            "event": {
                "eventName": "market_offer_assignment",
                "eventId": "2c2ca32e-4b16-4640-6bee-4296765b9a70",
                "ValidFrom": "2026-04-01",
                "ValidTo": "2026-04-30",
                "MarketGLN": "1234567890174",
                "OfferIDs": "201,202,203",
                "eventTimestamp": "2026-03-16T13:59:23.000Z",
            }
        },
    ]
}


def _record_errors(cls: type[errors.RecordError] = errors.RecordError) -> Iterator[str]:
    yield cls.__name__
    for sub in cls.__subclasses__():
        yield from _record_errors(sub)


# what a rejection's error_class may name: a class of the error tree (or a RecordError defined
# elsewhere, e.g. codec.DecodeError), or the built-in / orjson exception the pipeline caught
REAL_CLASSES = (
    {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, Exception)}
    | {name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, Exception)}
    | {orjson.JSONEncodeError.__name__}
)


@pytest.fixture(autouse=True)
def outcomes_from_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Outcome]]:
    """Every outcome any test here gets from a pipeline: its stage/reason a pair of the catalogue,
    a rejection's error_class a real class (never an invented name)."""
    seen: list[Outcome] = []
    process, process_record = RoutePipeline.process, RoutePipeline.process_record

    def watch(method: Any) -> Any:
        def watched(self: RoutePipeline, *args: Any, **kw: Any) -> Outcome:
            out: Outcome = method(self, *args, **kw)
            seen.append(out)
            return out

        return watched

    monkeypatch.setattr(RoutePipeline, "process", watch(process))
    monkeypatch.setattr(RoutePipeline, "process_record", watch(process_record))
    yield seen
    real = REAL_CLASSES | set(_record_errors())
    for out in seen:
        if isinstance(out, Rejected):
            assert (out.stage, out.reason) in DEAD_LETTERS and out.error_class in real, out
        elif isinstance(out, Filtered):
            assert (out.stage, out.reason) in FILTERS, out


def test_the_outcome_watch_sees_rejections(
    pipelines: dict[str, RoutePipeline], outcomes_from_the_catalogue: list[Outcome]
) -> None:
    out = _run(pipelines["purchase_completed"], _purchase(email=None, phone=None, customer_id=None, country=None))
    assert isinstance(out, Rejected) and outcomes_from_the_catalogue[-1] is out
    assert (out.reason, out.error_class) == ("missing_identifier", "MissingIdentifier")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _days(iso_date: str) -> int:
    return (dt.date.fromisoformat(iso_date) - dt.date(1970, 1, 1)).days


def _example_raw() -> dict[str, Any]:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    return copy.deepcopy(raw)


def _config(tmp_path: Path, raw: dict[str, Any]) -> BridgeConfig:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_config(path, env=ENV)


@pytest.fixture(scope="module")
def pipelines() -> dict[str, RoutePipeline]:
    return build_pipelines(load_config(EXAMPLE, env=ENV))


def _purchase(**customer: Any) -> dict[str, Any]:
    """A controlled purchase_completed record (schema shape, timestamps as epoch millis)."""
    cust = {
        "customer_id": " cust-1 ",
        "anonymous_id": None,
        "email": "  John.Doe@Example.COM ",
        "phone": "+49 30 1234567",
        "first_name": "John",
        "last_name": "Doe",
        "country": "DE",
    }
    cust.update(customer)
    return {
        "event_id": "evt-123",
        "occurred_at": 1704067200000,
        "customer": cust,
        "context": {
            "ip_address": "85.214.132.117",
            "user_agent": "UA/1.0",
            "page_url": "https://shop.example.com/p/1",
            "referrer": "https://www.google.com/",
            "session_id": "sess-1",
            "locale": "de-DE",
        },
        "consent": {"marketing": True, "personalisation": False, "analytics": None},
        "order_id": "ord-1",
        "order_value": 129.5,
        "currency": "EUR",
        "items": [{"product_id": "sku-300", "product_name": "Chair", "price": 129.5, "quantity": 1}],
    }


def _with(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with dotted-path changes, e.g. `**{"context.ip_address": None}`."""
    out = copy.deepcopy(record)
    for path, value in changes.items():
        node = out
        *head, last = path.split(".")
        for p in head:
            node = node[p]
        node[last] = value
    return out


def _run(p: RoutePipeline, record: dict[str, Any], offset: int = 0, via_bytes: bool = True) -> Outcome:
    if via_bytes:
        assert p.decoder is not None
        return p.process(encode_plain(p.decoder.reader, record), p.route.topic, 0, offset)
    return p.process_record(record, p.route.topic, 0, offset)


def _payload(outcome: Outcome) -> dict[str, Any]:
    assert isinstance(outcome, Payload), outcome
    return orjson.loads(outcome.body)  # type: ignore[no-any-return]


PURCHASE_PAYLOAD = {
    "event": {
        "eventName": "purchase_completed",
        "eventId": "evt-123",
        "eventTimestamp": "2024-01-01T00:00:00.000Z",
        "order_id": "ord-1",
        "order_value": 129.5,
        "currency": "EUR",
        "items": [{"product_id": "sku-300", "product_name": "Chair", "price": 129.5, "quantity": 1}],
    },
    "user": {
        "userId": "cust-1",
        "email_sha256": sha("john.doe@example.com"),
        "phone_sha256": sha("+49301234567"),
        "first_name_sha256": sha("john"),
        "last_name_sha256": sha("doe"),
        "country": "DEU",
    },
    "consent": {"marketing": True, "personalisation": False},
    "page": {"url": "https://shop.example.com/p/1", "referrer": "https://www.google.com/"},
    "device": {
        "ipAddress": "85.214.132.117",
        "userAgent": "UA/1.0",
        "sessionId": "sess-1",
        "locale": "de-DE",
    },
}


# --------------------------------------------------------------------------- the reference shape


@pytest.mark.parametrize("via_bytes", [True, False], ids=["process", "process_record"])
def test_purchase_completed_reference_shape(pipelines: dict[str, RoutePipeline], via_bytes: bool) -> None:
    outcome = _run(pipelines["purchase_completed"], _purchase(), via_bytes=via_bytes)
    assert isinstance(outcome, Payload)
    assert outcome.event_id == "evt-123"
    payload = _payload(outcome)
    assert payload == PURCHASE_PAYLOAD
    assert list(payload) == ["event", "user", "consent", "page", "device"]
    assert list(payload["event"])[:3] == ["eventName", "eventId", "eventTimestamp"]
    # types survive: numbers stay numbers, booleans booleans, arrays arrays
    assert isinstance(payload["event"]["order_value"], float)
    assert isinstance(payload["event"]["items"][0]["quantity"], int)
    assert payload["consent"]["marketing"] is True


@pytest.mark.parametrize(
    "changes, user_updates",
    [
        ({"customer.phone": "030 1234567"}, {}),  # national number: E.164 with the record's country
        ({"customer.phone": "+49 (0)30 123-4567"}, {}),
        ({"customer.email": "JOHN.DOE@EXAMPLE.COM"}, {}),
        ({"customer.customer_id": "cust-1"}, {}),
        ({"customer.anonymous_id": " anon-9 "}, {"anonymousId": "anon-9"}),
        ({"customer.first_name": None, "customer.last_name": None}, {"first_name_sha256": None, "last_name_sha256": None}),
    ],
)
def test_identifier_normalisation(
    pipelines: dict[str, RoutePipeline], changes: dict[str, Any], user_updates: dict[str, Any]
) -> None:
    payload = _payload(_run(pipelines["purchase_completed"], _with(_purchase(), **changes)))
    expected = dict(PURCHASE_PAYLOAD["user"])
    for k, v in user_updates.items():
        if v is None:
            expected.pop(k)
        else:
            expected[k] = v
    assert payload["user"] == expected


# --------------------------------------------------------------------------- event ids


def test_missing_event_id_gets_deterministic_uuid(pipelines: dict[str, RoutePipeline]) -> None:
    p = pipelines["purchase_completed"]
    rec = _with(_purchase(), event_id="")
    a = _run(p, rec, offset=41)
    b = _run(p, rec, offset=41)
    c = _run(p, rec, offset=42)
    assert isinstance(a, Payload) and isinstance(b, Payload) and isinstance(c, Payload)
    assert a.event_id == b.event_id == fallback_event_id("purchase_completed", 0, 41)
    assert c.event_id != a.event_id
    assert uuid.UUID(a.event_id).version == 5
    assert _payload(a)["event"]["eventId"] == a.event_id
    assert a.body == b.body


@pytest.mark.parametrize(
    "other",
    [("purchase_completed", 1, 41), ("page_view", 0, 41), ("purchase_completed", 0, 40)],
)
def test_fallback_event_id_depends_on_topic_partition_offset(other: tuple[str, int, int]) -> None:
    base = fallback_event_id("purchase_completed", 0, 41)
    assert base == fallback_event_id("purchase_completed", 0, 41)
    assert fallback_event_id(*other) != base


def test_record_without_event_id_key_via_process_record(pipelines: dict[str, RoutePipeline]) -> None:
    rec = _purchase()
    del rec["event_id"]
    out = _run(pipelines["purchase_completed"], rec, offset=7, via_bytes=False)
    assert isinstance(out, Payload)
    assert out.event_id == fallback_event_id("purchase_completed", 0, 7)


# --------------------------------------------------------------------------- every shipped schema


@pytest.mark.parametrize("event", EVENTS)
def test_every_sample_record_transforms_to_a_payload(pipelines: dict[str, RoutePipeline], event: str) -> None:
    factory = SampleFactory(seed=EVENTS.index(event) + 100)
    p = pipelines[event]
    for i in range(25):
        rec = factory.record(event)
        payload = _payload(_run(p, rec, offset=i))
        assert payload["event"]["eventName"] == event
        assert payload["event"]["eventId"] == rec["event_id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["event"]["eventTimestamp"])
        if event == "market_offer_assignment":
            assert list(payload) == ["event"]
        else:
            assert set(payload) <= {"event", "user", "consent", "page", "device"}
            assert re.fullmatch(r"[A-Z]{3}", payload["user"]["country"])
            if event != "consent_updated":  # there the record's own change may withdraw it
                assert payload["consent"]["marketing"] is True
            for key in ("email_sha256", "phone_sha256", "first_name_sha256", "last_name_sha256"):
                if key in payload["user"]:
                    assert re.fullmatch(r"[0-9a-f]{64}", payload["user"][key])


# --------------------------------------------------------------------------- NCE


@pytest.mark.parametrize("index", [0, 1])
def test_nce_market_offer_assignment_matches_the_doc_sample(pipelines: dict[str, RoutePipeline], index: int) -> None:
    expected = NCE_DOC_SAMPLE["events"][index]
    ev = expected["event"]
    record = {
        "event_id": ev["eventId"],
        "occurred_at": _ms(ev["eventTimestamp"]),
        "MarketGLN": ev["MarketGLN"],
        "OfferIDs": ev["OfferIDs"].split(","),
        "ValidFrom": _days(ev["ValidFrom"]),
        "ValidTo": _days(ev["ValidTo"]),
    }
    payload = _payload(_run(pipelines["market_offer_assignment"], record))
    assert payload == expected
    assert list(payload) == ["event"]


def test_nce_batch_body_matches_the_doc_sample(pipelines: dict[str, RoutePipeline]) -> None:
    p = pipelines["market_offer_assignment"]
    bodies = []
    for i, item in enumerate(NCE_DOC_SAMPLE["events"]):
        ev = item["event"]
        record = {
            "event_id": ev["eventId"],
            "occurred_at": _ms(ev["eventTimestamp"]),
            "MarketGLN": ev["MarketGLN"],
            "OfferIDs": ev["OfferIDs"].split(","),
            "ValidFrom": _days(ev["ValidFrom"]),
            "ValidTo": _days(ev["ValidTo"]),
        }
        out = _run(p, record, offset=i)
        assert isinstance(out, Payload)
        bodies.append(out.body)
    assert json.loads(p.destination.batch_body(bodies)) == NCE_DOC_SAMPLE


def test_nce_needs_no_country_identifier_or_consent(pipelines: dict[str, RoutePipeline]) -> None:
    record = SampleFactory(1).record("market_offer_assignment")
    record["OfferIDs"] = []
    payload = _payload(_run(pipelines["market_offer_assignment"], record))
    assert payload["event"]["OfferIDs"] == ""
    assert set(payload["event"]) == {"eventName", "eventId", "eventTimestamp", "MarketGLN", "OfferIDs", "ValidFrom", "ValidTo"}


def test_nce_identifier_fields_are_still_hashed(tmp_path: Path) -> None:
    raw = _example_raw()
    event = raw["routes"]["market_offer_assignment"]["mapping"]["event"]
    event["contact_sha256"] = {"path": "MarketGLN", "identity": "name"}
    p = build_pipelines(_config(tmp_path, raw), routes=["market_offer_assignment"])["market_offer_assignment"]
    record = SampleFactory(2).record("market_offer_assignment")
    payload = _payload(_run(p, record))
    assert payload["event"]["MarketGLN"] == record["MarketGLN"]
    assert re.fullmatch(r"[0-9a-f]{64}", payload["event"]["contact_sha256"])
    assert payload["event"]["contact_sha256"] == sha(record["MarketGLN"])


# --------------------------------------------------------------------------- country


NO_COUNTRY = {
    "customer.country": None,
    "customer.phone": None,
    "context.ip_address": None,
    "context.locale": None,
}


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"customer.country": "DE"}, "DEU"),
        ({"customer.country": "fra"}, "FRA"),
        ({"customer.country": "Spain"}, "ESP"),
        ({"customer.country": "United Kingdom"}, "GBR"),
        ({"customer.country": " it "}, "ITA"),
        # field wins over every other source
        ({"customer.country": "ES", "customer.phone": "+33 1 23 45 67 89", "context.ip_address": "8.8.8.8"}, "ESP"),
        # no usable field: the phone's region
        ({**NO_COUNTRY, "customer.phone": "+33 1 23 45 67 89"}, "FRA"),
        ({**NO_COUNTRY, "customer.country": "Atlantis", "customer.phone": "+44 20 7946 0000"}, "GBR"),
        # national phone cannot tell: the IP address
        ({**NO_COUNTRY, "customer.phone": "030 1234567", "context.ip_address": "8.8.8.8"}, "USA"),
        ({**NO_COUNTRY, "context.ip_address": "151.1.1.1"}, "ITA"),
        ({**NO_COUNTRY, "context.ip_address": "2a01:238:4200::1"}, "DEU"),
        # private IP: the locale
        ({**NO_COUNTRY, "context.ip_address": "10.0.0.1", "context.locale": "es-ES"}, "ESP"),
        ({**NO_COUNTRY, "context.locale": "en-GB"}, "GBR"),
    ],
)
def test_country_chain(pipelines: dict[str, RoutePipeline], changes: dict[str, Any], expected: str) -> None:
    payload = _payload(_run(pipelines["purchase_completed"], _with(_purchase(), **changes)))
    assert payload["user"]["country"] == expected


@pytest.mark.parametrize(
    "changes",
    [
        NO_COUNTRY,
        {**NO_COUNTRY, "customer.country": "Atlantis"},
        {**NO_COUNTRY, "customer.phone": "030 1234567", "context.ip_address": "10.0.0.1", "context.locale": "en"},
    ],
)
def test_no_country_is_rejected_at_enrich(pipelines: dict[str, RoutePipeline], changes: dict[str, Any]) -> None:
    out = _run(pipelines["purchase_completed"], _with(_purchase(), **changes))
    assert isinstance(out, Rejected)
    assert (out.stage, out.reason) == ("enrich", "missing_country")
    assert out.event_id == "evt-123"


def test_route_default_country_and_alpha2_format(tmp_path: Path) -> None:
    raw = _example_raw()
    raw["routes"]["purchase_completed"]["country"] = {"default": "Austria"}
    raw["destinations"]["zeotap"]["country_format"] = "alpha2"
    p = build_pipelines(_config(tmp_path, raw), routes=["purchase_completed"])["purchase_completed"]
    assert _payload(_run(p, _with(_purchase(), **NO_COUNTRY)))["user"]["country"] == "AT"
    assert _payload(_run(p, _purchase()))["user"]["country"] == "DE"


def test_route_country_sources_can_be_switched_off(tmp_path: Path) -> None:
    raw = _example_raw()
    raw["routes"]["purchase_completed"]["country"] = {"field": None, "phone": None, "ip": None, "locale": "context.locale"}
    p = build_pipelines(_config(tmp_path, raw), routes=["purchase_completed"])["purchase_completed"]
    rec = _with(_purchase(), **{"customer.country": "ES", "context.locale": "fr-FR"})
    assert _payload(_run(p, rec))["user"]["country"] == "FRA"


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize(
    "changes, ok",
    [
        ({"customer.email": None, "customer.phone": None}, True),  # customer id
        ({"customer.customer_id": None, "customer.phone": None}, True),  # email
        ({"customer.customer_id": None, "customer.email": None}, True),  # phone
        ({"customer.customer_id": None, "customer.email": None, "customer.phone": None, "customer.anonymous_id": "a"}, True),
        # names alone do not identify a user
        ({"customer.customer_id": None, "customer.email": None, "customer.phone": None}, False),
        # unusable values do not count
        ({"customer.customer_id": "   ", "customer.email": None, "customer.phone": None}, False),
        ({"customer.customer_id": None, "customer.email": "not-an-email", "customer.phone": None}, False),
        ({"customer.customer_id": None, "customer.email": None, "customer.phone": "12"}, False),
        ({"customer.customer_id": None, "customer.email": "", "customer.phone": ""}, False),
    ],
)
def test_identifier_requirement(pipelines: dict[str, RoutePipeline], changes: dict[str, Any], ok: bool) -> None:
    out = _run(pipelines["purchase_completed"], _with(_purchase(), **changes))
    if ok:
        assert isinstance(out, Payload)
    else:
        assert isinstance(out, Rejected)
        assert (out.stage, out.reason) == ("enrich", "missing_identifier")
        assert out.event_id == "evt-123"


@pytest.mark.parametrize("email", ["not-an-email", "john@", "@example.com", "john doe@example.com", "john@@example.com"])
def test_invalid_email_is_dropped_not_sent_raw(pipelines: dict[str, RoutePipeline], email: str) -> None:
    out = _run(pipelines["purchase_completed"], _with(_purchase(), **{"customer.email": email}))
    payload = _payload(out)
    assert "email_sha256" not in payload["user"]
    assert email.encode() not in out.body  # type: ignore[union-attr]
    assert payload["user"]["userId"] == "cust-1"


def test_invalid_phone_is_dropped_not_sent_raw(pipelines: dict[str, RoutePipeline]) -> None:
    out = _run(pipelines["purchase_completed"], _with(_purchase(), **{"customer.phone": "call me maybe"}))
    assert "phone_sha256" not in _payload(out)["user"]
    assert b"call me maybe" not in out.body  # type: ignore[union-attr]


@pytest.mark.parametrize("digest", [sha("john.doe@example.com"), sha("john.doe@example.com").upper(), f"  {sha('x')}  "])
def test_pre_hashed_email_passes_through_lower_cased(pipelines: dict[str, RoutePipeline], digest: str) -> None:
    payload = _payload(_run(pipelines["purchase_completed"], _with(_purchase(), **{"customer.email": digest})))
    assert payload["user"]["email_sha256"] == digest.strip().lower()


# --------------------------------------------------------------------------- consent


@pytest.mark.parametrize(
    "consent, expected",
    [
        ({"marketing": True, "personalisation": None, "analytics": None}, None),
        ({"marketing": False, "personalisation": True, "analytics": True}, "denied"),
        ({"marketing": None, "personalisation": True, "analytics": True}, "missing"),
        (None, "missing"),
    ],
)
def test_consent_gate(pipelines: dict[str, RoutePipeline], consent: dict[str, Any] | None, expected: str | None) -> None:
    out = _run(pipelines["purchase_completed"], _with(_purchase(), consent=consent))
    if expected is None:
        assert isinstance(out, Payload)
    else:
        assert isinstance(out, Filtered)
        assert (out.stage, out.reason) == ("consent", "consent_denied")
        assert "marketing" in out.detail and expected in out.detail
        assert out.event_id == "evt-123"


def test_consent_spellings_are_normalised(pipelines: dict[str, RoutePipeline]) -> None:
    rec = _with(_purchase(), consent={"marketing": "Yes", "personalisation": "opt-out", "analytics": "maybe"})
    payload = _payload(_run(pipelines["purchase_completed"], rec, via_bytes=False))
    assert payload["consent"] == {"marketing": True, "personalisation": False}


def test_consent_missing_with_policy_forward(tmp_path: Path) -> None:
    raw = _example_raw()
    raw["destinations"]["zeotap"]["consent"] = {"require": ["marketing"], "missing": "forward"}
    p = build_pipelines(_config(tmp_path, raw), routes=["purchase_completed"])["purchase_completed"]
    assert isinstance(_run(p, _with(_purchase(), consent=None)), Payload)
    denied = _run(p, _with(_purchase(), **{"consent.marketing": False}))
    assert isinstance(denied, Filtered) and denied.stage == "consent"


@pytest.mark.parametrize(
    "consent_type, status, consent, expected",
    [
        ("email", "no", None, {"email": False}),
        (
            "marketing",
            "denied",
            {"marketing": True, "personalisation": True, "analytics": None},
            {"marketing": False, "personalisation": True},
        ),
        ("marketing", "granted", {"marketing": False, "personalisation": None, "analytics": None}, {"marketing": True}),
        ("personalisation", "yes", None, {"personalisation": True}),
        ("sms", "gibberish", None, {}),
    ],
)
def test_consent_updated_is_not_gated_and_carries_the_change(
    pipelines: dict[str, RoutePipeline],
    consent_type: str,
    status: str,
    consent: dict[str, Any] | None,
    expected: dict[str, bool],
) -> None:
    rec = SampleFactory(4).record("consent_updated")
    rec.update(consent_type=consent_type, status=status, consent=consent, regulation="GDPR")
    payload = _payload(_run(pipelines["consent_updated"], rec))
    assert payload["consent"] == {**expected, "regulation": "GDPR"}
    assert payload["event"]["consent_type"] == consent_type
    assert payload["event"]["status"] == status


# --------------------------------------------------------------------------- decode / size / forward


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x02", b"\x00" * 3, b"\xc3\x01" + b"\x01" * 8])
def test_undecodable_bytes_are_rejected_at_decode(pipelines: dict[str, RoutePipeline], data: bytes) -> None:
    out = pipelines["purchase_completed"].process(data, "purchase_completed", 0, 1)
    assert isinstance(out, Rejected)
    assert (out.stage, out.reason, out.error_class) == ("decode", "undecodable", "DecodeError")


def test_tombstone_is_filtered_and_empty_value_rejected(pipelines: dict[str, RoutePipeline]) -> None:
    """A tombstone (null value) is a key's delete marker, not an event: filtered and counted. An empty
    value is a record whose bytes are no event: dead-lettered with its own reason."""
    p = pipelines["purchase_completed"]
    tomb = p.process(None, "purchase_completed", 0, 1)
    assert isinstance(tomb, Filtered) and (tomb.stage, tomb.reason) == ("decode", "tombstone")
    empty = p.process(b"", "purchase_completed", 0, 2)
    assert isinstance(empty, Rejected) and (empty.stage, empty.reason) == ("decode", "empty_value")


def test_oversize_event_is_rejected_too_large(pipelines: dict[str, RoutePipeline]) -> None:
    p = pipelines["purchase_completed"]
    limit = p.max_event_bytes
    assert limit == 20_000_000 - p.destination.envelope_bytes(1)  # Zeotap: "does not exceed 20 MB"
    base = _run(p, _with(_purchase(), order_id=""), via_bytes=False)
    assert isinstance(base, Payload)
    pad = limit - len(base.body)
    at_limit = _run(p, _with(_purchase(), order_id="x" * pad), via_bytes=False)
    assert isinstance(at_limit, Payload) and len(at_limit.body) == limit
    over = _run(p, _with(_purchase(), order_id="x" * (pad + 1)), via_bytes=False)
    assert isinstance(over, Rejected)
    assert (over.stage, over.reason) == ("encode", "too_large")
    assert over.event_id == "evt-123"


def test_route_not_forwarded_is_filtered(tmp_path: Path) -> None:
    raw = _example_raw()
    raw["routes"]["purchase_completed"]["forward"] = False
    p = build_pipelines(_config(tmp_path, raw), routes=["purchase_completed"])["purchase_completed"]
    out = _run(p, _purchase())
    assert isinstance(out, Filtered)
    assert (out.stage, out.reason) == ("route", "route_not_forwarded")
    assert out.event_id == "evt-123"


def test_mapping_failure_is_rejected_at_map(tmp_path: Path) -> None:
    raw = _example_raw()
    raw["routes"]["purchase_completed"]["mapping"]["event"]["order_value"] = {"path": "currency", "as": "float"}
    p = build_pipelines(_config(tmp_path, raw), routes=["purchase_completed"])["purchase_completed"]
    out = _run(p, _purchase())
    assert isinstance(out, Rejected)
    assert (out.stage, out.reason, out.event_id) == ("map", "mapping_failed", "evt-123")


# --------------------------------------------------------------------------- other destinations


def _multi_destination_config(tmp_path: Path) -> BridgeConfig:
    raw = _example_raw()
    purchase = raw["routes"]["purchase_completed"]
    raw["destinations"] = {
        "zeotap": raw["destinations"]["zeotap"],
        # most sample records carry no anonymous id: visitor_id optional here (required by default)
        "audiohook": {
            "type": "audiohook",
            "url": "https://listen.audiohook.com",
            "pixel_id": "px-1",
            "require_visitor_id": False,
        },
        "activation": {
            "type": "activation",
            "url": "https://api.activation.example.com/v1",
            "api_key": "${ACTIVATION_API_KEY}",
            "consent": {"require": ["marketing"]},
        },
    }
    raw["routes"] = {
        "zt_purchase": {**copy.deepcopy(purchase), "destination": "zeotap"},
        "ah_purchase": {**copy.deepcopy(purchase), "destination": "audiohook"},
        "act_purchase": {**copy.deepcopy(purchase), "destination": "activation"},
    }
    # Audiohook takes identifiers hashed only: the plaintext customer id is not mapped for it
    del raw["routes"]["ah_purchase"]["mapping"]["user"]["userId"]
    return _config(tmp_path, raw)


@pytest.fixture
def multi(tmp_path: Path) -> dict[str, RoutePipeline]:
    return build_pipelines(_multi_destination_config(tmp_path))


def test_audiohook_payload_is_flat(multi: dict[str, RoutePipeline]) -> None:
    rec = _with(_purchase(), **{"customer.anonymous_id": "anon-7"})
    payload = _payload(_run(multi["ah_purchase"], rec))
    assert payload == {
        "event_name": "purchase_completed",
        "timestamp": "2024-01-01T00:00:00.000Z",
        "event_id": "evt-123",
        "url": "https://shop.example.com/p/1",
        "referrer": "https://www.google.com/",
        "ip_address": "85.214.132.117",
        "user_agent": "UA/1.0",
        "session_id": "sess-1",
        "visitor_id": "anon-7",
        "persistent_anonymous_user_id": "anon-7",
        "email_sha256": sha("john.doe@example.com"),
        "phone_sha256": sha("+49301234567"),
        "first_name_sha256": sha("john"),
        "last_name_sha256": sha("doe"),
        "country": "DE",  # audiohook's default country format is alpha-2
        "event_payload": {
            "order_id": "ord-1",
            "order_value": 129.5,
            "currency": "EUR",
            "items": [{"product_id": "sku-300", "product_name": "Chair", "price": 129.5, "quantity": 1}],
        },
    }
    assert not any(isinstance(v, dict) for k, v in payload.items() if k != "event_payload")


@pytest.mark.parametrize(
    "changes, missing",
    [
        ({"context.ip_address": None}, "ip_address"),
        ({"context.user_agent": None}, "user_agent"),
        ({"context.user_agent": ""}, "user_agent"),
        ({"context.ip_address": None, "context.user_agent": None}, "ip_address, user_agent"),
    ],
)
def test_audiohook_missing_required_field_is_rejected(
    multi: dict[str, RoutePipeline], changes: dict[str, Any], missing: str
) -> None:
    out = _run(multi["ah_purchase"], _with(_purchase(), **changes))
    assert isinstance(out, Rejected)
    assert (out.stage, out.reason) == ("encode", "missing_required_field")
    assert missing in out.detail
    assert out.event_id == "evt-123"


def test_audiohook_oversize_event(multi: dict[str, RoutePipeline]) -> None:
    p = multi["ah_purchase"]
    assert p.max_event_bytes == 1024 * 1024
    out = _run(p, _with(_purchase(), order_id="x" * (1024 * 1024)), via_bytes=False)
    assert isinstance(out, Rejected) and out.reason == "too_large"


def test_activation_customer_id_never_falls_back_to_another_identifier(multi: dict[str, RoutePipeline]) -> None:
    # another kind of identifier in customer_id sends the event to the wrong profile (the guide)
    out = _run(multi["act_purchase"], _with(_purchase(), **{"customer.customer_id": None, "customer.anonymous_id": "anon-7"}))
    assert isinstance(out, Rejected)
    assert (out.stage, out.reason, out.event_id) == ("encode", "missing_required_field", "evt-123")
    assert "customer_id" in out.detail and "anon-7" not in out.detail


def test_activation_payload(multi: dict[str, RoutePipeline]) -> None:
    customer_id = "cust-1"
    payload = _payload(_run(multi["act_purchase"], _purchase()))
    assert set(payload) == {"event", "timestamp", "customer_id", "properties", "event_id"}
    assert payload["event"] == "purchase_completed"
    assert payload["timestamp"] == "2024-01-01T00:00:00.000Z"
    assert payload["event_id"] == "evt-123"
    assert payload["customer_id"] == customer_id
    props = payload["properties"]
    assert props["order_id"] == "ord-1"
    assert props["order_value"] == 129.5
    assert props["items"][0]["product_id"] == "sku-300"
    assert props["identifiers"]["email_sha256"] == sha("john.doe@example.com")
    assert props["identifiers"]["country"] == "DE"
    assert "userId" not in props["identifiers"]
    assert props["consent"] == {"marketing": True, "personalisation": False}
    assert props["device"]["userAgent"] == "UA/1.0"
    assert not {"eventName", "eventId", "eventTimestamp"} & set(props)


# --------------------------------------------------------------------------- no raw PII anywhere


def _pii_strings(record: dict[str, Any]) -> list[bytes]:
    cust = record.get("customer") or {}
    out: list[str] = []
    if cust.get("email"):
        email = cust["email"]
        out += [email, email.strip(), email.strip().lower()]
    if cust.get("phone"):
        phone = cust["phone"]
        digits = "".join(c for c in phone if c.isdigit())
        out += [phone, phone.strip()]
        if len(digits) >= 7:
            out += [digits, "+" + digits]
    return [s.encode("utf-8") for s in out if s]


@pytest.mark.parametrize("route", ["zt_purchase", "ah_purchase", "act_purchase"])
def test_no_raw_email_or_phone_in_any_payload(multi: dict[str, RoutePipeline], route: str) -> None:
    factory = SampleFactory(seed=2024)
    sent = 0
    for i in range(150):
        rec = factory.record("purchase_completed")
        out = _run(multi[route], rec, offset=i)
        if not isinstance(out, Payload):
            continue
        sent += 1
        for pii in _pii_strings(rec):
            assert pii not in out.body, (route, pii)
    assert sent > 100


@pytest.mark.parametrize("event", [e for e in EVENTS if e != "market_offer_assignment"])
def test_no_raw_email_or_phone_in_reference_routes(pipelines: dict[str, RoutePipeline], event: str) -> None:
    factory = SampleFactory(seed=77)
    count = 0
    for i in range(60):
        rec = factory.record(event)
        out = _run(pipelines[event], rec, offset=i)
        assert isinstance(out, Payload)
        for pii in _pii_strings(rec):
            assert pii not in out.body
            count += 1
    assert count > 60
