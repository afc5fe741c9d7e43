"""Local emulator of the three destination APIs, plus a minimal Confluent Schema Registry.

One aiohttp process serves:

* ``POST /zeotap?region=EU&eventType=s2s`` -- Zeotap server-to-server source (real-time and batch),
* ``POST /audiohook/{pixel_id}/pixel.png`` -- Audiohook S2S pixel,
* ``POST /activation/events`` -- the generic event-activation API,
* ``/registry/...`` -- the Schema Registry endpoints ``SchemaRegistryClient`` uses,
* ``/_emulator/...`` -- the admin API (stats, received events, receipts, faults, reset).

Each API follows its published document; where a document is silent the choice is listed in
``docs/emulator.md``. Fault injection (5xx, 429 + Retry-After, slow answers, dropped connections,
outage windows, poison event ids, forced auth failures) is settable at start and at runtime.

Three ways to run it: :class:`Emulator` (background thread, for tests), :class:`EmulatorProcess`
(a child ``python -m streams.dev.emulator``, for benchmarks) and :func:`run_emulator` /
:func:`main_dev_emulator` (blocking, for the CLI).

The modules: one per API (:mod:`.zeotap`, :mod:`.audiohook`, :mod:`.activation`), :mod:`.api` (their base), :mod:`.registry`,
:mod:`.faults` (the gateway that injects faults), :mod:`.admin` (``/_emulator/``), :mod:`.server`
(the app and its runners), :mod:`.client` (the admin client), :mod:`.cli`; below them :mod:`.config`,
:mod:`.state` and :mod:`.wire` (bodies and responses). The package imports nothing from the bridge
(``streams.*`` outside it): it is an independent check of what the bridge sends.
"""

from streams.dev.emulator.activation import ACTIVATION_PATH
from streams.dev.emulator.audiohook import AUDIOHOOK_PATH, PIXEL_PNG
from streams.dev.emulator.cli import main_dev_emulator
from streams.dev.emulator.client import EmulatorClient
from streams.dev.emulator.config import (
    DEFAULT_API_KEY,
    DESTINATIONS,
    DOC_WRITE_KEY,
    REGISTRY_PREFIX,
    ZEOTAP_MAX_BODY,
    EmulatorConfig,
    FaultConfig,
)
from streams.dev.emulator.server import Emulator, EmulatorProcess, make_app, make_runner, run_emulator
from streams.dev.emulator.state import EmulatorState
from streams.dev.emulator.zeotap import ZEOTAP_PATH, zeotap_authorization

__all__ = [
    "ACTIVATION_PATH",
    "AUDIOHOOK_PATH",
    "DEFAULT_API_KEY",
    "DESTINATIONS",
    "DOC_WRITE_KEY",
    "PIXEL_PNG",
    "REGISTRY_PREFIX",
    "ZEOTAP_MAX_BODY",
    "ZEOTAP_PATH",
    "Emulator",
    "EmulatorClient",
    "EmulatorConfig",
    "EmulatorProcess",
    "EmulatorState",
    "FaultConfig",
    "main_dev_emulator",
    "make_app",
    "make_runner",
    "run_emulator",
    "zeotap_authorization",
]
