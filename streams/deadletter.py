"""Dead letters: the original record, byte for byte, plus headers that say where it came from and why.

Header names follow Kafka Connect's (``__connect.errors.*``) where the meaning is the same, so
existing DLQ tooling reads them; our own ``s2s.*`` headers carry the rest. Messages never carry
secrets or raw PII: they come from our own error texts, not from record values.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import KafkaError, Message, Producer

from streams import __version__

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
OWN_PREFIXES = (CONNECT, "s2s.")

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
        now = time.time()
        pairs = original.items() if isinstance(original, Mapping) else (original or ())
        out: Headers = [(k, _bytes(v)) for k, v in pairs if not k.startswith(OWN_PREFIXES)]
        out += [
            (H_TOPIC, self.topic.encode()),
            (H_PARTITION, str(self.partition).encode()),
            (H_OFFSET, str(self.offset).encode()),
            (H_STAGE, self.stage.encode()),
            (H_CLASS, b"streams.pipeline" if self.stage != "deliver" else b"streams.delivery"),
            (H_EXC_CLASS, self.error_class.encode()),
            (H_EXC_MESSAGE, self.message[:1000].encode()),
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
            out.append((H_DEBUG, self.debug[:1000].encode()))
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


class DeadLetterFailed(Exception):
    """Kafka did not acknowledge a dead letter: the source offset must not be committed."""


class DeadLetterProducer:
    """Idempotent (acks=all) confluent-kafka producer; `send` resolves once Kafka acknowledged."""

    def __init__(self, conf: dict[str, object]) -> None:
        self._producer = Producer(
            {
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

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def done(err: KafkaError | None, msg: Message) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err is not None:
                    fut.set_exception(DeadLetterFailed(f"dead letter to {topic} not acknowledged: {err.str()}"))
                else:
                    fut.set_result(None)

            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(settle)

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=cast(Any, headers), on_delivery=done)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)
        return fut

    def close(self, timeout: float = 10.0) -> int:
        remaining = self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
        del self._producer  # frees the librdkafka client (it would keep reconnecting otherwise)
        return int(remaining)
