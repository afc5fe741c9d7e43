"""Audiohook's document (`/work/shared/seeds/002_…`) as a table of requirements, each checked against
the sender (the payload and request `streams/destinations/audiohook.py` makes, through the route's
pipeline of `examples/audiohook.yaml`) and against the emulator (accept / reject); and the promise
that no plaintext identifier reaches Audiohook, whatever the config says."""

from __future__ import annotations

import copy
import gzip
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from streams.config import BridgeConfig, load_config
from streams.destinations.audiohook import Audiohook, UnhashedIdentifier
from streams.destinations.base import Verdict, refusal_reason
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import SampleFactory
from streams.errors import ConfigError
from streams.pipeline.outcome import Outcome, Payload, Rejected
from streams.pipeline.transform import RoutePipeline
from streams.routes import build_pipelines

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "audiohook.yaml"
JSON = {"Content-Type": "application/json"}
STRICT_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

# the document's own examples, verbatim (the angle brackets of its URLs are its rendering, not data)
DOC_PAGEVIEW = {
    "event_name": "pageview",
    "timestamp": "2024-01-15T10:30:00.000Z",
    "visitor_id": "uuid-visitor-id",
    "session_id": "uuid-session-id",
    "url": "https://example.com/page",
    "referrer": "https://previous-page.com",
    "user_agent": "User-Agent-String",
    "ip_address": "192.168.1.100",
}
DOC_PURCHASE = {
    "event_name": "purchase",
    "timestamp": "2024-01-15T10:30:00.000Z",
    "visitor_id": "123e4567-e89b-12d3-a456-426614174000",
    "session_id": "987fcdeb-51a2-43d1-89ab-123456789012",
    "url": "https://example.com/checkout/success",
    "referrer": "https://example.com/checkout",
    "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
    "ip_address": "203.0.113.195",
    "order_id": "ORDER123",
    "value": 99.99,
    "currency": "USD",
    "items": [{"product_id": "123", "product_name": "Example Product", "price": 29.99, "quantity": 1}],
}
DOC_SUBSCRIPTION = {
    "event_name": "subscription_created",
    "timestamp": "2024-01-15T10:30:00.000Z",
    "visitor_id": "123e4567-e89b-12d3-a456-426614174000",
    "session_id": "987fcdeb-51a2-43d1-89ab-123456789012",
    "url": "https://example.com/subscription/success",
    "referrer": "https://example.com/pricing",
    "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36",
    "ip_address": "198.51.100.42",
    "subscription_id": "sub_12345",
    "plan_name": "Premium Plan",
    "value": 29.99,
    "currency": "USD",
    "billing_cycle": "monthly",
}


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --------------------------------------------------------------------------- the sender's side


def _raw() -> dict[str, Any]:
    raw = yaml.safe_load(EXAMPLE.read_text())
    return {k: v for k, v in raw.items() if not k.startswith("x-")}


def _config(tmp_path: Path, raw: dict[str, Any]) -> BridgeConfig:
    path = tmp_path / "audiohook.yaml"
    for route in raw["routes"].values():
        route["schema"] = str(ROOT / "avro_schemas" / Path(route["schema"]).name)
    path.write_text(yaml.safe_dump(raw))
    return load_config(path, env={})


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RoutePipeline]:
    return build_pipelines(_config(tmp_path_factory.mktemp("ah"), _raw()))


def record(event: str = "purchase_completed", **changes: Any) -> dict[str, Any]:
    """A sample record with everything Audiohook needs, and dotted-path changes."""
    rec = SampleFactory(seed=3).record(event)
    rec["customer"].update(anonymous_id="123e4567-e89b-12d3-a456-426614174000", email="John.Doe@Example.com")
    rec["context"].update(ip_address="203.0.113.195", user_agent="Mozilla/5.0 (X11)")
    rec["consent"]["marketing"] = True
    for path, value in changes.items():
        node = rec
        *head, last = path.split(".")
        for p in head:
            node = node[p]
        node[last] = value
    return rec


def run(p: RoutePipeline, rec: dict[str, Any]) -> Outcome:
    return p.process_record(copy.deepcopy(rec), p.route.topic, 0, 0)


def sent(p: RoutePipeline, rec: dict[str, Any]) -> dict[str, Any]:
    out = run(p, rec)
    assert isinstance(out, Payload), out
    event: dict[str, Any] = orjson.loads(out.body)
    return event


def rejected(p: RoutePipeline, rec: dict[str, Any]) -> Rejected:
    out = run(p, rec)
    assert isinstance(out, Rejected), out
    return out


def refused_config(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> str:
    raw = _raw()
    change(raw)
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, raw)
    return str(info.value)


# --------------------------------------------------------------------------- the emulator's side


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(audiohook_pixel_ids=("px-1",))) as emulator:
        yield emulator


def post(emu: Emulator, event: Any, headers: dict[str, str] | None = None, content: bytes | None = None) -> httpx.Response:
    body = content if content is not None else orjson.dumps(event)
    return httpx.post(emu.audiohook_url("px-1"), content=body, headers=headers or JSON, timeout=10)


def with_(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**event, **changes}
    return {k: v for k, v in out.items() if v is not ...}


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Requirement:
    rid: str
    words: str  # the document's own words
    sender: Callable[[dict[str, RoutePipeline], Path], None]
    emulator: Callable[[Emulator], None]


def s_endpoint(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    ah = ps["purchase_completed"].destination
    assert isinstance(ah, Audiohook)
    req = ah.request(b"{}")
    assert req.url == "http://127.0.0.1:8080/audiohook/px-demo/pixel.png"
    prod = Audiohook(
        "ah", ah.settings.model_copy(update={"url": "https://listen.audiohook.com", "pixel_id": "YOUR_AUDIOHOOK_ID"})
    )
    assert prod.request(b"{}").url == "https://listen.audiohook.com/YOUR_AUDIOHOOK_ID/pixel.png"


def e_endpoint(emu: Emulator) -> None:
    assert post(emu, DOC_PURCHASE).status_code == 200
    assert httpx.post(emu.audiohook_url("px-unknown"), content=orjson.dumps(DOC_PURCHASE), headers=JSON).status_code == 404


def s_content_type(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    ah = ps["purchase_completed"].destination
    assert isinstance(ah, Audiohook)
    assert ah.request(b"{}").headers["Content-Type"] == "application/json"


def e_content_type(emu: Emulator) -> None:
    assert post(emu, DOC_PURCHASE, headers={"Content-Type": "text/plain"}).status_code == 400


REQUIRED = {"ip_address": "context.ip_address", "user_agent": "context.user_agent"}


def s_required(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    p = ps["purchase_completed"]
    event = sent(p, record())
    assert {"ip_address", "user_agent", "event_name"} <= event.keys()
    for field, path in REQUIRED.items():
        out = rejected(p, record(**{path: None}))
        assert (out.stage, out.reason) == ("encode", "missing_required_field") and field in out.detail


def e_required(emu: Emulator) -> None:
    for field in ("ip_address", "user_agent", "event_name"):
        resp = post(emu, with_(DOC_PURCHASE, **{field: ...}))
        assert resp.status_code == 400 and resp.json()["field"] == field


def s_timestamp(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    for p in ps.values():
        assert STRICT_TS.fullmatch(sent(p, record(p.route.topic))["timestamp"])
    for fmt in ("unix", "unix_ms"):
        msg = refused_config(tmp, lambda raw, fmt=fmt: raw["destinations"]["audiohook"].update(timestamp_format=fmt))
        assert "destinations.audiohook.timestamp_format" in msg


def e_timestamp(emu: Emulator) -> None:
    assert post(emu, DOC_PURCHASE).status_code == 200
    for bad in (
        "2024-01-15T10:30:00Z",
        "2024-01-15 10:30:00.000Z",
        "1705314600",
        1705314600000,
        None,
        "2024-13-45T10:30:00.000Z",
    ):
        resp = post(emu, with_(DOC_PURCHASE, timestamp=bad))
        assert resp.status_code == 400 and resp.json()["field"] == "timestamp", bad


def s_timestamp_never_null(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    out = rejected(ps["purchase_completed"], record(occurred_at=None))
    # occurred_at is required by the schema's mapping? either the mapping or the payload refuses it
    assert out.stage in ("map", "encode")
    raw = _raw()
    del raw["routes"]["purchase_completed"]["mapping"]["event"]["eventTimestamp"]
    p = build_pipelines(_config(tmp, raw))["purchase_completed"]
    out = rejected(p, record())
    assert (out.stage, out.reason) == ("encode", "missing_required_field") and "timestamp" in out.detail
    raw = _raw()
    raw["routes"]["purchase_completed"]["mapping"]["event"]["eventTimestamp"] = {"const": "2024-01-15 10:30"}
    p = build_pipelines(_config(tmp, raw))["purchase_completed"]
    out = rejected(p, record())
    assert (out.stage, out.reason, out.error_class) == ("encode", "invalid_timestamp", "InvalidTimestamp")


def e_timestamp_never_null(emu: Emulator) -> None:
    assert post(emu, with_(DOC_PURCHASE, timestamp=None)).status_code == 400


def s_pii_hashed(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    event = sent(ps["purchase_completed"], record())
    assert event["email_sha256"] == sha("john.doe@example.com")
    assert b"John.Doe" not in orjson.dumps(event) and b'example.com"' not in orjson.dumps(event)
    msg = refused_config(tmp, lambda raw: raw["destinations"]["audiohook"].update(identity={"hash": False}))
    assert "destinations.audiohook.identity.hash" in msg


def e_pii_hashed(emu: Emulator) -> None:
    assert post(emu, with_(DOC_PURCHASE, email_sha256=sha("a@b.example"))).status_code == 200
    for key, value in (
        ("email_sha256", "a@b.example"),
        ("email_sha256", "abc"),
        ("email", "a@b.example"),
        ("phone", "+4930123456"),
    ):
        resp = post(emu, with_(DOC_PURCHASE, **{key: value}))
        assert resp.status_code == 400 and resp.json()["field"] == key, key
        assert str(value) not in resp.text  # the refusal never quotes the value
    resp = post(emu, with_(DOC_PURCHASE, event_payload={"contact": "Jane <jane@x.example>"}))
    assert resp.status_code == 400 and resp.json()["field"] == "event_payload.contact"


def s_visitor_id(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    for p in ps.values():
        assert sent(p, record(p.route.topic))["visitor_id"] == "123e4567-e89b-12d3-a456-426614174000"
    out = rejected(ps["page_view"], record("page_view", **{"customer.anonymous_id": None}))
    assert (out.stage, out.reason) == ("encode", "missing_required_field") and "visitor_id" in out.detail


def e_visitor_id(emu: Emulator) -> None:
    # the document's required list does not name it: accepted without (option: require it)
    assert post(emu, with_(DOC_PURCHASE, visitor_id=...)).status_code == 200


def s_event_names(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    names = {p.route.topic: sent(p, record(p.route.topic))["event_name"] for p in ps.values()}
    assert names == {"purchase_completed": "purchase", "subscription_started": "subscription_created", "page_view": "pageview"}


def e_event_names(emu: Emulator) -> None:
    for example in (DOC_PAGEVIEW, DOC_PURCHASE, DOC_SUBSCRIPTION):
        assert post(emu, example).status_code == 200


def s_one_event(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    ah = ps["purchase_completed"].destination
    assert isinstance(ah, Audiohook) and ah.batched is False
    with pytest.raises(ValueError):
        ah.batch_body([b"{}", b"{}"])


def e_one_event(emu: Emulator) -> None:
    assert post(emu, [DOC_PURCHASE]).status_code == 400


def s_https(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    msg = refused_config(tmp, lambda raw: raw["destinations"]["audiohook"].update(url="http://listen.audiohook.com"))
    assert "destinations.audiohook.url" in msg and "https" in msg


def e_https(emu: Emulator) -> None:
    # the emulator listens on loopback http (the sender allows plain http only to loopback); what
    # it can check is that the endpoint is the document's path under any host
    assert emu.audiohook_url("px-1").endswith("/px-1/pixel.png")


def s_no_gzip(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    ah = ps["purchase_completed"].destination
    assert isinstance(ah, Audiohook) and ah.settings.gzip is False
    assert "Content-Encoding" not in ah.request(b"{}").headers


def e_no_gzip(emu: Emulator) -> None:
    resp = post(emu, None, headers={**JSON, "Content-Encoding": "gzip"}, content=gzip.compress(orjson.dumps(DOC_PURCHASE)))
    assert resp.status_code == 415


def s_errors(ps: dict[str, RoutePipeline], tmp: Path) -> None:
    ah = ps["purchase_completed"].destination
    assert ah.classify(503, {}, b"").verdict is Verdict.RETRY  # "Implement retry logic for failed requests"
    c = ah.classify(
        400, {}, b'{"error": "invalid_field", "message": "email_sha256 must be a SHA-256 digest", "field": "email_sha256"}'
    )
    assert c.verdict is Verdict.BAD_REQUEST and "email_sha256 must be a SHA-256 digest" in c.reason


def e_errors(emu: Emulator) -> None:
    resp = post(emu, with_(DOC_PURCHASE, ip_address=...))
    assert resp.status_code == 400 and resp.json()["error"] and resp.json()["message"]


TABLE = [
    Requirement(
        "AH-01-endpoint",
        "Send POST requests to the following endpoint ... https://listen.audiohook.com/YOUR_AUDIOHOOK_ID/pixel.png",
        s_endpoint,
        e_endpoint,
    ),
    Requirement(
        "AH-02-content-type",
        "The Content-Type header of the request must be set to application/json.",
        s_content_type,
        e_content_type,
    ),
    Requirement(
        "AH-03-required",
        "Each event must include the following fields: Required Fields - ip_address ... - user_agent ... - event_name",
        s_required,
        e_required,
    ),
    Requirement(
        "AH-04-timestamp", "Use ISO 8601 format (YYYY-MM-DDTHH:mm:ss.sssZ) for all timestamps.", s_timestamp, e_timestamp
    ),
    Requirement(
        "AH-05-timestamp-present",
        '"timestamp": "2024-01-15T10:30:00.000Z" (in every example)',
        s_timestamp_never_null,
        e_timestamp_never_null,
    ),
    Requirement(
        "AH-06-pii",
        "Hash any Personally Identifiable Information (e.g., email, phone number) before sending. Use SHA-256 for hashing.",
        s_pii_hashed,
        e_pii_hashed,
    ),
    Requirement("AH-07-visitor-id", '"visitor_id": "uuid-visitor-id" (in every example)', s_visitor_id, e_visitor_id),
    Requirement(
        "AH-08-event-names",
        "event_name: The name of the event (e.g., purchase, subscription_created, pageview).",
        s_event_names,
        e_event_names,
    ),
    Requirement(
        "AH-09-one-event",
        "body: JSON.stringify(eventData) (one event per request; no batch form is documented)",
        s_one_event,
        e_one_event,
    ),
    Requirement("AH-10-https", "All communication must use HTTPS.", s_https, e_https),
    Requirement(
        "AH-11-no-gzip", "headers: {'Content-Type': 'application/json'} (compression is never mentioned)", s_no_gzip, e_no_gzip
    ),
    Requirement(
        "AH-12-errors",
        "if (!response.ok) ... Implement retry logic for failed requests to ensure data integrity.",
        s_errors,
        e_errors,
    ),
]


@pytest.mark.parametrize("req", TABLE, ids=[r.rid for r in TABLE])
def test_sender_follows_the_document(req: Requirement, pipelines: dict[str, RoutePipeline], tmp_path: Path) -> None:
    req.sender(pipelines, tmp_path)


@pytest.mark.parametrize("req", TABLE, ids=[r.rid for r in TABLE])
def test_emulator_follows_the_document(req: Requirement, emu: Emulator) -> None:
    req.emulator(emu)


def test_sender_payloads_pass_the_emulator(pipelines: dict[str, RoutePipeline], emu: Emulator) -> None:
    """What the sender sends for each reference route is what the strict emulator accepts."""
    for p in pipelines.values():
        for seed in range(5):
            rec = record(p.route.topic, event_id=f"e-{seed}")
            out = run(p, rec)
            assert isinstance(out, Payload), out
            resp = post(emu, None, content=out.body)
            assert resp.status_code == 200, resp.text


# --------------------------------------------------------------------------- the other readings (emulator options)


def test_emulator_lenient_timestamps_take_the_documents_code_examples() -> None:
    """The document's own code examples send `isoformat() + 'Z'` (microseconds) and PHP `date('c')`
    (an offset): `audiohook_timestamps: iso8601` takes them; still no epoch numbers."""
    with Emulator(EmulatorConfig(audiohook_timestamps="iso8601")) as emu:
        for ts in ("2024-01-15T10:30:00.123456Z", "2024-01-15T10:30:00+00:00", "2024-01-15T10:30:00.000Z"):
            assert post(emu, with_(DOC_PURCHASE, timestamp=ts)).status_code == 200, ts
        for ts in ("1705314600", "2024-01-15T10:30:00", "2024-01-15"):
            assert post(emu, with_(DOC_PURCHASE, timestamp=ts)).status_code == 400, ts


def test_emulator_can_require_what_every_example_carries() -> None:
    with Emulator(EmulatorConfig(audiohook_require_example_fields=True)) as emu:
        assert post(emu, DOC_PAGEVIEW).status_code == 200
        for field in ("timestamp", "visitor_id"):
            resp = post(emu, with_(DOC_PAGEVIEW, **{field: ...}))
            assert resp.status_code == 400 and resp.json()["field"] == field


def test_emulator_takes_gzip_only_when_an_option_says_so() -> None:
    with Emulator(EmulatorConfig(gzip_destinations=("audiohook",))) as emu:
        body = gzip.compress(orjson.dumps(DOC_PURCHASE))
        assert post(emu, None, headers={**JSON, "Content-Encoding": "gzip"}, content=body).status_code == 200


def test_sender_visitor_id_optional_and_from_another_key(tmp_path: Path) -> None:
    raw = _raw()
    raw["destinations"]["audiohook"].update(require_visitor_id=False)
    p = build_pipelines(_config(tmp_path, raw))["page_view"]
    assert "visitor_id" not in sent(p, record("page_view", **{"customer.anonymous_id": None}))
    raw = _raw()
    raw["destinations"]["audiohook"].update(visitor_id_from="cookieId")
    raw["routes"]["page_view"]["mapping"]["user"]["cookieId"] = {"path": "context.session_id", "identity": "id"}
    p = build_pipelines(_config(tmp_path, raw))["page_view"]
    rec = record("page_view")
    assert sent(p, rec)["visitor_id"] == rec["context"]["session_id"]


# --------------------------------------------------------------------------- never plaintext


PLAIN_EMAIL = "Jane.Roe@Example.org"
PLAIN_PHONE = "+49 30 98765432"


def _plain_values(rec: dict[str, Any]) -> list[bytes]:
    return [
        v.encode()
        for v in (PLAIN_EMAIL, PLAIN_EMAIL.lower(), "jane.roe@example.org", PLAIN_PHONE, "+493098765432", "493098765432")
    ]


USER_SPECS: list[dict[str, Any]] = [
    {"email": "customer.email"},  # a plain path: no identity, no hashing
    {"email_sha256": "customer.email"},  # a digest's name on a plaintext value
    {"phone_sha256": {"path": "customer.phone", "identity": "id"}},
    {"contact": {"path": "customer.email", "identity": "id"}},
    {"userId": {"path": "customer.customer_id", "identity": "id"}},  # a customer id is an identifier
    {"*": {"from": "customer"}},  # pass-through of the whole customer
    {"*": {"from": "customer", "exclude": ["email"]}},
]
EVENT_SPECS: list[dict[str, Any]] = [
    {"*": {"from": ""}},  # pass-through of the whole record, customer included
    {"*": {"from": "customer"}},
    {"buyer_email": "customer.email"},
    {"note": {"const": "contact Jane.Roe@Example.org"}},
]


def _never_plain(tmp_path: Path, raw: dict[str, Any]) -> None:
    p = build_pipelines(_config(tmp_path, raw))["purchase_completed"]
    rec = record(**{"customer.email": PLAIN_EMAIL, "customer.phone": PLAIN_PHONE, "customer.customer_id": "cust-42"})
    out = run(p, rec)
    if isinstance(out, Payload):
        for plain in (*_plain_values(rec), b"cust-42"):
            assert plain not in out.body, (plain, out.body)
    else:
        assert isinstance(out, Rejected)
        assert (out.stage, out.reason) in {("encode", "unhashed_identifier"), ("encode", "missing_required_field")}, out
        assert PLAIN_EMAIL not in out.detail and "cust-42" not in out.detail


@pytest.mark.parametrize("spec", USER_SPECS, ids=[next(iter(s)) + str(i) for i, s in enumerate(USER_SPECS)])
def test_no_plaintext_identifier_in_the_user_section(tmp_path: Path, spec: dict[str, Any]) -> None:
    raw = _raw()
    raw["routes"]["purchase_completed"]["mapping"]["user"].update(spec)
    _never_plain(tmp_path, raw)


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=[next(iter(s)) + str(i) for i, s in enumerate(EVENT_SPECS)])
def test_no_plaintext_identifier_in_the_event_section(tmp_path: Path, spec: dict[str, Any]) -> None:
    raw = _raw()
    event = raw["routes"]["purchase_completed"]["mapping"]["event"]
    event.pop("*", None)
    event.update(spec)
    _never_plain(tmp_path, raw)


@pytest.mark.parametrize("identity", [{"hash": False}, {"hash": False, "phone_format": "digits"}])
def test_hash_false_is_refused(tmp_path: Path, identity: dict[str, Any]) -> None:
    msg = refused_config(tmp_path, lambda raw: raw["destinations"]["audiohook"].update(identity=identity))
    assert "destinations.audiohook.identity.hash" in msg and "hash" in msg


@pytest.mark.parametrize(
    "value",
    ["jane@example.org", "ABCDEF" * 10 + "abcd", "0" * 63, "0" * 65, "g" * 64, 12345, ["a" * 64, "plain"]],
    ids=["email", "uppercase-hex", "63-hex", "65-hex", "non-hex", "number", "list"],
)
def test_non_hex_in_a_sha256_field_is_dead_lettered(pipelines: dict[str, RoutePipeline], value: Any) -> None:
    """Whatever reaches the payload (here: the sections as a bad mapping could fill them)."""
    ah = pipelines["purchase_completed"].destination
    sections = {
        "event": {
            "eventName": "purchase",
            "eventTimestamp": "2024-01-15T10:30:00.000Z",
            "eventId": "e-1",
            "extra": {"k_sha256": value},
        },
        "device": {"ipAddress": "203.0.113.195", "userAgent": "UA"},
        "user": {"anonymousId": "v-1"},
    }
    with pytest.raises(UnhashedIdentifier, match="event_payload.extra.k_sha256"):
        ah.payload(sections, False)
    ok = copy.deepcopy(sections)
    ok["event"]["extra"]["k_sha256"] = sha("x")
    assert ah.payload(ok, False)["event_payload"]["extra"]["k_sha256"] == sha("x")


def test_random_records_never_carry_plaintext(pipelines: dict[str, RoutePipeline]) -> None:
    factory = SampleFactory(seed=11)
    checked = 0
    for p in pipelines.values():
        for _ in range(80):
            rec = factory.record(p.route.topic)
            out = run(p, rec)
            if not isinstance(out, Payload):
                continue
            cust = rec["customer"]
            for plain in (cust.get("email"), cust.get("phone"), cust.get("customer_id"), cust.get("first_name")):
                if plain and len(str(plain).strip()) > 3:
                    assert str(plain).strip().encode() not in out.body
                    checked += 1
    assert checked > 50


# --------------------------------------------------------------------------- the refusal's reason


@pytest.mark.parametrize(
    "body, expected, absent",
    [
        (
            b'{"error": "invalid_field", "message": "timestamp must be ISO 8601", "field": "timestamp"}',
            "invalid_field: timestamp must be ISO 8601: field timestamp",
            (),
        ),
        (
            b'{"message": "bad email jane.roe@example.org for visitor 123e4567-e89b-12d3-a456-426614174000"}',
            "bad email <email> for visitor <id>",
            ("jane", "123e4567"),
        ),
        (b"phone +49 30 98765432 from 203.0.113.195 refused", "phone <number> from <ip> refused", ("98765432", "203.0.113")),
        (b"digest " + sha("x").encode() + b" unknown\x00\x07", "digest <hex> unknown", (sha("x"),)),
        (b"", "", ()),
    ],
)
def test_refusal_reason_is_bounded_printable_and_scrubbed(body: bytes, expected: str, absent: tuple[str, ...]) -> None:
    reason = refusal_reason(body)
    assert reason == expected
    for text in absent:
        assert text not in reason


def test_refusal_reason_is_at_most_200_characters() -> None:
    reason = refusal_reason(b'{"message": "' + b"x " * 5000 + b'"}')
    assert len(reason) <= 200 and reason.endswith("…")
    assert refusal_reason(b"\xff\xfe not utf-8 \xc3").isprintable()


def test_an_empty_event_name_is_a_config_error(tmp_path: Path) -> None:
    msg = refused_config(tmp_path, lambda raw: raw["routes"]["page_view"].update(event_names={"page_view": " "}))
    assert "routes.page_view.event_names" in msg and "'page_view'" in msg
