"""What every way of getting a broker shares: :class:`Broker`, :class:`BrokerError` and the readiness wait."""

from __future__ import annotations

import logging
import socket
import time
from types import TracebackType
from typing import Any, Self

from streams.logs import rdkafka_logger

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """A Kafka broker could not be fetched, started, reached or stopped."""


def as_text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def tail(text: str | bytes | None, lines: int = 40) -> str:
    return "\n".join(as_text(text).rstrip().splitlines()[-lines:])


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.25):
            return True
    except OSError:
        return False


def wait_until_ready(
    bootstrap_servers: str,
    timeout: float = 60.0,
    *,
    alive: Any = None,
) -> None:
    """Poll ``AdminClient.list_topics`` until the cluster answers with at least one broker.

    ``alive`` is an optional callable; if it returns False the wait is aborted (process died).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    first = bootstrap_servers.split(",")[0].strip()
    host, _, port_s = first.rpartition(":")
    admin: AdminClient | None = None
    last_error: Exception | None = None
    while True:
        if alive is not None and not alive():
            raise BrokerError("broker process exited while waiting for it to become ready")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"Kafka at {bootstrap_servers} not ready after {timeout:.0f}s (last error: {last_error})")
        # Wait for the TCP listener before creating a client: keeps librdkafka's connect-refused spam away.
        if admin is None:
            if host and port_s.isdigit() and not _port_open(int(port_s), host.strip("[]")):
                time.sleep(0.1)
                continue
            conf: dict[str, Any] = {
                "bootstrap.servers": bootstrap_servers,
                "logger": rdkafka_logger("dev-broker"),
                "log.connection.close": False,
            }
            admin = AdminClient(conf)
        try:
            md = admin.list_topics(timeout=max(0.5, min(2.0, remaining)))
            if md.brokers:
                return
            last_error = BrokerError("metadata has no brokers yet")
        except KafkaException as exc:
            last_error = exc
        time.sleep(0.1)


class Broker:
    """Common interface: ``start()``/``stop()``, context manager, ``bootstrap_servers``, ``started_in``.

    Also the type of whatever :func:`~streams.dev.kafka.providers.get_broker` returns.
    """

    kind = "abstract"
    started_in: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        try:
            where = self.bootstrap_servers
        except BrokerError:
            where = "?"
        return f"<{type(self).__name__} {self.kind} {where}>"
