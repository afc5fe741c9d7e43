"""`s2s-bridge demo`: the whole bridge end to end on this machine.

Starts a real Kafka broker and the destination emulator, produces sample events of every shipped
schema (some of them bad on purpose), runs the worker until every record is settled and prints
what was delivered, filtered and dead-lettered, per destination and in total, checking by
counting that nothing was lost.

Every schema goes to Zeotap (``examples/bridge.yaml``); the routes of the Audiohook and activation
reference configs (``examples/audiohook.yaml``, ``examples/activation.yaml``) are added under their
own topics (``audiohook.<topic>``, ``activation.<topic>``) with those files' settings unchanged, and
the emulator is configured as those settings read the documents where they are silent.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.codec import encode_plain, load_schema_file, parse
from streams.config import BridgeConfig, config_from_mapping
from streams.deadletter import H_REASON, H_STAGE, header_dict
from streams.dev.samples import SampleFactory
from streams.dev.topics import read_topics
from streams.logs import rdkafka_logger
from streams.metrics import METRICS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "bridge.yaml"
#: the reference configs whose destination and routes the demo adds to EXAMPLE's, by destination
REFERENCE = {"audiohook": EXAMPLES / "audiohook.yaml", "activation": EXAMPLES / "activation.yaml"}
DEMO_WRITE_KEY = "demo-write-key-3c9f"
DEMO_API_KEY = "demo-api-key-7a1e"


def _good(record: dict[str, Any], destination: str) -> bool:
    """Whether a sample carries what the destination's reference config requires of a record, so
    that the demo's dead letters are only its deliberately bad records."""
    customer = record.get("customer") or {}
    if destination == "audiohook":  # visitor_id (require_visitor_id) and ip_address (the document)
        return bool(customer.get("anonymous_id") and (record.get("context") or {}).get("ip_address"))
    if destination == "activation":  # customer_id: userId, no fallback to another identifier
        return bool(customer.get("customer_id"))
    return True


def demo_config(env: dict[str, str]) -> BridgeConfig:
    """EXAMPLE (every schema to Zeotap) plus each REFERENCE config's destination and routes, the
    routes renamed ``<destination>.<route>`` and reading topic ``<destination>.<topic>``."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for dest, path in REFERENCE.items():
        other = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["destinations"].update(other["destinations"])
        for name, route in other["routes"].items():
            renamed = {**route, "topic": f"{dest}.{route['topic']}"}
            if "dead_letter_topic" in route:
                renamed["dead_letter_topic"] = f"{dest}.{route['dead_letter_topic']}"
            raw["routes"][f"{dest}.{name}"] = renamed
    return config_from_mapping(raw, EXAMPLE, env)


def _filtered_by_route() -> Counter[tuple[str, str]]:
    """(route, "stage:reason") -> records filtered so far in this process."""
    counts: Counter[tuple[str, str]] = Counter()
    for metric in METRICS.filtered.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and s.value:
                counts[(s.labels["route"], f"{s.labels['stage']}:{s.labels['reason']}")] += int(s.value)
    return counts


def bad_records(draw: Callable[..., dict[str, Any]]) -> list[tuple[str, dict[str, Any] | bytes]]:
    """A few records per customer event that must not be sent, each for its own reason only:
    ``draw(**kw)`` gives a record that the route's destination would take."""
    no_id = draw()
    no_id["customer"] = {k: None for k in no_id["customer"]}
    no_country = draw()
    no_country["customer"].update(country=None, phone=None)
    no_country["context"].update(ip_address=None, locale=None)
    denied = draw(consent_granted=False)
    return [
        ("undecodable", b"\x00\x01\x02 this is not avro \xff"),
        ("no identifier", no_id),
        ("no country", no_country),
        ("consent denied", denied),
    ]


def _dead_letters_by_reason(bootstrap: str, topics: list[str]) -> Counter[tuple[str, str]]:
    """(dead-letter topic, "stage:reason") -> dead letters on it."""
    counts: Counter[tuple[str, str]] = Counter()
    for m in read_topics(bootstrap, topics, timeout=20):
        h = header_dict(m.headers())
        counts[(m.topic(), f"{h.get(H_STAGE)}:{h.get(H_REASON)}")] += 1
    return counts


def run_demo(per_event: int = 60, as_json: bool = False, timeout: float = 180.0) -> int:
    from streams.dev.emulator import Emulator, EmulatorConfig
    from streams.dev.kafka import get_broker
    from streams.logs import setup_logging
    from streams.worker import Worker

    setup_logging("WARNING")
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if as_json else (lambda *a: print(*a, flush=True))
    t0 = time.monotonic()
    say("starting Kafka (KRaft, single node) ...")
    with get_broker() as broker:
        bootstrap = broker.bootstrap_servers
        say(f"  Kafka at {bootstrap} ({time.monotonic() - t0:.1f}s)")
        # the reference configs' readings where the documents are silent: one event per request
        # (both), no gzip (the default), ISO timestamps only (Audiohook strict), the visitor id
        # required (require_visitor_id: the emulator requires the examples' fields), the activation
        # API's default path, bearer auth and Idempotency-Key
        emulator_config = EmulatorConfig(
            zeotap_write_keys=(DEMO_WRITE_KEY,),
            activation_api_keys=(DEMO_API_KEY,),
            audiohook_require_example_fields=True,
            seed=1,
        )
        with Emulator(emulator_config) as emu:
            say(f"  emulator at {emu.base_url}")
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "BRIDGE_GROUP_ID": f"demo-{uuid.uuid4().hex[:6]}",
                "ZEOTAP_URL": f"{emu.base_url}/zeotap",
                "ZEOTAP_WRITE_KEY": DEMO_WRITE_KEY,
                "AUDIOHOOK_URL": f"{emu.base_url}/audiohook",
                "ACTIVATION_URL": emu.admin.activation_url,
                "ACTIVATION_API_KEY": DEMO_API_KEY,
            }
            cfg = demo_config(env)
            cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"port": 0})})
            admin = AdminClient({"bootstrap.servers": bootstrap}, logger=rdkafka_logger("demo"))
            topics = [r.topic for r in cfg.routes.values()] + [r.dlt for r in cfg.routes.values()]
            for fut in admin.create_topics([NewTopic(t, cfg.kafka.topic_partitions, 1) for t in topics]).values():
                try:
                    fut.result(30)
                except Exception as exc:  # already there from an earlier demo on an external cluster
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
            f = SampleFactory(2026)
            producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "logger": rdkafka_logger("demo")})
            produced = 0
            produced_by: Counter[str] = Counter()  # by destination
            for route in cfg.routes.values():
                schema = parse(load_schema_file(cfg.schema_path(route)))
                event = route.schema_file.stem  # the sample's kind: the schema's name
                api = cfg.destinations[route.destination].type

                def draw(event: str = event, api: str = api, **kw: Any) -> dict[str, Any]:
                    while not _good(rec := f.record(event, **kw), api):
                        pass
                    return rec

                items: list[tuple[str, dict[str, Any] | bytes]] = [("ok", draw()) for _ in range(per_event)]
                if event != "market_offer_assignment":
                    items += bad_records(draw)
                for _, rec in items:
                    value = rec if isinstance(rec, bytes) else encode_plain(schema, rec)
                    key = None if isinstance(rec, bytes) else rec["event_id"].encode()
                    producer.produce(route.topic, key=key, value=value)
                    produced += 1
                    produced_by[route.destination] += 1
            producer.flush(30)
            say(f"produced {produced} records on {len(cfg.routes)} topics; running the worker ...")

            worker = Worker(cfg, web_port=0, install_signals=False)
            # the filter counters are the process's: count only what this run adds
            filtered_before = _filtered_by_route()

            async def run() -> int:
                task = asyncio.ensure_future(worker.main())
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and not task.done() and worker.bridge.settled < produced:
                    await asyncio.sleep(0.2)
                worker.request_stop()
                return await task

            code = asyncio.run(run())
            api_stats = emu.admin.stats()["destinations"]
            filtered_by = _filtered_by_route() - filtered_before
            dead_by = _dead_letters_by_reason(bootstrap, sorted({r.dlt for r in cfg.routes.values()}))
            route_of_dlt = {r.dlt: r.destination for r in cfg.routes.values()}
            per_destination: dict[str, dict[str, Any]] = {}
            for dest in sorted(cfg.destinations):
                stats = api_stats[cfg.destinations[dest].type]
                d_filtered: Counter[str] = Counter()
                for (route_name, k), v in filtered_by.items():
                    if cfg.routes[route_name].destination == dest:
                        d_filtered[k] += v
                d_dead: Counter[str] = Counter()
                for (dlt, k), v in dead_by.items():
                    if route_of_dlt[dlt] == dest:
                        d_dead[k] += v
                d_delivered = int(stats["unique_ids"])
                per_destination[dest] = {
                    "produced": produced_by[dest],
                    "delivered": d_delivered,
                    "duplicates": int(stats["duplicates"]),
                    "filtered": dict(d_filtered),
                    "dead_lettered": dict(d_dead),
                    "lost": produced_by[dest] - d_delivered - sum(d_filtered.values()) - sum(d_dead.values()),
                }
            filtered: Counter[str] = Counter()
            for (_, k), v in filtered_by.items():
                filtered[k] += v
            dead: Counter[str] = Counter()
            for (_, k), v in dead_by.items():
                dead[k] += v
            delivered = sum(d["delivered"] for d in per_destination.values())
            lost = produced - delivered - sum(filtered.values()) - sum(dead.values())
            summary = {
                "produced": produced,
                "delivered": delivered,
                "duplicates": sum(d["duplicates"] for d in per_destination.values()),
                "filtered": dict(filtered),
                "dead_lettered": dict(dead),
                "lost": lost,
                "worker_exit": code,
                "seconds": round(time.monotonic() - t0, 1),
                "destinations": per_destination,
            }
    if as_json:
        print(orjson.dumps(summary).decode())
    else:
        print()
        print(f"produced       {produced}")
        print(
            f"delivered      {delivered}   (unique event ids received by the emulated APIs; duplicates {summary['duplicates']})"
        )
        print(f"filtered       {sum(filtered.values())}")
        for k, v in sorted(filtered.items()):
            print(f"  {k:<34} {v}")
        print(f"dead-lettered  {sum(dead.values())}")
        for k, v in sorted(dead.items()):
            print(f"  {k:<34} {v}")
        print(f"lost           {lost}")
        print()
        print(f"{'destination':<14} {'produced':>9} {'delivered':>10} {'filtered':>9} {'dead-lettered':>14} {'lost':>5}")
        for dest, d in per_destination.items():
            print(
                f"{dest:<14} {d['produced']:>9} {d['delivered']:>10} {sum(d['filtered'].values()):>9}"
                f" {sum(d['dead_lettered'].values()):>14} {d['lost']:>5}"
            )
        print(f"{'total':<14} {produced:>9} {delivered:>10} {sum(filtered.values()):>9} {sum(dead.values()):>14} {lost:>5}")
        print(f"({summary['seconds']}s, worker exit code {code})")
    logging.shutdown()
    ok = lost == 0 and all(d["lost"] == 0 for d in per_destination.values())
    return 0 if ok and code == 0 else 1
