"""Avro schemas: loading and parsing them, their single-object fingerprints, and `SchemaStore`, the
writer schemas known by fingerprint (from files) and by registry id (fetched through the function
it is given: the registry client is `streams.codec.registry`, so the store itself does no I/O)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.codec.errors import DecodeError, SchemaNeeded

# how long a writer schema id the registry refused (404, not Avro, unusable) stays refused before
# it is asked again: records carrying it are dead-lettered without a registry request each
REFUSED_ID_TTL_S = 60.0


def load_schema_file(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
        return loaded


def parse(schema: dict[str, Any] | str) -> Any:
    if isinstance(schema, str):
        schema = json.loads(schema)
    return fastavro.parse_schema(schema, _write_hint=False)


def parse_for_reading(schema: dict[str, Any] | str) -> Any:
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
    """Known writer schemas: by single-object fingerprint (from files) and by registry id (fetched).

    With ``fetch_on_miss=False`` decoding stays free of I/O: an id not cached raises `SchemaNeeded`
    and the caller runs `fetch` where blocking is harmless (the worker: in a thread, with backoff).
    Ids are fetched once; ids the registry refuses are remembered for `REFUSED_ID_TTL_S`."""

    def __init__(self, fetch_by_id: Callable[[int], str] | None = None, *, fetch_on_miss: bool = True) -> None:
        self._by_fingerprint: dict[bytes, Any] = {}
        self._by_id: dict[int, Any] = {}
        self._refused: dict[int, tuple[float, DecodeError]] = {}
        self._fetch_by_id = fetch_by_id
        self.fetch_on_miss = fetch_on_miss

    def add(self, schema: dict[str, Any] | str) -> bytes:
        fp = schema_fingerprint(schema)
        self._by_fingerprint.setdefault(fp, parse_for_reading(schema))
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
        """The parsed writer schema; raises DecodeError (refused id, no registry), SchemaNeeded (not
        cached, `fetch_on_miss` off) or, when fetching here, SchemaRegistryUnavailable."""
        parsed = self._by_id.get(schema_id)
        if parsed is not None:
            return parsed
        if self._fetch_by_id is None:
            raise DecodeError(f"Confluent-framed record (schema id {schema_id}) but no schema registry configured")
        refused = self._refused.get(schema_id)
        if refused is not None and time.monotonic() < refused[0]:
            raise refused[1]
        if not self.fetch_on_miss:
            raise SchemaNeeded(schema_id)
        return self.fetch(schema_id)

    def fetch(self, schema_id: int) -> Any:
        """Ask the registry for a writer schema id and cache the answer (blocking: call it off the
        event loop). Raises DecodeError when the id is refused (remembered for REFUSED_ID_TTL_S) and
        SchemaRegistryUnavailable when the registry could not answer (nothing remembered)."""
        parsed = self._by_id.get(schema_id)
        if parsed is not None:
            return parsed
        if self._fetch_by_id is None:
            raise DecodeError(f"Confluent-framed record (schema id {schema_id}) but no schema registry configured")
        try:
            text = self._fetch_by_id(schema_id)  # raises DecodeError / SchemaRegistryUnavailable
            try:
                parsed = parse(text)
            except Exception as exc:  # not JSON, not Avro, or unresolved references: the record cannot be read
                detail = f"{type(exc).__name__}: {exc}"
                raise DecodeError(f"schema id {schema_id} is not a usable Avro schema: {detail}"[:300]) from None
        except DecodeError as exc:
            self._refused[schema_id] = (time.monotonic() + REFUSED_ID_TTL_S, exc)
            raise
        self._refused.pop(schema_id, None)
        self._by_id[schema_id] = parsed
        return parsed
