"""Shared helpers for tests on the real broker: configs, producing, running the worker, reading back."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.codec import encode_plain, load_schema_file, parse
from streams.config import BridgeConfig, load_config
from streams.deadletter import header_dict
from streams.dev.topics import read_topics
from streams.worker import Worker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bridge.yaml"
WRITE_KEY = "it-write-key-5f1e"
API_KEY = "it-api-key-77c2"
PARTITIONS = 3
# the consuming engine of the configs made here (tests that cover both switch it per run)
ENGINE = "batch"


def _on_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "ENGINE", request.param)
    return str(request.param)


def both_engines() -> Any:
    """An autouse fixture for a test module, `engine = both_engines()`: every test in it runs on
    both consuming engines (worker.engine) and gets the engine's name as `engine`."""
    return pytest.fixture(autouse=True, params=["batch", "faust"], name="engine")(_on_engine)


def make_config(
    tmp_path: Path,
    bootstrap: str,
    emulator_url: str,
    routes: Iterable[str] = ("purchase_completed",),
    *,
    extra_routes: dict[str, dict[str, Any]] | None = None,
    zeotap: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    write_key: str = WRITE_KEY,
    kafka: dict[str, Any] | None = None,
    partitions: int = PARTITIONS,
) -> tuple[BridgeConfig, Path]:
    """The reference config with unique topic names and group, pointed at the broker and emulator."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    suffix = uuid.uuid4().hex[:8]
    raw["kafka"] = {
        "bootstrap_servers": bootstrap,
        "group_id": f"it-{suffix}",
        "topic_partitions": partitions,
        "commit_interval_s": 0.5,
        "session_timeout_s": 6,
        "heartbeat_interval_s": 1,
        **(kafka or {}),
    }
    z = raw["destinations"]["zeotap"]
    z.update(url=f"{emulator_url}/zeotap", write_key=write_key, rate_limit_rps=None)
    z["batch"] = {"max_events": 500, "max_bytes": 5 * 1024 * 1024, "linger_ms": 50}
    z["retry"] = {"initial_backoff_s": 0.1, "max_backoff_s": 2.0}
    z.update(zeotap or {})
    raw["destinations"]["audiohook"] = {
        "type": "audiohook",
        "url": f"{emulator_url}/audiohook",
        "pixel_id": "px-it",
        "concurrency": 8,
        "batch": {"linger_ms": 0},
        "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 2.0},
        "consent": {"require": ["marketing"]},
    }
    raw["destinations"]["activation"] = {
        "type": "activation",
        "url": f"{emulator_url}/activation/events",  # the full endpoint URL
        "api_key": API_KEY,
        "batch": {"max_events": 100, "linger_ms": 50},
        "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 2.0},
    }
    all_routes = raw["routes"]
    for r in all_routes.values():
        r["schema"] = str((EXAMPLE.parent / r["schema"]).resolve())
    selected = {name: dict(all_routes[name]) for name in routes}
    for name, spec in (extra_routes or {}).items():
        base = dict(all_routes[spec.pop("like")])
        base.update(spec)
        selected[name] = base
    for name, r in selected.items():
        r["topic"] = f"{name}-{suffix}"
        r.pop("dead_letter_topic", None)
    raw["routes"] = selected
    raw["metrics"] = {"host": "127.0.0.1", "port": 0}
    raw["worker"] = {"shutdown_grace_s": 10, "engine": ENGINE, **(worker or {})}
    path = tmp_path / f"bridge-{suffix}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in raw.items() if not str(k).startswith("x-")}, sort_keys=False))
    return load_config(path), path


def create_topics(
    bootstrap: str, topics: Iterable[str], partitions: int = PARTITIONS, config: dict[str, str] | None = None
) -> None:
    """Create topics (existing ones are left alone); `config` are topic configs, e.g. max.message.bytes.
    Any other failure (a bad config, the broker unreachable) fails the test here, not later."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futs = admin.create_topics([NewTopic(t, partitions, 1, config=dict(config or {})) for t in topics])
    for f in futs.values():
        try:
            f.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def produce(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes | None]], headers: Any = None) -> int:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    n = 0
    for key, value in values:
        p.produce(topic, key=key, value=value, headers=headers)
        n += 1
        if n % 5000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return n


def encoded(route_schema: Path | str, records: Iterable[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    schema = parse(load_schema_file(route_schema))
    return [(r["event_id"].encode(), encode_plain(schema, r)) for r in records]


def read_all(bootstrap: str, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every record now in `topic` (all partitions, beginning to high watermark)."""
    return read_topics(bootstrap, [topic], timeout)


def dead_letters(bootstrap: str, topic: str) -> list[tuple[Any, dict[str, str]]]:
    return [(m, header_dict(m.headers())) for m in read_all(bootstrap, topic)]


def committed(bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


async def run_worker_until(
    config: BridgeConfig, done: Callable[[Worker], bool], timeout: float = 60.0, poll: float = 0.2
) -> tuple[Worker, int]:
    """Run the worker in this event loop until `done(worker)` holds (or timeout); stop it gracefully."""
    worker = Worker(config, web_port=0, install_signals=False)
    task = asyncio.ensure_future(worker.main())
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not task.done():
            if worker.ready and done(worker):
                break
            await asyncio.sleep(poll)
    finally:
        worker.request_stop()
        code = await asyncio.wait_for(task, 60)
    return worker, code
