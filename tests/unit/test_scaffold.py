"""`s2s-bridge scaffold`: every shipped schema scaffolds to a route that loads, compiles and sends the
sample records as the hand-written routes of examples/bridge.yaml do; odd schemas; the command line."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
import yaml

from streams.codec import parse
from streams.config import BridgeConfig, load_config
from streams.dev.samples import EVENTS, SampleFactory
from streams.dryrun import run_transform
from streams.pipeline.outcome import Payload
from streams.routes import build_pipelines
from streams.scaffold import ScaffoldOptions, scaffold_route

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "avro_schemas"
ODD = ROOT / "tests" / "fixtures" / "schemas" / "odd_event.avsc"
ENV = {"ZEOTAP_WRITE_KEY": "test-key"}
SHA256 = re.compile(r"[0-9a-f]{64}")


def _schema(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _config_with(tmp_path: Path, route_text: str, name: str = "bridge.yaml") -> BridgeConfig:
    """examples/bridge.yaml's kafka and destinations with its routes replaced by the scaffolded one."""
    raw = yaml.safe_load((ROOT / "examples" / "bridge.yaml").read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("x-")}
    raw["routes"] = yaml.safe_load(route_text)["routes"]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path, env=ENV)


def _scaffold(schema_file: Path, topic: str, **kw: Any) -> str:
    return scaffold_route(_schema(schema_file), ScaffoldOptions(topic=topic, schema_path=str(schema_file), **kw)).text


def _transform(config: BridgeConfig, route: str, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
    out, err = io.BytesIO(), io.BytesIO()
    run_transform(config, route, io.BytesIO(lines), "jsonl", out, err)
    return [orjson.loads(x) for x in out.getvalue().splitlines()], [orjson.loads(x) for x in err.getvalue().splitlines()]


# what the hand-written routes do that a scaffold cannot know, per event (compared key by key otherwise)
HAND_WRITTEN_ONLY = {
    # the consent change itself: "{consent_type}": {path: status, consent: true} and the regulation in
    # `consent`; the scaffold leaves consent_type, status and regulation in the event's properties
    "consent_updated": {"consent": {"regulation"}},
}


@pytest.mark.parametrize("event", EVENTS)
def test_every_shipped_schema_scaffolds_a_route_that_sends_like_the_hand_written_one(tmp_path: Path, event: str) -> None:
    schema_file = SCHEMAS / f"{event}.avsc"
    text = _scaffold(schema_file, event)
    config = _config_with(tmp_path, text)
    assert list(build_pipelines(config)) == [event]
    factory = SampleFactory(seed=11)
    records = [factory.record(event) for _ in range(40)]  # good records only: no bad-on-purpose kinds
    sent, not_sent = _transform(config, event, records)
    assert not_sent == [] and len(sent) == len(records)

    hand = load_config(ROOT / "examples" / "bridge.yaml", env=ENV)
    expected, hand_not_sent = _transform(hand, event, records)
    assert hand_not_sent == [] and len(expected) == len(records)

    schema_fields = {f["name"] for f in _schema(schema_file)["fields"]}
    for record, ours, theirs in zip(records, sent, expected, strict=True):
        assert ours["event"]["eventName"] == theirs["event"]["eventName"] == event
        assert ours["event"]["eventId"] == theirs["event"]["eventId"] == record["event_id"]
        assert ours["event"]["eventTimestamp"] == theirs["event"]["eventTimestamp"]
        for section in ("user", "consent", "page", "device"):
            skip = HAND_WRITTEN_ONLY.get(event, {}).get(section, set())
            if event == "consent_updated" and section == "consent":
                skip = skip | {record["consent_type"]}  # the hand-written "{consent_type}" key
            mine = {k: v for k, v in ours.get(section, {}).items() if k not in skip}
            hers = {k: v for k, v in theirs.get(section, {}).items() if k not in skip}
            assert mine == hers, (section, mine, hers)
        if event != "market_offer_assignment":
            user = ours["user"]
            assert SHA256.fullmatch(user["email_sha256"])
            assert len(user["country"]) == 3  # the destination's alpha3
            assert ours["consent"]["marketing"] is True
        # the rest is in the event's properties, under the record's own names
        placed = {"event_id", "occurred_at", "customer", "context", "consent", "page_title", "page_category"}
        for name in sorted(schema_fields - placed):
            if record.get(name) is not None:
                assert name in ours["event"], name
        # never raw personal data in the properties
        assert "customer" not in ours["event"]
        if "customer" in record:
            assert record["customer"]["email"].strip() not in json.dumps(ours)
        if event == "market_offer_assignment":
            # hand-written: OfferIDs joined, dates as dates; the scaffold keeps the list and the Avro
            # date's ISO text (what the rest field makes of a date), the same values
            assert ours["event"]["OfferIDs"] == theirs["event"]["OfferIDs"].split(",")
            assert ours["event"]["ValidFrom"] == theirs["event"]["ValidFrom"]
            assert set(ours) == {"event"}


def test_shipped_routes_place_what_the_examples_place() -> None:
    text = _scaffold(SCHEMAS / "purchase_completed.avsc", "purchase_completed")
    route = yaml.safe_load(text)["routes"]["purchase_completed"]
    hand = yaml.safe_load((ROOT / "examples" / "bridge.yaml").read_text())["routes"]["purchase_completed"]
    assert route["mapping"] == hand["mapping"]
    assert "# not placed: items (array of record Item): an array of records" in text
    nce = yaml.safe_load(_scaffold(SCHEMAS / "market_offer_assignment.avsc", "market_offer_assignment"))["routes"]
    assert nce["market_offer_assignment"]["entity"] == "nce"


def _odd_record() -> dict[str, Any]:
    return {
        "messageId": "3f1c2b9a-1111-4222-8333-444455556666",
        "event_time": 1_767_225_600_123_456,
        "created_at": 1_767_225_000_000,
        "local_seen": 1_767_225_000_000,
        "amount": __import__("decimal").Decimal("12.34"),
        "birthday": 7000,
        "status": "DONE",
        "checksum": b"\x01" * 16,
        "blob": b"secret-bytes",
        "score": 42,
        "tags": {"a": "1"},
        "lines": [{"sku": "s1", "qty": 2}],
        "contacts": [{"email": "friend@example.com"}],
        "email": {"campaign": "spring", "opened": True},
        "marketing_consent": True,
        "analytics": False,
        "account": {
            "customerId": 123,
            "emailAddress": " Anna@Example.com ",
            "mobile": "+49 30 1234567",
            "tier": "gold",
            "profile": {
                "given_name": "Anna",
                "address": {"country_code": "DE", "city": "Berlin", "billing_email": "bill@example.com", "mail": "m@example.com"},
            },
        },
        "client": {"client_ip": "85.214.132.117", "ua": "Mozilla/5.0", "language": "de-DE", "url": "https://x.example/p"},
        "previous": None,
    }


def test_odd_schema_places_by_name_and_type_and_lists_the_rest(tmp_path: Path) -> None:
    result = scaffold_route(_schema(ODD), ScaffoldOptions(topic="odd.events", schema_path=str(ODD), framing="plain"))
    text = result.text
    route = yaml.safe_load(text)["routes"]["odd_events"]
    m = route["mapping"]
    assert m["event"]["eventId"] == "messageId"
    # the better-named timestamp wins; the other one and the local one stay in properties, listed
    assert m["event"]["eventTimestamp"] == {"path": "event_time", "as": "timestamp"}
    assert m["user"]["userId"] == {"path": "account.customerId", "identity": "id"}
    assert m["user"]["email_sha256"] == {"path": "account.emailAddress", "identity": "email"}
    assert m["user"]["phone_sha256"] == {"path": "account.mobile", "identity": "phone"}
    assert "phone_sha256: {path: account.mobile, identity: phone}  # guessed from name 'mobile'" in text
    assert m["user"]["first_name_sha256"] == {"path": "account.profile.given_name", "identity": "name"}
    assert route["country"] == {
        "field": "account.profile.address.country_code",
        "phone": "account.mobile",
        "ip": "client.client_ip",
        "locale": "client.language",
        "default": None,
    }
    assert m["consent"] == {
        "marketing": {"path": "marketing_consent", "consent": True},
        "analytics": {"path": "analytics", "consent": True},
    }
    assert m["device"] == {"ipAddress": "client.client_ip", "userAgent": "client.ua", "locale": "client.language"}
    assert m["page"] == {"url": "client.url"}
    # a nested record holding placed fields is excluded whole; its other fields are listed one by one
    assert m["event"]["account_tier"] == "account.tier"
    assert m["event"]["account_profile_address_city"] == "account.profile.address.city"
    rest = m["event"]["*"]
    assert rest["from"] == "" and {"account", "client", "blob", "checksum", "contacts", "messageId", "event_time"} <= set(
        rest["exclude"]
    )
    unplaced = {u.path: u.reason for u in result.unplaced}
    assert set(unplaced) == {
        "account.profile.address.billing_email",
        "account.profile.address.mail",
        "blob",
        "checksum",
        "contacts",
        "created_at",
        "email",
        "lines",
        "local_seen",
    }
    assert "second field that looks like an e-mail" in unplaced["account.profile.address.mail"]
    assert "not a string" in unplaced["email"]  # a record named email is not an e-mail
    for u in result.unplaced:
        assert u.comment() in text

    # it loads and compiles, and a record goes through: hashed identifiers, no raw personal data
    config = _config_with(tmp_path, text)
    pipeline = build_pipelines(config)["odd_events"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parse(_schema(ODD)), _odd_record())
    outcome = pipeline.process(buf.getvalue(), "odd.events", 0, 0)
    assert isinstance(outcome, Payload), outcome
    body = orjson.loads(outcome.body)
    assert body["event"]["eventId"] == "3f1c2b9a-1111-4222-8333-444455556666"
    assert body["event"]["eventTimestamp"] == "2026-01-01T00:00:00.123Z"
    assert SHA256.fullmatch(body["user"]["email_sha256"]) and SHA256.fullmatch(body["user"]["phone_sha256"])
    assert body["user"]["userId"] == "123" and body["user"]["country"] == "DEU"
    assert body["consent"] == {"marketing": True, "analytics": False}
    event = body["event"]
    assert event["account_tier"] == "gold" and event["account_profile_address_city"] == "Berlin"
    assert event["lines"] == [{"sku": "s1", "qty": 2}] and event["tags"] == {"a": "1"} and event["score"] == 42
    assert event["amount"] == 12.34 and event["status"] == "DONE" and event["email"]["campaign"] == "spring"
    assert "created_at" in event and "birthday" in event
    raw = outcome.body.decode()
    for secret in ("Anna@Example.com", "bill@example.com", "m@example.com", "friend@example.com", "Anna", "736563726574"):
        assert secret not in raw, secret


def test_a_record_without_identifier_says_so_loudly_and_still_loads(tmp_path: Path) -> None:
    schema = {
        "type": "record",
        "name": "Reading",
        "fields": [{"name": "id", "type": "string"}, {"name": "value", "type": "double"}, {"name": "unit", "type": "string"}],
    }
    zeotap = scaffold_route(schema, ScaffoldOptions(topic="meter.readings", schema_path="r.avsc"))
    assert "# !!! NO USER IDENTIFIER FOUND" in zeotap.text
    assert "# no event timestamp" in zeotap.text
    assert "eventId: id  # guessed from name 'id'" in zeotap.text
    (tmp_path / "r.avsc").write_text(json.dumps(schema))
    config = _config_with(tmp_path, zeotap.text)
    assert config.routes["meter_readings"].entity == "nce"
    sent, not_sent = _transform(config, "meter_readings", [{"id": "r1", "value": 1.5, "unit": "kWh"}])
    assert not_sent == [] and sent == [{"event": {"eventName": "meter_readings", "eventId": "r1", "value": 1.5, "unit": "kWh"}}]
    # a destination without non-customer entities: a customer route with the warning, no country source
    other = scaffold_route(schema, ScaffoldOptions(topic="meter.readings", schema_path="r.avsc", destination_type="activation"))
    assert "entity" not in yaml.safe_load(other.text)["routes"]["meter_readings"]
    assert "# !!! the destination may refuse every event" in other.text and "# !!! NO COUNTRY SOURCE FOUND" in other.text
    _config_with(tmp_path, other.text)  # still loads


def test_two_e_mails_the_better_named_one_is_used_the_other_is_withheld() -> None:
    schema = {
        "type": "record",
        "name": "Signup",
        "fields": [
            {"name": "contact", "type": {"type": "record", "name": "Contact", "fields": [{"name": "mail", "type": "string"}]}},
            {"name": "email", "type": ["null", "string"], "default": None},
            {"name": "Email_Address", "type": ["null", "string"], "default": None},
        ],
    }
    result = scaffold_route(schema, ScaffoldOptions(topic="signups", schema_path="s.avsc", destination_type="activation"))
    m = yaml.safe_load(result.text)["routes"]["signups"]["mapping"]
    assert m["user"]["email_sha256"] == {"path": "email", "identity": "email"}
    assert {u.path for u in result.unplaced} == {"Email_Address", "contact.mail"}
    assert {"email", "Email_Address", "contact"} <= set(m["event"]["*"]["exclude"])


def test_scaffold_is_deterministic() -> None:
    schema = _schema(ODD)
    options = ScaffoldOptions(topic="odd.events", schema_path="odd.avsc")
    first = scaffold_route(schema, options)
    # the same schema with its keys in another order: the same text
    reordered = json.loads(json.dumps(schema, sort_keys=True))
    assert scaffold_route(copy.deepcopy(schema), options) == first
    assert scaffold_route(reordered, options).text == first.text


def test_names_and_paths_that_need_quoting_read_back_as_themselves(tmp_path: Path) -> None:
    schema = {
        "type": "record",
        "name": "Odd",
        "fields": [
            {"name": "on", "type": "string"},
            {"name": "null", "type": "long"},
            {"name": "customer_id", "type": "string"},
            {"name": "country", "type": "string"},
            {"name": "marketing_consent", "type": "boolean"},
        ],
    }
    (tmp_path / "o.avsc").write_text(json.dumps(schema))
    text = scaffold_route(schema, ScaffoldOptions(topic="yes", schema_path="o.avsc")).text
    route = yaml.safe_load(text)["routes"]["yes"]
    assert route["topic"] == "yes" and route["mapping"]["event"]["eventName"] == {"const": "yes"}
    config = _config_with(tmp_path, text)
    sent, not_sent = _transform(
        config, "yes", [{"on": "x", "null": 5, "customer_id": "c1", "country": "FR", "marketing_consent": True}]
    )
    assert not_sent == [] and sent[0]["event"]["on"] == "x" and sent[0]["event"]["null"] == 5


def test_not_a_record_is_a_usage_error() -> None:
    from streams.scaffold import ScaffoldError

    with pytest.raises(ScaffoldError, match="not an Avro record"):
        scaffold_route({"type": "enum", "name": "E", "symbols": ["A"]}, ScaffoldOptions(topic="t", schema_path="e.avsc"))


# ---------------------------------------------------------------------------- the real command line


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    return subprocess.run(
        [sys.executable, "-m", "streams", "scaffold", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_prints_the_route_and_writes_it_without_overwriting(tmp_path: Path) -> None:
    schema = str(SCHEMAS / "page_view.avsc")
    done = _cli("--topic", "web.page-views", "--schema", schema)
    assert done.returncode == 0, done.stderr
    route = yaml.safe_load(done.stdout)["routes"]["web_page_views"]
    assert route["topic"] == "web.page-views" and route["schema"] == schema
    assert route["mapping"]["page"]["title"] == "page_title"
    assert "review the route before use" in done.stderr

    out = tmp_path / "route.yaml"
    done = _cli("--topic", "page_view", "--schema", schema, "--output", str(out))
    assert done.returncode == 0, done.stderr
    written = out.read_text()
    # written next to a config, the schema path is relative to the output's directory
    assert yaml.safe_load(written)["routes"]["page_view"]["schema"] == os.path.relpath(schema, tmp_path)
    again = _cli("--topic", "other", "--schema", schema, "--output", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert out.read_text() == written
    forced = _cli("--topic", "other", "--schema", schema, "--output", str(out), "--force")
    assert forced.returncode == 0 and "other:" in out.read_text()


def test_cli_with_a_config_prints_a_block_to_append_that_loads(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text((ROOT / "examples" / "bridge.yaml").read_text().replace("../avro_schemas/", str(SCHEMAS) + "/"))
    (tmp_path / "schemas").mkdir()
    schema = tmp_path / "schemas" / "orders.avsc"
    schema.write_text((SCHEMAS / "purchase_completed.avsc").read_text())
    done = _cli("--topic", "orders", "--schema", str(schema), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert not done.stdout.startswith("routes:")
    block = yaml.safe_load(done.stdout)
    assert block["orders"]["schema"] == "schemas/orders.avsc" and block["orders"]["destination"] == "zeotap"
    config.write_text(config.read_text() + "\n" + done.stdout)
    assert "orders" in load_config(config, env=ENV).routes
    # the same route name again is refused; so is a destination the config does not have
    again = _cli("--topic", "orders", "--schema", str(schema), "--config", str(config))
    assert again.returncode == 2 and "already exists" in again.stderr
    wrong = _cli("--topic", "x", "--schema", str(schema), "--config", str(config), "--destination", "nope")
    assert wrong.returncode == 2 and "'nope' is not in" in wrong.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read schema file"),
        ("{not json", "is not JSON"),
        ('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "strang"}]}', "not a valid Avro schema"),
        ('"string"', "not an Avro record"),
    ],
)
def test_cli_bad_schema_file_is_exit_2(tmp_path: Path, content: str | None, message: str) -> None:
    schema = tmp_path / "bad.avsc"
    if content is not None:
        schema.write_text(content)
    done = _cli("--topic", "t", "--schema", str(schema))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_cli_needs_one_schema_source() -> None:
    both = _cli("--topic", "t", "--schema", "a.avsc", "--subject", "s")
    neither = _cli("--topic", "t")
    assert both.returncode == neither.returncode == 2
    assert "give one of --schema FILE or --subject SUBJECT" in both.stderr + neither.stderr
