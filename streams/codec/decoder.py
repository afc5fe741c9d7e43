"""`Decoder`: one route's records, in any of the framings, into Python dicts read with the route's
schema; the compiled reader where it compiles, else fastavro behind the block bounds."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streams.codec.compiled import ItemBounds, compile_reader
from streams.codec.errors import DecodeError
from streams.codec.framing import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, Framing
from streams.codec.schemas import SchemaStore, parse_for_reading


class Decoder:
    """Decodes one route's records into Python dicts with the route's schema as reader schema."""

    def __init__(self, reader_schema: dict[str, Any], framing: Framing, store: SchemaStore) -> None:
        self.framing = framing
        self.store = store
        self.reader_schema = reader_schema  # as given (the native core compiles it)
        self.reader = parse_for_reading(reader_schema)
        self.reader_fp = store.add(reader_schema)
        # resolution is skipped when writer == reader (same canonical form): much faster
        self._same: set[int] = set()
        # compiled readers per writer schema object (None: fastavro reads that writer); the writer
        # objects are held by the store (and here), so their ids stay valid
        self._compiled: dict[int, tuple[Any, Callable[[bytes, int], tuple[Any, int]] | None]] = {}
        # block-count checkers for the writers fastavro reads (None: no array or map to bound)
        self._bounds: dict[int, tuple[Any, ItemBounds | None]] = {}

    @property
    def same_as_reader(self) -> set[int]:
        """The Confluent writer schema ids seen so far whose schema is the reader's."""
        return self._same

    def _compiled_for(self, writer: Any) -> Callable[[bytes, int], tuple[Any, int]] | None:
        entry = self._compiled.get(id(writer))
        if entry is None:
            fn = compile_reader(writer, None if writer is self.reader else self.reader)
            entry = self._compiled[id(writer)] = (writer, fn)
        return entry[1]

    def _read(self, data: bytes | memoryview, start: int, writer: Any) -> dict[str, Any]:
        entry = self._compiled.get(id(writer))
        fn = entry[1] if entry is not None else self._compiled_for(writer)
        if fn is not None:
            if type(data) is not bytes:
                data = bytes(data)
            try:
                rec, end = fn(data, start)
            except DecodeError:
                raise
            except Exception as exc:  # bad bytes: index/struct/unicode/overflow errors and the like
                raise DecodeError(f"invalid Avro data: {type(exc).__name__}: {exc}"[:300]) from None
            if end != len(data):
                if end > len(data):
                    raise DecodeError("invalid Avro data: truncated record")
                raise DecodeError(f"{len(data) - end} trailing bytes after the Avro record")
            if type(rec) is not dict:
                raise DecodeError("decoded value is not a record")
            return rec
        return self._read_fastavro(data, start, writer)

    def _read_fastavro(self, data: bytes | memoryview, start: int, writer: Any) -> dict[str, Any]:
        entry = self._bounds.get(id(writer))
        if entry is None:
            entry = self._bounds[id(writer)] = (writer, ItemBounds(writer) if ItemBounds.needed(writer) else None)
        if entry[1] is not None:
            entry[1].check(bytes(data), start)
        buf = io.BytesIO(data)
        buf.seek(start)
        reader = None if writer is self.reader else self.reader
        try:
            rec = fastavro.schemaless_reader(buf, writer, reader)
        except Exception as exc:  # fastavro raises many types on garbage: all mean "bad bytes"
            raise DecodeError(f"invalid Avro data: {type(exc).__name__}: {exc}"[:300]) from None
        if buf.tell() != len(data):
            raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after the Avro record")
        if not isinstance(rec, dict):
            raise DecodeError("decoded value is not a record")
        return rec

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None:
            raise DecodeError("record has no value (tombstone)")
        framing = self.framing
        if framing == "auto":
            framing = self.detect(data)
        if framing == "confluent":
            if len(data) < 5 or data[0] != CONFLUENT_MAGIC:
                raise DecodeError("not Confluent wire format (magic byte 0 + 4-byte schema id expected)")
            (schema_id,) = struct.unpack_from(">I", data, 1)
            writer = self.store.by_id(schema_id)
            if schema_id in self._same:
                writer = self.reader
            elif to_parsing_canonical_form(writer) == to_parsing_canonical_form(self.reader):
                self._same.add(schema_id)
                writer = self.reader
            return self._read(data, 5, writer)
        if framing == "single_object":
            if len(data) < 10 or data[:2] != SINGLE_OBJECT_MAGIC:
                raise DecodeError("not Avro single-object encoding (C3 01 + 8-byte fingerprint expected)")
            fp = bytes(data[2:10])
            writer = self.reader if fp == self.reader_fp else self.store.by_fingerprint(fp)
            return self._read(data, 10, writer)
        return self._read(data, 0, self.reader)

    def detect(self, data: bytes) -> Framing:
        if len(data) >= 10 and data[:2] == SINGLE_OBJECT_MAGIC:
            return "single_object"
        if len(data) >= 5 and data[0] == CONFLUENT_MAGIC and self.store.has_registry:
            return "confluent"
        return "plain"
