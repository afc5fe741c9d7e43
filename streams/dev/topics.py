"""Reading whole topics back (demo, tests, fault suite): every record from the low to the high watermark."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streams.logs import rdkafka_logger


def read_topics(bootstrap: str, topics: Iterable[str], timeout: float = 10.0) -> list[Any]:
    """Every record now in `topics` (all partitions, beginning to high watermark); a missing topic is empty."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "logger": rdkafka_logger("reader"),
        }
    )
    try:
        tps, want = [], 0
        for topic in topics:
            md = c.list_topics(topic, timeout=10).topics.get(topic)
            if md is None or md.error is not None:
                continue
            for p in md.partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if hi > lo:
                    tps.append(TopicPartition(topic, p, lo))
                    want += hi - lo
        if not want:
            return []
        c.assign(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                out.append(m)
        return out
    finally:
        c.close()
