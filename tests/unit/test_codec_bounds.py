"""Decoding work is bounded by the record's size (streams.codec: compiled reader and `ItemBounds`
before fastavro): an array/map block declaring more items than the bytes can hold, or zero-width
items beyond `zero_width_budget`, is a dead letter ``decode:too_many_items``, found quickly."""

from __future__ import annotations

import copy
import io
import random
import time
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.codec import (
    DecodeError,
    Decoder,
    SchemaStore,
    TooManyItems,
    compile_reader,
    encode_single_object,
    schema_fingerprint,
    zero_width_budget,
)
from streams.config import load_config
from streams.destinations import make_destination
from streams.pipeline.outcome import Rejected
from streams.pipeline.transform import RoutePipeline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _record(*fields: dict[str, Any], recursive: bool = False) -> dict[str, Any]:
    """Record R with these fields; `recursive` adds a self-reference, which the compiled reader
    does not handle (so fastavro reads it, after ItemBounds)."""
    fs = list(copy.deepcopy(fields))
    if recursive:
        fs.append({"name": "next", "type": ["null", "R"], "default": None})
    return {"type": "record", "name": "R", "fields": fs}


def _array(items: Any) -> dict[str, Any]:
    return {"name": "a", "type": {"type": "array", "items": items}}


NULL_ARRAY = _record(_array("null"))  # the schema of the finding
ZERO_WIDTH_ITEMS = {
    "null": "null",
    "empty-record": {"type": "record", "name": "Empty", "fields": []},
    "fixed-0": {"type": "fixed", "name": "F0", "size": 0},
    "record-of-nulls": {"type": "record", "name": "Nulls", "fields": [{"name": "x", "type": "null"}]},
}
FIXED_WIDTH_ITEMS = {
    "boolean": "boolean",
    "float": "float",
    "double": "double",
    "fixed-4": {"type": "fixed", "name": "F4", "size": 4},
}


def _pipeline(reader: dict[str, Any], *writers: dict[str, Any]) -> RoutePipeline:
    """The example config's purchase_completed route, reading `reader` (single-object framing)."""
    cfg = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    route = cfg.routes["purchase_completed"]
    store = SchemaStore()
    for w in writers:
        store.add(w)
    decoder = Decoder(reader, "single_object", store)
    return RoutePipeline("purchase_completed", route, make_destination("zeotap", cfg.destinations["zeotap"]), decoder)


def _framed(writer: dict[str, Any], body: bytes) -> bytes:
    return b"\xc3\x01" + schema_fingerprint(writer) + body


def _blocks(count: int, negative: bool) -> bytes:
    # a negative count is followed by the block's byte size (here a lie: the items are zero-width)
    return _zigzag(-count) + _zigzag(0) if negative else _zigzag(count)


def _assert_rejected_quickly(p: RoutePipeline, value: bytes) -> Rejected:
    t0 = time.perf_counter()
    out = p.process(value, "purchase_completed", 0, 0)
    elapsed = time.perf_counter() - t0
    assert isinstance(out, Rejected), out
    assert (out.stage, out.reason) == ("decode", "too_many_items"), out
    assert elapsed < 0.1, f"took {elapsed:.3f}s"
    return out


def test_array_of_2_31_nulls_in_a_few_bytes_is_rejected_in_well_under_a_second() -> None:
    p = _pipeline(NULL_ARRAY, NULL_ARRAY)
    value = _framed(NULL_ARRAY, _zigzag(2**31) + _zigzag(0))
    assert len(value) < 20
    out = _assert_rejected_quickly(p, value)
    assert "zero-width" in out.detail and out.error_class == "TooManyItems"


@pytest.mark.parametrize("negative", [False, True], ids=["count", "count+size"])
@pytest.mark.parametrize("recursive", [False, True], ids=["compiled", "fastavro"])
@pytest.mark.parametrize("item", ZERO_WIDTH_ITEMS.values(), ids=ZERO_WIDTH_ITEMS.keys())
def test_zero_width_items_beyond_the_budget_are_rejected(item: Any, recursive: bool, negative: bool) -> None:
    schema = _record(_array(item), recursive=recursive)
    assert (compile_reader(fastavro.parse_schema(schema)) is None) is recursive
    p = _pipeline(schema, schema)
    tail = b"\x00" if recursive else b""  # the `next` union: null
    _assert_rejected_quickly(p, _framed(schema, _blocks(2**31, negative) + _zigzag(0) + tail))
    # nested: many small blocks add up against the same budget for the whole record
    many = _framed(schema, b"".join(_blocks(1000, negative) for _ in range(30)) + _zigzag(0) + tail)
    _assert_rejected_quickly(p, many)


@pytest.mark.parametrize("recursive", [False, True], ids=["compiled", "fastavro"])
@pytest.mark.parametrize("item", FIXED_WIDTH_ITEMS.values(), ids=FIXED_WIDTH_ITEMS.keys())
def test_skipped_array_declaring_more_items_than_bytes_is_rejected(item: Any, recursive: bool) -> None:
    """Writer fields the reader does not have are skipped, without reading the items' bytes."""
    writer = _record(_array(item), {"name": "b", "type": "int"}, recursive=recursive)
    reader = _record({"name": "b", "type": "int"}, recursive=recursive)
    p = _pipeline(reader, writer)
    tail = b"\x00" if recursive else b""
    out = _assert_rejected_quickly(p, _framed(writer, _zigzag(2**31) + _zigzag(0) + b"\x02" + tail))
    assert "bytes remain" in out.detail


@pytest.mark.parametrize("recursive", [False, True], ids=["compiled", "fastavro"])
@pytest.mark.parametrize("kind", ["array-int", "map-null", "map-string"])
def test_read_blocks_over_the_remaining_bytes_are_rejected(kind: str, recursive: bool) -> None:
    field = {
        "array-int": _array("int"),
        "map-null": {"name": "a", "type": {"type": "map", "values": "null"}},
        "map-string": {"name": "a", "type": {"type": "map", "values": "string"}},
    }[kind]
    schema = _record(field, recursive=recursive)
    p = _pipeline(schema, schema)
    _assert_rejected_quickly(p, _framed(schema, _zigzag(2**40) + b"\x00" * 8))


@pytest.mark.parametrize("recursive", [False, True], ids=["compiled", "fastavro"])
@pytest.mark.parametrize("item", ZERO_WIDTH_ITEMS.values(), ids=ZERO_WIDTH_ITEMS.keys())
def test_zero_width_items_within_the_budget_decode_as_fastavro_does(item: Any, recursive: bool) -> None:
    schema = _record(_array(item), recursive=recursive)
    parsed = fastavro.parse_schema(schema)
    value = {"a": [None if item == "null" else {} if isinstance(item, dict) and item["type"] == "record" else b""] * 3}
    if isinstance(item, dict) and item["name"] == "Nulls":
        value = {"a": [{"x": None}] * 3}
    if recursive:
        value["next"] = None
    dec = Decoder(schema, "single_object", SchemaStore())
    data = encode_single_object(parsed, value, schema_fingerprint(schema))
    assert dec.decode(data) == value == fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed, None)
    compiled = compile_reader(parsed)
    if compiled is not None:
        assert compiled(data, 10) == (value, len(data))
    # the budget itself: exactly the budget passes, one more item does not
    body_len = 1 + 5 + 1 + (1 if recursive else 0)  # count (<= 5 varint bytes), terminator, `next`
    for count, ok in ((zero_width_budget(body_len) - 1000, True), (zero_width_budget(body_len) + 1, False)):
        raw = _zigzag(count) + _zigzag(0) + (b"\x00" if recursive else b"")
        if ok:
            assert len(dec.decode(b"\xc3\x01" + schema_fingerprint(schema) + raw)["a"]) == count
        else:
            with pytest.raises(TooManyItems):
                dec.decode(b"\xc3\x01" + schema_fingerprint(schema) + raw)


def test_an_array_filling_the_record_exactly_is_not_refused() -> None:
    schema = _record(_array("boolean"))
    dec = Decoder(schema, "plain", SchemaStore())
    n = 5000
    assert dec.decode(_zigzag(n) + b"\x01" * n + _zigzag(0)) == {"a": [True] * n}
    with pytest.raises(TooManyItems):
        dec.decode(_zigzag(n + 2) + b"\x01" * n + _zigzag(0))


def test_truncated_data_before_a_block_is_not_called_too_many_items() -> None:
    # a string whose length runs past the end, then an array: the record is truncated
    schema = _record({"name": "s", "type": "string"}, _array("boolean"))
    dec = Decoder(schema, "plain", SchemaStore())
    with pytest.raises(DecodeError) as info:
        dec.decode(_zigzag(50) + b"ab" + _zigzag(1) + b"\x01" + _zigzag(0))
    assert not isinstance(info.value, TooManyItems)


# a record with every kind of block the bounds touch: zero-width items (null, empty records, fixed(0),
# records of nulls), nested arrays of them, maps, and fixed-width items the reader skips or reads
ZERO_WIDTH_CORPUS_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Z",
    "fields": [
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "empties", "type": {"type": "array", "items": {"type": "record", "name": "E", "fields": []}}},
        {"name": "zeros", "type": {"type": "array", "items": {"type": "fixed", "name": "F0", "size": 0}}},
        {
            "name": "null_records",
            "type": {"type": "array", "items": {"type": "record", "name": "N", "fields": [{"name": "x", "type": "null"}]}},
        },
        {"name": "nested", "type": {"type": "array", "items": {"type": "array", "items": "null"}}},
        {"name": "null_map", "type": {"type": "map", "values": "null"}},
        {"name": "flags", "type": {"type": "array", "items": "boolean"}},
        {"name": "doubles", "type": {"type": "map", "values": "double"}},
        {"name": "tail", "type": ["null", "string"]},
    ],
}


@pytest.mark.parametrize("reader_drops", [False, True], ids=["read", "skipped"])
def test_zero_width_and_fixed_width_blocks_decode_as_fastavro_over_a_generated_corpus(reader_drops: bool) -> None:
    """Differential, 1,000 random records per case: the compiled reader (which now compiles arrays
    of zero-width items and bounds every block) and the fastavro path behind `ItemBounds` (a
    recursive copy of the schema, which the compiled reader does not compile) both read exactly
    what fastavro reads, whether the reader schema keeps the fields or skips them."""
    from tests.unit.test_codec_compiled import _named, check_pair, random_value
    from tests.unit.typed_equal import same

    writer = copy.deepcopy(ZERO_WIDTH_CORPUS_SCHEMA)
    reader = None
    if reader_drops:  # the reader keeps only `tail`: every block is skipped, and bounded when skipped
        reader = {"type": "record", "name": "Z", "fields": [{"name": "tail", "type": ["null", "string"]}]}
    assert check_pair(writer, reader, 1000, seed=11) == 1000
    recursive = copy.deepcopy(writer)
    recursive["fields"].append({"name": "next", "type": ["null", "Z"], "default": None})
    rec_reader = copy.deepcopy(reader) if reader is not None else None
    if rec_reader is not None:
        rec_reader["fields"].append({"name": "next", "type": ["null", "Z"], "default": None})
    parsed_w = fastavro.parse_schema(recursive)
    assert compile_reader(parsed_w) is None  # so the Decoder reads it with fastavro, after ItemBounds
    dec = Decoder(rec_reader or recursive, "single_object", SchemaStore())
    dec.store.add(recursive)
    rng = random.Random(12)
    named = _named(recursive)
    for _ in range(1000):
        datum = random_value(parsed_w, named, rng)
        data = encode_single_object(parsed_w, datum, schema_fingerprint(recursive))
        expected = fastavro.schemaless_reader(
            io.BytesIO(data[10:]), parsed_w, fastavro.parse_schema(rec_reader) if rec_reader else None
        )
        assert same(dec.decode(data), expected)
