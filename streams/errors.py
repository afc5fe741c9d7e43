"""The bridge's errors: one tree whose branches say what happens.

* `RecordError`: this record is bad. It is dead-lettered at its `stage` with its `reason` (values
  of the catalogue in `streams.pipeline.outcome`); its message is the dead letter's detail and its
  class name the ``exception.class.name`` header.
* `TransientError`: the world is not ready (a schema registry unreachable). Hold, back off, retry:
  never dead-letter a record for it.
* `FatalError`: stop with `exit_code` (3) and this message: the bridge cannot work as configured
  (a destination refuses our credentials, Kafka unusable, dead letters not acknowledged).
* `ConfigError`: the configuration cannot be used; start-up stops with exit 2, the message names
  the file, the field and the problem.

Pure: imports nothing from the bridge, so every room can raise these. Errors whose stage and
reason never vary (`streams.codec.DecodeError`, `streams.pipeline.mapping.MappingError`) bind them
where they are defined; the others here take them when raised.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of the tree: every error the bridge raises on purpose."""


class RecordError(BridgeError):
    """This record is bad: dead-letter it (never stop the stream or hold the route for it).

    A subclass may fix `stage` and `reason` as class attributes; otherwise they are given when raised.
    """

    stage: str
    reason: str

    def __init__(self, detail: str, *, stage: str | None = None, reason: str | None = None) -> None:
        super().__init__(detail)
        if stage is not None:
            self.stage = stage
        if reason is not None:
            self.reason = reason
        if not (hasattr(self, "stage") and hasattr(self, "reason")):
            raise TypeError(f"{type(self).__name__} needs a stage and a reason")

    @property
    def detail(self) -> str:
        return str(self)

    @property
    def error_class(self) -> str:
        """The dead letter's ``exception.class.name``: the real class, never an invented name."""
        return type(self).__name__


class MissingCountry(RecordError):
    """The record has no usable country (field, phone region, IP, locale) and the route no default."""


class MissingIdentifier(RecordError):
    """None of the route's user identifiers (id, email, phone) has a usable value."""


class MissingRequiredField(RecordError):
    """The destination's event lacks a field its API requires (raised by a destination's payload)."""


class EventTooLarge(RecordError):
    """The encoded event alone is over the destination's request size limit."""


class DestinationRejected(RecordError):
    """The destination refused this event alone (a 400 or 413 after the batch was split, or a 5xx
    whenever it was in the request while other requests passed)."""


class TransientError(BridgeError):
    """The world is not ready: hold (back-pressure, pause), retry later; never dead-letter for it."""


class FatalError(BridgeError):
    """The bridge cannot go on as configured: stop with `exit_code` and this message."""

    exit_code = 3


class ConfigError(BridgeError):
    """The configuration cannot be used: start-up stops (exit 2); the message names file, field path and problem."""


__all__ = [
    "BridgeError",
    "ConfigError",
    "DestinationRejected",
    "EventTooLarge",
    "FatalError",
    "MissingCountry",
    "MissingIdentifier",
    "MissingRequiredField",
    "RecordError",
    "TransientError",
]
