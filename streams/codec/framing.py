"""The three wire framings of an Avro record and their encoders (tests, demo, bench)."""

from __future__ import annotations

import io
import struct
from typing import Any, Literal

import fastavro

Framing = Literal["auto", "confluent", "single_object", "plain"]

CONFLUENT_MAGIC = 0
SINGLE_OBJECT_MAGIC = b"\xc3\x01"


def encode_plain(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def encode_single_object(schema: Any, record: dict[str, Any], fp: bytes) -> bytes:
    return SINGLE_OBJECT_MAGIC + fp + encode_plain(schema, record)


def encode_confluent(schema: Any, record: dict[str, Any], schema_id: int) -> bytes:
    return struct.pack(">bI", CONFLUENT_MAGIC, schema_id) + encode_plain(schema, record)
