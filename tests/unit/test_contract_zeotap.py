"""Zeotap's server-to-server source, requirement by requirement (`/work/shared/seeds/000_…`).

Each row of `REQUIREMENTS` is one requirement of the document, its own words, and two checks: one
against our sender (`streams.destinations.zeotap`: payload and request) and one against the
emulator (`streams.dev.emulator`: what it accepts and refuses). A row a side cannot check says why
(`None`). Where the document is silent the choice is named in the README ("Zeotap") and
docs/emulator.md, and the emulator's option for the other reading is tested in test_emulator.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import yaml

from streams.config import load_config
from streams.destinations import Verdict, make_destination
from streams.destinations.zeotap import ZEOTAP_MAX_REQUEST_BYTES, Zeotap, ZeotapSettings
from streams.dev.emulator import DOC_WRITE_KEY, Emulator, EmulatorConfig
from streams.ops.check import probe_auth
from streams.pipeline.mapping import format_timestamp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zeotap.yaml"
# the document's worked example of the Authorization header
DOC_AUTHORIZATION = "Basic d19rOmZjM2FiODAzLTU3NjItNDRkMy04OGQzLTdmYmM5NGJjYTA3NA=="
# the kinds of user identifier the document names ("email, loginID or cell phone number hashes",
# "first-party cookies, third-party cookies or MAIDs") and its samples' keys, lower case, no separators
DOCUMENTED_ID_KINDS = {"email", "loginid", "cellphone", "phone", "maid", "firstpartycookie", "thirdpartycookie"}
DOCUMENTED_ID_KINDS |= {"userid", "visitorid", "contactid"}


def _event(eid: str = "c-1", **event: Any) -> dict[str, Any]:
    return {
        "event": {"eventId": eid, "eventName": "purchase_completed", "eventTimestamp": "2024-09-05T11:02:44Z", **event},
        "user": {"userId": "1234567890", "country": "ESP"},
    }


# --------------------------------------------------------------------------- the sender's side


def _sender(url: str = "https://api.zeotap.example/s2s?region=EU&eventType=s2s", **kw: Any) -> Zeotap:
    settings = ZeotapSettings(type="zeotap", url=url, write_key=DOC_WRITE_KEY, region="EU", **kw)
    api = make_destination("zeotap", settings)
    assert isinstance(api, Zeotap)
    return api


def _batch_request() -> tuple[Zeotap, Any]:
    api = _sender()
    bodies = [orjson.dumps(_event(f"b-{i}")) for i in range(3)]
    return api, api.request(api.batch_body(bodies))


def sender_post_with_region_and_event_type() -> None:
    _, req = _batch_request()
    query = parse_qs(urlsplit(req.url).query)
    assert query == {"region": ["EU"], "eventType": ["s2s"]}


def sender_json_utf8() -> None:
    _, req = _batch_request()
    media, _, charset = req.headers["Content-Type"].partition(";")
    assert media.strip().lower() == "application/json" and charset.strip().lower() == "charset=utf-8"
    req.body.decode("utf-8")


def sender_basic_w_k() -> None:
    _, req = _batch_request()
    assert req.headers["Authorization"] == DOC_AUTHORIZATION
    assert base64.b64decode(DOC_AUTHORIZATION.removeprefix("Basic ")) == f"w_k:{DOC_WRITE_KEY}".encode()


def sender_batch_envelope() -> None:
    _, req = _batch_request()
    doc = orjson.loads(req.body)
    assert list(doc) == ["events"] and [e["event"]["eventId"] for e in doc["events"]] == ["b-0", "b-1", "b-2"]
    realtime = _sender(mode="realtime")
    one = orjson.dumps(_event("r-1"))
    assert orjson.loads(realtime.batch_body([one])) == _event("r-1")  # one object, no envelope


def sender_204_delivered() -> None:
    assert _sender().classify(204, httpx.Headers({})).verdict is Verdict.DELIVERED


def sender_reads_x_zeo_debug() -> None:
    c = _sender().classify(400, httpx.Headers({"x-zeo-debug": "events[2]: bad value"}))
    assert (c.verdict, c.reason) == (Verdict.BAD_REQUEST, "events[2]: bad value")


def sender_troubleshooting_400_is_never_a_record() -> None:
    api = _sender()
    for text in ("invalid region 'XX'", "eventType must be s2s", "Authorization header rejected", "bad Content-Type"):
        assert api.classify(400, httpx.Headers({"x-zeo-debug": text})).verdict is Verdict.REFUSED, text


def sender_20_mb() -> None:
    assert ZEOTAP_MAX_REQUEST_BYTES == 20_000_000 == _sender().max_request_bytes
    with pytest.raises(ValueError, match="20 MB"):
        _sender(batch={"max_bytes": 20_000_001})


def sender_documented_identifiers() -> None:
    # the reference config maps identifiers only to user keys of a documented kind
    raw = yaml.safe_load(EXAMPLE.read_text())
    users = [route["mapping"]["user"] for route in raw["routes"].values() if "user" in route["mapping"]]
    assert users
    for user in users:
        # identity "name" is hashed profile data (first/last name), not an identifier
        ids = [k for k, spec in user.items() if isinstance(spec, dict) and spec.get("identity") in ("id", "email", "phone")]
        assert ids
        for key in ids:
            kind = key.lower().replace("_", "").removesuffix("sha256")
            assert kind in DOCUMENTED_ID_KINDS, key


def sender_timestamps() -> None:
    when = dt.datetime(2024, 9, 5, 11, 2, 44, tzinfo=dt.UTC)
    assert format_timestamp(when, "iso") == "2024-09-05T11:02:44.000Z"
    assert format_timestamp(when, "unix") == 1725534164
    assert format_timestamp(when, "unix_ms") == 1725534164000


def sender_nce_event_only() -> None:
    sections = {"event": {"eventName": "market_offer_assignment"}, "user": {"userId": "u"}, "page": {"url": "p"}}
    assert _sender().payload(sections, nce=True) == {"event": {"eventName": "market_offer_assignment"}}


def sender_country_alpha3() -> None:
    assert _sender().settings.country_format == "alpha3"  # the samples' "ESP", "DEU"
    # the reference config fills user.country on every customer event
    raw = yaml.safe_load(EXAMPLE.read_text())
    for route in raw["routes"].values():
        if "user" in route["mapping"]:
            assert route["mapping"]["user"]["country"] == {"country": True}


def sender_plain_json_unless_configured() -> None:
    _, req = _batch_request()
    assert "Content-Encoding" not in req.headers
    assert _sender().settings.gzip is False


def sender_new_key_wait(emu: Emulator) -> None:
    settings = ZeotapSettings(type="zeotap", url=emu.zeotap_url(), write_key="brand-new-key", region="EU")
    result = probe_auth("zeotap", settings)
    assert result.status == "fail"
    assert "credentials rejected" in result.detail and "30 minutes" in result.detail
    ok = probe_auth("zeotap", ZeotapSettings(type="zeotap", url=emu.zeotap_url(), write_key=DOC_WRITE_KEY, region="EU"))
    assert ok.status == "ok" and "30 minutes" not in ok.detail


# --------------------------------------------------------------------------- the emulator's side


@dataclass(frozen=True)
class Case:
    """One request to the emulator and the status the document implies."""

    body: Any
    status: int
    headers: dict[str, str] | None = None
    query: str = "region=EU&eventType=s2s"
    raw: bytes | None = None


def _accepts(*bodies: Any) -> list[Case]:
    return [Case(b, 204) for b in bodies]


def _refuses(*bodies: Any) -> list[Case]:
    return [Case(b, 400) for b in bodies]


@dataclass(frozen=True)
class Requirement:
    name: str
    words: str  # the document's own words
    sender: Callable[..., None] | None
    emulator: list[Case] | None


REQUIREMENTS: list[Requirement] = [
    Requirement(
        "region and eventType",
        "In Params, ensure that a valid region is added, like 'EU' and the eventType is set to 's2s'.",
        sender_post_with_region_and_event_type,
        [
            Case(_event(), 204),
            Case(_event(), 400, query="region=EU"),
            Case(_event(), 400, query="region=EU&eventType=web"),
            Case(_event(), 400, query="eventType=s2s"),
        ],
    ),
    Requirement(
        "JSON in UTF-8",
        "Set the content-Type header to application/JSON and Charset to UTF-8.",
        sender_json_utf8,
        [
            Case(_event(), 204, headers={"Content-Type": "application/JSON; charset=UTF-8"}),
            Case(_event(), 400, headers={"Content-Type": "text/plain"}),
            Case(_event(), 400, headers={"Content-Type": "application/json; charset=latin-1"}),
        ],
    ),
    Requirement(
        "write key as Basic w_k",
        "Set the Authorization header to Basic base64(w_k:<your_write_key>).",
        sender_basic_w_k,
        [
            Case(_event(), 204, headers={"Authorization": DOC_AUTHORIZATION}),
            Case(_event(), 400, headers={"Authorization": "Basic " + base64.b64encode(DOC_WRITE_KEY.encode()).decode()}),
            Case(_event(), 401, headers={"Authorization": "Basic " + base64.b64encode(b"w_k:other").decode()}),
        ],
    ),
    Requirement(
        "batch envelope",
        "the events must be batched as events object with an array of events inside the object",
        sender_batch_envelope,
        [
            Case({"events": [_event("e-1"), _event("e-2")]}, 204),
            Case(_event("r-1"), 204),
            Case({"events": [_event("e-1")], "user": {}}, 400),
            Case({"events": {"event": {}}}, 400),
        ],
    ),
    Requirement(
        "204 on success",
        "The API returns a 204 No Content response if the API call is successful.",
        sender_204_delivered,
        _accepts({"events": [_event("ok")]}),
    ),
    Requirement(
        "400 with x-zeo-debug",
        "400 Bad Request: The error is published to the x-zeo-debug header.",
        sender_reads_x_zeo_debug,
        _refuses({"events": [_event("ok"), {"bogus": {}}]}),
    ),
    Requirement(
        "troubleshooting a 400",
        "ensure that a valid region is added ... Verify the endpoint URL and headers ... Validate the JSON payload",
        sender_troubleshooting_400_is_never_a_record,
        None,  # the emulator's texts for these are fed to the sender in test_emulator_request_problems_are_refusals
    ),
    Requirement(
        "20 MB",
        "When setting up batched events, ensure that the payload size does not exceed 20 MB.",
        sender_20_mb,
        None,  # at the byte boundary, plain and gzipped, in test_emulator.py (test_zeotap_20mb_limit, *_reading_*)
    ),
    Requirement(
        "at least one user id of a documented kind",
        "all data must contain at least one user ID ... email, loginID or cell phone number hashes ... "
        "first-party cookies, third-party cookies or MAIDs",
        sender_documented_identifiers,
        [
            *_accepts(
                {"user": {"email": "a" * 64, "country": "DEU"}},
                {"user": {"visitorId": "123436", "country": "DEU"}},
                {"user": {"loginID": "l-1", "country": "DEU"}},
                {"user": {"cellphone_sha256": "b" * 64, "country": "DEU"}},
                {"user": {"maid": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "country": "DEU"}},
            ),
            *_refuses(
                {"user": {"country": "DEU", "age": 35}},
                {"user": {"paid": "yes", "country": "DEU"}},
                {"event": {"eventName": "x"}, "page": {"url": "u"}},
            ),
        ],
    ),
    Requirement(
        "timestamps",
        "Use either a UNIX timestamp or a fully time-zone-qualified format according to ISO 8601 "
        "(For example, 2024-09-05T11:02:44Z, 2024-09-04T23:02:44\u221212:00, 2024-09-05T11:02:44+00:00).",
        sender_timestamps,
        [
            *_accepts(
                _event(eventTimestamp="2024-09-05T11:02:44Z"),
                _event(eventTimestamp="2024-09-04T23:02:44\u221212:00"),
                _event(eventTimestamp="2024-09-05T11:02:44+00:00"),
                _event(eventTimestamp="2024-09-05T11:02:44.000Z"),
                _event(eventTimestamp="1687113601"),
                _event(eventTimestamp=1725534164000),
            ),
            *_refuses(_event(eventTimestamp="2024-09-05T11:02:44"), _event(eventTimestamp="05/09/2024")),
        ],
    ),
    Requirement(
        "NCE events",
        "NCE payloads only require the event object within each event - user, consent, and page objects are not needed.",
        sender_nce_event_only,
        [
            Case({"events": [{"event": {"eventName": "market_offer_assignment", "eventId": "n-1"}}]}, 204),
            Case({"events": [{"event": {"eventId": "n-2", "ValidFrom": "2026-03-01"}}]}, 400),
        ],
    ),
    Requirement(
        "country on every event",
        "Zeotap cannot infer the country of the user automatically ... all data must contain the country information.",
        sender_country_alpha3,
        [Case({"user": {"userId": "u"}}, 400), Case({"user": {"userId": "u", "country": "ESP"}}, 204)],
    ),
    Requirement(
        "no compression (silent: plain JSON bodies)",
        "(the document never mentions Content-Encoding or gzip)",
        sender_plain_json_unless_configured,
        [Case(None, 400, headers={"Content-Encoding": "gzip"}, raw=gzip.compress(orjson.dumps(_event())))],
    ),
    Requirement(
        "a new write key waits 30 minutes",
        "Note that you need to wait 30 minutes before using this write key to make API calls.",
        sender_new_key_wait,
        None,  # time is not emulated: an unknown key is refused, which is what `check` explains
    ),
]

HEADERS = {"Authorization": DOC_AUTHORIZATION, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(keep_events=False)) as emulator:
        yield emulator


@pytest.mark.parametrize("req", [r for r in REQUIREMENTS if r.sender is not None], ids=lambda r: r.name)
def test_sender(req: Requirement, emu: Emulator) -> None:
    assert req.words
    check = req.sender
    assert check is not None
    if "emu" in check.__code__.co_varnames[: check.__code__.co_argcount]:
        check(emu)
    else:
        check()


@pytest.mark.parametrize(
    ("req", "case"),
    [(r, c) for r in REQUIREMENTS for c in (r.emulator or [])],
    ids=lambda x: x.name if isinstance(x, Requirement) else str(x.status),
)
def test_emulator(req: Requirement, case: Case, emu: Emulator) -> None:
    base = emu.zeotap_url().split("?")[0]
    body = case.raw if case.raw is not None else orjson.dumps(case.body)
    resp = httpx.post(f"{base}?{case.query}", content=body, headers={**HEADERS, **(case.headers or {})})
    assert resp.status_code == case.status, (req.words, resp.headers.get("x-zeo-debug"))
    if resp.status_code == 400:
        assert resp.headers["x-zeo-debug"]  # "The error is published to the x-zeo-debug header"


def test_every_requirement_is_checked_somewhere() -> None:
    for req in REQUIREMENTS:
        assert req.sender is not None or req.emulator, req.name


@pytest.mark.parametrize(
    ("query", "headers", "raw"),
    [
        ("region=XX&eventType=s2s", {}, None),
        ("region=EU", {}, None),
        ("region=EU&eventType=s2s", {"Authorization": "Basic Zm9v"}, None),
        ("region=EU&eventType=s2s", {"Authorization": "Bearer x"}, None),
        ("region=EU&eventType=s2s", {"Content-Type": "text/plain"}, None),
        ("region=EU&eventType=s2s", {"Content-Encoding": "gzip"}, gzip.compress(orjson.dumps(_event()))),
        ("region=EU&eventType=s2s", {"Content-Encoding": "br"}, None),
    ],
)
def test_emulator_request_problems_are_refusals(emu: Emulator, query: str, headers: dict[str, str], raw: bytes | None) -> None:
    """Whatever the emulator says about the request (not one event), the sender reads as a refusal
    of us, never as a bad record: the breaker holds, nothing is dead-lettered."""
    base = emu.zeotap_url().split("?")[0]
    body = raw if raw is not None else orjson.dumps({"events": [_event()]})
    resp = httpx.post(f"{base}?{query}", content=body, headers={**HEADERS, **headers})
    assert resp.status_code == 400
    verdict = _sender().classify(resp.status_code, resp.headers).verdict
    assert verdict is Verdict.REFUSED, resp.headers["x-zeo-debug"]


def test_the_example_loads() -> None:
    cfg = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": DOC_WRITE_KEY})
    (dest,) = cfg.destinations.values()
    assert dest.type == "zeotap"
    # "This is especially important if you expect QPS to exceed 200": 200 for the whole deployment
    assert dest.worker_rate_rps is not None and dest.worker_rate_rps * dest.rate_budget_workers <= 200
