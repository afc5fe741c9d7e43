"""The batch engine never tracks or commits a partition it does not own, however a rebalance interleaves
with fetching: the rebalance callbacks run inside `consume`/`poll`, so a record fetched by one call can
belong to a partition the next call revokes. Driven deterministically with a fake confluent-kafka
consumer (the logic under test is ours; the broker's rebalance itself is covered by the integration tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

import streams.engines.batch as batch_mod
import streams.engines.ledger as ledger_mod
from streams.config import BridgeConfig, load_config
from tests.integration.harness import EXAMPLE

TOPIC = "purchase_completed"


class Msg:
    def __init__(self, partition: int, offset: int, topic: str = TOPIC) -> None:
        self._p, self._o, self._t = partition, offset, topic

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def headers(self) -> None:
        return None


Step = Callable[["FakeConsumer"], list[Msg]]


class FakeConsumer:
    """Plays a script: each consume/poll call runs the next step (which may fire rebalance callbacks)."""

    def __init__(self, conf: dict[str, Any], logger: Any = None) -> None:
        self.script: list[Step] = []
        self.commits: list[list[TopicPartition]] = []
        self.seeks: list[TopicPartition] = []
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.on_lost: Any = None
        self.owner: Any = None
        self.outside: list[TopicPartition] = []

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self.on_assign, self.on_revoke, self.on_lost = on_assign, on_revoke, on_lost

    def _step(self) -> list[Msg]:
        return self.script.pop(0)(self) if self.script else []

    def consume(self, n: int, timeout: float) -> list[Msg]:
        return self._step()

    def poll(self, timeout: float) -> Msg | None:
        got = self._step()
        assert len(got) <= 1
        return got[0] if got else None

    def assign_(self, *partitions: int) -> None:
        self.on_assign(self, [TopicPartition(TOPIC, p) for p in partitions])

    def revoke(self, *partitions: int) -> None:
        self.on_revoke(self, [TopicPartition(TOPIC, p) for p in partitions])

    def lose(self, *partitions: int) -> None:
        self.on_lost(self, [TopicPartition(TOPIC, p) for p in partitions])

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(list(offsets))
        if self.owner is not None:  # what the member owns at the moment it commits
            self.outside += [tp for tp in offsets if (tp.topic, tp.partition) not in self.owner.assignment]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.committed_offsets.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp)

    def pause(self, tps: Any) -> None: ...

    def incremental_assign(self, tps: Any) -> None: ...

    def resume(self, tps: Any) -> None: ...


class Bridge:
    fatal = None

    def __init__(self) -> None:
        self.tasks: set[Any] = set()
        self.batches: list[tuple[str, list[Msg]]] = []

    async def process_batch(self, route: str, records: list[Msg], settled: Callable[[], None], leases: Any = None) -> None:
        self.batches.append((route, records))
        settled()


@pytest.fixture
def config() -> BridgeConfig:
    cfg = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    routes = {"purchase_completed": cfg.routes["purchase_completed"]}
    return cfg.model_copy(
        update={"routes": routes, "worker": cfg.worker.model_copy(update={"rebalance_wait_s": 0.0, "batch_size": 100})}
    )


def engine(config: BridgeConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[batch_mod.BatchEngine, FakeConsumer, Bridge]:
    monkeypatch.setattr(batch_mod, "Consumer", FakeConsumer)
    loop = asyncio.new_event_loop()
    bridge = Bridge()
    bc = batch_mod.BatchEngine(config, bridge, loop)
    bc.consumer.subscribe([TOPIC], on_assign=bc._on_assign, on_revoke=bc._on_revoke, on_lost=bc._on_lost)
    bc.consumer.owner = bc
    return bc, bc.consumer, bridge  # type: ignore[return-value]


def run_once(bc: batch_mod.BatchEngine) -> None:
    """One turn of the consuming thread: consume, dispatch, let the event loop settle, commit."""
    msgs = bc._consume()
    if msgs:
        bc._dispatch(msgs)
    bc.loop.run_until_complete(asyncio.sleep(0.01))
    bc.loop.run_until_complete(asyncio.sleep(0))
    bc._commit()


def committed_tps(fake: FakeConsumer) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for c in fake.commits for tp in c}


def test_a_record_polled_before_its_partition_is_revoked_is_not_dispatched_nor_committed(config, monkeypatch):
    bc, fake, bridge = engine(config, monkeypatch)
    fake.assign_(0, 1)
    fake.script = [
        lambda c: [],  # consume(n, 0): nothing buffered yet
        lambda c: [Msg(0, 40)],  # poll(0.05): one record of partition 0
        lambda c: (c.revoke(0), [Msg(1, 7)])[1],  # consume(n - 1, 0): the rebalance revokes partition 0
    ]
    run_once(bc)
    dispatched = [(m.partition(), m.offset()) for _, records in bridge.batches for m in records]
    assert dispatched == [(1, 7)]
    assert bc.assignment == {(TOPIC, 1)}
    assert committed_tps(fake) == {(TOPIC, 1)}  # never a commit for partition 0
    assert fake.outside == []
    assert all(tp.offset == 8 for c in fake.commits for tp in c)
    assert fake.seeks == []  # partition 0 is someone else's now: its new owner starts from the commit


def test_records_of_a_partition_lost_in_the_same_call_are_dropped(config, monkeypatch):
    bc, fake, bridge = engine(config, monkeypatch)
    fake.assign_(0, 1)
    fake.script = [lambda c: (c.lose(1), [Msg(0, 3), Msg(1, 9)])[1]]
    run_once(bc)
    assert [(m.partition(), m.offset()) for _, rs in bridge.batches for m in rs] == [(0, 3)]
    assert committed_tps(fake) == {(TOPIC, 0)}


def test_revoked_and_assigned_back_drops_the_ambiguous_records_and_rewinds_to_the_commit(config, monkeypatch):
    bc, fake, bridge = engine(config, monkeypatch)
    fake.assign_(0)
    fake.committed_offsets[(TOPIC, 0)] = 35
    fake.script = [
        lambda c: [],
        lambda c: [Msg(0, 40)],  # fetched under the old assignment
        lambda c: (c.revoke(0), c.assign_(0), [Msg(0, 41)])[2],  # revoked and given back in one call
    ]
    run_once(bc)
    assert bridge.batches == []  # neither the old nor the (possibly) new records are tracked
    assert fake.commits == []
    assert [(tp.partition, tp.offset) for tp in fake.seeks] == [(0, 35)]  # the fetch restarts at the commit
    # the re-fetched records are ours again and commit normally
    fake.script = [lambda c: [Msg(0, 35), Msg(0, 36)]]
    run_once(bc)
    assert [tp.offset for c in fake.commits for tp in c] == [37]


def test_rewind_without_a_commit_follows_auto_offset_reset(config, monkeypatch):
    bc, fake, bridge = engine(config, monkeypatch)
    fake.assign_(0)
    fake.script = [lambda c: (c.lose(0), c.assign_(0), [Msg(0, 0)])[2]]
    run_once(bc)
    assert bridge.batches == []
    assert [(tp.partition, tp.offset) for tp in fake.seeks] == [(0, OFFSET_BEGINNING)]  # example config: earliest


def test_records_of_a_partition_assigned_during_the_call_are_kept(config, monkeypatch):
    bc, fake, bridge = engine(config, monkeypatch)
    fake.assign_(0)
    fake.script = [lambda c: (c.assign_(2), [Msg(0, 1), Msg(2, 5)])[1]]
    run_once(bc)
    assert sorted((m.partition(), m.offset()) for _, rs in bridge.batches for m in rs) == [(0, 1), (2, 5)]
    assert committed_tps(fake) == {(TOPIC, 0), (TOPIC, 2)}
    assert fake.seeks == []


def test_commit_never_sends_a_partition_outside_the_assignment(config, monkeypatch):
    bc, fake, bridge = engine(config, monkeypatch)
    fake.assign_(0, 1, 2)
    fake.script = [lambda c: [Msg(0, 1), Msg(1, 1), Msg(2, 1)]]
    run_once(bc)
    fake.commits.clear()
    # partition 1 is revoked in the call that returns a record of it; partition 2 is lost later
    fake.script = [lambda c: (c.revoke(1), [Msg(0, 2), Msg(1, 2), Msg(2, 2)])[1], lambda c: (c.lose(2), [Msg(2, 3)])[1]]
    for _ in range(3):
        run_once(bc)
    assert fake.outside == []
    assert committed_tps(fake) == {(TOPIC, 0), (TOPIC, 2)}  # 2 while it was still ours
    assert [tp.offset for c in fake.commits for tp in c if tp.partition == 2] == [3]


def test_the_ledger_refuses_a_partition_outside_the_assignment():
    ledger = ledger_mod.OffsetLedger()
    with pytest.raises(ledger_mod.PartitionNotOwned):
        ledger.open((TOPIC, 0), 10, 1)
    ledger.assign([(TOPIC, 0)])
    ledger.settle([ledger.open((TOPIC, 0), 10, 1)])
    ledger.drop([(TOPIC, 0)])
    with pytest.raises(ledger_mod.PartitionNotOwned):
        ledger.open((TOPIC, 0), 20, 1)
    assert ledger.commit_points() == {}
