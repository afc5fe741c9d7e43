"""The Faust engine as the worker builds it (no broker needed to build it)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.app import Bridge
from streams.config import load_config
from streams.engines.faust import FaustEngine, build_app
from streams.engines.report import ConsumingReport
from tests.integration.harness import EXAMPLE


async def _no_handle(route: str, events: Sequence[Any]) -> None: ...


def test_faust_keeps_its_data_directory_under_the_temp_dir_not_the_working_directory() -> None:
    """The shipped image runs with a read-only root filesystem and /tmp as an emptyDir: a data
    directory in the working directory (Faust's default, `<group>-data`) cannot be created there."""
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    app = build_app(config, Bridge(config), _no_handle)
    datadir = Path(app.conf.datadir).resolve()
    assert datadir.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert not datadir.is_relative_to(Path.cwd().resolve())


def test_a_group_id_with_a_slash_still_gives_one_directory_level() -> None:
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    config = config.model_copy(update={"kafka": config.kafka.model_copy(update={"group_id": "team/s2s bridge"})})
    app = build_app(config, Bridge(config), _no_handle)
    datadir = Path(app.conf.datadir)
    assert datadir.parent == Path(tempfile.gettempdir())
    assert datadir.name == "s2s-bridge-faust-team_s2s_bridge"


def test_faust_serves_no_web_of_its_own() -> None:
    """The worker serves /metrics and health for both engines on the metrics port: Faust's web would take it."""
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    assert build_app(config, Bridge(config), _no_handle).conf.web_enabled is False


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    generation_id: int
    key: bytes | None = None
    value: bytes | None = None
    headers: Any = None
    timestamp: float | None = None


@dataclass
class Ev:
    message: Msg
    acks: list[int]

    def ack(self) -> bool:
        self.acks.append(self.message.offset)
        return True


class HoldingBridge:
    """Keeps each batch's settle callback so the test decides the order batches settle in."""

    def __init__(self) -> None:
        self.settles: list[Callable[[], object]] = []

    async def process_batch(self, route: str, records: Sequence[Any], on_settled: Callable[[], object]) -> None:
        self.settles.append(on_settled)


def test_the_engine_acks_faust_events_in_offset_order_whatever_order_batches_settle_in() -> None:
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    engine = FaustEngine(config, Bridge(config), ConsumingReport())
    bridge = engine.bridge = HoldingBridge()  # type: ignore[assignment]
    gen = engine.app.consumer_generation_id
    acks: list[int] = []
    for first in (0, 3, 6):  # three takes of partition 0
        asyncio.run(engine.handle("r", [Ev(Msg("t", 0, o, gen), acks) for o in range(first, first + 3)]))
    bridge.settles[2]()
    bridge.settles[1]()
    assert acks == []  # 0..2 still in flight
    bridge.settles[0]()
    assert acks == list(range(9))


def test_events_of_an_older_generation_are_processed_but_never_acked() -> None:
    config = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    engine = FaustEngine(config, Bridge(config), ConsumingReport())
    bridge = engine.bridge = HoldingBridge()  # type: ignore[assignment]
    engine.app.consumer_generation_id = 5
    acks: list[int] = []
    asyncio.run(engine.handle("r", [Ev(Msg("t", 0, o, 4), acks) for o in range(3)]))
    assert len(bridge.settles) == 1  # handed to the bridge (sent, dead-lettered) all the same
    bridge.settles[0]()
    assert acks == []
