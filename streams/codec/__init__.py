"""Avro framing and decoding.

Three framings, chosen per route (``auto`` detects them):

* Confluent wire format: ``0x00`` + 4-byte big-endian schema id; the writer schema comes from the
  Schema Registry (cached per id);
* Avro single-object encoding: ``0xC3 0x01`` + 8-byte little-endian CRC-64-AVRO fingerprint; the
  writer schema is looked up by fingerprint among the known schema files;
* plain Avro binary written with the route's own schema.

The route's schema file is the reader schema, so evolved writer schemas resolve against it.

The rooms: `framing` (the wire formats and their encoders), `schemas` (loading, fingerprints,
`SchemaStore`), `decoder` (`Decoder`), `compiled` (the schema-compiled reader and the block
bounds) and `errors`. The Schema Registry client (HTTP) is `streams.codec.registry`, on purpose
not exported here: what decodes (the pure pipeline) never loads it, what builds a store does.
"""

from streams.codec.compiled import ItemBounds, compile_reader, zero_width_budget
from streams.codec.decoder import Decoder
from streams.codec.errors import DecodeError, SchemaNeeded, SchemaRegistryUnavailable, TooManyItems, UnknownSchemaId
from streams.codec.framing import (
    CONFLUENT_MAGIC,
    SINGLE_OBJECT_MAGIC,
    Framing,
    encode_confluent,
    encode_plain,
    encode_single_object,
)
from streams.codec.schemas import REFUSED_ID_TTL_S, SchemaStore, load_schema_file, parse, schema_fingerprint

__all__ = [
    "CONFLUENT_MAGIC",
    "REFUSED_ID_TTL_S",
    "SINGLE_OBJECT_MAGIC",
    "DecodeError",
    "Decoder",
    "Framing",
    "ItemBounds",
    "SchemaNeeded",
    "SchemaRegistryUnavailable",
    "SchemaStore",
    "TooManyItems",
    "UnknownSchemaId",
    "compile_reader",
    "encode_confluent",
    "encode_plain",
    "encode_single_object",
    "load_schema_file",
    "parse",
    "schema_fingerprint",
    "zero_width_budget",
]
