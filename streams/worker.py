"""Process lifecycle of `s2s-bridge worker`: start, serve metrics/health, stop within the grace period.

An engine consumes (`worker.engine`, see streams.engines: `batch`, the default, or `faust`) and
feeds the `Bridge`; this module only drives the engine through its contract and serves /metrics,
/healthz and /readyz on aiohttp, whichever the engine.

Shutdown on SIGTERM/SIGINT: stop fetching, let in-flight batches settle for up to
`worker.shutdown_grace_s`, abandon the rest (not acked: re-consumed later), commit what is
settled, exit 0. A fatal error (destination auth, dead letters not acknowledged, the engine failing)
exits 3 without committing anything past the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from typing import Any

from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import Bridge
from streams.config import BridgeConfig
from streams.engines import Engine, make_engine
from streams.kafka import KafkaUnavailable
from streams.logs import setup_logging
from streams.metrics import METRICS

log = logging.getLogger("streams.worker")

EXIT_FATAL = 3


class Worker:
    def __init__(self, config: BridgeConfig, *, web_port: int | None = None, install_signals: bool = True) -> None:
        self.config = config
        self.web_port = web_port
        self.install_signals = install_signals
        self.bridge = Bridge(config)
        self.engine: Engine | None = None
        self._web: aioweb.AppRunner | None = None
        self._stop: asyncio.Event | None = None  # created inside the loop
        self.ready = False

    def run(self) -> int:
        setup_logging(self.config.worker.log_level, self.config.worker.log_format)
        return asyncio.run(self.main())

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def main(self) -> int:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.bridge.start()
        except KafkaUnavailable as exc:
            log.critical("fatal: %s", exc)
            return EXIT_FATAL
        t0 = time.monotonic()
        engine = self.engine = make_engine(self.config, self.bridge, loop)
        await engine.start()
        await self._start_web()
        log.info(
            "worker started in %.1fs (%s engine): routes %s",
            time.monotonic() - t0,
            self.config.worker.engine,
            ", ".join(self.config.routes),
        )
        # what exists now (modules, compiled pipelines, clients) lives as long as the process: out of
        # the collector's full passes, which otherwise walk it every few thousand records
        gc.freeze()
        # records make no reference cycles (the sink breaks httpx's), so the young generation can be
        # collected less often: 0.69 -> 0.36 s of collection per 100,000 records, same peak RSS
        gc.set_threshold(5000, 20, 10)
        self.ready = True
        try:
            while not self._stop.is_set() and self.bridge.fatal is None and not self._engine_stopped(engine):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=0.2)
        finally:
            self.ready = False
            code = await self._shutdown(engine)
        return code

    def _engine_stopped(self, engine: Engine) -> bool:
        if engine.error is not None and self.bridge.fatal is None:
            self.bridge._fail(engine.error)
        return engine.stopped

    async def _shutdown(self, engine: Engine) -> int:
        fatal = self.bridge.fatal
        engine.stop_fetching()
        if fatal is None:
            log.info("stopping: settling in-flight records (grace %.0fs)", self.config.worker.shutdown_grace_s)
            await self.bridge.drain(self.config.worker.shutdown_grace_s)
        else:
            await self.bridge.drain(0)
        await engine.close()  # commits what is settled, leaves the group
        if self._web is not None:
            await self._web.cleanup()
        await self.bridge.stop()
        log.info("stopped: %d records settled", self.bridge.settled)
        if fatal is not None:
            log.critical("fatal: %s", fatal)
            return EXIT_FATAL
        return 0

    def _health(self) -> tuple[dict[str, Any], int]:
        ok = self.bridge.fatal is None
        return {"status": "ok" if ok else "fatal"}, 200 if ok else 500

    def _readiness(self) -> tuple[dict[str, Any], int]:
        ok = self.ready and self.bridge.fatal is None
        return {"ready": ok}, 200 if ok else 503

    async def _start_web(self) -> None:
        """/metrics, /healthz and /readyz on aiohttp (port 0 or less: none)."""
        port = self.config.metrics.port if self.web_port is None else self.web_port
        if port <= 0:
            return

        async def metrics(request: aioweb.Request) -> aioweb.Response:
            return aioweb.Response(body=generate_latest(METRICS.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(request: aioweb.Request) -> aioweb.Response:
            body, status = self._health()
            return aioweb.json_response(body, status=status)

        async def readyz(request: aioweb.Request) -> aioweb.Response:
            body, status = self._readiness()
            return aioweb.json_response(body, status=status)

        web = aioweb.Application()
        web.router.add_get("/metrics", metrics)
        web.router.add_get("/healthz", healthz)
        web.router.add_get("/readyz", readyz)
        self._web = aioweb.AppRunner(web, access_log=None)
        await self._web.setup()
        await aioweb.TCPSite(self._web, self.config.metrics.host, port).start()


def run_worker(config: BridgeConfig) -> int:
    """Run until SIGTERM/SIGINT or a fatal error; return the process exit code."""
    return Worker(config).run()
