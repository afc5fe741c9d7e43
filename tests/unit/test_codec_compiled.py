"""The schema-compiled Avro reader (`streams.codec.compile_reader`) against fastavro.

Differential fuzzing: random valid records of every shipped schema, of evolved writer schemas
(fields added/dropped/reordered, promotions, defaults, enums) and of a schema using every Avro
type must decode to exactly what ``fastavro.schemaless_reader`` returns (same values *and* types);
on mutated bytes the compiled reader may only be stricter, never return something fastavro does not.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
import uuid
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.codec import DecodeError, Decoder, SchemaStore, compile_reader, encode_plain, load_schema_file
from tests.unit.typed_equal import same

SCHEMAS = Path(__file__).resolve().parents[2] / "avro_schemas"
SHIPPED = sorted(p.stem for p in SCHEMAS.glob("*.avsc"))
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

EVERYTHING: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "t",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "fx2", "type": "Four"},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "arr", "type": {"type": "array", "items": ["null", "long", "string"]}},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "double"}}},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": ["null", "Color"], "default": None},
                    {"name": "y", "type": {"type": "map", "values": "boolean"}},
                ],
            },
        },
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "u", "type": ["null", "int", "string", "Inner", {"type": "array", "items": "float"}]},
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "lts_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {
            "name": "fdec",
            "type": {"type": "fixed", "name": "Dec8", "size": 8, "logicalType": "decimal", "precision": 12, "scale": 3},
        },
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "unknown_logical", "type": {"type": "string", "logicalType": "no-such-type"}},
        {"name": "opt_ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": None},
    ],
}


# --------------------------------------------------------------------------- random valid values


def _named(schema: Any) -> dict[str, Any]:
    named: dict[str, Any] = {}
    fastavro.parse_schema(schema, named)
    return named


def random_value(schema: Any, named: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A random datum that fastavro's writer accepts for `schema` (parsed or not)."""
    if isinstance(schema, list):
        branch = rng.choice(schema if depth < 4 else [s for s in schema if s == "null"] or schema)
        return random_value(branch, named, rng, depth + 1)
    if isinstance(schema, str) and schema not in PRIMITIVES:
        return random_value(named[schema], named, rng, depth)
    t = schema if isinstance(schema, str) else schema["type"]
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "timestamp-millis":
        return rng.choice([rng.randint(-(2**40), 2**42), 0, -1])
    if logical in ("timestamp-micros", "local-timestamp-micros"):
        return rng.randint(-(2**50), 2**52)
    if logical == "local-timestamp-millis":
        return rng.randint(-(2**40), 2**42)
    if logical == "date":
        return rng.randint(-700_000, 2_900_000)
    if logical == "time-millis":
        return rng.randint(0, 86_400_000 - 1)
    if logical == "time-micros":
        return rng.randint(0, 86_400_000_000 - 1)
    if logical == "decimal":
        scale = schema.get("scale", 0)
        return Decimal(rng.randint(-(10 ** (schema["precision"] - 1)), 10 ** (schema["precision"] - 1))).scaleb(-scale)
    if logical == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if t == "null":
        return None
    if t == "boolean":
        return rng.random() < 0.5
    if t == "int":
        return rng.choice([0, 1, -1, 63, 64, -65, rng.randint(-(2**31), 2**31 - 1)])
    if t == "long":
        return rng.choice([0, -1, 2**31, rng.randint(-(2**63), 2**63 - 1), rng.randint(-1000, 1000)])
    if t in ("float", "double"):
        return rng.choice([0.0, -1.5, 1e300 if t == "double" else 3.0e38, rng.uniform(-1e6, 1e6), float("inf")])
    if t == "string":
        alphabet = "abcXYZ019 @.+-_éü€😀"
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 20, 70, 200])))
    if t == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 8, 100])))
    if t == "fixed":
        return bytes(rng.getrandbits(8) for _ in range(schema["size"]))
    if t == "enum":
        return rng.choice(schema["symbols"])
    if t == "array":
        return [
            random_value(schema["items"], named, rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 70]) if depth < 3 else 0)
        ]
    if t == "map":
        n = rng.choice([0, 1, 4]) if depth < 3 else 0
        return {f"k{rng.randint(0, 99)}-{i}": random_value(schema["values"], named, rng, depth + 1) for i in range(n)}
    if t in ("record", "error"):
        return {f["name"]: random_value(f["type"], named, rng, depth + 1) for f in schema["fields"]}
    raise AssertionError(f"no generator for {schema!r}")


def fastavro_read(data: bytes, writer: Any, reader: Any = None) -> Any:
    w = fastavro.parse_schema(writer)
    r = fastavro.parse_schema(reader) if reader is not None else None
    return fastavro.schemaless_reader(io.BytesIO(data), w, r)


def check_pair(writer: Any, reader: Any, n: int, seed: int) -> int:
    """n random records written with `writer`, read with `reader`: compiled == fastavro; returns n."""
    w = fastavro.parse_schema(writer)
    r = fastavro.parse_schema(reader) if reader is not None else None
    fn = compile_reader(w, r)
    assert fn is not None, "schema pair did not compile"
    named = _named(writer)
    rng = random.Random(seed)
    for _ in range(n):
        datum = random_value(w, named, rng)
        data = encode_plain(fastavro.parse_schema(writer, _write_hint=False), datum)
        expected = fastavro_read(data, writer, reader)
        got, end = fn(data, 0)
        assert end == len(data)
        assert same(got, expected), (got, expected)
    return n


# --------------------------------------------------------------------------- valid records


@pytest.mark.parametrize("event", SHIPPED)
def test_every_shipped_schema_compiles_and_matches_fastavro(event: str) -> None:
    schema = load_schema_file(SCHEMAS / f"{event}.avsc")
    # a seed per schema that is the same in every run (str hashes change with PYTHONHASHSEED)
    check_pair(schema, None, 300, seed=zlib.crc32(event.encode()) % 1000)


@pytest.mark.parametrize("event", SHIPPED)
def test_sample_records_decode_as_with_fastavro(event: str) -> None:
    from streams.dev.samples import SampleFactory

    schema = load_schema_file(SCHEMAS / f"{event}.avsc")
    dec = Decoder(schema, "plain", SchemaStore())
    assert dec._compiled_for(dec.reader) is not None
    factory = SampleFactory(11)
    for _ in range(200):
        data = encode_plain(dec.reader, factory.record(event))
        assert same(dec.decode(data), dec._read_fastavro(data, 0, dec.reader))


def test_every_avro_type_matches_fastavro() -> None:
    check_pair(EVERYTHING, None, 400, seed=1)


def _evolutions(schema: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """Writer schemas a producer might use against `schema` as reader."""
    out = []
    # 1. optional fields dropped by the writer (the reader fills in the defaults)
    w = copy.deepcopy(schema)
    w["fields"] = [f for f in w["fields"] if "default" not in f or rng.random() < 0.3]
    out.append(w)
    # 2. extra writer fields of every kind (the reader skips them), fields reordered
    w = copy.deepcopy(schema)
    extra = copy.deepcopy([f for f in EVERYTHING["fields"] if f["name"] not in ("fx2", "inners", "u", "x")])
    for f in extra:
        f["name"] = "extra_" + f["name"]
    # named types of EVERYTHING are defined inline in the first field using them: keep them first
    w["fields"] = [*extra, *w["fields"]]
    body = w["fields"][len(extra) :]
    rng.shuffle(body)
    w["fields"][len(extra) :] = body
    out.append(w)
    # 3. narrower writer types the reader promotes: int -> long/float/double, long -> double, float -> double
    w = copy.deepcopy(schema)
    changed = False
    for f in w["fields"]:
        if f["type"] in ("long", "double"):
            f["type"] = "int"
            changed = True
        elif f["type"] == ["null", "double"]:
            f["type"] = ["null", "int"]
            changed = True
    if changed:
        out.append(w)
    # 4. a non-union writer type against a nullable reader field
    w = copy.deepcopy(schema)
    for f in w["fields"]:
        if isinstance(f["type"], list) and len(f["type"]) == 2 and f["type"][0] == "null" and isinstance(f["type"][1], str):
            f["type"] = f["type"][1]
            f.pop("default", None)
    out.append(w)
    return out


@pytest.mark.parametrize("event", SHIPPED)
def test_evolved_writer_schemas_resolve_as_with_fastavro(event: str) -> None:
    reader = load_schema_file(SCHEMAS / f"{event}.avsc")
    rng = random.Random(event)
    for i, writer in enumerate(_evolutions(reader, rng)):
        check_pair(writer, reader, 100, seed=i)


def test_promotions_enums_and_defaults_resolve_as_with_fastavro() -> None:
    writer = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "int"},
            {"name": "b", "type": "long"},
            {"name": "c", "type": "float"},
            {"name": "d", "type": "string"},
            {"name": "e", "type": "bytes"},
            {"name": "f", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C", "D"]}},
            {"name": "g", "type": ["null", "int", "string"]},
            {"name": "h", "type": {"type": "array", "items": "int"}},
            {"name": "i", "type": {"type": "map", "values": "long"}},
            {"name": "j", "type": ["double", "int"]},
            {"name": "gone", "type": {"type": "record", "name": "Gone", "fields": [{"name": "z", "type": "string"}]}},
        ],
    }
    reader = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "j", "type": ["double", "int"]},
            {"name": "a", "type": "double"},
            {"name": "b", "type": "float"},
            {"name": "c", "type": "double"},
            {"name": "d", "type": "bytes"},
            {"name": "e", "type": "string"},
            {"name": "f", "type": {"type": "enum", "name": "E", "symbols": ["B", "A", "Z"], "default": "Z"}},
            {"name": "g", "type": ["null", "double", "string"]},
            {"name": "h", "type": {"type": "array", "items": "double"}},
            {"name": "i", "type": {"type": "map", "values": "double"}},
            {"name": "new_list", "type": {"type": "array", "items": "int"}, "default": [1, 2]},
            {
                "name": "new_rec",
                "type": {"type": "record", "name": "N", "fields": [{"name": "q", "type": "int"}]},
                "default": {"q": 3},
            },
            {"name": "new_opt", "type": ["null", "string"], "default": None},
        ],
    }
    writer["fields"][4]["type"] = "bytes"
    # bytes -> string needs valid UTF-8: write only ASCII bytes there
    fn = compile_reader(fastavro.parse_schema(writer), fastavro.parse_schema(reader))
    assert fn is not None
    named = _named(writer)
    rng = random.Random(3)
    for _ in range(300):
        datum = random_value(fastavro.parse_schema(writer), named, rng)
        datum["e"] = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 9)))
        data = encode_plain(fastavro.parse_schema(writer, _write_hint=False), datum)
        got, end = fn(data, 0)
        assert end == len(data)
        assert same(got, fastavro_read(data, writer, reader))


@pytest.mark.parametrize(
    "schema",
    [
        # (arrays of zero-width items compile since the item bounds: tests/unit/test_codec_bounds.py)
        pytest.param({"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}, id="recursive"),
    ],
)
def test_unsupported_schemas_fall_back_to_fastavro(schema: dict[str, Any]) -> None:
    assert compile_reader(fastavro.parse_schema(schema)) is None
    dec = Decoder(schema, "plain", SchemaStore())
    named = _named(schema)
    rng = random.Random(0)
    for _ in range(50):
        datum = random_value(dec.reader, named, rng)
        data = encode_plain(dec.reader, datum)
        assert dec.decode(data) == fastavro_read(data, schema)


def test_resolution_fastavro_rejects_falls_back_with_the_same_error() -> None:
    writer = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    reader = {"type": "record", "name": "R", "fields": [{"name": "b", "type": "string"}]}  # no default
    assert compile_reader(fastavro.parse_schema(writer), fastavro.parse_schema(reader)) is None


def test_memoryview_input() -> None:
    dec = Decoder(EVERYTHING, "plain", SchemaStore())
    datum = random_value(dec.reader, _named(EVERYTHING), random.Random(5))
    data = encode_plain(dec.reader, datum)
    assert same(dec.decode(memoryview(data)), dec.decode(data))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bad bytes


def _mutations(good: list[bytes], rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.5 and data:
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            elif op < 0.75 and data:
                del data[rng.randrange(len(data)) :]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.getrandbits(8))
        out.append(bytes(data))
    return out


@pytest.mark.parametrize("schema_name", [*SHIPPED, "everything"])
def test_mutated_bytes_never_more_lenient_than_fastavro(schema_name: str) -> None:
    schema = EVERYTHING if schema_name == "everything" else load_schema_file(SCHEMAS / f"{schema_name}.avsc")
    parsed = fastavro.parse_schema(schema)
    fn = compile_reader(parsed)
    assert fn is not None
    named = _named(schema)
    rng = random.Random(schema_name)
    good = [encode_plain(fastavro.parse_schema(schema, _write_hint=False), random_value(parsed, named, rng)) for _ in range(20)]
    dec = Decoder(schema, "plain", SchemaStore())
    agree = stricter = 0
    for data in _mutations(good, rng, 1500):
        try:
            buf = io.BytesIO(data)
            expected: Any = fastavro.schemaless_reader(buf, parsed, None)
            if buf.tell() != len(data):
                expected = "trailing"
        except Exception:
            expected = "error"
        try:
            got, end = fn(data, 0)
            if end != len(data):
                got = "trailing" if end < len(data) else "error"
        except Exception:
            got = "error"
        if got == "error" and expected != "error":
            stricter += 1  # fastavro read short data (or wrapped an index) where we refuse
            continue
        assert same(got, expected) if not isinstance(got, str) else got == expected, (data, got, expected)
        agree += 1
        # and through the Decoder: a DecodeError or a record, nothing else
        with contextlib.suppress(DecodeError):
            dec.decode(data)
    assert agree > 1000


def test_random_bytes_through_compiled_decoder_are_decode_errors() -> None:
    """Random bytes: the compiled reader (counted: it is the one `decode` runs) refuses at least what
    fastavro refuses, with a DecodeError, and what it accepts fastavro reads the same."""
    rng = random.Random(99)
    dec = Decoder(EVERYTHING, "plain", SchemaStore())
    compiled = dec._compiled_for(dec.reader)
    assert compiled is not None
    calls = 0

    def counted(data: bytes, start: int) -> tuple[Any, int]:
        nonlocal calls
        calls += 1
        return compiled(data, start)

    dec._compiled[id(dec.reader)] = (dec.reader, counted)
    parsed = fastavro.parse_schema(EVERYTHING)
    n = 3000
    rejected = fastavro_rejected = 0
    for _ in range(n):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120)))
        try:
            buf = io.BytesIO(data)
            expected: Any = fastavro.schemaless_reader(buf, parsed, None)
            if buf.tell() != len(data):
                expected = None  # trailing bytes: not a record
        except Exception:
            expected = None
        fastavro_rejected += expected is None
        try:
            got = dec.decode(data)
        except DecodeError:
            rejected += 1
            continue
        assert expected is not None and same(got, expected), (data, got, expected)
    assert calls == n
    assert rejected >= fastavro_rejected > 0.9 * n, (rejected, fastavro_rejected)


def test_decode_error_messages() -> None:
    dec = Decoder(json.loads((SCHEMAS / "page_view.avsc").read_text()), "plain", SchemaStore())
    with pytest.raises(DecodeError, match="invalid Avro data"):
        dec.decode(b"\x02")
    with pytest.raises(DecodeError, match="invalid Avro data"):
        dec.decode(b"\x01")
