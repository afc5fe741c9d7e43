"""Contract tests of the activation API (`/work/shared/seeds/001_…`, the server-side events guide).

Each row of REQUIREMENTS is one requirement: its words in the guide, the check of our sender (the
payload / request it makes) and the check of the emulator (what it accepts and refuses). Where the
guide is silent (endpoint, auth scheme, batch form, idempotency header) CONFIGURATIONS gives each
reading: the sender configured one way and the emulator the same way must agree, and an emulator
of another reading must refuse the sender's request.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from streams.destinations import Verdict, make_destination
from streams.destinations.activation import Activation, ActivationSettings
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.errors import RecordError

API_KEY = "contract-api-key"
# the guide's example payload (step 2), as our canonical sections
SECTIONS: dict[str, dict[str, Any]] = {
    "event": {
        "eventName": "purchase_completed",
        "eventTimestamp": "2024-01-15T14:32:00Z",
        "eventId": "evt-1",
        "order_id": "ord_98765",
        "order_value": 149.99,
        "currency": "EUR",
    },
    "user": {"userId": "cust_12345"},
}
DOC_EXAMPLE = {
    "event": "purchase_completed",
    "timestamp": "2024-01-15T14:32:00Z",
    "customer_id": "cust_12345",
    "properties": {"order_id": "ord_98765", "order_value": 149.99, "currency": "EUR"},
}


def sender(**settings: Any) -> Activation:
    values: dict[str, Any] = {"type": "activation", "url": "http://127.0.0.1:1/activation/events", "api_key": API_KEY}
    api = make_destination("act", ActivationSettings(**{**values, **settings}))
    assert isinstance(api, Activation)
    return api


def with_event(**changes: Any) -> dict[str, dict[str, Any]]:
    return {**SECTIONS, "event": {**SECTIONS["event"], **changes}}


def without_user_id() -> dict[str, dict[str, Any]]:
    return {**SECTIONS, "user": {"email_sha256": "a" * 64}}


def event(**changes: Any) -> dict[str, Any]:
    ev = {**DOC_EXAMPLE, **changes}
    return {k: v for k, v in ev.items() if v is not None}


@dataclass(frozen=True)
class Requirement:
    id: str
    words: str  # the guide's own words
    sender_refuses: Callable[[], dict[str, dict[str, Any]]] | None  # sections the sender must dead-letter
    emulator_refuses: dict[str, Any] | None  # an event the emulator must answer 400
    field: str


REQUIREMENTS = [
    Requirement("event-name", "Event name: A stable, descriptive name (for example, purchase_completed).",
                lambda: with_event(eventName=None), event(event=None), "event"),
    Requirement("timestamp-present", "Timestamp: When the event occurred",
                lambda: with_event(eventTimestamp=None), event(timestamp=None), "timestamp"),
    Requirement("timestamp-iso", "(ISO 8601 format recommended)",
                lambda: with_event(eventTimestamp="15/01/2024 14:32"), event(timestamp="15/01/2024 14:32"), "timestamp"),
    Requirement("timestamp-datetime", "If the events are delayed, there are timestamp issues.",
                lambda: with_event(eventTimestamp="2024-01-15"), event(timestamp="2024-01-15"), "timestamp"),
    Requirement("customer-id", "Customer identifier: Customer ID, email hash, or another stable identifier.",
                without_user_id, event(customer_id=None), "customer_id"),
    Requirement("properties", "Properties: Context needed for targeting or journey logic.",
                None, event(properties=["not", "an", "object"]), "properties"),
]  # fmt: skip


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, Emulator]]:
    """One emulator per reading of the guide's silences (started once, reset per test)."""
    readings = {name: c.emulator for name, c in CONFIGURATIONS.items()}
    started = {name: Emulator(EmulatorConfig(activation_api_keys=(API_KEY,), **opts)).start() for name, opts in readings.items()}
    yield started
    for emu in started.values():
        emu.stop()


@pytest.fixture(autouse=True)
def _clean(emulators: dict[str, Emulator]) -> None:
    for emu in emulators.values():
        emu.reset(faults=True)


def post(emu: Emulator, api: Activation, bodies: list[bytes], *, gzipped: bool = False) -> httpx.Response:
    """What the sink sends for these encoded events, to the emulator (its URL in place of ours)."""
    body = api.batch_body(bodies)
    if gzipped:
        body = gzip.compress(body)
    req = api.request(body, gzipped)
    return httpx.post(emu.activation_url, content=req.body, headers=dict(req.headers), timeout=10)


# ------------------------------------------------------------------------------ the guide's fields


def test_the_doc_example_is_what_the_sender_makes_and_the_emulator_takes(emulators: dict[str, Emulator]) -> None:
    """Step 2, "Example payload": the sender's event is the guide's, plus our event_id (for dedupe)."""
    api = sender()
    out = api.payload(SECTIONS, False)
    assert {k: v for k, v in out.items() if k != "event_id"} == DOC_EXAMPLE
    assert out["event_id"] == "evt-1"
    assert post(emulators["default"], api, [orjson.dumps(out)]).status_code == 202
    assert emulators["default"].admin.payloads("activation") == [out]


@pytest.mark.parametrize("req", [r for r in REQUIREMENTS if r.sender_refuses], ids=lambda r: r.id)
def test_sender_validates_before_sending(req: Requirement) -> None:
    """Step 3: "Validate payloads before sending to catch errors early": dead-lettered at encode,
    the field named, never a request."""
    assert req.sender_refuses is not None
    with pytest.raises(RecordError, match=req.field) as exc:
        sender().payload(req.sender_refuses(), False)
    assert exc.value.stage == "encode"
    assert exc.value.reason in ("missing_required_field", "invalid_field")


@pytest.mark.parametrize("req", [r for r in REQUIREMENTS if r.emulator_refuses is not None], ids=lambda r: r.id)
def test_emulator_refuses_what_the_guide_does_not_allow(emulators: dict[str, Emulator], req: Requirement) -> None:
    """Step 4: "400 Bad Request | Malformed payload | Check required fields and format"."""
    emu = emulators["default"]
    resp = httpx.post(
        emu.activation_url,
        content=orjson.dumps(req.emulator_refuses),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["field"] == req.field
    # and the sender reads the refusal as this record's fault, its reason naming the field
    c = sender().classify(resp.status_code, resp.headers, resp.content)
    assert c.verdict is Verdict.BAD_REQUEST and req.field in c.reason


def test_one_identifier_kind_in_customer_id() -> None:
    """Verify: "If events go to the wrong file, there is an identifier mismatch. Check that the
    customer ID matches the existing profile": one configured kind, never a fallback."""
    assert sender().payload(SECTIONS, False)["customer_id"] == "cust_12345"
    assert sender(customer_id="email_sha256").payload(without_user_id(), False)["customer_id"] == "a" * 64
    with pytest.raises(RecordError, match="customer_id"):
        sender().payload(without_user_id(), False)


@pytest.mark.parametrize(
    "status, verdict",
    [(401, Verdict.MISCONFIGURED), (400, Verdict.BAD_REQUEST), (429, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY)],
)
def test_error_semantics(status: int, verdict: Verdict) -> None:
    """Step 4's table: 401 "Verify API key", 400 "Check required fields and format", 429 "Implement
    backoff and retry", 5xx "Retry with backoff"."""
    assert sender().classify(status, {}, b"").verdict is verdict


def test_emulator_answers_the_documented_errors(emulators: dict[str, Emulator]) -> None:
    emu, api = emulators["default"], sender()
    body = orjson.dumps(api.payload(SECTIONS, False))
    assert post(emu, sender(api_key="wrong"), [body]).status_code == 401
    emu.set_faults("activation", throttle_rate=1.0)
    assert post(emu, api, [body]).status_code == 429
    emu.set_faults("activation", error_rate=1.0)
    assert post(emu, api, [body]).status_code == 503


def test_retries_are_deduplicated(emulators: dict[str, Emulator]) -> None:
    """Verify: "If there are duplicate events, they're likely caused by retries without
    deduplication. To fix the issue, add an idempotency key or an event ID"."""
    emu, api = emulators["default"], sender()
    body = orjson.dumps(api.payload(SECTIONS, False))
    assert api.request(body).headers["Idempotency-Key"] == "evt-1"
    assert post(emu, api, [body]).status_code == 202
    assert post(emu, api, [body]).json()["duplicates"] == 1
    stats = emu.admin.stats()["destinations"]["activation"]
    assert (stats["unique_ids"], stats["duplicates"]) == (1, 1)


# ------------------------------------------------------------- where the guide is silent: each reading


@dataclass(frozen=True)
class Reading:
    sender: dict[str, Any]
    emulator: dict[str, Any]


CONFIGURATIONS: dict[str, Reading] = {
    "default": Reading({}, {}),  # bearer, one event per request, Idempotency-Key
    "bearer-batch": Reading({"batch_key": "events"}, {"activation_batch_key": "events"}),
    "basic": Reading(
        {"auth": "basic", "api_key": None, "username": "bridge", "password": API_KEY},
        {"activation_auth": "basic", "activation_username": "bridge"},
    ),
    "header-batch-data": Reading(
        {"auth": "header", "auth_header": "X-Api-Token", "batch_key": "data", "idempotency_header": "X-Event-Id"},
        {
            "activation_auth": "header",
            "activation_auth_header": "X-Api-Token",
            "activation_batch_key": "data",
            "activation_idempotency_header": "X-Event-Id",
        },
    ),
    "custom-path-no-idempotency-header": Reading(
        {"idempotency_header": None}, {"activation_path": "/v1/track", "activation_idempotency_header": None}
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_each_reading_sender_and_emulator_agree(emulators: dict[str, Emulator], name: str) -> None:
    api, emu = sender(**CONFIGURATIONS[name].sender), emulators[name]
    bodies = [orjson.dumps(api.payload(with_event(eventId=f"e-{i}"), False)) for i in range(3)]
    if api.batched:
        resp = post(emu, api, bodies)
        assert resp.status_code == 202 and resp.json()["events"] == 3
    else:
        for body in bodies:
            assert post(emu, api, [body]).status_code == 202
    assert set(emu.admin.receipts("activation")["activation"]) == {"e-0", "e-1", "e-2"}
    # the credentials probe: accepted credentials, nothing ingested
    probe = api.auth_probe()
    resp = httpx.post(emu.activation_url, content=probe.body, headers=dict(probe.headers), timeout=10)
    assert resp.status_code == 400
    assert emu.admin.stats()["destinations"]["activation"]["events_received"] == 3


@pytest.mark.parametrize(
    "sender_reading, emulator_reading, status",
    [
        ("bearer-batch", "default", 400),  # a batch to a single-event API is a malformed payload
        ("default", "bearer-batch", 400),  # a bare event to a batch API
        ("header-batch-data", "bearer-batch", 401),  # credentials in the wrong place
        ("basic", "default", 401),
        ("default", "basic", 401),
    ],
)
def test_a_mismatched_reading_is_refused(
    emulators: dict[str, Emulator], sender_reading: str, emulator_reading: str, status: int
) -> None:
    api, emu = sender(**CONFIGURATIONS[sender_reading].sender), emulators[emulator_reading]
    bodies = [orjson.dumps(api.payload(with_event(eventId=f"m-{i}"), False)) for i in range(2 if api.batched else 1)]
    assert post(emu, api, bodies).status_code == status
    assert emu.admin.stats()["destinations"]["activation"]["events_received"] == 0


def test_gzip_only_where_an_option_says_so(emulators: dict[str, Emulator]) -> None:
    """The guide never mentions compression: the emulator refuses a gzipped body (415) unless
    `gzip_destinations` names the API, and the sender sends plain JSON unless `gzip: true`."""
    api = sender()
    assert api.settings.gzip is False
    body = orjson.dumps(api.payload(SECTIONS, False))
    assert post(emulators["default"], api, [body], gzipped=True).status_code == 415
    with Emulator(EmulatorConfig(activation_api_keys=(API_KEY,), gzip_destinations=("activation",))) as emu:
        resp = post(emu, api, [body], gzipped=True)
        assert resp.status_code == 202
        assert set(emu.admin.receipts("activation")["activation"]) == {"evt-1"}
