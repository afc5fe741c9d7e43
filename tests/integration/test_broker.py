"""The dev/test Kafka broker really is a Kafka broker: topics, idempotent produce, groups, commits, restart."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.dev.kafka import LocalKafka

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # metadata propagation
        topic = admin.list_topics(name, timeout=5).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not visible with {partitions} partitions")


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5})


def _consume(consumer: Consumer, expected: int, timeout: float = 30.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                continue
            got.append(msg)
    return got


def test_topic_idempotent_produce_group_consume_and_commit(kafka_bootstrap: str) -> None:
    topic = f"broker-test-{uuid.uuid4().hex[:8]}"
    _create_topic(kafka_bootstrap, topic, partitions=6)

    producer = _producer(kafka_bootstrap)
    delivered: list[tuple[int | None, int | None]] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append((msg.partition(), msg.offset()))

    for i in range(1000):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    assert len(delivered) == 1000
    assert len({p for p, _ in delivered}) > 1, "keys should spread over the 6 partitions"

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"grp-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        got = _consume(consumer, 1000)
        assert len(got) == 1000
        assert sorted(m.value() or b"" for m in got) == sorted(f"v{i}".encode() for i in range(1000))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
        assert all(tp.error is None for tp in committed)
        assert sum(tp.offset for tp in committed) == 1000
        per_partition = {p: sum(1 for dp, _ in delivered if dp == p) for p in range(6)}
        assert {tp.partition: tp.offset for tp in committed} == per_partition
    finally:
        consumer.close()


def test_local_kafka_restart_and_kill_keep_data_and_port() -> None:
    with LocalKafka() as kafka:
        bootstrap, data_dir, pid = kafka.bootstrap_servers, kafka.data_dir, kafka.pid
        topic = "restart-test"
        _create_topic(bootstrap, topic, partitions=1)
        producer = _producer(bootstrap)  # one producer across the restart, like an app would
        producer.produce(topic, value=b"before-restart")
        assert producer.flush(15) == 0

        kafka.restart()
        assert (kafka.bootstrap_servers, kafka.data_dir) == (bootstrap, data_dir)
        assert kafka.pid != pid and kafka.running

        producer.produce(topic, value=b"after-restart")
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "restart-grp", "auto.offset.reset": "earliest"})
        try:
            consumer.subscribe([topic])
            assert [m.value() for m in _consume(consumer, 2)] == [b"before-restart", b"after-restart"]
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()

        kafka.kill()  # crash: SIGKILL, no controlled shutdown
        assert not kafka.running
        kafka.restart()
        producer.produce(topic, value=b"after-kill")
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "restart-grp", "auto.offset.reset": "earliest"})
        try:
            consumer.subscribe([topic])  # the group's committed offset survived the crash too
            assert [m.value() for m in _consume(consumer, 1)] == [b"after-kill"]
        finally:
            consumer.close()
    assert not kafka.running
    assert data_dir is not None and not data_dir.exists()
