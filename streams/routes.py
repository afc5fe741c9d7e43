"""A config's routes, assembled: each route's pipeline with its decoder and its destination's API.

The wiring the worker, replay, the dry run and `check` share, kept out of the pure pipeline: the
schema store (the config's schema files and, when configured, the schema-registry client, whose
errors belong to the caller's I/O) and the destination APIs from the registry.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.codec import Decoder, SchemaStore, load_schema_file
from streams.codec.registry import registry_fetcher
from streams.config import BridgeConfig
from streams.destinations import DestinationAPI, make_destination
from streams.pipeline.transform import RoutePipeline


def schema_store(config: BridgeConfig) -> SchemaStore:
    """The writer schemas the config knows: its schema files and routes' schemas, and the registry
    client when one is configured; it never fetches while decoding (`SchemaNeeded` instead)."""
    fetch = None
    sr = config.kafka.schema_registry
    if sr is not None:
        fetch = registry_fetcher(sr.url, sr.username, sr.password.get_secret_value() if sr.password else None)
    store = SchemaStore(fetch, fetch_on_miss=False)
    store.add_files(config.base_dir / p if not p.is_absolute() else p for p in config.schema_paths)
    for r in config.routes.values():
        store.add(load_schema_file(config.schema_path(r)))
    return store


def build_pipelines(
    config: BridgeConfig,
    store: SchemaStore | None = None,
    routes: Iterable[str] | None = None,
    destinations: dict[str, DestinationAPI] | None = None,
) -> dict[str, RoutePipeline]:
    """Compile the pipelines of the config's routes (all, or those named); the schema store and the
    destination APIs are the config's own (`schema_store`, `make_destination`) unless handed in."""
    if store is None:
        store = schema_store(config)
    if destinations is None:
        destinations = {n: make_destination(n, s) for n, s in config.destinations.items()}
    out: dict[str, RoutePipeline] = {}
    for name in routes or config.routes:
        route = config.routes[name]
        decoder = Decoder(load_schema_file(config.schema_path(route)), route.framing, store)
        out[name] = RoutePipeline(name, route, destinations[route.destination], decoder)
    return out
