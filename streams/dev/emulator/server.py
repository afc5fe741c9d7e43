"""Serving the emulator: the aiohttp app, and three ways to run it.

:class:`Emulator` (background thread, for tests), :class:`EmulatorProcess` (a child
``python -m streams.dev.emulator``, for benchmarks) and :func:`run_emulator` (blocking, for the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from streams.dev.emulator.activation import ActivationApi
from streams.dev.emulator.admin import Admin
from streams.dev.emulator.api import DestinationApi
from streams.dev.emulator.audiohook import AUDIOHOOK_PATH, AudiohookApi
from streams.dev.emulator.client import EmulatorClient, EmulatorUrls
from streams.dev.emulator.config import GLOBAL, EmulatorConfig
from streams.dev.emulator.faults import Gateway, apply_fault_request
from streams.dev.emulator.registry import REGISTRY_KEY, SchemaRegistry
from streams.dev.emulator.state import STATE_KEY, EmulatorState
from streams.dev.emulator.zeotap import ZEOTAP_PATH, ZeotapApi

_APIS_KEY: web.AppKey[tuple[DestinationApi, ...]] = web.AppKey("emulator_apis", tuple)


def make_app(config: EmulatorConfig | None = None) -> web.Application:
    """The emulator as an aiohttp application (destinations, admin API and Schema Registry)."""
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    gateway = Gateway(state)
    zeotap, audiohook, activation = ZeotapApi(state, gateway), AudiohookApi(state, gateway), ActivationApi(state, gateway)
    limit = max(config.zeotap_max_body_bytes, config.max_body_bytes)
    app = web.Application(client_max_size=limit + 1)
    app[STATE_KEY] = state
    app[_APIS_KEY] = (zeotap, audiohook, activation)
    app.router.add_post(ZEOTAP_PATH, gateway.wrap(zeotap.name, zeotap.handle))
    app.router.add_post(AUDIOHOOK_PATH, gateway.wrap(audiohook.name, audiohook.handle))
    app.router.add_post(activation.path, gateway.wrap(activation.name, activation.handle))
    Admin(state).add_routes(app.router)
    registry = SchemaRegistry(config.registry_basic_auth)
    app[REGISTRY_KEY] = registry
    app.add_subapp(config.registry_prefix, registry.make_app())
    return app


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """An AppRunner tuned for throughput: no access log, no server-side body auto-decompression
    (the handlers inflate gzip themselves, bounded by the size limit)."""
    for api in app[_APIS_KEY]:
        api.decompresses = False
    kwargs.setdefault("access_log", None)
    kwargs.setdefault("handle_signals", False)
    return web.AppRunner(app, auto_decompress=False, **kwargs)


def _bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    raise RuntimeError("emulator is not listening")


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Emulator(EmulatorUrls):
    """The emulator on a background thread with its own event loop (for tests).

    >>> with Emulator(EmulatorConfig(seed=1)) as emu:
    ...     httpx.post(emu.zeotap_url(), ...)
    ...     emu.admin.stats()
    """

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.registry_prefix = self.config.registry_prefix
        self.activation_path = self.config.activation_path
        self.host = host
        self.port = port
        self.base_url = ""
        self.app = make_app(self.config)
        self.state = self.app[STATE_KEY]
        self.registry = self.app[REGISTRY_KEY]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def admin(self) -> EmulatorClient:
        return EmulatorClient(self.base_url, registry_prefix=self.registry_prefix, activation_path=self.activation_path)

    def start(self) -> Emulator:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                runner = make_runner(self.app, shutdown_timeout=0.5)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
                loop.run_until_complete(site.start())
                self._runner = runner
                self.port = _bound_port(runner)
                self.base_url = f"http://{_url_host(self.host)}:{self.port}"
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="s2s-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (the only thread that mutates its state)."""
        if self._loop is None or self._thread is None:
            return fn()

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    def set_faults(self, destination: str | None = None, **knobs: Any) -> None:
        """Replace the faults of a destination (or of all when None) without going through HTTP."""
        self.call(lambda: apply_fault_request(self.state, {"destination": destination or GLOBAL, **knobs}))

    def reset(self, *, faults: bool = False) -> None:
        def do() -> None:
            self.state.reset_records()
            if faults:
                self.state.clear_faults()

        self.call(do)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call(self.state.stats)
        return result

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorProcess(EmulatorUrls):
    """The emulator as a child process (``python -m streams.dev.emulator``), for benchmarks:
    it then never competes with the code under test for the GIL."""

    def __init__(
        self,
        *cli_args: str,
        host: str = "127.0.0.1",
        port: int = 0,
        python: str = sys.executable,
        startup_timeout: float = 20.0,
    ) -> None:
        self.args = [python, "-m", "streams.dev.emulator", "--host", host, "--port", str(port), *cli_args]
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self.process: subprocess.Popen[str] | None = None

    @property
    def admin(self) -> EmulatorClient:
        return EmulatorClient(self.base_url, registry_prefix=self.registry_prefix, activation_path=self.activation_path)

    def start(self) -> EmulatorProcess:
        repo_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, env=env)
        stdout = self.process.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        first = line[0].strip() if line else ""
        if not first.startswith("emulator: "):
            self.stop()
            raise RuntimeError(f"emulator process did not start (first line: {first!r})")
        self.base_url = first.split(" ", 1)[1]
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=stdout.read, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_emulator(
    host: str = "127.0.0.1",
    port: int = 8080,
    config: EmulatorConfig | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    tune_gc: bool = True,
) -> None:
    """Serve the emulator until SIGINT/SIGTERM (blocking). ``on_ready`` gets the base URL.

    ``tune_gc`` raises the cyclic GC thresholds of this process (it owns the process)."""

    if tune_gc:
        # Parsed batches are big trees of short-lived dicts; the default gen0 threshold (700)
        # would run the cyclic collector every few requests and rescan the kept events.
        gc.set_threshold(100_000, 50, 100)

    async def serve() -> None:
        app = make_app(config)
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if tune_gc:
            gc.freeze()
        if on_ready is not None:
            on_ready(f"http://{_url_host(host)}:{_bound_port(runner)}")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
