"""The schema-compiled Avro reader (`compile_reader`) and the block bounds (`ItemBounds`) that keep
decoding work within what a record's bytes can hold.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from typing import Any

from streams.codec.errors import DecodeError, TooManyItems

# fastavro's generic C reader interprets the schema for every value (a nullable field costs
# ~0.5 µs more than a plain one). `compile_reader` generates, once per writer/reader schema
# pair, a Python function specialised to the schemas that reads the binary directly: the same
# values as `fastavro.schemaless_reader` (same resolution rules -- fields matched by name,
# defaults, promotions, union branch choice, enum defaults -- decided at compile time with
# fastavro's own `match_schemas` / `match_types`, logical types converted with fastavro's own
# `LOGICAL_READERS`). Anything it does not compile (recursive types, aliases, unions of unions,
# resolution that fastavro would reject, ...) returns None and the Decoder keeps using fastavro
# for that schema pair (after `ItemBounds` has checked the record's block counts).
#
# Every array/map block count is bounded before its items are read or skipped: at most as many
# items as the remaining bytes can hold at the items' minimal width, and zero-width items within
# `zero_width_budget` for the whole record (TooManyItems).
#
# On malformed input it is at most stricter than fastavro (never more lenient): a truncated value,
# a negative length, a varint over 10 bytes or a negative union index are errors here, where
# fastavro may read short data or wrap the index. Tests: tests/unit/test_codec_compiled.py.

_FA_READ: Any = importlib.import_module("fastavro._read")  # no type stubs for these internals
_FA_SCHEMA: Any = importlib.import_module("fastavro._schema")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_MASK64 = (1 << 64) - 1
_unpack_float = struct.Struct("<f").unpack_from
_unpack_double = struct.Struct("<d").unpack_from


# Items that encode to zero bytes (null, an empty record, fixed of size 0, records of only such
# fields) cost nothing on the wire, so a 5-byte record can declare 2**63 of them and keep a
# decoder busy for hours. Legitimate uses are tiny; a whole record may hold at most this many of
# them: 8 per byte of the record, plus 1024 so that small records are never refused for a few.
ZERO_WIDTH_ITEMS_PER_BYTE = 8
ZERO_WIDTH_ITEMS_BASE = 1024


def zero_width_budget(record_bytes: int) -> int:
    """Zero-width array items a record of this many bytes may hold in total (all arrays, all depths)."""
    return ZERO_WIDTH_ITEMS_BASE + ZERO_WIDTH_ITEMS_PER_BYTE * record_bytes


def _too_many(count: int, min_width: int, remaining: int) -> DecodeError:
    if remaining < 0:
        return DecodeError("invalid Avro data: truncated record")
    if min_width == 0:
        return TooManyItems(f"more zero-width array items ({count} in one block) than the record's size allows")
    return TooManyItems(f"a block declares {count} items of at least {min_width} byte(s) each, but only {remaining} bytes remain")


class _Unsupported(Exception):
    """The compiler does not handle this schema feature: use fastavro (a signal inside this module)."""


class MalformedAvro(ValueError):
    """Raised by compiled readers on impossible lengths / indices; the decoder turns it (like any
    other exception of a compiled reader) into the record's DecodeError."""


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at `pos` (any length up to 10 bytes, wrapped to 64 bits like fastavro)."""
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift >= 70:
            raise MalformedAvro("varint longer than 10 bytes")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    n &= _MASK64
    return (n >> 1) ^ -(n & 1), pos


def _min_width(w: Any, named: dict[str, Any], seen: tuple[str, ...] = ()) -> int:
    """The fewest bytes a value of writer schema `w` encodes to (0: null, empty records, fixed(0))."""
    if isinstance(w, str) and w not in _PRIMITIVES:
        if w in seen:  # a type that contains itself directly has no finite value; via a union/array it costs >= 1
            return 1
        return _min_width(named.get(w, "int"), named, (*seen, w))
    t = _type_name(w)
    if t == "null":
        return 0
    if t == "fixed":
        return int(w["size"])
    if t in ("record", "error"):
        return sum(_min_width(f["type"], named, seen) for f in w["fields"])
    return _FIXED_WIDTHS.get(t, 1)


_FIXED_WIDTHS = {"float": 4, "double": 8}


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


class _ReaderCompiler:
    def __init__(self, named: dict[str, dict[str, Any]]) -> None:
        self.named = named
        # fastavro's own (C) implementations: the compiled code decides exactly as its reader does
        self.logical = _FA_READ.LOGICAL_READERS
        self.extract_logical_type = _FA_SCHEMA.extract_logical_type
        self.match_schemas = _FA_READ.match_schemas
        self.match_types = _FA_READ.match_types
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.n = 0
        self.expanding: list[str] = []

    # -- helpers ------------------------------------------------------------

    def var(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value: Any) -> str:
        name = self.var("_k")
        self.consts[name] = value
        return name

    def emit(self, ind: int, line: str) -> None:
        self.lines.append("    " * ind + line)

    def long(self, ind: int, target: str) -> None:
        self.emit(ind, "b = data[pos]")
        self.emit(ind, "if b < 128:")
        self.emit(ind + 1, "pos += 1")
        self.emit(ind + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{target}, pos = _read_long(data, pos)")

    def raw_bytes(self, ind: int, target: str, decode: bool) -> None:
        # A length past the end is not checked here: the slice comes out short, `pos` ends up
        # beyond the data (it never moves backwards: negative lengths are refused) and the caller's
        # end-of-data check turns that into an error; a later read there fails even earlier.
        n, e = self.var("n"), self.var("e")
        self.emit(ind, "b = data[pos]")
        self.emit(ind, "if not b & 0x81:")  # one-byte varint, even: a length 0..63
        self.emit(ind + 1, "pos += 1")
        self.emit(ind + 1, f"{e} = pos + (b >> 1)")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{n}, pos = _read_long(data, pos)")
        self.emit(ind + 1, f"if {n} < 0:")
        self.emit(ind + 2, "raise MalformedAvro('negative length')")
        self.emit(ind + 1, f"{e} = pos + {n}")
        self.emit(ind, f"{target} = data[pos:{e}]{'.decode()' if decode else ''}")
        self.emit(ind, f"pos = {e}")

    def resolve_named(self, w: Any, r: Any) -> tuple[Any, Any, str | None]:
        """Named-type references: the definition (fastavro's named_schemas lookups)."""
        if isinstance(w, str) and w not in _PRIMITIVES:
            if w in self.expanding:
                raise _Unsupported("recursive type")
            if w not in self.named["writer"]:
                raise _Unsupported(f"unknown type {w}")
            if r is not None and not isinstance(r, str):
                raise _Unsupported("named writer type against an inline reader type")
            return self.named["writer"][w], (self.named["reader"].get(r) if r is not None else None), w
        return w, r, None

    def min_width(self, w: Any) -> int:
        return _min_width(w, self.named["writer"])

    # -- read -----------------------------------------------------------------

    def read(self, w: Any, r: Any, ind: int, target: str) -> None:
        """Code that reads a value written with `w` as fastavro's read_data(w, r) returns it."""
        if r is not None:
            try:
                r = self.match_schemas(w, r, self.named)
            except Exception as exc:
                raise _Unsupported(f"resolution fails: {exc}") from None
        w, r, name = self.resolve_named(w, r)
        if name is not None:
            self.expanding.append(name)
            try:
                self.read(w, r, ind, target)
            finally:
                self.expanding.pop()
            return
        t = _type_name(w)
        if t == "null":
            self.emit(ind, f"{target} = None")
        elif t == "boolean":
            self.emit(ind, f"{target} = data[pos] != 0")
            self.emit(ind, "pos += 1")
        elif t in ("int", "long"):
            self.long(ind, target)
        elif t == "float":
            self.emit(ind, f"{target} = _unpack_float(data, pos)[0]")
            self.emit(ind, "pos += 4")
        elif t == "double":
            self.emit(ind, f"{target} = _unpack_double(data, pos)[0]")
            self.emit(ind, "pos += 8")
        elif t in ("string", "bytes"):
            self.raw_bytes(ind, target, decode=t == "string")
        elif t == "fixed":
            e = self.var("e")
            self.emit(ind, f"{e} = pos + {int(w['size'])}")
            self.emit(ind, f"if {e} > L:")
            self.emit(ind + 1, "raise MalformedAvro('truncated fixed')")
            self.emit(ind, f"{target} = data[pos:{e}]")
            self.emit(ind, f"pos = {e}")
        elif t == "enum":
            self.read_enum(w, r, ind, target)
        elif t == "array":
            self.read_array(w, r, ind, target)
        elif t == "map":
            self.read_map(w, r, ind, target)
        elif t == "union":
            self.read_union(w, r, ind, target)
        elif t == "record":
            self.read_record(w, r, ind, target)
        else:
            raise _Unsupported(f"type {t}")
        # logical types by the writer schema, else promotion to the reader type (fastavro's read_data)
        if isinstance(w, dict) and "logicalType" in w:
            fn = self.logical.get(self.extract_logical_type(w))
            if fn is not None:
                self.emit(ind, f"{target} = {self.const(fn)}({target}, {self.const(w)}, {self.const(r)})")
                return
        if r is not None:
            rt = _type_name(r)
            if t in ("int", "long") and rt in ("float", "double"):
                self.emit(ind, f"{target} = float({target})")
            elif t == "string" and rt == "bytes":
                self.emit(ind, f"{target} = {target}.encode()")
            elif t == "bytes" and rt == "string":
                self.emit(ind, f"{target} = {target}.decode()")

    def read_enum(self, w: dict[str, Any], r: Any, ind: int, target: str) -> None:
        symbols = list(w["symbols"])
        if r:  # fastavro: a symbol the reader lacks becomes the reader's default (when truthy)
            table = []
            for s in symbols:
                if s in r["symbols"]:
                    table.append(s)
                elif r.get("default"):
                    table.append(r.get("default"))
                else:
                    raise _Unsupported("enum symbol without reader default")
            symbols = table
        i = self.var("i")
        self.long(ind, i)
        self.emit(ind, f"{target} = {self.const(tuple(symbols))}[{i}]")  # negative wraps, as in fastavro

    def blocks(self, ind: int, count: str, item_width: int) -> None:
        """Start of an array/map block loop: `count` items follow (the block size is not needed),
        each at least `item_width` bytes; a count the record cannot hold raises TooManyItems."""
        self.long(ind, count)
        self.emit(ind, f"while {count}:")
        self.emit(ind + 1, f"if {count} < 0:")
        self.emit(ind + 2, f"{count} = -{count}")
        self.long(ind + 2, "_")
        self.bound(ind + 1, count, item_width)

    def bound(self, ind: int, count: str, item_width: int) -> None:
        if item_width:
            self.emit(ind, f"if {count} * {item_width} > L - pos:")
            self.emit(ind + 1, f"raise _too_many({count}, {item_width}, L - pos)")
        else:
            self.emit(ind, f"zb -= {count}")
            self.emit(ind, "if zb < 0:")
            self.emit(ind + 1, f"raise _too_many({count}, 0, L - pos)")

    def read_array(self, w: dict[str, Any], r: Any, ind: int, target: str) -> None:
        items = w["items"]
        count, item = self.var("c"), self.var("v")
        self.emit(ind, f"{target} = []")
        self.blocks(ind, count, self.min_width(items))
        self.emit(ind + 1, f"for _ in range({count}):")
        self.read(items, r["items"] if r else None, ind + 2, item)
        self.emit(ind + 2, f"{target}.append({item})")
        self.long(ind + 1, count)

    def read_map(self, w: dict[str, Any], r: Any, ind: int, target: str) -> None:
        count, key, item = self.var("c"), self.var("k"), self.var("v")
        self.emit(ind, f"{target} = {{}}")
        self.blocks(ind, count, 1 + self.min_width(w["values"]))  # a key is at least its length byte
        self.emit(ind + 1, f"for _ in range({count}):")
        self.raw_bytes(ind + 2, key, decode=True)
        self.read(w["values"], r["values"] if r else None, ind + 2, item)
        self.emit(ind + 2, f"{target}[{key}] = {item}")
        self.long(ind + 1, count)

    def read_union(self, w: list[Any], r: Any, ind: int, target: str) -> None:
        branches = []
        for branch in w:
            if isinstance(branch, list):
                raise _Unsupported("union in a union")
            if not r:
                branches.append((branch, None))
            elif not isinstance(r, list):
                if not self.match_types(branch, r, self.named):
                    raise _Unsupported("union branch matches no reader type")
                branches.append((branch, r))
            else:
                for rb in r:
                    if self.match_types(branch, rb, self.named):
                        branches.append((branch, rb))
                        break
                else:
                    raise _Unsupported("union branch matches no reader type")
        # dispatch on the index's (canonical, one-byte) zig-zag encoding 2*i; a longer encoding of
        # a valid index is brought to that form first, anything else matches no branch
        self.emit(ind, "b = data[pos]")
        self.emit(ind, "if b < 128:")
        self.emit(ind + 1, "pos += 1")
        self.emit(ind, "else:")
        i = self.var("i")
        self.emit(ind + 1, f"{i}, pos = _read_long(data, pos)")
        self.emit(ind + 1, f"b = 2 * {i} if 0 <= {i} < {len(branches)} else -1")
        for index, (wb, rb) in enumerate(branches):
            self.emit(ind, f"{'if' if index == 0 else 'elif'} b == {2 * index}:")
            self.read(wb, rb, ind + 1, target)
        self.emit(ind, "else:")
        self.emit(ind + 1, "raise MalformedAvro('union index out of range')")

    def read_record(self, w: dict[str, Any], r: Any, ind: int, target: str) -> None:
        keys: list[str] = []
        values: list[str] = []
        if not r:
            for f in w["fields"]:
                v = self.var("v")
                self.read(f["type"], None, ind, v)
                keys.append(f["name"])
                values.append(v)
        else:
            if any(f.get("aliases") for f in r["fields"]):
                raise _Unsupported("field aliases")
            remaining = {f["name"]: f for f in r["fields"]}
            for f in w["fields"]:
                rf = remaining.pop(f["name"], None)
                if rf is None:
                    self.skip(f["type"], ind)
                    continue
                v = self.var("v")
                self.read(f["type"], rf["type"], ind, v)
                keys.append(rf["name"])
                values.append(v)
            for name, rf in remaining.items():
                if "default" not in rf:
                    raise _Unsupported(f"no default for {name}")
                keys.append(name)
                values.append(self.const(rf["default"]))  # fastavro shares the default object too
        if len(set(keys)) != len(keys):
            raise _Unsupported("duplicate field names")
        self.emit(ind, f"{target} = {{" + ", ".join(f"{k!r}: {v}" for k, v in zip(keys, values, strict=True)) + "}")

    # -- skip (fastavro's skip_data: no decoding, no logical types) ------------

    def skip(self, w: Any, ind: int) -> None:
        w, _r, name = self.resolve_named(w, None)
        if name is not None:
            self.expanding.append(name)
            try:
                self.skip(w, ind)
            finally:
                self.expanding.pop()
            return
        t = _type_name(w)
        if t == "null":
            return
        if t == "boolean":
            self.emit(ind, "pos += 1")
        elif t in ("int", "long", "enum"):
            self.long(ind, "_")
        elif t == "float":
            self.emit(ind, "pos += 4")
        elif t == "double":
            self.emit(ind, "pos += 8")
        elif t == "fixed":
            self.emit(ind, f"pos += {int(w['size'])}")
        elif t in ("string", "bytes"):
            n = self.var("n")
            self.long(ind, n)
            self.emit(ind, f"if {n} < 0:")
            self.emit(ind + 1, "raise MalformedAvro('bad length')")
            self.emit(ind, f"pos += {n}")
        elif t in ("array", "map"):
            inner = w["items"] if t == "array" else w["values"]
            width = self.min_width(inner) + (t == "map")
            count = self.var("c")
            self.long(ind, count)
            self.emit(ind, f"while {count}:")
            self.emit(ind + 1, f"if {count} < 0:")
            size = self.var("n")
            self.long(ind + 2, size)
            self.emit(ind + 2, f"if {size} < 0:")
            self.emit(ind + 3, "raise MalformedAvro('bad block size')")
            self.emit(ind + 2, f"pos += {size}")
            self.emit(ind + 1, "else:")
            self.bound(ind + 2, count, width)
            self.emit(ind + 2, f"for _ in range({count}):")
            if t == "map":
                self.skip("string", ind + 3)
            self.skip(inner, ind + 3)
            self.emit(ind + 3, "pass")
            self.long(ind + 1, count)
        elif t == "union":
            i = self.var("i")
            self.long(ind, i)
            for index, branch in enumerate(w):
                if isinstance(branch, list):
                    raise _Unsupported("union in a union")
                self.emit(ind, f"{'if' if index == 0 else 'elif'} {i} == {index}:")
                self.skip(branch, ind + 1)
                self.emit(ind + 1, "pass")
            self.emit(ind, "else:")
            self.emit(ind + 1, "raise MalformedAvro('union index out of range')")
        elif t == "record":
            for f in w["fields"]:
                self.skip(f["type"], ind)
        else:
            raise _Unsupported(f"type {t}")

    def build(self, writer: Any, reader: Any) -> Callable[[bytes, int], tuple[Any, int]]:
        self.emit(0, "def _compiled_read(data, pos):")
        self.emit(1, "L = len(data)")
        self.emit(1, "zb = _zero_width_budget(L - pos)")
        self.read(writer, reader, 1, "result")
        self.emit(1, "return result, pos")
        source = "\n".join(self.lines) + "\n"
        namespace: dict[str, Any] = {
            "_read_long": _read_long,
            "MalformedAvro": MalformedAvro,
            "_too_many": _too_many,
            "_zero_width_budget": zero_width_budget,
            "_unpack_float": _unpack_float,
            "_unpack_double": _unpack_double,
            **self.consts,
        }
        exec(compile(source, "<avro compiled reader>", "exec"), namespace)  # noqa: S102 - our own generated code
        fn: Callable[[bytes, int], tuple[Any, int]] = namespace["_compiled_read"]
        fn.__doc__ = source  # for debugging: the generated code
        return fn


def compile_reader(writer: Any, reader: Any = None) -> Callable[[bytes, int], tuple[Any, int]] | None:
    """A function ``(data, pos) -> (value, end)`` that reads what fastavro's
    ``schemaless_reader(data[pos:], writer, reader)`` reads, or None when the schemas use
    something the compiler does not handle (then use fastavro). ``data`` must be ``bytes``."""
    if writer == reader:  # as schemaless_reader: no resolution between equal schemas
        reader = None
    try:
        named: dict[str, dict[str, Any]] = {"writer": {}, "reader": {}}
        w = _FA_SCHEMA.parse_schema(writer, named["writer"])
        r = _FA_SCHEMA.parse_schema(reader, named["reader"]) if reader else None
        return _ReaderCompiler(named).build(w, r)
    except (_Unsupported, RecursionError, KeyError, TypeError, ValueError, SyntaxError):
        return None


class ItemBounds:
    """Walks a record by its writer schema without building values, applying the compiled reader's
    block bounds (`TooManyItems`); run before fastavro, whose loops are not bounded: it reads an
    array of 2**31 nulls (and skips 2**31 booleans) from a 5-byte record, for minutes, in C."""

    def __init__(self, writer: Any) -> None:
        self.named: dict[str, Any] = {}
        self.schema = _FA_SCHEMA.parse_schema(writer, self.named)
        self._widths: dict[int, int] = {}

    @staticmethod
    def needed(writer: Any) -> bool:
        """Whether the schema has an array or map at all (else there is nothing to bound)."""
        if isinstance(writer, dict):
            return writer.get("type") in ("array", "map") or any(ItemBounds.needed(v) for v in writer.values())
        if isinstance(writer, list):
            return any(ItemBounds.needed(v) for v in writer)
        return False

    def check(self, data: bytes, pos: int) -> None:
        """Raise TooManyItems (or DecodeError) when a block count exceeds what the bytes allow."""
        self._budget = zero_width_budget(len(data) - pos)
        try:
            self._walk(data, pos, self.schema)
        except DecodeError:
            raise
        except (IndexError, RecursionError, ValueError) as exc:  # fastavro reports bad bytes its own way
            raise DecodeError(f"invalid Avro data: {type(exc).__name__}: {exc}"[:300]) from None

    def _width(self, w: Any) -> int:
        key = id(w)
        width = self._widths.get(key)
        if width is None:
            width = self._widths[key] = _min_width(w, self.named)
        return width

    def _walk(self, data: bytes, pos: int, w: Any) -> int:
        while isinstance(w, str) and w not in _PRIMITIVES:
            w = self.named[w]
        t = _type_name(w)
        if t == "null":
            return pos
        if t == "boolean":
            return pos + 1
        if t in ("int", "long", "enum"):
            return _read_long(data, pos)[1]
        if t in ("float", "double"):
            return pos + _FIXED_WIDTHS[t]
        if t == "fixed":
            return pos + int(w["size"])
        if t in ("string", "bytes"):
            n, pos = _read_long(data, pos)
            if n < 0:
                raise DecodeError("invalid Avro data: negative length")
            return pos + n
        if t in ("record", "error"):
            for f in w["fields"]:
                pos = self._walk(data, pos, f["type"])
            return pos
        if t == "union":
            i, pos = _read_long(data, pos)
            if not 0 <= i < len(w):
                raise DecodeError("invalid Avro data: union index out of range")
            return self._walk(data, pos, w[i])
        if t in ("array", "map"):
            inner = w["items"] if t == "array" else w["values"]
            width = self._width(inner) + (t == "map")
            count, pos = _read_long(data, pos)
            while count:
                if count < 0:
                    count = -count
                    _, pos = _read_long(data, pos)  # block size: the items are still walked (bounded)
                remaining = len(data) - pos
                if width:
                    if count * width > remaining:
                        raise _too_many(count, width, remaining)
                else:
                    self._budget -= count
                    if self._budget < 0:
                        raise _too_many(count, 0, remaining)
                for _ in range(count):
                    if t == "map":
                        pos = self._walk(data, pos, "string")
                    pos = self._walk(data, pos, inner)
                count, pos = _read_long(data, pos)
            return pos
        raise DecodeError(f"invalid Avro data: cannot walk type {t}")
