"""The offset ledger both engines use: per partition, which consumed records are settled, in offset order.

An engine opens a chunk for each run of consecutive records of one partition it hands to the
bridge, and settles it once every route that reads it has settled it (delivered, filtered or
dead-lettered, durably). A partition's settled prefix only moves past a chunk once that chunk and
every chunk before it are settled: nothing is ever committed (batch engine) or acked (Faust
engine) past an unsettled record, however out of order batches settle (one is retried while the
next is delivered).

Only partitions of the current assignment have state. A partition that leaves (revoked, lost) is
dropped: chunks of it that settle later change nothing, so nothing is committed or acked for a
partition this member no longer owns; its new owner re-consumes from the last commit, which costs
duplicates, never loss. A partition's state also carries the consumer-group generation it was
assigned in (the Faust engine learns its assignment from its events' generation): chunks of an
older generation than the group's current one are never acked either.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

TP = tuple[str, int]


class Chunk:
    """Consecutive records of one partition handed over together, settled together."""

    __slots__ = ("acks", "next_offset", "pending")

    def __init__(self, next_offset: int, pending: int, acks: Sequence[Any]) -> None:
        self.next_offset = next_offset  # the offset to commit once this chunk and all before it are settled
        self.pending = pending  # routes that still have to settle it
        self.acks = acks  # what the engine acks once the chunk leaves the settled prefix (Faust events)


class Partition:
    """One assigned partition: its open chunks in offset order and its commit points."""

    __slots__ = ("chunks", "committable", "committed", "generation", "revoked")

    def __init__(self, generation: int | None) -> None:
        self.chunks: deque[Chunk] = deque()
        self.committable: int | None = None
        self.committed: int | None = None
        self.generation = generation
        # set when the partition leaves this worker: its events still waiting in a sink are not
        # sent (the sink reads this as the events' lease)
        self.revoked = False


Handle = tuple[Partition, Chunk]


class PartitionNotOwned(RuntimeError):
    """A record of a partition outside the current assignment reached the ledger (a bug: never commit it)."""


class OffsetLedger:
    """Per partition: what may be committed or acked. Only the settled prefix of the consumed offsets counts.

    `open` may be called by a consuming thread and `settle` by the event loop; a lock keeps the two
    apart (both are per chunk, not per record). `open` refuses a partition outside the current
    assignment (`assign`ed, or `follow`ed in its generation, and not `drop`ped since).
    """

    def __init__(self, current_generation: Callable[[], int | None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._parts: dict[TP, Partition] = {}
        self._current_generation = current_generation

    def assign(self, tps: Sequence[TP], generation: int | None = None) -> None:
        """These partitions are ours now: each starts empty (its fetch starts from the committed offset)."""
        with self._lock:
            for tp in tps:
                self._assign(tp, generation)

    def _assign(self, tp: TP, generation: int | None) -> None:
        old = self._parts.get(tp)
        if old is not None:
            old.revoked = True
        self._parts[tp] = Partition(generation)

    def follow(self, tp: TP, generation: int | None) -> bool:
        """Records of `generation` arrived for `tp` (for an engine that learns its assignment from its
        records): the group's current generation starts the partition afresh if the ledger held an
        older one; False when `generation` is not the current one (stale: never tracked nor acked)."""
        current = self._current_generation()
        if current is not None and generation is not None and generation != current:
            return False
        with self._lock:
            part = self._parts.get(tp)
            if part is None or part.generation != generation:
                self._assign(tp, generation)
        return True

    def owns(self, tp: TP) -> bool:
        with self._lock:
            return tp in self._parts

    def open(self, tp: TP, next_offset: int, pending: int, acks: Sequence[Any] = ()) -> Handle:
        """A chunk of `tp` ending before `next_offset`, to be settled by `pending` routes."""
        chunk = Chunk(next_offset, pending, acks)
        with self._lock:
            part = self._parts.get(tp)
            if part is None:
                raise PartitionNotOwned(f"{tp[0]}[{tp[1]}] is not assigned to this member: its records must not be tracked")
            part.chunks.append(chunk)
        return part, chunk

    def settle(self, handles: Sequence[Handle]) -> list[Any]:
        """One route settled these chunks. Returns the `acks` of every chunk that joined its partition's
        settled prefix, in offset order per partition, except for partitions dropped since or of an
        older generation than the group's current one (those are never acked)."""
        acks: list[Any] = []
        current = self._current_generation()
        with self._lock:
            for part, chunk in handles:
                chunk.pending -= 1
                chunks = part.chunks
                live = not part.revoked and (current is None or part.generation is None or part.generation == current)
                while chunks and chunks[0].pending <= 0:
                    done = chunks.popleft()
                    part.committable = done.next_offset
                    if live:
                        acks.extend(done.acks)
        return acks

    def pending(self, tps: Sequence[TP]) -> int:
        """Chunks of these partitions not settled yet."""
        with self._lock:
            return sum(len(p.chunks) for tp in tps if (p := self._parts.get(tp)) is not None)

    def commit_points(self, tps: Sequence[TP] | None = None) -> dict[TP, int]:
        """Partitions whose settled prefix moved past their last commit, with the offset to commit."""
        with self._lock:
            items = self._parts.items() if tps is None else [(tp, self._parts[tp]) for tp in tps if tp in self._parts]
            return {
                tp: p.committable
                for tp, p in items
                if p.committable is not None and (p.committed is None or p.committable > p.committed)
            }

    def committed(self, points: dict[TP, int]) -> None:
        with self._lock:
            for tp, offset in points.items():
                p = self._parts.get(tp)
                if p is not None and (p.committed is None or offset > p.committed):
                    p.committed = offset

    def last_committed(self, tp: TP) -> int | None:
        p = self._parts.get(tp)
        return None if p is None else p.committed

    def drop(self, tps: Sequence[TP]) -> None:
        with self._lock:
            for tp in tps:
                part = self._parts.pop(tp, None)
                if part is not None:
                    part.revoked = True
