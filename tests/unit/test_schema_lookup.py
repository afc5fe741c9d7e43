"""Schema Registry lookups never block the event loop (streams.app.Bridge._process,
streams.codec.SchemaStore): the pipeline signals a missing writer schema, the bridge fetches it in
a thread, caches it, waits with backoff (paused) while the registry cannot answer, and dead-letters
records whose schema id the registry does not know."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.app import Bridge
from streams.codec import SchemaNeeded, encode_confluent, load_schema_file, parse
from streams.config import BridgeConfig, load_config
from streams.dev.samples import SampleFactory
from streams.metrics import METRICS
from streams.pipeline.outcome import Payload, Rejected
from tests.unit.test_codec import _RegistryHandler

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.yaml"
ROUTE = "purchase_completed"
SCHEMA = load_schema_file(ROOT / "avro_schemas" / f"{ROUTE}.avsc")


def _config(tmp_path: Path, registry_url: str) -> BridgeConfig:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    raw["kafka"]["schema_registry"] = {"url": registry_url}
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path, env={"ZEOTAP_WRITE_KEY": "k", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})


class _Record:
    """A consumed record as the bridge reads it (confluent-kafka's Message interface)."""

    def __init__(self, value: bytes, offset: int = 0) -> None:
        self._value, self._offset = value, offset

    def topic(self) -> str:
        return ROUTE

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Any:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, -1)


class _NoSink:
    def submit_many(self, events: Any) -> Any:
        raise AssertionError("nothing reaches the sink while the schema is missing")


def _value(schema_id: int) -> bytes:
    rec = SampleFactory(seed=3).record(ROUTE)
    return encode_confluent(parse(SCHEMA), rec, schema_id)


class _Silent:
    def __init__(self, url: str, srv: socket.socket, held: list[socket.socket]) -> None:
        self.url, self.srv, self.held = url, srv, held

    def hang_up(self) -> None:
        """Stop listening and close the connections held (the lookups in flight fail at once)."""
        self.srv.close()
        for c in self.held:
            c.close()


@pytest.fixture
def silent_registry() -> Iterator[_Silent]:
    """Accepts connections and never answers."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield _Silent(f"http://127.0.0.1:{srv.getsockname()[1]}", srv, held)
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()


class _Registry(_RegistryHandler):
    schemas = {1: json.dumps(SCHEMA)}
    requests: list[str] = []


def _serve(port: int = 0) -> ThreadingHTTPServer:
    _Registry.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def _max_tick_gap(until: asyncio.Future[Any] | None, seconds: float) -> float:
    """Ticks every 10 ms for `seconds` (or until `until` is done): the longest gap between ticks."""
    worst, last, end = 0.0, time.monotonic(), time.monotonic() + seconds
    while time.monotonic() < end and not (until is not None and until.done()):
        await asyncio.sleep(0.01)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    return worst


def test_event_loop_keeps_running_while_the_registry_does_not_answer(tmp_path: Path, silent_registry: _Silent) -> None:
    bridge = Bridge(_config(tmp_path, silent_registry.url))
    pipeline = bridge.pipelines[ROUTE]
    with pytest.raises(SchemaNeeded):  # the pipeline itself never asks the registry
        pipeline.process(_value(1), ROUTE, 0, 0)

    async def main() -> float:
        from streams.app import Capacity

        bridge.capacity = {ROUTE: Capacity(100)}
        bridge._transforming = {ROUTE: asyncio.Lock()}
        bridge.sinks = {pipeline.destination.name: _NoSink()}  # type: ignore[dict-item]
        batch = asyncio.ensure_future(bridge.process_batch(ROUTE, [_Record(_value(1))], lambda: None))
        gap = await _max_tick_gap(batch, 2.5)
        assert not batch.done(), "the batch must wait for the schema"
        assert len(silent_registry.held) == 1  # one lookup, still waiting for its answer
        batch.cancel()
        silent_registry.hang_up()  # the lookup's thread ends now, not after the client's timeouts
        await asyncio.gather(batch, return_exceptions=True)
        return gap

    gap = asyncio.run(main())
    assert gap < 0.2, f"event loop blocked for {gap * 1000:.0f} ms"


def test_route_pauses_with_backoff_while_the_registry_is_down_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bridge = Bridge(_config(tmp_path, f"http://127.0.0.1:{port}"))  # nothing listens there yet
    pipeline = bridge.pipelines[ROUTE]
    paused = METRICS.paused.labels(ROUTE)
    server: ThreadingHTTPServer | None = None

    async def main() -> tuple[Any, float, float]:
        nonlocal server
        task = asyncio.ensure_future(bridge._process(pipeline, _Record(_value(1))))
        gap = await _max_tick_gap(task, 2.0)  # lookups at 0, 0.5, 1.5 s: refused
        was_paused = paused._value.get()
        server = _serve(port)
        return await asyncio.wait_for(task, 10), was_paused, gap

    with caplog.at_level(logging.INFO, logger="streams.worker"):
        try:
            out, was_paused, gap = asyncio.run(main())
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
    assert isinstance(out, Payload)
    assert was_paused == 1 and paused._value.get() == 0
    assert gap < 0.2
    waits = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert len(waits) >= 2 and "again in 0.5s" in waits[0] and "again in 1.0s" in waits[1], waits
    assert any("resumed" in r.getMessage() for r in caplog.records)


def test_known_ids_are_fetched_once_and_unknown_ids_are_dead_letters(tmp_path: Path) -> None:
    server = _serve()
    try:
        bridge = Bridge(_config(tmp_path, f"http://127.0.0.1:{server.server_port}"))
        pipeline = bridge.pipelines[ROUTE]

        async def main() -> list[Any]:
            records = [_Record(_value(1), 0), _Record(_value(1), 1), _Record(_value(77), 2), _Record(_value(77), 3)]
            return [await bridge._process(pipeline, r) for r in records]

        outs = asyncio.run(main())
    finally:
        server.shutdown()
        server.server_close()
    assert [type(o) for o in outs] == [Payload, Payload, Rejected, Rejected]
    for o in outs[2:]:
        assert (o.stage, o.reason, o.error_class) == ("decode", "unknown_schema_id", "UnknownSchemaId")
        assert "77" in o.detail
    assert METRICS.paused.labels(ROUTE)._value.get() == 0
    # one lookup per id: the known one cached, the refused one remembered
    assert sorted(p.split("?")[0] for p in _Registry.requests) == ["/schemas/ids/1", "/schemas/ids/77"]
    # afterwards the pipeline alone decodes the cached id
    assert isinstance(pipeline.process(_value(1), ROUTE, 0, 9), Payload)


def test_process_blocking_fetches_through_the_same_cache(tmp_path: Path) -> None:
    server = _serve()
    try:
        pipeline = Bridge(_config(tmp_path, f"http://127.0.0.1:{server.server_port}")).pipelines[ROUTE]
        assert isinstance(pipeline.process_blocking(_value(1), ROUTE, 0, 0), Payload)
        out = pipeline.process_blocking(_value(5), ROUTE, 0, 1)
        assert isinstance(out, Rejected) and out.reason == "unknown_schema_id"
        assert isinstance(pipeline.process(_value(1), ROUTE, 0, 2), Payload)
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Registry.requests) == 2
