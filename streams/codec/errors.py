"""What can go wrong reading a record: the decode errors (the record is bad: dead-lettered at stage
``decode``), the registry being unavailable (transient) and the request for a writer schema not
cached yet (a signal, not an error)."""

from __future__ import annotations

from streams.errors import RecordError, TransientError
from streams.pipeline.outcome import DECODE, TOO_MANY_ITEMS, UNDECODABLE, UNKNOWN_SCHEMA_ID


class DecodeError(RecordError):
    """These bytes cannot be decoded: the record is bad (dead-lettered at stage ``decode``)."""

    stage = DECODE
    reason = UNDECODABLE


class TooManyItems(DecodeError):
    """An array or map declares more items than the record's bytes can hold (or, for items that
    encode to zero bytes, more than `zero_width_budget` allows): refused before the work is done."""

    reason = TOO_MANY_ITEMS


class SchemaRegistryUnavailable(TransientError):
    """The registry could not be asked: not the record's fault, retry later (do not dead-letter)."""


class UnknownSchemaId(DecodeError):
    """The registry says this writer schema id does not exist (404): the record cannot be read."""

    reason = UNKNOWN_SCHEMA_ID


class SchemaNeeded(Exception):
    """The writer schema with this registry id is not cached yet, and this store does not fetch on
    a miss: the caller fetches it (`SchemaStore.fetch`, off the event loop) and decodes again.

    A request, not a failure: outside the error tree (`streams.errors`), so that no handler of
    errors can take it for one; nothing is wrong with the record or the world yet."""

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"writer schema id {schema_id} is not cached yet")
        self.schema_id = schema_id
