"""Avro framing and decoding.

Three framings, chosen per route (``auto`` detects them):

* Confluent wire format: ``0x00`` + 4-byte big-endian schema id; the writer schema comes from the
  Schema Registry (cached per id);
* Avro single-object encoding: ``0xC3 0x01`` + 8-byte little-endian CRC-64-AVRO fingerprint; the
  writer schema is looked up by fingerprint among the known schema files;
* plain Avro binary written with the route's own schema.

The route's schema file is the reader schema, so evolved writer schemas resolve against it.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

Framing = Literal["auto", "confluent", "single_object", "plain"]

CONFLUENT_MAGIC = 0
SINGLE_OBJECT_MAGIC = b"\xc3\x01"


class DecodeError(Exception):
    """These bytes cannot be decoded: the record is bad (dead-letter it at stage ``decode``)."""


class SchemaRegistryUnavailable(Exception):
    """The registry could not be asked: not the record's fault, retry later (do not dead-letter)."""


def load_schema_file(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
        return loaded


def parse(schema: dict[str, Any] | str) -> Any:
    if isinstance(schema, str):
        schema = json.loads(schema)
    return fastavro.parse_schema(schema, _write_hint=False)


def _parse_for_reading(schema: dict[str, Any] | str) -> Any:
    """Like `parse`, but keeps fastavro's "already parsed" marker.

    fastavro's readers parse an unmarked schema again on *every* call (about half the decoding
    time of a purchase_completed record, see docs/performance.md); a marked one is used as is.
    Same canonical form and the same decoded values as `parse`.
    """
    if isinstance(schema, str):
        schema = json.loads(schema)
    return fastavro.parse_schema(schema)


def schema_fingerprint(schema: dict[str, Any] | str) -> bytes:
    """8-byte CRC-64-AVRO fingerprint of the schema's parsing canonical form, as single-object encoding writes it."""
    parsed = fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else schema, _write_hint=False)
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class SchemaStore:
    """Known writer schemas: by single-object fingerprint (from files) and by registry id (fetched)."""

    def __init__(self, fetch_by_id: Callable[[int], str] | None = None) -> None:
        self._by_fingerprint: dict[bytes, Any] = {}
        self._by_id: dict[int, Any] = {}
        self._fetch_by_id = fetch_by_id

    def add(self, schema: dict[str, Any] | str) -> bytes:
        fp = schema_fingerprint(schema)
        self._by_fingerprint.setdefault(fp, _parse_for_reading(schema))
        return fp

    def add_files(self, paths: Iterable[Path]) -> None:
        for p in paths:
            self.add(load_schema_file(p))

    def by_fingerprint(self, fp: bytes) -> Any:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise DecodeError(f"single-object fingerprint {fp.hex()} matches no known schema") from None

    @property
    def has_registry(self) -> bool:
        return self._fetch_by_id is not None

    def by_id(self, schema_id: int) -> Any:
        parsed = self._by_id.get(schema_id)
        if parsed is not None:
            return parsed
        if self._fetch_by_id is None:
            raise DecodeError(f"Confluent-framed record (schema id {schema_id}) but no schema registry configured")
        text = self._fetch_by_id(schema_id)  # raises DecodeError / SchemaRegistryUnavailable
        try:
            parsed = parse(text)
        except Exception as exc:  # not JSON, not Avro, or unresolved references: the record cannot be read
            detail = f"{type(exc).__name__}: {exc}"
            raise DecodeError(f"schema id {schema_id} is not a usable Avro schema: {detail}"[:300]) from None
        self._by_id[schema_id] = parsed
        return parsed


def registry_fetcher(url: str, username: str | None = None, password: str | None = None) -> Callable[[int], str]:
    """A `fetch_by_id` for SchemaStore backed by confluent-kafka's Schema Registry client."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    # fail fast: the worker itself retries with backoff (and pauses) while the registry is down
    conf: dict[str, Any] = {"url": url, "timeout": 5, "max.retries": 1, "retries.wait.ms": 200}
    if username:
        conf["basic.auth.user.info"] = f"{username}:{password or ''}"
    client = SchemaRegistryClient(conf)

    def fetch(schema_id: int) -> str:
        try:
            schema = client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(f"schema id {schema_id} not found in the schema registry") from None
            raise SchemaRegistryUnavailable(f"schema registry error {exc.http_status_code}: {exc.error_message}") from None
        except Exception as exc:  # connection errors from the HTTP client
            raise SchemaRegistryUnavailable(f"schema registry unreachable: {type(exc).__name__}") from None
        if schema.schema_type not in (None, "AVRO"):
            raise DecodeError(f"schema id {schema_id} is {schema.schema_type}, not AVRO")
        return str(schema.schema_str)

    return fetch


class Decoder:
    """Decodes one route's records into Python dicts with the route's schema as reader schema."""

    def __init__(self, reader_schema: dict[str, Any], framing: Framing, store: SchemaStore) -> None:
        self.framing = framing
        self.store = store
        self.reader = _parse_for_reading(reader_schema)
        self.reader_fp = store.add(reader_schema)
        # resolution is skipped when writer == reader (same canonical form): much faster
        self._same: set[int] = set()

    def _read(self, data: bytes | memoryview, start: int, writer: Any) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- encoding (tests, demo, bench)


def encode_plain(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def encode_single_object(schema: Any, record: dict[str, Any], fp: bytes) -> bytes:
    return SINGLE_OBJECT_MAGIC + fp + encode_plain(schema, record)


def encode_confluent(schema: Any, record: dict[str, Any], schema_id: int) -> bytes:
    return struct.pack(">bI", CONFLUENT_MAGIC, schema_id) + encode_plain(schema, record)
