"""The Confluent Schema Registry client (HTTP): the `fetch_by_id` a `SchemaStore` is given, and a
subject's schema by version (`fetch_subject_schema`, for `scaffold`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.codec.errors import DecodeError, SchemaRegistryUnavailable, UnknownSchemaId


def _client(url: str, username: str | None, password: str | None) -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # fail fast: the worker itself retries with backoff (and pauses) while the registry is down
    conf: dict[str, Any] = {"url": url, "timeout": 5, "max.retries": 1, "retries.wait.ms": 200}
    if username:
        conf["basic.auth.user.info"] = f"{username}:{password or ''}"
    return SchemaRegistryClient(conf)


def registry_fetcher(url: str, username: str | None = None, password: str | None = None) -> Callable[[int], str]:
    """A `fetch_by_id` for SchemaStore backed by confluent-kafka's Schema Registry client."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = _client(url, username, password)

    def fetch(schema_id: int) -> str:
        try:
            schema = client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaId(f"schema id {schema_id} not found in the schema registry") from None
            raise SchemaRegistryUnavailable(f"schema registry error {exc.http_status_code}: {exc.error_message}") from None
        except Exception as exc:  # connection errors from the HTTP client
            raise SchemaRegistryUnavailable(f"schema registry unreachable: {type(exc).__name__}") from None
        if schema.schema_type not in (None, "AVRO"):
            raise DecodeError(f"schema id {schema_id} is {schema.schema_type}, not AVRO")
        return str(schema.schema_str)

    return fetch


class UnknownSubject(LookupError):
    """The registry has no such subject, or no such version of it (404)."""


def fetch_subject_schema(
    url: str, subject: str, version: int | None = None, username: str | None = None, password: str | None = None
) -> tuple[int, str]:
    """(version, schema text) of a subject's latest version, or of `version`. Raises UnknownSubject
    (404) and SchemaRegistryUnavailable (unreachable, or any other error); DecodeError if not Avro."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = _client(url, username, password)
    try:
        found = client.get_latest_version(subject) if version is None else client.get_version(subject, version)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            which = "latest version" if version is None else f"version {version}"
            raise UnknownSubject(f"subject {subject!r} ({which}) not found in the schema registry: {exc.error_message}") from None
        raise SchemaRegistryUnavailable(f"schema registry error {exc.http_status_code}: {exc.error_message}") from None
    except Exception as exc:  # connection errors from the HTTP client
        raise SchemaRegistryUnavailable(f"schema registry unreachable: {type(exc).__name__}") from None
    if found.schema.schema_type not in (None, "AVRO"):
        raise DecodeError(f"subject {subject!r} version {found.version} is {found.schema.schema_type}, not AVRO")
    return int(found.version), str(found.schema.schema_str)
