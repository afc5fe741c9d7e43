"""Which broker to use: an external cluster, a Docker container, or :class:`~streams.dev.kafka.local.LocalKafka`."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import subprocess
import time
from typing import Any, Self

from streams.dev.kafka.base import Broker, BrokerError, wait_until_ready
from streams.dev.kafka.local import LocalKafka

log = logging.getLogger(__name__)


class ExternalKafka(Broker):
    """An already-running cluster (``KAFKA_BOOTSTRAP_SERVERS``): start() only checks it answers."""

    kind = "external"

    def __init__(self, bootstrap_servers: str, *, ready_timeout: float = 30.0) -> None:
        self._bootstrap = bootstrap_servers
        self.ready_timeout = ready_timeout

    @property
    def bootstrap_servers(self) -> str:
        return self._bootstrap

    def start(self) -> Self:
        started = time.monotonic()
        try:
            wait_until_ready(self._bootstrap, self.ready_timeout)
        except BrokerError as exc:
            raise BrokerError(f"KAFKA_BOOTSTRAP_SERVERS={self._bootstrap} does not answer: {exc}") from exc
        self.started_in = time.monotonic() - started
        return self

    def stop(self) -> None:
        pass


class DockerKafka(Broker):
    """testcontainers' ``KafkaContainer`` in KRaft mode (only imported when used)."""

    kind = "docker"

    def __init__(self, image: str | None = None, *, ready_timeout: float = 120.0) -> None:
        self.image = image or os.environ.get("S2S_BRIDGE_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
        self.ready_timeout = ready_timeout
        self._container: Any = None
        self._bootstrap: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._bootstrap is None:
            raise BrokerError("Docker Kafka is not started")
        return self._bootstrap

    def start(self) -> Self:
        if self._container is not None:
            return self
        started = time.monotonic()
        try:
            module = importlib.import_module("testcontainers.community.kafka")
        except ImportError:
            module = importlib.import_module("testcontainers.kafka")
        container = module.KafkaContainer(self.image).with_kraft()
        try:
            container.start(timeout=int(self.ready_timeout))
            self._bootstrap = str(container.get_bootstrap_server())
        except Exception as exc:
            with contextlib.suppress(Exception):
                container.stop()
            raise BrokerError(f"starting Kafka container {self.image} failed: {exc}") from exc
        self._container = container
        self.started_in = time.monotonic() - started
        log.info("Kafka container %s ready at %s in %.1fs", self.image, self._bootstrap, self.started_in)
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()


def docker_available(timeout: float = 5.0) -> bool:
    """True when a Docker engine answers ``docker info`` within ``timeout`` seconds."""
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def get_broker(**local_options: Any) -> Broker:
    """The broker to use for dev/tests (not started; use as a context manager or call ``start()``).

    1. ``KAFKA_BOOTSTRAP_SERVERS`` set -> :class:`ExternalKafka` (no process);
    2. a Docker engine answers -> :class:`DockerKafka` (testcontainers);
    3. else -> :class:`LocalKafka` (``local_options`` are passed to it).

    ``S2S_BRIDGE_KAFKA_MODE=external|docker|local`` skips the detection.
    """
    mode = os.environ.get("S2S_BRIDGE_KAFKA_MODE", "auto").strip().lower() or "auto"
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if mode not in {"auto", "external", "docker", "local"}:
        raise BrokerError(f"S2S_BRIDGE_KAFKA_MODE={mode!r}: expected auto, external, docker or local")
    if mode == "external" or (mode == "auto" and external):
        if not external:
            raise BrokerError("S2S_BRIDGE_KAFKA_MODE=external but KAFKA_BOOTSTRAP_SERVERS is not set")
        return ExternalKafka(external)
    if mode == "docker" or (mode == "auto" and docker_available()):
        return DockerKafka()
    return LocalKafka(**local_options)
