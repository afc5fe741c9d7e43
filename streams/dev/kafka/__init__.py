"""A real single-node Apache Kafka broker for development and tests.

Three ways to get a broker, chosen by :func:`get_broker`:

* ``KAFKA_BOOTSTRAP_SERVERS`` is set -> use that existing cluster (:class:`ExternalKafka`, no process);
* a Docker engine answers ``docker info`` -> testcontainers' ``KafkaContainer`` (:class:`DockerKafka`);
* otherwise -> :class:`LocalKafka`: Apache Kafka (KRaft, combined broker+controller) run straight from
  the jars on Maven Central, fetched once with ``mvn`` into ``~/.cache/s2s-bridge/kafka-<version>/libs``.

``S2S_BRIDGE_KAFKA_MODE=auto|external|docker|local`` forces one of them (default ``auto``).
``LocalKafka`` needs only Java 17+ and Maven; no Docker, no Kafka tarball, no internet beyond Maven Central.

The modules: :mod:`.base` (:class:`Broker`, :class:`BrokerError`, the readiness wait), :mod:`.jars`
(the Maven fetch), :mod:`.tls` (throwaway PKI and SASL users), :mod:`.local` (:class:`LocalKafka` and
``s2s-bridge dev kafka``), :mod:`.providers` (the external and Docker brokers, :func:`get_broker`).
"""

from streams.dev.kafka.base import Broker, BrokerError
from streams.dev.kafka.jars import KAFKA_VERSION, ensure_jars
from streams.dev.kafka.local import LocalKafka, main_dev_kafka
from streams.dev.kafka.providers import DockerKafka, ExternalKafka, get_broker
from streams.dev.kafka.tls import KafkaSecurity, TlsFiles, generate_tls_files

__all__ = [
    "KAFKA_VERSION",
    "Broker",
    "BrokerError",
    "DockerKafka",
    "ExternalKafka",
    "KafkaSecurity",
    "LocalKafka",
    "TlsFiles",
    "ensure_jars",
    "generate_tls_files",
    "get_broker",
    "main_dev_kafka",
]
