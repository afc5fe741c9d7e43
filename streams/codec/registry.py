"""The Confluent Schema Registry client (HTTP): the `fetch_by_id` a `SchemaStore` is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.codec.errors import DecodeError, SchemaRegistryUnavailable, UnknownSchemaId


def registry_fetcher(url: str, username: str | None = None, password: str | None = None) -> Callable[[int], str]:
    """A `fetch_by_id` for SchemaStore backed by confluent-kafka's Schema Registry client."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    # fail fast: the worker itself retries with backoff (and pauses) while the registry is down
    conf: dict[str, Any] = {"url": url, "timeout": 5, "max.retries": 1, "retries.wait.ms": 200}
    if username:
        conf["basic.auth.user.info"] = f"{username}:{password or ''}"
    client = SchemaRegistryClient(conf)

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
