"""How records are consumed: the engine contract, and `make_engine` choosing one by `worker.engine`.

Two engines feed the same `Bridge`: `batch` (engines/batch.py: confluent-kafka, a batch at a time,
commits from the offset ledger; the default) and `faust` (engines/faust.py: a Faust agent per
route, acks from the offset ledger, Faust commits them). Both keep one offset ledger
(engines/ledger.py) and report lag and pause through one writer (engines/report.py, the Bridge's
`report`: the bridge also holds a route while the schema registry cannot answer).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from streams.config import BridgeConfig
from streams.engines.batch import BatchEngine

if TYPE_CHECKING:  # the Bridge reports into engines.report: a runtime import here would be a cycle
    from streams.app import Bridge


class Engine(Protocol):
    """What the worker needs of an engine, and nothing more."""

    async def start(self) -> None:
        """Join the group and start handing records to the bridge."""

    def stop_fetching(self) -> None:
        """Take no more records; in-flight ones still settle and are committed by `close`."""

    async def close(self) -> None:
        """Commit what is settled and leave the group."""

    @property
    def stopped(self) -> bool:
        """The engine stopped on its own (see `error`)."""

    @property
    def error(self) -> BaseException | None:
        """Why the engine stopped on its own, if it knows (the worker then stops as on a fatal error)."""


def make_engine(config: BridgeConfig, bridge: Bridge, loop: asyncio.AbstractEventLoop) -> Engine:
    """The engine `worker.engine` names, feeding `bridge` (started: its sinks exist)."""
    if config.worker.engine == "faust":
        # imported only when chosen: importing Faust costs the batch engine's start-up for nothing
        from streams.engines.faust import FaustEngine

        return FaustEngine(config, bridge, bridge.report)
    return BatchEngine(config, bridge, loop, bridge.report)
