"""Avro framings, detection, schema evolution and decode errors (streams.codec)."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.codec import (
    REFUSED_ID_TTL_S,
    SINGLE_OBJECT_MAGIC,
    DecodeError,
    Decoder,
    SchemaNeeded,
    SchemaRegistryUnavailable,
    SchemaStore,
    UnknownSchemaId,
    encode_confluent,
    encode_plain,
    encode_single_object,
    load_schema_file,
    parse,
    schema_fingerprint,
)
from streams.codec.registry import registry_fetcher
from streams.dev.samples import EVENTS, SampleFactory
from tests.unit.typed_equal import same

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "avro_schemas"
PURCHASE = load_schema_file(SCHEMAS / "purchase_completed.avsc")

# a small schema and its evolutions, to test resolution precisely
READER = {
    "type": "record",
    "name": "Ev",
    "namespace": "test.events",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}
# v2: adds `extra` (the reader ignores it), lacks `note`/`tags` (the reader uses their defaults)
WRITER_EXTRA_FIELD = {
    "type": "record",
    "name": "Ev",
    "namespace": "test.events",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "extra", "type": "string"},
    ],
}
# old writer: `count` was an int (int -> long is a legal promotion)
WRITER_INT_COUNT = {
    "type": "record",
    "name": "Ev",
    "namespace": "test.events",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
# incompatible: `id` became an int
WRITER_INCOMPATIBLE = {
    "type": "record",
    "name": "Ev",
    "namespace": "test.events",
    "fields": [{"name": "id", "type": "int"}, {"name": "count", "type": "long"}],
}

READER_RECORD = {"id": "e-1", "count": 3, "note": "hi", "tags": ["a", "b"]}


def _registry(schemas: dict[int, dict[str, Any]]) -> Callable[[int], str]:
    """A fake `fetch_by_id`: JSON text of the schema, DecodeError for unknown ids (as a 404)."""
    calls: list[int] = []

    def fetch(schema_id: int) -> str:
        calls.append(schema_id)
        if schema_id not in schemas:
            raise UnknownSchemaId(f"schema id {schema_id} not found in the schema registry")
        return json.dumps(schemas[schema_id])

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_of_int_is_the_published_value() -> None:
    # Avro spec: CRC-64-AVRO of "int" is 0x7275d51a3f395c8f, written little-endian
    fp = schema_fingerprint('"int"')
    assert fp == bytes.fromhex("8f5c393f1ad57572")
    assert int.from_bytes(fp, "little") == 0x7275D51A3F395C8F
    assert len(fp) == 8


@pytest.mark.parametrize(
    "a, b, equal",
    [
        # canonical form ignores doc, default, aliases and whitespace
        ('"int"', '{"type": "int"}', True),
        (READER, {**READER, "doc": "documented"}, True),
        (READER, json.dumps(READER, indent=4), True),
        (READER, WRITER_EXTRA_FIELD, False),
        (READER, WRITER_INT_COUNT, False),
        ('"int"', '"long"', False),
    ],
)
def test_fingerprint_is_over_the_canonical_form(a: Any, b: Any, equal: bool) -> None:
    assert (schema_fingerprint(a) == schema_fingerprint(b)) is equal


@pytest.mark.parametrize("event", EVENTS)
def test_every_shipped_schema_has_a_distinct_fingerprint(event: str) -> None:
    fps = {e: schema_fingerprint(load_schema_file(SCHEMAS / f"{e}.avsc")) for e in EVENTS}
    others = {fp for e, fp in fps.items() if e != event}
    assert fps[event] not in others


# --------------------------------------------------------------------------- the three framings


def _decoder(framing: str = "auto", registry: dict[int, dict[str, Any]] | None = None) -> Decoder:
    store = SchemaStore(_registry(registry) if registry is not None else None)
    for writer in (WRITER_EXTRA_FIELD, WRITER_INT_COUNT, WRITER_INCOMPATIBLE):
        store.add(writer)
    return Decoder(READER, framing, store)  # type: ignore[arg-type]


def _encode(framing: str, schema: dict[str, Any], record: dict[str, Any], schema_id: int = 1) -> bytes:
    parsed = parse(schema)
    if framing == "confluent":
        return encode_confluent(parsed, record, schema_id)
    if framing == "single_object":
        return encode_single_object(parsed, record, schema_fingerprint(schema))
    return encode_plain(parsed, record)


@pytest.mark.parametrize("framing", ["confluent", "single_object", "plain"])
@pytest.mark.parametrize("decoder_framing", ["explicit", "auto"])
def test_each_framing_round_trips(framing: str, decoder_framing: str) -> None:
    dec = _decoder(framing if decoder_framing == "explicit" else "auto", registry={1: READER})
    data = _encode(framing, READER, READER_RECORD)
    assert dec.decode(data) == READER_RECORD


def test_confluent_header_layout() -> None:
    data = _encode("confluent", READER, READER_RECORD, schema_id=0x01020304)
    assert data[:5] == b"\x00\x01\x02\x03\x04"
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), parse(READER), None) == READER_RECORD


def test_single_object_header_layout() -> None:
    data = _encode("single_object", READER, READER_RECORD)
    assert data[:2] == b"\xc3\x01"  # the spec's marker, not the module's constant
    # the spec's CRC-64-AVRO of the canonical form, little-endian (fastavro's, as the reference)
    assert data[2:10] == bytes.fromhex(fingerprint(to_parsing_canonical_form(READER), "CRC-64-AVRO"))
    assert fastavro.schemaless_reader(io.BytesIO(data[10:]), parse(READER), None) == READER_RECORD


def test_confluent_schema_is_fetched_once_per_id() -> None:
    fetch = _registry({7: READER, 8: WRITER_EXTRA_FIELD})
    dec = Decoder(READER, "confluent", SchemaStore(fetch))
    for _ in range(3):
        assert dec.decode(_encode("confluent", READER, READER_RECORD, 7)) == READER_RECORD
        dec.decode(_encode("confluent", WRITER_EXTRA_FIELD, {"id": "x", "count": 1, "extra": "e"}, 8))
    assert fetch.calls == [7, 8]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "data, has_registry, expected",
    [
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", False, "single_object"),
        (b"\xc3\x01" + b"\x00" * 8, True, "single_object"),
        (b"\xc3\x01" + b"\x00" * 7, True, "plain"),  # too short for a fingerprint
        (b"\x00\x00\x00\x00\x01\x02", True, "confluent"),
        (b"\x00\x00\x00\x00\x01", True, "confluent"),
        (b"\x00\x00\x00\x01", True, "plain"),  # too short for a schema id
        (b"\x00\x00\x00\x00\x01\x02", False, "plain"),  # no registry: 0x00 is plain Avro
        (b"\x02a\x06", True, "plain"),
        (b"", True, "plain"),
    ],
)
def test_auto_detection(data: bytes, has_registry: bool, expected: str) -> None:
    dec = _decoder("auto", registry={} if has_registry else None)
    assert dec.detect(data) == expected


def test_auto_detects_plain_record_starting_with_zero_byte_without_registry() -> None:
    # an empty string as the first field encodes as 0x00: plain, as no registry is configured
    dec = _decoder("auto")
    rec = {**READER_RECORD, "id": ""}
    assert dec.decode(_encode("plain", READER, rec)) == rec


# --------------------------------------------------------------------------- schema evolution


@pytest.mark.parametrize("framing", ["confluent", "single_object"])
@pytest.mark.parametrize(
    "writer, written, expected",
    [
        pytest.param(
            WRITER_EXTRA_FIELD,
            {"id": "e-2", "count": 9, "extra": "ignored"},
            {"id": "e-2", "count": 9, "note": None, "tags": []},
            id="extra-field-and-missing-optional-fields",
        ),
        pytest.param(
            WRITER_INT_COUNT,
            {"id": "e-3", "count": 2**31 - 1, "note": "n"},
            {"id": "e-3", "count": 2**31 - 1, "note": "n", "tags": []},
            id="int-promoted-to-long",
        ),
    ],
)
def test_writer_schema_resolves_against_reader(
    framing: str, writer: dict[str, Any], written: dict[str, Any], expected: dict[str, Any]
) -> None:
    dec = _decoder("auto", registry={5: writer})
    got = dec.decode(_encode(framing, writer, written, schema_id=5))
    assert got == expected
    assert isinstance(got["count"], int)


@pytest.mark.parametrize("framing", ["confluent", "single_object"])
def test_incompatible_writer_is_decode_error(framing: str) -> None:
    dec = _decoder("auto", registry={6: WRITER_INCOMPATIBLE})
    with pytest.raises(DecodeError, match="invalid Avro data"):
        dec.decode(_encode(framing, WRITER_INCOMPATIBLE, {"id": 1, "count": 1}, schema_id=6))


def test_shipped_schema_evolution_with_new_optional_field() -> None:
    # a producer on a newer purchase_completed schema (extra optional field, consent field dropped)
    writer = json.loads(json.dumps(PURCHASE))
    writer["fields"] = [f for f in writer["fields"] if f["name"] != "consent"]
    writer["fields"].append({"name": "coupon", "type": ["null", "string"], "default": None})
    rec = SampleFactory(3).record("purchase_completed")
    written = {k: v for k, v in rec.items() if k != "consent"} | {"coupon": "SPL25"}
    dec = Decoder(PURCHASE, "auto", SchemaStore(_registry({42: writer})))
    got = dec.decode(encode_confluent(parse(writer), written, 42))
    assert got["consent"] is None
    assert "coupon" not in got
    assert got["order_id"] == rec["order_id"]
    assert got["occurred_at"] == dt.datetime.fromtimestamp(rec["occurred_at"] / 1000, dt.UTC)


@pytest.mark.parametrize("event", EVENTS)
def test_every_sample_round_trips_through_each_framing(event: str) -> None:
    schema = load_schema_file(SCHEMAS / f"{event}.avsc")
    rec = SampleFactory(11).record(event)
    dec = Decoder(schema, "auto", SchemaStore(_registry({3: schema})))
    decoded = [dec.decode(_encode(f, schema, rec, 3)) for f in ("confluent", "single_object", "plain")]
    assert decoded[0] == decoded[1] == decoded[2]
    assert decoded[0]["event_id"] == rec["event_id"]
    assert isinstance(decoded[0]["occurred_at"], dt.datetime)
    assert decoded[0]["occurred_at"].tzinfo is not None


# --------------------------------------------------------------------------- decode errors


def _good() -> bytes:
    return _encode("plain", READER, READER_RECORD)


@pytest.mark.parametrize(
    "framing, data, match",
    [
        ("auto", None, "tombstone"),
        ("plain", None, "tombstone"),
        ("auto", b"", "invalid Avro data"),
        ("plain", b"", "invalid Avro data"),
        ("confluent", b"", "not Confluent wire format"),
        ("confluent", b"\x00\x00\x00", "not Confluent wire format"),
        ("confluent", b"\x01\x00\x00\x00\x01" + b"\x00", "not Confluent wire format"),
        ("single_object", b"", "not Avro single-object"),
        ("single_object", b"\xc3\x01\x00", "not Avro single-object"),
        ("single_object", b"\xc3\x02" + b"\x00" * 12, "not Avro single-object"),
        ("plain", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "invalid Avro data"),
        ("plain", b"\x01", "invalid Avro data"),  # negative string length
        ("plain", b"\x02\xff\xfe", "invalid Avro data"),  # not UTF-8
        ("plain", b"not avro at all", "invalid Avro data|trailing bytes"),
        ("plain", "truncated", "invalid Avro data"),
        ("plain", "trailing", "trailing bytes"),
        ("single_object", "trailing", "trailing bytes"),
        ("auto", "truncated", "invalid Avro data"),
    ],
)
def test_bad_bytes_are_decode_errors(framing: str, data: Any, match: str) -> None:
    dec = _decoder(framing)
    if data == "truncated":
        data = _good()[:-3]
    elif data == "trailing":
        data = (_good() if framing == "plain" else _encode(framing, READER, READER_RECORD)) + b"\x00\x00"
    with pytest.raises(DecodeError, match=match):
        dec.decode(data)


@pytest.mark.parametrize("cut", range(1, 12))
def test_every_truncation_is_a_decode_error(cut: int) -> None:
    dec = _decoder("plain")
    data = _good()
    with pytest.raises(DecodeError):
        dec.decode(data[: len(data) - cut])


def test_unknown_fingerprint() -> None:
    dec = _decoder("auto")
    data = SINGLE_OBJECT_MAGIC + bytes.fromhex("0102030405060708") + encode_plain(parse(READER), READER_RECORD)
    with pytest.raises(DecodeError, match="fingerprint 0102030405060708 matches no known schema"):
        dec.decode(data)


def test_confluent_without_registry() -> None:
    dec = _decoder("confluent")
    with pytest.raises(DecodeError, match="no schema registry configured"):
        dec.decode(_encode("confluent", READER, READER_RECORD, 9))


def test_unknown_schema_id_from_fake_registry() -> None:
    dec = _decoder("auto", registry={1: READER})
    with pytest.raises(DecodeError, match="not found"):
        dec.decode(_encode("confluent", READER, READER_RECORD, 404))


@pytest.mark.parametrize(
    "schema_text",
    [
        "not json",
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "other.Referenced"}]}',
        '{"type": "nonsense"}',
    ],
)
def test_unusable_registry_schema_is_decode_error(schema_text: str) -> None:
    dec = Decoder(READER, "confluent", SchemaStore(lambda _id: schema_text))
    with pytest.raises(DecodeError, match="not a usable Avro schema"):
        dec.decode(_encode("confluent", READER, READER_RECORD, 3))


def test_registry_unavailable_propagates_from_fetcher() -> None:
    def down(_id: int) -> str:
        raise SchemaRegistryUnavailable("schema registry unreachable: ConnectError")

    dec = Decoder(READER, "auto", SchemaStore(down))
    with pytest.raises(SchemaRegistryUnavailable):
        dec.decode(_encode("confluent", READER, READER_RECORD, 3))


def test_store_without_fetch_on_miss_signals_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's store never asks the registry while decoding: a miss is SchemaNeeded, `fetch`
    caches the schema (never asked again) and remembers a refused id for REFUSED_ID_TTL_S."""
    fetch = _registry({1: READER})
    store = SchemaStore(fetch, fetch_on_miss=False)
    dec = Decoder(READER, "auto", store)
    known, unknown = _encode("confluent", READER, READER_RECORD, 1), _encode("confluent", READER, READER_RECORD, 404)
    for data, schema_id in ((known, 1), (unknown, 404)):
        with pytest.raises(SchemaNeeded) as info:
            dec.decode(data)
        assert info.value.schema_id == schema_id
    assert fetch.calls == []  # type: ignore[attr-defined]
    store.fetch(1)
    with pytest.raises(UnknownSchemaId, match="404 not found"):
        store.fetch(404)
    for _ in range(3):
        assert dec.decode(known) == READER_RECORD
        with pytest.raises(UnknownSchemaId) as refused:
            dec.decode(unknown)
        assert refused.value.reason == "unknown_schema_id"
    assert fetch.calls == [1, 404]  # type: ignore[attr-defined]
    # once the refusal expires the id is looked up again
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + REFUSED_ID_TTL_S + 1)
    with pytest.raises(SchemaNeeded):
        dec.decode(unknown)


def test_non_record_writer_is_decode_error() -> None:
    dec = Decoder(READER, "confluent", SchemaStore(lambda _id: '"string"'))
    with pytest.raises(DecodeError):
        dec.decode(struct.pack(">bI", 0, 1) + encode_plain(parse('"string"'), "x"))  # type: ignore[arg-type]


def test_fuzz_random_bytes_raise_only_decode_error() -> None:
    rng = random.Random(20240101)
    decoders = [
        _decoder("auto", registry={1: READER, 2: WRITER_EXTRA_FIELD}),
        _decoder("plain"),
        Decoder(PURCHASE, "auto", SchemaStore(_registry({1: PURCHASE}))),
    ]
    fp = schema_fingerprint(PURCHASE)
    prefixes = [b"", b"\x00\x00\x00\x00\x01", b"\x00\x00\x00\x00\x02", b"\xc3\x01" + fp, b"\xc3\x01"]
    failed = 0
    for i in range(2000):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
        data = rng.choice(prefixes) + body
        dec = decoders[i % len(decoders)]
        try:
            rec = dec.decode(data)
        except DecodeError:
            failed += 1
        else:
            assert isinstance(rec, dict)
    assert failed > 1500


def test_fuzz_mutated_records_raise_only_decode_error() -> None:
    rng = random.Random(7)
    factory = SampleFactory(5)
    dec = Decoder(PURCHASE, "plain", SchemaStore())
    good = [encode_plain(dec.reader, factory.record("purchase_completed")) for _ in range(10)]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(2000):
        data = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.5:
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            elif op < 0.75:
                del data[rng.randrange(len(data)) :]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.getrandbits(8))
            if not data:
                break
        try:
            got = dec.decode(bytes(data))
        except DecodeError:
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        # what the decoder accepts, fastavro reads as the same record, to the last byte
        buf = io.BytesIO(bytes(data))
        assert same(got, fastavro.schemaless_reader(buf, dec.reader, None)) and buf.tell() == len(data), bytes(data)
    assert outcomes["error"] > 0 and outcomes["ok"] > 0, outcomes


# --------------------------------------------------------------------------- the real registry client


class _RegistryHandler(BaseHTTPRequestHandler):
    """`GET /schemas/ids/{id}` of a Schema Registry holding `schemas`; records the paths asked for."""

    schemas: dict[int, str] = {1: json.dumps(READER)}
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        status, body = 404, {"error_code": 40403, "message": "Schema not found"}
        if len(parts) >= 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            sid = int(parts[2])
            if sid in self.schemas:
                status, body = 200, {"schema": self.schemas[sid]}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _RegistryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_registry_fetcher_returns_schema_and_decodes(registry_url: str) -> None:
    fetch = registry_fetcher(registry_url)
    assert json.loads(fetch(1)) == READER
    dec = Decoder(READER, "auto", SchemaStore(fetch))
    assert dec.decode(_encode("confluent", READER, READER_RECORD, 1)) == READER_RECORD


def test_registry_404_is_decode_error(registry_url: str) -> None:
    fetch = registry_fetcher(registry_url)
    with pytest.raises(DecodeError, match="not found"):
        fetch(999)
    dec = Decoder(READER, "auto", SchemaStore(fetch))
    with pytest.raises(DecodeError):
        dec.decode(_encode("confluent", READER, READER_RECORD, 999))


def test_registry_connection_failure_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the port is closed now: connection refused
    fetch = registry_fetcher(f"http://127.0.0.1:{port}")
    dec = Decoder(READER, "auto", SchemaStore(fetch))
    with pytest.raises(SchemaRegistryUnavailable) as info:
        dec.decode(_encode("confluent", READER, READER_RECORD, 1))
    assert not isinstance(info.value, DecodeError)
