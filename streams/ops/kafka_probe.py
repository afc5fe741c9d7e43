"""The read-only Kafka calls of `check` and `status`: topic metadata, the group's lag (committed
offsets only, no join), the group's state and the dead-letter scan (`assign`, never `subscribe`,
never committed). Nothing here writes to Kafka or commits offsets."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streams.config import BridgeConfig
from streams.deadletter import H_EXC_CLASS, H_REASON, H_STAGE, header_dict
from streams.kafka import confluent_conf
from streams.logs import rdkafka_logger
from streams.ops.scrub import Scrubber, exc_text

_T = TypeVar("_T")

# ops reports librdkafka's reason in words from the error callback (scrubbed), so its client logs stay quiet
_rdkafka_log = rdkafka_logger("ops")
_rdkafka_log.addHandler(logging.NullHandler())
_rdkafka_log.propagate = False


@dataclass
class PartitionLag:
    partition: int
    low: int
    high: int
    committed: int | None  # None: the group has committed nothing for this partition
    lag: int

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "low": self.low, "high": self.high, "committed": self.committed, "lag": self.lag}


def partition_lag(partition: int, low: int, high: int, committed: int | None, reset: str = "earliest") -> PartitionLag:
    """Records the group has still to consume: high watermark - committed offset; without a commit,
    what `auto_offset_reset` would make it consume (all retained records for ``earliest``)."""
    if committed is None or committed < 0:
        lag = high - low if reset == "earliest" else 0
        return PartitionLag(partition, low, high, None, max(0, lag))
    return PartitionLag(partition, low, high, committed, max(0, high - max(committed, low)))


@dataclass
class DeadLetterCounts:
    topic: str
    exists: bool = True
    total: int = 0  # records in the topic now (high - low watermarks, all partitions)
    scanned: int = 0
    capped: bool = False  # stopped at --max-scan
    timed_out: bool = False
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) -> records
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.exists and self.error is None and not self.capped and not self.timed_out and self.scanned >= self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "exists": self.exists,
            "total": self.total,
            "scanned": self.scanned,
            "capped": self.capped,
            "timed_out": self.timed_out,
            "complete": self.complete,
            "by_reason": [{"stage": s, "reason": r, "count": n} for (s, r), n in sorted(self.by_reason.items())],
            "error": self.error,
        }


def dead_letter_key(headers: Any) -> tuple[str, str]:
    """(stage, reason) of a dead letter: ``s2s.reason``, else the error class (as `replay --reason` matches)."""
    h = header_dict(headers)
    return h.get(H_STAGE) or "?", h.get(H_REASON) or h.get(H_EXC_CLASS) or "?"


class KafkaProbe:
    """The few read-only Kafka calls both commands need, with the config's security settings."""

    def __init__(self, cfg: BridgeConfig, timeout: float = 10.0, scrub: Scrubber | None = None) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.scrub = scrub or Scrubber.for_config(cfg)
        self.errors: list[str] = []
        self._admin: Any = None
        self._group_consumer: Any = None

    def _conf(self, **extra: Any) -> dict[str, Any]:
        return confluent_conf(
            self.cfg.kafka,
            **{"client.id": "s2s-bridge-ops", "logger": _rdkafka_log, "error_cb": self._on_error, **extra},
        )

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        if getattr(err, "code", lambda: None)() == KafkaError._ALL_BROKERS_DOWN:
            return  # says nothing the per-broker errors do not
        self.errors.append(err.str() if hasattr(err, "str") else str(err))

    def last_error(self) -> str:
        """librdkafka's own reason for the last failure (SASL, TLS, connect), from the error callback."""
        if not self.errors and self._admin is not None:
            self._admin.poll(0.5)  # serves the error callback
        return self.scrub(self.errors[-1]) if self.errors else ""

    @property
    def admin(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(self._conf())
        return self._admin

    @property
    def group_consumer(self) -> Any:
        """A consumer with the bridge's group id that never subscribes (so never joins) nor commits."""
        if self._group_consumer is None:
            from confluent_kafka import Consumer

            conf = {"group.id": self.cfg.kafka.group_id, "enable.auto.commit": False, "enable.auto.offset.store": False}
            self._group_consumer = Consumer(self._conf(**conf))
        return self._group_consumer

    def topics(self) -> Any:
        """Cluster metadata for all topics (a listing never auto-creates a topic)."""
        return self.admin.list_topics(timeout=self.timeout)

    def lag(self, topic: str, partitions: Iterable[int]) -> list[PartitionLag]:
        from confluent_kafka import TopicPartition

        c = self.group_consumer
        parts = sorted(partitions)
        got = _retry_coordinator(lambda: c.committed([TopicPartition(topic, p) for p in parts], timeout=self.timeout))
        committed = {tp.partition: tp.offset for tp in got}
        out = []
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
            off = committed.get(p)
            off = off if off is not None and off >= 0 else None
            out.append(partition_lag(p, low, high, off, self.cfg.kafka.auto_offset_reset))
        return out

    def group_state(self) -> tuple[str, int]:
        """(state, members) of the bridge's consumer group."""
        group = self.cfg.kafka.group_id
        desc = _retry_coordinator(
            lambda: self.admin.describe_consumer_groups([group], request_timeout=self.timeout)[group].result(self.timeout)
        )
        state = getattr(desc.state, "name", str(desc.state))
        return state, len(desc.members or [])

    def scan_dead_letters(
        self, topic: str, partitions: Iterable[int], max_scan: int, deadline_s: float = 60.0
    ) -> DeadLetterCounts:
        """Count a dead-letter topic's records by (stage, reason), beginning to high watermark, at most `max_scan`.

        Its own consumer: `assign` (no group join), no commits; the snapshot of high watermarks is
        taken first, so records arriving meanwhile are not waited for."""
        from confluent_kafka import Consumer, TopicPartition

        out = DeadLetterCounts(topic)
        c = Consumer(
            self._conf(
                **{
                    "group.id": f"{self.cfg.kafka.group_id}-ops-status",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        try:
            bounds = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout) for p in sorted(partitions)}
            out.total = sum(hi - lo for lo, hi in bounds.values())
            todo = {p: hi for p, (lo, hi) in bounds.items() if hi > lo}
            if not todo:
                return out
            if max_scan <= 0:
                out.capped = True
                return out
            c.assign([TopicPartition(topic, p, bounds[p][0]) for p in todo])
            deadline = time.monotonic() + deadline_s
            while todo:
                if out.scanned >= max_scan:
                    out.capped = True
                    break
                if time.monotonic() > deadline:
                    out.timed_out = True
                    break
                msgs = c.consume(min(500, max_scan - out.scanned), 1.0)
                for m in msgs:
                    if m.error() is not None:
                        continue
                    p, off = m.partition(), m.offset()
                    if p not in todo or off is None or off >= todo[p]:
                        continue
                    out.by_reason[dead_letter_key(m.headers())] += 1
                    out.scanned += 1
                    if off + 1 >= todo[p]:
                        del todo[p]
                if not msgs and todo:
                    # offsets up to the high watermark may hold no record (transaction markers, compaction)
                    for tp in c.position([TopicPartition(topic, p) for p in todo]):
                        if tp.offset >= todo.get(tp.partition, 0):
                            todo.pop(tp.partition, None)
        finally:
            c.close()
        return out

    def close(self) -> None:
        if self._group_consumer is not None:
            self._group_consumer.close()
            self._group_consumer = None
        self._admin = None


def _retry_coordinator(call: Callable[[], _T], attempts: int = 5, wait_s: float = 1.0) -> _T:
    """`call()`, asked again while the group coordinator is not ready (a fresh cluster, a moving coordinator)."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            text = exc_text(exc)
            if attempt == attempts - 1 or not ("COORDINATOR" in text or "LOAD_IN_PROGRESS" in text):
                raise
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def listed_partitions(md: Any, topic: str) -> tuple[list[int] | None, str | None]:
    """(partitions, error) of a topic in a full metadata listing; (None, None) when it is not listed."""
    t = md.topics.get(topic)
    if t is None:
        return None, None
    if t.error is not None:
        return None, t.error.str()
    return sorted(t.partitions), None
