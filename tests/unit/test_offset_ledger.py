"""The batch engine's offset ledger: only the settled prefix of each partition is ever committable."""

from __future__ import annotations

import random

from streams.consumer import OffsetLedger

TP = ("orders", 0)
OTHER = ("orders", 1)


def assigned(*tps: tuple[str, int]) -> OffsetLedger:
    ledger = OffsetLedger()
    ledger.assign(list(tps or (TP, OTHER)))
    return ledger


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
