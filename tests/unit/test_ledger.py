"""The one offset ledger (streams.engines.ledger): only the settled prefix of each partition is ever
committed (batch engine) or acked (Faust engine), and nothing of a partition that left or of an
older group generation."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from streams.engines.ledger import Handle, OffsetLedger

TP = ("orders", 0)
OTHER = ("orders", 1)


def assigned(*tps: tuple[str, int]) -> OffsetLedger:
    ledger = OffsetLedger()
    ledger.assign(list(tps or (TP, OTHER)))
    return ledger


# --------------------------------------------------------------------------- commit points (batch engine)


def test_commit_point_waits_for_earlier_chunks():
    ledger = assigned()
    a = ledger.open(TP, 10, 1)  # offsets 0..9
    b = ledger.open(TP, 20, 1)  # offsets 10..19
    ledger.settle([b])
    assert ledger.commit_points() == {}  # 0..9 still in flight: nothing may be committed
    ledger.settle([a])
    assert ledger.commit_points() == {TP: 20}


def test_a_chunk_read_by_two_routes_settles_when_both_have():
    ledger = assigned()
    h = ledger.open(TP, 5, 2)
    ledger.settle([h])
    assert ledger.commit_points() == {}
    ledger.settle([h])
    assert ledger.commit_points() == {TP: 5}


def test_partitions_are_independent():
    ledger = assigned()
    a = ledger.open(TP, 10, 1)
    b = ledger.open(OTHER, 7, 1)
    ledger.settle([b])
    assert ledger.commit_points() == {OTHER: 7}
    assert ledger.pending([TP]) == 1 and ledger.pending([OTHER]) == 0
    ledger.settle([a])
    assert ledger.commit_points([TP]) == {TP: 10}


def test_committed_points_are_not_offered_again():
    ledger = assigned()
    ledger.settle([ledger.open(TP, 10, 1)])
    points = ledger.commit_points()
    ledger.committed(points)
    assert ledger.commit_points() == {}
    assert ledger.last_committed(TP) == 10
    ledger.settle([ledger.open(TP, 15, 1)])
    assert ledger.commit_points() == {TP: 15}


def test_a_dropped_partition_commits_nothing_from_its_old_chunks():
    ledger = assigned()
    old = ledger.open(TP, 10, 1)
    ledger.drop([TP])  # revoked or lost
    ledger.settle([old])  # settles late
    assert ledger.commit_points() == {}
    assert not ledger.owns(TP)
    assert old[0].revoked  # the lease of its events still waiting in a sink
    ledger.assign([TP])
    new = ledger.open(TP, 30, 1)  # assigned again: starts fresh from the group's commit
    assert ledger.pending([TP]) == 1
    ledger.settle([new])
    assert ledger.commit_points() == {TP: 30}


def test_assigned_again_forgets_what_was_settled_before():
    ledger = assigned()
    ledger.settle([ledger.open(TP, 10, 1)])
    ledger.assign([TP])  # revoked and given back: the fetch restarts from the group's commit
    assert ledger.commit_points() == {}


def test_random_settle_order_never_commits_past_an_unsettled_chunk():
    rng = random.Random(7)
    for _ in range(200):
        ledger = assigned()
        ends = sorted(rng.sample(range(1, 10_000), 30))
        handles = [ledger.open(TP, end, 1) for end in ends]
        order = list(range(len(handles)))
        rng.shuffle(order)
        settled: set[int] = set()
        for i in order:
            ledger.settle([handles[i]])
            settled.add(i)
            point = ledger.commit_points().get(TP)
            prefix = 0
            while prefix in settled:
                prefix += 1
            expected = ends[prefix - 1] if prefix else None
            assert point == expected
        assert ledger.pending([TP]) == 0


# --------------------------------------------------------------------------- in-order acks (Faust engine)


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    generation_id: int | None = 1


@dataclass
class Ev:
    message: Msg
    acks: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acks.append(self.message.offset)
        return True


def events(partition: int, offsets: range, gen: int | None = 1) -> list[Ev]:
    return [Ev(Msg("t", partition, o, gen)) for o in offsets]


def acked(evs: list[Ev]) -> list[int]:
    return [o for e in evs for o in e.acks]


def following(current: Callable[[], int | None]) -> tuple[OffsetLedger, Callable[[list[Ev]], list[Handle]]]:
    """A ledger as the Faust engine keeps it, and how it opens a take: one chunk per partition."""
    ledger = OffsetLedger(current)

    def track(evs: list[Ev]) -> list[Handle]:
        handles: list[Handle] = []
        runs: dict[tuple[tuple[str, int], int | None], list[Ev]] = {}
        for ev in evs:
            m = ev.message
            runs.setdefault(((m.topic, m.partition), m.generation_id), []).append(ev)
        for (tp, gen), run in runs.items():
            if ledger.follow(tp, gen):
                handles.append(ledger.open(tp, run[-1].message.offset + 1, 1, run))
        return handles

    return ledger, track


def settle(ledger: OffsetLedger, handles: list[Handle]) -> int:
    """Ack what the ledger returns, in the order it returns it (what the Faust engine does)."""
    ready = ledger.settle(handles)
    for ev in ready:
        ev.ack()
    return len(ready)


def test_later_batch_settling_first_is_held_until_the_earlier_one_settles():
    ledger, track = following(lambda: 1)
    a, b = events(0, range(0, 500)), events(0, range(500, 1000))
    ha, hb = track(a), track(b)
    assert settle(ledger, hb) == 0  # 500.. settled, but 0..499 are still in flight
    assert acked(b) == []
    assert settle(ledger, ha) == 1000
    assert acked(a + b) == list(range(1000))  # in offset order
    assert ledger.pending([("t", 0)]) == 0


def test_acks_come_back_in_offset_order_across_chunks():
    ledger, track = following(lambda: 1)
    chunks = [events(0, range(i, i + 10)) for i in range(0, 50, 10)]
    handles = [track(c) for c in chunks]
    seen: list[int] = []
    for h in (handles[3], handles[1], handles[4], handles[2], handles[0]):
        seen += [ev.message.offset for ev in ledger.settle(h)]
    assert seen == list(range(50))


def test_a_single_record_gap_holds_everything_after_it():
    ledger, track = following(lambda: 1)
    evs = events(0, range(500, 503))
    first, rest = track(evs[:1]), track(evs[1:])
    settle(ledger, rest)
    assert acked(evs) == []  # the case faust-streaming's own gap check misses
    settle(ledger, first)
    assert acked(evs) == [500, 501, 502]


def test_partitions_are_independent_for_acks():
    ledger, track = following(lambda: 1)
    p0, p1 = events(0, range(3)), events(1, range(3))
    handles = track(p0 + p1)
    h1 = [h for h in handles if h[1].acks and h[1].acks[0].message.partition == 1]
    settle(ledger, h1)
    assert acked(p1) == [0, 1, 2] and acked(p0) == []


@pytest.mark.parametrize("current", [2, 7])
def test_events_of_an_older_generation_are_never_acked(current):
    gen = [1]
    ledger, track = following(lambda: gen[0])
    old = events(0, range(10), gen=1)
    h_old = track(old)
    gen[0] = current  # rebalance: the partition was revoked and maybe re-assigned
    new = events(0, range(0, 10), gen=current)
    h_new = track(new)
    settle(ledger, h_old)
    assert acked(old) == []
    settle(ledger, h_new)
    assert acked(new) == list(range(10))


def test_old_generation_events_settling_before_any_new_one_arrives_are_not_acked():
    gen = [1]
    ledger, track = following(lambda: gen[0])
    old = events(0, range(10), gen=1)
    h_old = track(old)
    gen[0] = 2  # rebalanced; no event of generation 2 seen yet
    assert settle(ledger, h_old) == 0 and acked(old) == []


def test_events_arriving_with_a_stale_generation_are_not_tracked():
    ledger, track = following(lambda: 2)
    stale = events(0, range(5), gen=1)
    assert track(stale) == []
    assert not ledger.owns(("t", 0))


def test_unsettled_abandoned_events_block_the_partition():
    ledger, track = following(lambda: 1)
    a, b = events(0, range(0, 5)), events(0, range(5, 10))
    track(a)
    hb = track(b)
    settle(ledger, hb)  # a is abandoned at shutdown and never settles
    assert acked(a + b) == []
    assert ledger.pending([("t", 0)]) == 2
