"""`s2s-bridge demo`: the whole bridge end to end on this machine.

Starts a real Kafka broker and the destination emulator, produces sample events of every shipped
schema (some of them bad on purpose), runs the worker until every record is settled and prints
what was delivered, filtered and dead-lettered, checking by counting that nothing was lost.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.codec import encode_plain, load_schema_file, parse
from streams.config import load_config
from streams.deadletter import H_REASON, H_STAGE, header_dict
from streams.dev.samples import SampleFactory
from streams.dev.topics import read_topics
from streams.metrics import METRICS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"
DEMO_WRITE_KEY = "demo-write-key-3c9f"


def _bad_records(f: SampleFactory, event: str) -> list[tuple[str, dict[str, Any] | bytes]]:
    """A few records per customer event that must not be sent, each for its own reason."""
    no_id = f.record(event)
    no_id["customer"] = {k: None for k in no_id["customer"]}
    no_country = f.record(event)
    no_country["customer"].update(country=None, phone=None)
    no_country["context"].update(ip_address=None, locale=None)
    denied = f.record(event, consent_granted=False)
    return [
        ("undecodable", b"\x00\x01\x02 this is not avro \xff"),
        ("no identifier", no_id),
        ("no country", no_country),
        ("consent denied", denied),
    ]


def _dead_letters_by_reason(bootstrap: str, topics: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for m in read_topics(bootstrap, topics, timeout=20):
        h = header_dict(m.headers())
        counts[f"{h.get(H_STAGE)}:{h.get(H_REASON)}"] += 1
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
        with Emulator(EmulatorConfig(zeotap_write_keys=(DEMO_WRITE_KEY,), seed=1)) as emu:
            say(f"  emulator at {emu.base_url}")
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "BRIDGE_GROUP_ID": f"demo-{uuid.uuid4().hex[:6]}",
                "ZEOTAP_URL": f"{emu.base_url}/zeotap",
                "ZEOTAP_WRITE_KEY": DEMO_WRITE_KEY,
            }
            cfg = load_config(EXAMPLE, env=env)
            cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"port": 0})})
            admin = AdminClient({"bootstrap.servers": bootstrap})
            topics = [r.topic for r in cfg.routes.values()] + [r.dlt for r in cfg.routes.values()]
            for fut in admin.create_topics([NewTopic(t, cfg.kafka.topic_partitions, 1) for t in topics]).values():
                try:
                    fut.result(30)
                except Exception as exc:  # already there from an earlier demo on an external cluster
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
            f = SampleFactory(2026)
            producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
            produced = 0
            for name, route in cfg.routes.items():
                schema = parse(load_schema_file(cfg.schema_path(route)))
                items: list[tuple[str, dict[str, Any] | bytes]] = [("ok", f.record(name)) for _ in range(per_event)]
                if name != "market_offer_assignment":
                    items += _bad_records(f, name)
                for _, rec in items:
                    value = rec if isinstance(rec, bytes) else encode_plain(schema, rec)
                    key = None if isinstance(rec, bytes) else rec["event_id"].encode()
                    producer.produce(route.topic, key=key, value=value)
                    produced += 1
            producer.flush(30)
            say(f"produced {produced} records on {len(cfg.routes)} topics; running the worker ...")

            worker = Worker(cfg, web_port=0, install_signals=False)

            async def run() -> int:
                task = asyncio.ensure_future(worker.main())
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and not task.done() and worker.bridge.settled < produced:
                    await asyncio.sleep(0.2)
                worker.request_stop()
                return await task

            code = asyncio.run(run())
            stats = emu.admin.stats()["destinations"]["zeotap"]
            delivered = int(stats["unique_ids"])
            filtered: Counter[str] = Counter()
            for metric in METRICS.filtered.collect():
                for s in metric.samples:
                    if s.name.endswith("_total") and s.value:
                        filtered[f"{s.labels['stage']}:{s.labels['reason']}"] += int(s.value)
            dead = _dead_letters_by_reason(bootstrap, [r.dlt for r in cfg.routes.values()])
            lost = produced - delivered - sum(filtered.values()) - sum(dead.values())
            summary = {
                "produced": produced,
                "delivered": delivered,
                "duplicates": int(stats["duplicates"]),
                "filtered": dict(filtered),
                "dead_lettered": dict(dead),
                "lost": lost,
                "worker_exit": code,
                "seconds": round(time.monotonic() - t0, 1),
            }
    if as_json:
        print(orjson.dumps(summary).decode())
    else:
        print()
        print(f"produced       {produced}")
        print(
            f"delivered      {delivered}   (unique eventIds received by the Zeotap emulator; duplicates {summary['duplicates']})"
        )
        print(f"filtered       {sum(filtered.values())}")
        for k, v in sorted(filtered.items()):
            print(f"  {k:<34} {v}")
        print(f"dead-lettered  {sum(dead.values())}")
        for k, v in sorted(dead.items()):
            print(f"  {k:<34} {v}")
        print(f"lost           {lost}")
        print(f"({summary['seconds']}s, worker exit code {code})")
    logging.shutdown()
    return 0 if lost == 0 and code == 0 else 1
