"""Variant `raw` (child process): a plain confluent-kafka Consumer that Avro-decodes every record, nothing else.

    python -m bench.raw --bootstrap HOST:PORT --topic T --group G --registry URL --events N

Writer schemas come from the schema registry by the id in the Confluent header (fetched once,
parsed once with fastavro, cached). Time: first record consumed -> last record decoded. CPU is
`getrusage(RUSAGE_SELF)` over the same window (all threads, librdkafka's included); peak RSS is
VmHWM. Result: one `BENCH_RESULT {json}` line on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import struct
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()

    import fastavro
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from bench.common import emit_result, status_kb

    registry = SchemaRegistryClient({"url": args.registry})
    schemas: dict[int, Any] = {}
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    reader = fastavro.schemaless_reader
    unpack = struct.Struct(">bI").unpack_from
    n = 0
    errors = 0
    t_first = t_last = 0.0
    ru_first: Any = None
    deadline = time.monotonic() + args.timeout
    try:
        while n < args.events and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    errors += 1
                    continue
                if ru_first is None:
                    t_first = time.time()
                    ru_first = resource.getrusage(resource.RUSAGE_SELF)
                value = m.value()
                _, schema_id = unpack(value, 0)
                schema = schemas.get(schema_id)
                if schema is None:
                    schema = schemas[schema_id] = fastavro.parse_schema(json.loads(registry.get_schema(schema_id).schema_str))
                buf = io.BytesIO(value)
                buf.seek(5)
                reader(buf, schema)
                n += 1
        t_last = time.time()
        ru_last = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        consumer.close()
    ru_end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru_last.ru_utime + ru_last.ru_stime - ru_first.ru_utime - ru_first.ru_stime) if ru_first else 0.0
    emit_result(
        {
            "events": n,
            "errors": errors,
            "t_first": t_first,
            "t_last": t_last,
            "seconds": t_last - t_first,
            "cpu_s": cpu,
            "cpu_total_s": ru_end.ru_utime + ru_end.ru_stime,
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec (it would report the parent's RSS)
            "peak_rss_kb": status_kb(os.getpid(), "VmHWM") or 0,
        }
    )


if __name__ == "__main__":
    main()
