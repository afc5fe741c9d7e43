"""Differential tests of the native Avro decoder and JSON writer (`streams._native`, native/src/avro.rs
and json.rs) against the Python reference: ``orjson.dumps(_json_value(Decoder.decode(data), fmt))``
with the plain framing (writer == reader).

The native side must give the same bytes whenever it answers, and must answer None whenever Python
raises; it may answer None where Python succeeds only for the documented hand-backs (decimals,
ISO timestamps before the year 1000, uuid spellings other than hex digits with hyphens/braces/urn).
Every comparison counts both directions, and the shipped schemas must be decided 100% natively.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import fastavro
import orjson
import pytest

from streams.codec import Decoder, SchemaStore, encode_plain, load_schema_file, parse
from streams.codec.compiled import compile_reader
from streams.codec.errors import DecodeError
from streams.dev.samples import SampleFactory
from streams.pipeline.mapping import _json_value, format_timestamp
from tests.unit.native_support import require_extension

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "avro_schemas"
SHIPPED = sorted(SCHEMA_DIR.glob("*.avsc"))
TS_FORMATS = ("iso", "unix", "unix_ms")
MASK64 = (1 << 64) - 1
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_MICROS = -62_135_596_800_000_000  # 0001-01-01T00:00:00
MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999


@pytest.fixture(scope="module")
def native() -> ModuleType:
    return require_extension()


# --------------------------------------------------------------------------- the comparison


_REJECTED: Any = object()


def decoded(decoder: Decoder, data: bytes) -> Any:
    """Python's record, or _REJECTED when it raises."""
    try:
        return decoder.decode(data)
    except DecodeError:
        return _REJECTED


def documented_handback(value: Any, ts: str) -> bool:
    """Whether a record Python decoded holds something the native side hands back by design."""
    if isinstance(value, dict):
        return any(documented_handback(v, ts) for v in value.values())
    if isinstance(value, list):
        return any(documented_handback(v, ts) for v in value)
    if isinstance(value, Decimal):
        return True
    return isinstance(value, dt.datetime) and ts == "iso" and value.year < 1000


class Tally:
    """Counts of one differential run; `check` asserts the rules."""

    def __init__(self) -> None:
        self.same = 0  # both decided, same bytes
        self.both_rejected = 0
        self.handed_back = 0  # Python decoded, native None, for a documented reason
        self.wrong: list[tuple[bytes, bytes | None, bytes | None]] = []  # any other outcome

    def add(self, data: bytes, ref: bytes | None, rec: Any, got: bytes | None, ts: str) -> None:
        if ref is None:
            if got is None:
                self.both_rejected += 1
            else:
                self.wrong.append((data, ref, got))  # native decided what Python rejects
        elif got == ref:
            self.same += 1
        elif got is None and documented_handback(rec, ts):
            self.handed_back += 1
        else:
            self.wrong.append((data, ref, got))

    def check(self) -> None:
        assert not self.wrong, f"{len(self.wrong)} mismatches, first: {self.wrong[:3]}"


def compare(native: ModuleType, schema: dict[str, Any], records: list[bytes], formats: tuple[str, ...] = TS_FORMATS) -> Tally:
    decoder = Decoder(schema, "plain", SchemaStore())
    text = json.dumps(schema)
    tally = Tally()
    python = [decoded(decoder, data) for data in records]
    for ts in formats:
        got = native._avro_json_batch(text, records, ts)
        for data, rec, g in zip(records, python, got, strict=True):
            ref = None if rec is _REJECTED else orjson.dumps(_json_value(rec, ts))  # type: ignore[arg-type]
            tally.add(data, ref, rec, g, ts)
    tally.check()
    return tally


# --------------------------------------------------------------------------- the shipped schemas


def shipped_records(path: Path, n: int, seed: int) -> list[bytes]:
    schema = parse(load_schema_file(path))
    factory = SampleFactory(seed)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kw: dict[str, Any] = {}
        if path.stem != "market_offer_assignment":
            kw = {
                "consent_granted": rng.choice([True, False, None]),
                "country": rng.random() < 0.8,
                "identifiers": rng.random() < 0.9,
            }
        out.append(encode_plain(schema, factory.record(path.stem, **kw)))
    return out


def test_every_shipped_schema_compiles_natively(native: ModuleType) -> None:
    assert len(SHIPPED) >= 7
    for path in SHIPPED:
        text = json.dumps(load_schema_file(path))
        assert native._avro_json_batch(text, [], "iso") == [], path.name


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_schema_records_are_identical_and_all_decided(native: ModuleType, path: Path) -> None:
    records = shipped_records(path, 3000, seed=sum(map(ord, path.stem)))
    tally = compare(native, load_schema_file(path), records)
    assert tally.same == 3 * len(records)  # 100% decided natively, every format
    assert tally.handed_back == tally.both_rejected == 0


def test_single_record_hook_matches_the_batch_hook(native: ModuleType) -> None:
    path = SCHEMA_DIR / "purchase_completed.avsc"
    text = json.dumps(load_schema_file(path))
    records = shipped_records(path, 20, seed=5)
    batch = native._avro_json_batch(text, records, "unix_ms")
    assert [native._avro_json(text, r, "unix_ms") for r in records] == batch
    assert native._avro_json(text, records[0] + b"\x00", "iso") is None
    assert native._avro_json('{"type": "nonsense"}', records[0], "iso") is None
    with pytest.raises(ValueError):
        native._avro_json(text, records[0], "rfc3339")


# --------------------------------------------------------------------------- every Avro type

EVERYTHING: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.ns",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "by", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "fx", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "fx_again", "type": "Hash"},
        {"name": "fx_full", "type": "test.ns.Hash"},
        {"name": "empty", "type": {"type": "fixed", "name": "other.Empty", "size": 0}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "e_opt", "type": ["null", "Color"]},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [
                        {"name": "sku", "type": "string"},
                        {"name": "tags", "type": {"type": "array", "items": "string"}},
                        {"name": "qty", "type": ["null", "int", "double", "string"]},
                    ],
                },
            },
        },
        {"name": "nested", "type": {"type": "array", "items": {"type": "array", "items": "Line"}}},
        {"name": "m", "type": {"type": "map", "values": ["null", "long", "string", "Line"]}},
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "empties", "type": {"type": "array", "items": {"type": "record", "name": "Nothing", "fields": []}}},
        {
            "name": "u",
            "type": [
                "null",
                "boolean",
                "int",
                "long",
                "float",
                "double",
                "bytes",
                "string",
                "Hash",
                "Color",
                {"type": "array", "items": "int"},
                {"type": "map", "values": "double"},
                "Line",
            ],
        },
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "lts_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "lts_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "ts_opt", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        {"name": "no_reader", "type": {"type": "long", "logicalType": "date"}},
        {"name": "duration", "type": {"type": "fixed", "name": "Duration", "size": 12, "logicalType": "duration"}},
        {"name": "ts_map", "type": {"type": "map", "values": {"type": "int", "logicalType": "date"}}},
        {
            "name": "sub",
            "type": {"type": "record", "name": "Sub", "namespace": "other", "fields": [{"name": "x", "type": "Empty"}]},
        },
        {"name": "dec", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}]},
        {
            "name": "dec_fixed",
            "type": [
                "null",
                {"type": "fixed", "name": "Money", "size": 6, "logicalType": "decimal", "precision": 10, "scale": 3},
            ],
        },
    ],
}

TEXT_POOL = [
    "",
    "a",
    "é",
    "日本語",
    "\U0001f600",
    '"quoted"',
    "back\\slash",
    "\x00\x1f\x7f",
    "\u2028\u2029",
    "tab\tnl\n",
    "\r\b\f",
]


def varint(n: int, pad: int = 0) -> bytes:
    """Zig-zag varint of a 64-bit int; `pad` extra continuation bytes (a longer, valid encoding)."""
    u = ((n << 1) ^ (n >> 63)) & MASK64
    out = bytearray()
    while u >= 0x80:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    if pad:
        out.append(u | 0x80)
        out.extend(b"\x80" * (pad - 1))
        out.append(0)
    else:
        out.append(u)
    return bytes(out)


class WireGen:
    """Random Avro bodies written by hand from a schema (so that values fastavro's writer refuses
    -- out-of-range timestamps, negative enum indices, repeated map keys, negative block counts,
    non-canonical varints -- are written too). With probability `bad` a value is made invalid."""

    def __init__(self, schema: dict[str, Any], rng: random.Random, bad: float) -> None:
        self.named: dict[str, Any] = {}
        self.schema = fastavro.parse_schema(schema, named_schemas=self.named, _write_hint=False)
        self.rng = rng
        self.bad = bad

    def record(self) -> bytes:
        return self.value(self.schema)

    def is_bad(self) -> bool:
        return self.rng.random() < self.bad

    def long(self, n: int) -> bytes:
        v = varint(n)
        if len(v) < 9 and self.rng.random() < 0.03:
            return varint(n, pad=self.rng.choice([1, 2, 9 - len(v)]))
        return v

    def any_int(self) -> int:
        r = self.rng
        k = r.random()
        if k < 0.3:
            return r.randint(-200, 200)
        if k < 0.5:
            return r.choice([0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31), 2**31, 2**53 + 1, 2**63 - 1, -(2**63)])
        bits = r.randrange(64)
        return r.randrange(-(1 << bits), 1 << bits)

    def text(self) -> str:
        r = self.rng
        if r.random() < 0.4:
            return r.choice(TEXT_POOL)
        chars = []
        for _ in range(r.randrange(12)):
            plane = r.random()
            if plane < 0.5:
                chars.append(chr(r.randrange(0x20, 0x7F)))
            elif plane < 0.6:
                chars.append(chr(r.randrange(0x20)))
            elif plane < 0.85:
                chars.append(chr(r.choice([r.randrange(0x80, 0xD800), r.randrange(0xE000, 0x10000)])))
            else:
                chars.append(chr(r.randrange(0x10000, 0x110000)))
        return "".join(chars)

    def string(self) -> bytes:
        if self.is_bad():
            raw = self.rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x80b", b"\xf4\x90\x80\x80"])
        else:
            raw = self.text().encode()
        return self.long(len(raw)) + raw

    def timestamp(self, per_second: int) -> int:
        r = self.rng
        lo, hi = MIN_MICROS // (1_000_000 // per_second), MAX_MICROS // (1_000_000 // per_second)
        if self.is_bad():
            return r.choice([lo - 1, hi + 1, 2**62, -(2**63), 2**63 - 1])
        k = r.random()
        if k < 0.75:  # recent
            return r.randint(631_152_000 * per_second, 2_240_524_800 * per_second)
        if k < 0.85:
            return r.choice([lo, hi, 0, -1, 1, lo + 1, hi - 1])
        return r.randint(lo, hi)

    def block_counts(self) -> list[int]:
        r = self.rng
        if r.random() < 0.2:
            return []
        return [r.randint(1, 3) for _ in range(r.randint(1, 2))]

    def blocks(self, counts: list[int], item: Any) -> bytes:
        out = bytearray()
        for c in counts:
            body = b"".join(item() for _ in range(c))
            if self.rng.random() < 0.3:  # negative count: the block's byte size follows
                out += varint(-c) + varint(len(body)) + body
            else:
                out += varint(c) + body
        return bytes(out + b"\x00")

    def logical(self, t: str, logical: str) -> bytes | None:
        """A logical type's value as the wire has it, None for a logical type without a reader."""
        r = self.rng
        if (t, logical) in (("long", "timestamp-millis"), ("long", "local-timestamp-millis")):
            return self.long(self.timestamp(1000))
        if (t, logical) in (("long", "timestamp-micros"), ("long", "local-timestamp-micros")):
            return self.long(self.timestamp(1_000_000))
        if (t, logical) == ("int", "date"):
            lo, hi = -719_162, 2_932_896
            if self.is_bad():
                return self.long(r.choice([lo - 1, hi + 1, 2**40]))
            return self.long(r.choice([lo, hi, 0, -1, r.randint(lo, hi), r.randint(0, 30_000), r.randint(0, 30_000)]))
        if (t, logical) in (("int", "time-millis"), ("long", "time-micros")):
            per = 1000 if logical == "time-millis" else 1_000_000
            day = 86_400 * per
            if self.is_bad():
                return self.long(r.choice([day, -3600 * per - 1, 2**62]))
            first_hour = -3600 * per + 1  # negative values inside the first hour still make a time
            return self.long(
                r.choice([0, -1, day - 1, first_hour, r.randrange(day), r.randrange(first_hour, 0), r.randrange(day)])
            )
        if (t, logical) == ("string", "uuid"):
            u = uuid.UUID(int=r.getrandbits(128))
            spelling = r.choice(
                [str(u), str(u).upper(), u.hex, "{" + str(u) + "}", "urn:uuid:" + str(u), "{{" + u.hex.upper() + "}"]
            )
            if self.is_bad():
                spelling = r.choice(["", "not-a-uuid", u.hex[:31], u.hex + "0", "g" * 32])
            raw = spelling.encode()
            return self.long(len(raw)) + raw
        return None

    def value(self, s: Any) -> bytes:
        r = self.rng
        if isinstance(s, str) and s in self.named:
            s = self.named[s]
        if isinstance(s, list):
            if self.is_bad():
                return r.choice([varint(len(s)), varint(-1), varint(2**40)])
            i = r.randrange(len(s))
            if isinstance(s[i], dict) and s[i].get("logicalType") == "decimal" and r.random() < 0.95:
                i = 0  # decimals are handed back: keep them rare
            return self.long(i) + self.value(s[i])
        t = s["type"] if isinstance(s, dict) else s
        logical = s.get("logicalType") if isinstance(s, dict) else None
        if logical is not None:
            encoded = self.logical(t, logical)
            if encoded is not None:
                return encoded
        if t == "null":
            return b""
        if t == "boolean":
            return bytes([r.choice([0, 1, 1, 0, r.randrange(256)])])
        if t in ("int", "long"):
            return self.long(self.any_int())
        if t == "float":
            if r.random() < 0.5:
                return struct.pack("<f", r.uniform(-1e6, 1e6))
            return r.getrandbits(32).to_bytes(4, "little")
        if t == "double":
            if r.random() < 0.3:
                return struct.pack("<d", r.choice([0.0, -0.0, 1e16, 1e-5, 1e-7, 0.1, math.nan, math.inf, -math.inf, 123.456]))
            return r.getrandbits(64).to_bytes(8, "little")
        if t == "bytes":
            raw = r.randbytes(r.randrange(10))
            return self.long(len(raw)) + raw
        if t == "string":
            return self.string()
        if t == "fixed":
            return r.randbytes(s["size"])
        if t == "enum":
            n = len(s["symbols"])
            if self.is_bad():
                return self.long(r.choice([n, -n - 1, 2**33]))
            return self.long(r.randrange(-n, n))
        if t == "array":
            return self.blocks(self.block_counts(), lambda: self.value(s["items"]))
        if t == "map":
            keys = ["k", "é", "", "\U0001f600", "dup"]

            def entry() -> bytes:
                key = r.choice(keys).encode() if r.random() < 0.7 else self.text().encode()
                return self.long(len(key)) + key + self.value(s["values"])

            return self.blocks(self.block_counts(), entry)
        if t == "record":
            return b"".join(self.value(f["type"]) for f in s["fields"])
        raise AssertionError(f"no generator for {t}")


def test_everything_schema_is_what_the_compiled_reader_reads() -> None:
    # else the reference would be fastavro's generic reader, not the compiled one
    assert compile_reader(parse(EVERYTHING)) is not None


def test_every_type_and_logical_type(native: ModuleType) -> None:
    gen = WireGen(EVERYTHING, random.Random(11), bad=0.0005)
    records = [gen.record() for _ in range(4_000)]
    tally = compare(native, EVERYTHING, records)
    decided = tally.same + tally.both_rejected
    total = 3 * len(records)
    assert tally.same > 0.6 * total, vars(tally)  # the native side decides most records itself
    assert tally.both_rejected > 0.02 * total  # and the bad values made Python raise often enough
    assert tally.handed_back > 0  # decimals and early ISO timestamps do occur, and are handed back
    assert decided + tally.handed_back == total


def test_handbacks_are_only_for_documented_reasons(native: ModuleType) -> None:
    # the same values without decimals: handed back only for ISO timestamps before the year 1000
    schema = {**EVERYTHING, "fields": [f for f in EVERYTHING["fields"] if not f["name"].startswith("dec")]}
    gen = WireGen(schema, random.Random(12), bad=0.0)
    records = [gen.record() for _ in range(3000)]
    tally = compare(native, schema, records, formats=("unix", "unix_ms"))
    assert tally.same == 2 * len(records)


def test_zero_width_items_within_and_beyond_the_budget(native: ModuleType) -> None:
    schema = {"type": "record", "name": "Z", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]}
    records = []
    for count in (1, 1024, 1031, 1032, 1033, 1034, 2000, 2**31, 2**63 - 1, -(2**63)):
        body = varint(count) + varint(0)
        records.append(body)
        records.append(varint(-count) + varint(0) + varint(0) if count > 0 else body)
        records.append(varint(count) + varint(0) + b"\x00" * 200)  # trailing bytes widen the budget
    tally = compare(native, schema, records)
    assert tally.same > 0 and tally.both_rejected > 0


def test_repeated_map_keys_keep_the_first_position_and_the_last_value(native: ModuleType) -> None:
    schema = {"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]}
    rng = random.Random(3)
    records = []
    for n in (2, 5, 16, 17, 40, 300):
        keys = [rng.choice("abcdefghijklmnopqrstuvwxyz"[: max(2, n // 3)]) for _ in range(n)]
        entries = b"".join(varint(1) + k.encode() + varint(i) for i, k in enumerate(keys))
        records.append(varint(n) + entries + varint(0))
    tally = compare(native, schema, records)
    assert tally.same == 3 * len(records)


# --------------------------------------------------------------------------- malformed bytes


def mutations(records: list[bytes], rng: random.Random, truncate: int) -> list[bytes]:
    """Every truncation of the first `truncate` records, byte flips, appended bytes, and huge or
    negative varints spliced in."""
    out: list[bytes] = []
    for data in records[:truncate]:
        out.extend(data[:i] for i in range(len(data)))
    for data in records:
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.choice([rng.randrange(256), b[i] ^ (1 << rng.randrange(8)), 0xFF, 0x80, 0x00, 0x01])
        out.append(bytes(b))
        out.append(data + rng.choice([b"\x00", b"\x02", rng.randbytes(rng.randint(1, 5))]))
        i = rng.randrange(len(data))
        huge = rng.choice(
            [varint(2**62), varint(-(2**62)), varint(2**31), b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x7f", varint(-1)]
        )
        out.append(data[:i] + huge + data[i + 1 :])
    return out


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_malformed_shipped_records(native: ModuleType, path: Path) -> None:
    rng = random.Random(len(path.stem))
    records = mutations(shipped_records(path, 400, seed=99), rng, truncate=8)
    tally = compare(native, load_schema_file(path), records, formats=("iso", "unix_ms"))
    assert tally.both_rejected > len(records)  # most of them Python rejects, and native too
    assert tally.same > 0


def test_malformed_everything_records(native: ModuleType) -> None:
    gen = WireGen(EVERYTHING, random.Random(21), bad=0.0)
    rng = random.Random(22)
    records = mutations([gen.record() for _ in range(1500)], rng, truncate=10)
    tally = compare(native, EVERYTHING, records, formats=("unix_ms",))
    assert tally.both_rejected > 0.5 * len(records)


# --------------------------------------------------------------------------- schemas refused or special


def test_schemas_the_native_decoder_refuses_are_handed_back(native: ModuleType) -> None:
    recursive = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "v", "type": "long"}, {"name": "next", "type": ["null", "Node"]}],
    }
    data = varint(1) + varint(1) + varint(2) + varint(0)
    assert Decoder(recursive, "plain", SchemaStore()).decode(data) == {"v": 1, "next": {"v": 2, "next": None}}
    assert native._avro_json(json.dumps(recursive), data, "iso") is None
    for schema in (
        {"type": "error", "name": "E", "fields": []},
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}, {"name": "a", "type": "long"}]},
        {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["null", ["long"]]}]},
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "Unknown"}]},
    ):
        with pytest.raises(ValueError):
            native._avro_json_batch(json.dumps(schema), [], "iso")


def test_a_top_level_map_is_a_dict_and_other_top_levels_are_rejected(native: ModuleType) -> None:
    m = {"type": "map", "values": "long"}
    data = varint(1) + varint(1) + b"a" + varint(5) + varint(0)
    assert compare(native, m, [data]).same == 3
    array = {"type": "array", "items": "long"}
    with pytest.raises(DecodeError):
        Decoder(array, "plain", SchemaStore()).decode(varint(0))
    assert native._avro_json(json.dumps(array), varint(0), "iso") is None
    assert native._avro_json('"long"', varint(3), "iso") is None


def test_unusual_uuid_spellings_are_handed_back(native: ModuleType) -> None:
    schema = {"type": "record", "name": "U", "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]}
    decoder = Decoder(schema, "plain", SchemaStore())
    for text in ("0x23456789abcdef0123456789abcdef", " 123456789abcdef0123456789abcdef", "0_23456789abcdef0123456789abcdef"):
        raw = text.encode()
        data = varint(len(raw)) + raw
        decoder.decode(data)  # Python accepts these spellings (int(x, 16) does)
        assert native._avro_json(json.dumps(schema), data, "iso") is None


# --------------------------------------------------------------------------- the JSON writer


def float_corpus(rng: random.Random) -> list[float]:
    values: list[float] = []
    for _ in range(150_000):  # any bit pattern: every exponent, subnormals, NaN payloads
        values.append(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
    for _ in range(60_000):  # f32 widened, as Avro float decodes
        values.append(struct.unpack("<f", rng.getrandbits(32).to_bytes(4, "little"))[0])
    for _ in range(40_000):  # short decimals of every magnitude (prices, rounded values)
        values.append(round(rng.uniform(-1, 1) * 10 ** rng.randint(-12, 20), rng.randint(0, 8)))
    for e in range(-323, 309):  # around each notation switch and power of ten
        p = 10.0**e
        values.extend([p, -p, math.nextafter(p, 0), math.nextafter(p, math.inf), p * 2.5, p * 9.999999])
    values.extend([0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308])
    values.extend(float(i) for i in range(-1000, 1000))
    values.extend(float(2**k) for k in range(-1074, 1024, 7))
    return values


def test_floats_as_orjson(native: ModuleType) -> None:
    values = float_corpus(random.Random(5))
    assert len(values) > 250_000
    wrong = [(v, native._json_float(v), orjson.dumps(v)) for v in values if native._json_float(v) != orjson.dumps(v)]
    assert not wrong, wrong[:5]


def test_strings_as_orjson(native: ModuleType) -> None:
    gen = WireGen(EVERYTHING, random.Random(6), bad=0.0)
    texts = [gen.text() for _ in range(50_000)] + [chr(c) for c in range(0x800)] + TEXT_POOL
    texts += ["\U0010ffff", "\ufeff", "\ud7ff\ue000", "a" * 10_000 + "\x01"]
    wrong = [t for t in texts if native._json_str(t) != orjson.dumps(t)]
    assert not wrong, wrong[:5]


def test_timestamps_as_format_timestamp(native: ModuleType) -> None:
    rng = random.Random(7)
    micros = [rng.randint(MIN_MICROS, MAX_MICROS) for _ in range(20_000)]
    micros += [rng.randint(-(10**15), 4 * 10**15) for _ in range(20_000)]
    micros += [MIN_MICROS, MAX_MICROS, 0, -1, 1, -999, -1000, -1001, 999, 1000, -86_400_000_000]
    year_1000 = (dt.datetime(1000, 1, 1, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(microseconds=1)
    micros += [year_1000 - 1, year_1000, year_1000 + 1]
    handed_back = 0
    for us in micros:
        when = EPOCH + dt.timedelta(microseconds=us)
        for ts in TS_FORMATS:
            got = native._json_timestamp(us, ts)
            if got is None and ts == "iso" and when.year < 1000:
                handed_back += 1
                continue
            assert got == orjson.dumps(format_timestamp(when, ts)), (us, ts)  # type: ignore[arg-type]
    assert 0 < handed_back < 0.1 * len(micros)
    assert native._json_timestamp(MAX_MICROS + 1, "unix") is None
