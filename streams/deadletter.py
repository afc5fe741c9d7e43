"""Dead letters: the original record, byte for byte, plus headers that say where it came from and why.

Header names follow Kafka Connect's (``__connect.errors.*``) where the meaning is the same, so
existing DLQ tooling reads them; our own ``s2s.*`` headers carry the rest. Messages never carry
secrets or raw PII: they come from our own error texts, not from record values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams import __version__
from streams.errors import FatalError
from streams.logs import rdkafka_logger
from streams.metrics import METRICS
from streams.pipeline.outcome import DELIVER

CONNECT = "__connect.errors."
H_TOPIC = CONNECT + "topic"
H_PARTITION = CONNECT + "partition"
H_OFFSET = CONNECT + "offset"
H_STAGE = CONNECT + "stage"
H_CLASS = CONNECT + "class.name"
H_EXC_CLASS = CONNECT + "exception.class.name"
H_EXC_MESSAGE = CONNECT + "exception.message"
H_TIMESTAMP = "s2s.original.timestamp"
H_ROUTE = "s2s.route"
H_DESTINATION = "s2s.destination"
H_REASON = "s2s.reason"
H_STATUS = "s2s.http.status"
H_DEBUG = "s2s.destination.debug"
H_ATTEMPTS = "s2s.attempts"
H_FIRST_FAILURE = "s2s.first.failure"
H_LAST_FAILURE = "s2s.last.failure"
H_EVENT_ID = "s2s.event.id"
H_VERSION = "s2s.bridge.version"
H_REPLAY_COUNT = "s2s.replay.count"
H_REDUCED = "s2s.reduced"
H_REDUCED_DETAIL = "s2s.reduced.detail"
H_ORIGINAL_SIZE = "s2s.original.size"
H_ORIGINAL_KEY_SIZE = "s2s.original.key.size"
H_HEADERS_DROPPED = "s2s.original.headers.dropped"
OWN_PREFIXES = (CONNECT, "s2s.")

log = logging.getLogger("streams.deadletter")

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class DeadLetter:
    """Why and where from: everything the dead-letter headers say."""

    route: str
    destination: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    stage: str
    reason: str
    error_class: str
    message: str
    event_id: str | None = None
    http_status: int | None = None
    debug: str = ""
    attempts: int = 1
    first_failure: float | None = None
    last_failure: float | None = None
    replay_count: int = 0

    def headers(self, original: Any) -> Headers:
        """Original headers (list of pairs or mapping) without our own, then ours."""
        kept, _ = writable_headers(original)
        return kept + self.own_headers()

    def own_headers(self, message_limit: int = 1000) -> Headers:
        """Our headers: where the record came from and why it is here."""
        now = time.time()
        out: Headers = [
            (H_TOPIC, self.topic.encode()),
            (H_PARTITION, str(self.partition).encode()),
            (H_OFFSET, str(self.offset).encode()),
            (H_STAGE, self.stage.encode()),
            (H_CLASS, b"streams.pipeline" if self.stage != DELIVER else b"streams.delivery"),
            (H_EXC_CLASS, self.error_class.encode()),
            (H_EXC_MESSAGE, self.message[:message_limit].encode()),
            (H_ROUTE, self.route.encode()),
            (H_DESTINATION, self.destination.encode()),
            (H_REASON, self.reason.encode()),
            (H_ATTEMPTS, str(self.attempts).encode()),
            (H_FIRST_FAILURE, _iso(self.first_failure or now).encode()),
            (H_LAST_FAILURE, _iso(self.last_failure or now).encode()),
            (H_VERSION, __version__.encode()),
            (H_REPLAY_COUNT, str(self.replay_count).encode()),
        ]
        if self.timestamp_ms is not None:
            out.append((H_TIMESTAMP, str(self.timestamp_ms).encode()))
        if self.event_id:
            out.append((H_EVENT_ID, self.event_id.encode()))
        if self.http_status is not None:
            out.append((H_STATUS, str(self.http_status).encode()))
        if self.debug:
            out.append((H_DEBUG, self.debug[:message_limit].encode()))
        return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _bytes(v: Any) -> bytes:
    if v is None:
        return b""
    return v.encode() if isinstance(v, str) else bytes(v)


def header_dict(headers: Any) -> dict[str, str]:
    """Headers (pairs or mapping, values bytes/str/None) as text; the last value of a repeated name wins."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {k: _bytes(v).decode("utf-8", "replace") for k, v in pairs}


# ---------------------------------------------------------------------- the reduced form
# A record that cannot be dead-lettered as it is (too large for the producer or the dead-letter
# topic, headers the client cannot read or write) is dead-lettered reduced: what is over its
# budget below is cut, the rest kept, and `s2s.reduced` says what was cut (docs/reliability.md).
REDUCED_VALUE_BYTES = 1024  # a value over the limit is cut to its first 1,024 bytes
REDUCED_KEY_BYTES = 1024  # a key over the limit and over this is dropped
REDUCED_HEADERS_BYTES = 4096  # original headers over the limit and over this (in all) are dropped
PRODUCER_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's message.max.bytes default
DEAD_LETTER_HEADROOM = 65_536  # a dead-letter topic the bridge creates takes its source's limit + this (our headers)
_RECORD_OVERHEAD = 128  # a v2 record batch header (61 bytes) and one record's varints, rounded up
_HEADER_OVERHEAD = 10  # two varints per header
_REDUCTION_HEADERS = 512  # room for the s2s.reduced* headers themselves

# what Kafka says about one message (its size or form), not about the topic or the cluster
REFUSED_CODES = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD})


class _Unreadable(tuple[tuple[str, bytes], ...]):
    __slots__ = ()


UNREADABLE: Any = _Unreadable()
"""The original headers when the client could not read them (a name that is not UTF-8): no pairs."""


class SourceRecord(Protocol):
    """What a dead letter takes from the consumed record (confluent-kafka's `Message` interface)."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...


# Called through methodcaller (PyObject_Call), not `record.headers()`: for a header name that is not
# UTF-8, confluent-kafka's `Message.headers()` returns a list *and* leaves the UnicodeDecodeError
# set; only the checked call path turns that into an exception here, while a specialised direct
# call site (CPython 3.11 after a few calls) lets it escape later, anywhere.
_HEADERS = operator.methodcaller("headers")


def read_headers(record: SourceRecord) -> Any:
    """The record's headers, or `UNREADABLE` when the client cannot read them (a name that is not UTF-8)."""
    try:
        return _HEADERS(record)
    except Exception:
        return UNREADABLE


class ReadOnce:
    """A consumed record whose headers are read at most once. For a header name that is not UTF-8,
    confluent-kafka's `Message.headers()` raises (SystemError) the first time and the next time
    returns a list holding a NULL, which crashes the interpreter when touched."""

    __slots__ = ("_headers", "_m")

    def __init__(self, message: Any) -> None:
        self._m = message
        self._headers: Any = None

    def headers(self) -> Any:
        if self._headers is None:
            self._headers = read_headers(self._m)
            if self._headers is None:
                self._headers = ()
        return self._headers

    def topic(self) -> str:
        return str(self._m.topic())

    def partition(self) -> int:
        return int(self._m.partition())

    def offset(self) -> int:
        return int(self._m.offset())

    def key(self) -> bytes | None:
        return cast("bytes | None", self._m.key())

    def value(self) -> bytes | None:
        return cast("bytes | None", self._m.value())

    def timestamp(self) -> tuple[int, int]:
        return cast("tuple[int, int]", self._m.timestamp())


def writable_headers(original: Any) -> tuple[Headers, int]:
    """The original headers the client can write back, without our own, and how many it cannot.

    confluent-kafka turns a name that is not a str into its repr (``b'k'`` becomes ``"b'k'"``),
    cuts a name at NUL, crashes on a name with a lone surrogate, and refuses a value that is not
    bytes/str/None; such headers are dropped (counted) rather than written wrong or not at all.
    """
    try:
        pairs = list(original.items() if isinstance(original, Mapping) else (original or ()))
    except Exception:
        return [], 1
    kept: Headers = []
    dropped = 0
    for pair in pairs:
        try:
            name, v = pair
            if not isinstance(name, str) or "\x00" in name:
                raise TypeError("header name")
            name.encode()
            if v is None:
                value = b""
            elif isinstance(v, bytes):
                value = v
            elif isinstance(v, str):
                value = v.encode()
            elif isinstance(v, bytearray | memoryview):
                value = bytes(v)
            else:
                raise TypeError("header value")
        except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
            dropped += 1
            continue
        if not name.startswith(OWN_PREFIXES):
            kept.append((name, value))
    return kept, dropped


def _plus_dropped(dropped: str, n: int) -> str:
    """The `s2s.original.headers.dropped` value after dropping `n` more headers ("unreadable" stays)."""
    return dropped if dropped == "unreadable" else str(n + int(dropped or 0))


def _headers_size(headers: Headers) -> int:
    return sum(len(k.encode()) + len(v) + _HEADER_OVERHEAD for k, v in headers)


def wire_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of the message's size as librdkafka and the broker count it (uncompressed)."""
    return _RECORD_OVERHEAD + len(key or b"") + len(value or b"") + _headers_size(headers)


@dataclass(slots=True)
class DeadLetterMessage:
    """What is produced to the dead-letter topic for one record."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    reduced: tuple[str, ...] = ()  # what was cut (s2s.reduced); () = the original record as it was

    @property
    def size(self) -> int:
        return wire_size(self.key, self.value, self.headers)


def dead_letter_message(
    dl: DeadLetter,
    key: bytes | None,
    value: bytes | None,
    original: Any,
    *,
    limit: int,
    refused: str = "",
    attempt: int = 0,
) -> DeadLetterMessage:
    """The message for `dl`: the original key, value and (writable) headers plus ours when that fits
    in `limit` bytes, else the reduced form.

    `refused` is Kafka's error for the previous attempt: attempt 1 cuts the largest part over its
    budget even though the estimate fitted (a record that was only refused with a batch-mate is sent
    again unchanged); attempt 2 keeps nothing of the original (no key, an empty value, no original
    headers) and only our headers, their texts shortened.
    """
    reasons: list[str] = []
    dropped = ""
    if original is UNREADABLE:
        kept: Headers = []
        reasons.append("headers_unreadable")
        dropped = "unreadable"
    else:
        kept, n = writable_headers(original)
        if n:
            reasons.append("headers_unwritable")
            dropped = str(n)
    own = dl.own_headers()
    full = wire_size(key, value, kept + own)
    budget = limit - (_REDUCTION_HEADERS if reasons else 0)
    if refused and attempt == 1:
        budget = min(budget, full - 1)
    new_key, new_value = key, value
    key_dropped = False
    if attempt >= 2:
        reasons.append("refused")
        new_key, new_value, own = None, b"", dl.own_headers(message_limit=200)
        if kept:
            dropped = _plus_dropped(dropped, len(kept))
        kept = []
    else:
        size = full
        while size > budget:
            excess = {
                "value_too_large": len(new_value or b"") - REDUCED_VALUE_BYTES,
                "headers_too_large": _headers_size(kept) - REDUCED_HEADERS_BYTES,
                "key_too_large": len(new_key or b"") - REDUCED_KEY_BYTES,
            }
            why, over = max(excess.items(), key=lambda item: item[1])
            if over <= 0:
                break  # nothing left over its budget
            reasons.append(why)
            budget = min(budget, limit - _REDUCTION_HEADERS)  # the s2s.reduced* headers come on top
            if why == "value_too_large":
                new_value = (new_value or b"")[:REDUCED_VALUE_BYTES]
            elif why == "headers_too_large":
                dropped = _plus_dropped(dropped, len(kept))
                kept = []
            else:
                new_key, key_dropped = None, True
            size = wire_size(new_key, new_value, kept + own)
        if size > budget and not refused:  # the limit is smaller than the reduced form: the minimal one
            return dead_letter_message(dl, key, value, original, limit=limit, attempt=2)
    if not reasons:
        return DeadLetterMessage(key, value, kept + own)
    extra: Headers = [(H_REDUCED, ",".join(reasons).encode())]
    if refused:
        extra.append((H_REDUCED_DETAIL, f"Kafka refused the dead letter: {refused}".encode()))
    elif full > limit:
        extra.append((H_REDUCED_DETAIL, f"{full} bytes, over the dead-letter limit of {limit}".encode()))
    if value is not None:
        extra.append((H_ORIGINAL_SIZE, str(len(value)).encode()))
    if key_dropped or (attempt >= 2 and key is not None):
        extra.append((H_ORIGINAL_KEY_SIZE, str(len(key or b"")).encode()))
    if dropped:
        extra.append((H_HEADERS_DROPPED, dropped.encode()))
    return DeadLetterMessage(new_key, new_value, kept + own + extra, tuple(reasons))


class DeadLetterFailed(FatalError):
    """Kafka did not acknowledge a dead letter: the source offset must not be committed; the worker
    stops rather than go on without its dead-letter topic."""


class _Refused(Exception):
    """Kafka refused this message (its size or form), not the topic: send it reduced. A signal
    inside the producer, never raised to its callers (so outside the error tree)."""


class DeadLetterProducer:
    """Idempotent (acks=all) confluent-kafka producer; `send` resolves once Kafka acknowledged.

    `limits` are the dead-letter topics' ``max.message.bytes``: the producer's ``message.max.bytes``
    is raised to the largest (librdkafka refuses larger messages at ``produce()``), and its
    ``batch.size`` lowered to the smallest, so a batch never exceeds a topic's limit (the broker
    refuses a whole batch, innocent records with it, when it does).
    """

    def __init__(self, conf: dict[str, object], limits: Mapping[str, int] | None = None) -> None:
        self.limits = dict(limits or {})
        sizing: dict[str, object] = {}
        if self.limits:
            sizing["message.max.bytes"] = min(max(max(self.limits.values()), 1000), 100_000_000)
            sizing["batch.size"] = max(1, min(min(self.limits.values()), 1_000_000) - _RECORD_OVERHEAD)
        conf = {**conf, **sizing}
        self.message_max_bytes = int(cast(int, conf.get("message.max.bytes", PRODUCER_MAX_MESSAGE_BYTES)))
        self._producer = Producer(
            {
                "logger": rdkafka_logger("deadletter"),
                **conf,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="dead-letter-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def limit(self, topic: str) -> int:
        """The largest message `topic` takes from this producer."""
        return min(self.limits.get(topic, self.message_max_bytes), self.message_max_bytes)

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> asyncio.Future[None]:
        """Produce a message exactly as given (replay re-publishing a record: never reduced); resolves
        once Kafka acknowledged it, else fails with DeadLetterFailed."""
        return asyncio.ensure_future(self._send_as_is(topic, DeadLetterMessage(key, value, headers)))

    async def _send_as_is(self, topic: str, msg: DeadLetterMessage) -> None:
        try:
            await self._produce(topic, msg)
        except _Refused as exc:
            raise DeadLetterFailed(f"{topic} refused the message: {exc}") from None

    async def send_dead_letter(self, topic: str, dl: DeadLetter, record: SourceRecord) -> DeadLetterMessage:
        """Dead-letter `record` to `topic` and wait for Kafka's acknowledgement: as it is, or reduced
        when it cannot be (see `dead_letter_message`). Raises DeadLetterFailed only for what no
        reduction helps: Kafka unreachable past the producer's timeout, authorization, unknown topic."""
        key, value, original = record.key(), record.value(), read_headers(record)
        limit = self.limit(topic)
        msg = dead_letter_message(dl, key, value, original, limit=limit)
        for attempt in (1, 2, 3):
            try:
                await self._produce(topic, msg)
            except _Refused as exc:
                if attempt == 3:
                    raise DeadLetterFailed(f"dead letter to {topic} refused even in its minimal form: {exc}") from None
                msg = dead_letter_message(dl, key, value, original, limit=limit, refused=str(exc), attempt=attempt)
                continue
            if msg.reduced:
                METRICS.dead_letters_reduced.labels(dl.route, msg.reduced[0]).inc()
                log.warning(
                    "dead letter of %s[%d]@%d reduced (%s): %d bytes sent to %s",
                    dl.topic,
                    dl.partition,
                    dl.offset,
                    ",".join(msg.reduced),
                    msg.size,
                    topic,
                )
            break
        return msg

    def _produce(self, topic: str, msg: DeadLetterMessage) -> asyncio.Future[None]:
        """One attempt; the future fails with _Refused (this message) or DeadLetterFailed (the rest)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def fail(err: KafkaError) -> None:
            if err.code() in REFUSED_CODES and not err.fatal():
                fut.set_exception(_Refused(err.name()))
            else:
                fut.set_exception(DeadLetterFailed(f"dead letter to {topic} not acknowledged: {err.str()}"))

        def done(err: KafkaError | None, _msg: Message) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err is not None:
                    fail(err)
                else:
                    fut.set_result(None)

            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(settle)

        while True:
            try:
                self._producer.produce(topic, value=msg.value, key=msg.key, headers=cast(Any, msg.headers), on_delivery=done)
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)
                continue
            except KafkaException as exc:  # e.g. MSG_SIZE_TOO_LARGE: over message.max.bytes
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError):
                    fail(err)
                else:
                    fut.set_exception(DeadLetterFailed(f"dead letter to {topic} not produced: {exc}"))
            except (TypeError, ValueError) as exc:  # a key, value or header the client cannot write
                fut.set_exception(_Refused(type(exc).__name__))
            break
        return fut

    def close(self, timeout: float = 10.0) -> int:
        remaining = self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
        del self._producer  # frees the librdkafka client (it would keep reconnecting otherwise)
        return int(remaining)
