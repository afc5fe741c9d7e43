"""In-order acknowledgement per partition.

Faust commits up to the first gap in the acked offsets, but its head-of-queue gap check
(faust-streaming 0.15.3, `Consumer._new_offset`) misses a gap of exactly one record and any gap
while the committed offset is unknown or 0: acking offset 501 while 500 is still in flight can
commit 502. Batches settle out of order here (one is retried while the next is delivered), so
the bridge never hands Faust an out-of-order ack: each partition's events are acked strictly in
offset order, once every earlier event of the partition is settled. Events of an older consumer
generation (their partition was revoked in a rebalance) are never acked: the partition's new
owner re-consumes them from the last commit, which costs duplicates, never loss.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any


class PartitionLedger:
    def __init__(self, current_generation: Callable[[], int | None]) -> None:
        self._current_generation = current_generation
        # (topic, partition, generation) -> offset -> [event, settled]
        self._open: dict[tuple[str, int, int | None], OrderedDict[int, list[Any]]] = {}
        self.acked = 0
        self.dropped_stale = 0

    @staticmethod
    def _key(event: Any) -> tuple[str, int, int | None]:
        m = event.message
        return m.topic, m.partition, getattr(m, "generation_id", None)

    def track(self, events: Iterable[Any]) -> None:
        """Record consumed events, in consumption (= offset) order."""
        for ev in events:
            key = self._key(ev)
            entries = self._open.get(key)
            if entries is None:
                entries = self._open[key] = OrderedDict()
            entries[ev.message.offset] = [ev, False]

    def settle(self, events: Iterable[Any]) -> int:
        """Mark events settled (outcome durable); ack every settled event at a partition's head."""
        touched = set()
        for ev in events:
            key = self._key(ev)
            entries = self._open.get(key)
            if entries is None:
                continue
            entry = entries.get(ev.message.offset)
            if entry is not None:
                entry[1] = True
                touched.add(key)
        acked = 0
        current = self._current_generation()
        for key in touched:
            entries = self._open[key]
            stale = current is not None and key[2] is not None and key[2] != current
            while entries:
                offset, (ev, settled) = next(iter(entries.items()))
                if not settled:
                    break
                del entries[offset]
                if stale:
                    self.dropped_stale += 1
                else:
                    ev.ack()
                    acked += 1
            if not entries:
                del self._open[key]
        self.acked += acked
        return acked

    @property
    def open_events(self) -> int:
        return sum(len(e) for e in self._open.values())
