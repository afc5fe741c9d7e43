"""pytest plugin: a real Kafka broker for ``@pytest.mark.kafka`` tests.

Fixtures (session scoped, one broker per test session):

* ``kafka_broker``    -> the started broker object from :func:`streams.dev.kafka.get_broker`
* ``kafka_bootstrap`` -> its bootstrap string, e.g. ``"127.0.0.1:40123"``

Where the broker comes from: ``KAFKA_BOOTSTRAP_SERVERS`` (existing cluster), else a Docker engine
(testcontainers), else Apache Kafka from the Maven Central jars (needs java + mvn). Force one with
``S2S_BRIDGE_KAFKA_MODE=external|docker|local``. ``S2S_BRIDGE_KAFKA_LOG=<file>`` keeps the local
broker's log after the session (default: inside its temp data dir, deleted on stop).

If no broker can be had the requesting tests ERROR - they are never skipped, with or without
``CI=true``: a silently skipped integration suite is worse than a red one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from streams.dev.kafka import Broker, BrokerError, get_broker


def running_broker(make: Callable[[], Broker], what: str = "the kafka-marked tests") -> Iterator[Broker]:
    """Make and start a broker, yield it, stop it. If it cannot be had, the requesting tests FAIL
    (with or without CI=true), never skip: a silently skipped integration suite is worse than a red one."""
    error: BrokerError | None = None
    try:
        broker = make()
        broker.start()
    except BrokerError as exc:
        error = exc
    if error is not None:  # outside the except block: no chained traceback noise
        ci = " (CI=true)" if os.environ.get("CI", "").lower() == "true" else ""
        pytest.fail(f"no Kafka broker for {what}{ci}:\n{error}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    local_options: dict[str, str] = {}
    if os.environ.get("S2S_BRIDGE_KAFKA_LOG"):
        local_options["log_file"] = os.environ["S2S_BRIDGE_KAFKA_LOG"]
    yield from running_broker(lambda: get_broker(**local_options))


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap_servers
