"""Fast restarts on the real broker: static membership brings a SIGKILLed worker's partitions back
well before the session timeout, losing nothing; KIP-848's protocol consumes, shares and commits.

Worker processes are started as bench.restart does (POD_NAME set per process, as the pod's
Downward API does), and their partition assignments are read from their logs."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.restart import WorkerProcess, start_worker, stop, wait_until
from streams.config import BridgeConfig, load_config
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import SampleFactory
from tests.integration import harness
from tests.integration.harness import (
    API_KEY,
    WRITE_KEY,
    committed,
    create_topics,
    encoded,
    end_offsets,
    make_config,
    produce,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 4
SESSION_TIMEOUT_S = 30


def config(tmp_path: Path, bootstrap: str, emulator_url: str, kafka: dict[str, Any] | None = None) -> tuple[BridgeConfig, Path]:
    """The harness's config, with these Kafka settings; without any: on KIP-848's protocol."""
    cfg, path = make_config(tmp_path, bootstrap, emulator_url, partitions=PARTITIONS, kafka=kafka)
    if kafka is None:
        raw = yaml.safe_load(path.read_text())
        # the broker owns the session timeout and heartbeat with KIP-848 (the config refuses them)
        del raw["kafka"]["session_timeout_s"], raw["kafka"]["heartbeat_interval_s"]
        raw["kafka"]["group_protocol"] = "consumer"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        cfg = load_config(path)
    return cfg, path


def delivered(emu: Emulator) -> set[str]:
    return set(emu.admin.receipts("zeotap")["zeotap"])


def wait_delivered(emu: Emulator, ids: set[str], workers: list[WorkerProcess], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ids <= delivered(emu):
        for w in workers:
            assert w.proc.poll() is None, f"{w.name} exited with {w.proc.returncode}"
        assert time.monotonic() < deadline, f"{len(ids - delivered(emu))} of {len(ids)} records not delivered"
        time.sleep(0.2)


def test_static_member_killed_and_restarted_gets_its_partitions_back_before_the_session_timeout(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,), keep_events=False)) as emu:
        # ${POD_NAME:-}: each worker process has its own POD_NAME; this test process has none
        kafka = {"group_instance_id": "${POD_NAME:-}", "session_timeout_s": SESSION_TIMEOUT_S, "heartbeat_interval_s": 3}
        cfg, path = config(tmp_path, kafka_bootstrap, emu.base_url, kafka)
        route = cfg.routes["purchase_completed"]
        create_topics(kafka_bootstrap, [route.topic, route.dlt], partitions=PARTITIONS)
        f = SampleFactory(31)
        first = [f.record("purchase_completed") for _ in range(2_000)]
        produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), first))
        workers = [start_worker(path, f"bridge-{i}", tmp_path) for i in range(2)]
        try:
            wait_until(lambda: all(w.owned for w in workers), 90, "group of two")
            wait_until(lambda: len(workers[0].owned | workers[1].owned) == PARTITIONS, 60, "every partition owned")
            wait_delivered(emu, {r["event_id"] for r in first}, workers)
            victim, other = workers
            mine = set(victim.owned)
            settled = len(other.changes)

            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            # records produced while it is down, and after: all are to be delivered
            second = [f.record("purchase_completed") for _ in range(2_000)]
            produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), second))
            t_restart = time.time()
            back = workers[0] = start_worker(path, victim.name, tmp_path)
            wait_until(lambda: back.first_assigned is not None, SESSION_TIMEOUT_S + 30, "assignment after the restart")
            assert back.first_assigned is not None
            took = back.first_assigned - t_restart
            # well before the session timeout (30 s): the broker kept its place for the same instance id
            assert took < 15, f"restart -> first assignment took {took:.1f}s"
            # without a rebalance of the group: the same partitions, and the other member kept its own
            assert back.owned == mine
            assert not any(kind in ("revoked", "lost") for _, kind, _ in other.changes[settled:]), other.changes
            third = [f.record("purchase_completed") for _ in range(1_000)]
            produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), third))
            wait_delivered(emu, {r["event_id"] for r in first + second + third}, workers)
        finally:
            for w in workers:
                stop(w)
        assert [w.proc.returncode for w in workers] == [0, 0]
        assert delivered(emu) == {r["event_id"] for r in first + second + third}  # nothing lost, nothing else
        assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic, PARTITIONS) == end_offsets(
            kafka_bootstrap, route.topic, PARTITIONS
        )
        print(f"static membership: restart -> first assignment {took:.2f}s (session timeout {SESSION_TIMEOUT_S}s)")


def test_faust_static_member_killed_and_restarted_resumes_before_the_session_timeout(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The faust engine passes the instance id to aiokafka: the same fast path, seen from delivery."""
    monkeypatch.setattr(harness, "ENGINE", "faust")
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,), keep_events=False)) as emu:
        kafka = {"group_instance_id": "${POD_NAME:-}", "session_timeout_s": SESSION_TIMEOUT_S, "heartbeat_interval_s": 3}
        cfg, path = config(tmp_path, kafka_bootstrap, emu.base_url, kafka)
        assert cfg.worker.engine == "faust"
        route = cfg.routes["purchase_completed"]
        create_topics(kafka_bootstrap, [route.topic, route.dlt], partitions=PARTITIONS)
        f = SampleFactory(33)
        first = [f.record("purchase_completed") for _ in range(1_000)]
        produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), first))
        worker = start_worker(path, "bridge-0", tmp_path)
        try:
            wait_delivered(emu, {r["event_id"] for r in first}, [worker])
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(10)
            second = [f.record("purchase_completed") for _ in range(1_000)]
            produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), second))
            t_restart = time.time()
            worker = start_worker(path, "bridge-0", tmp_path)
            wait_delivered(emu, {r["event_id"] for r in first + second}, [worker])
        finally:
            stop(worker)
        receipts = emu.admin.receipts("zeotap")["zeotap"]
        took = min(receipts[r["event_id"]] for r in second) / 1000 - t_restart
        # a dynamic member would wait for the dead one's session (30 s) to time out first
        assert took < 20, f"restart -> first delivery took {took:.1f}s"
        assert worker.proc.returncode == 0
        assert delivered(emu) == {r["event_id"] for r in first + second}
        print(f"faust, static membership: restart -> first delivery {took:.2f}s (session timeout {SESSION_TIMEOUT_S}s)")


def test_kip848_protocol_shares_partitions_delivers_everything_and_commits(kafka_bootstrap: str, tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,), keep_events=False)) as emu:
        cfg, path = config(tmp_path, kafka_bootstrap, emu.base_url)
        assert cfg.kafka.group_protocol == "consumer"
        route = cfg.routes["purchase_completed"]
        create_topics(kafka_bootstrap, [route.topic, route.dlt], partitions=PARTITIONS)
        f = SampleFactory(32)
        records = [f.record("purchase_completed") for _ in range(4_000)]
        produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), records[:2_000]))
        workers = [start_worker(path, f"bridge-{i}", tmp_path) for i in range(2)]
        try:
            # the Kafka 4 broker runs the new protocol: two members split the partitions between them
            wait_until(
                lambda: all(w.owned for w in workers) and len(workers[0].owned | workers[1].owned) == PARTITIONS,
                90,
                "partitions shared by two members",
            )
            assert not workers[0].owned & workers[1].owned
            produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), records[2_000:]))
            wait_delivered(emu, {r["event_id"] for r in records}, workers)
            time.sleep(2 * cfg.kafka.commit_interval_s + 1)
            assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic, PARTITIONS) == end_offsets(
                kafka_bootstrap, route.topic, PARTITIONS
            )
            # one member leaves (graceful stop): the other takes over its partitions and continues
            stop(workers[1])
            assert workers[1].proc.returncode == 0
            wait_until(lambda: workers[0].owned == set(range(PARTITIONS)), 60, "every partition with the remaining member")
            more = [f.record("purchase_completed") for _ in range(1_000)]
            produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), more))
            wait_delivered(emu, {r["event_id"] for r in records + more}, workers[:1])
        finally:
            for w in workers:
                stop(w)
        assert workers[0].proc.returncode == 0
        assert delivered(emu) == {r["event_id"] for r in records + more}
        assert committed(kafka_bootstrap, cfg.kafka.group_id, route.topic, PARTITIONS) == end_offsets(
            kafka_bootstrap, route.topic, PARTITIONS
        )
