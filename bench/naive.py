"""Variant `naive` (child process): what a user would write by hand with Faust.

    python -m bench.naive --config REALTIME.yaml --bootstrap HOST:PORT --topic T --app-id ID --events N

A faust-streaming agent (raw value serializer, its own app id / consumer group) that, for each
event in turn: decodes and maps it with the project's `RoutePipeline.process` (so decoding,
mapping, hashing and enrichment are identical to the bridge's) and sends it in its own HTTP POST
(`httpx.AsyncClient`, awaited one at a time) to the Zeotap real-time endpoint, URL and headers
from `Zeotap.request(body)`. It stops after N events. Time: first event received -> last POST
answered; CPU from `getrusage` over that window; peak RSS VmHWM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="bridge config with the Zeotap destination in realtime mode")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--app-id", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import faust
    import httpx

    from bench.common import ROUTE, emit_result, status_kb
    from streams.config import load_config
    from streams.destinations.zeotap import Zeotap
    from streams.pipeline.outcome import Payload
    from streams.routes import build_pipelines

    cfg = load_config(args.config)
    pipeline = build_pipelines(cfg, routes=[ROUTE])[ROUTE]
    zeotap = Zeotap("zeotap", cfg.destinations["zeotap"])  # type: ignore[arg-type]
    assert not zeotap.batched, "the naive variant sends one event per request (realtime mode)"

    state: dict[str, Any] = {"n": 0, "sent": 0, "not_sent": 0, "http_errors": 0, "t_first": 0.0, "t_last": 0.0}
    ru: dict[str, Any] = {}

    async def run() -> None:
        done = asyncio.Event()
        app = faust.App(
            args.app_id,
            broker=f"kafka://{args.bootstrap}",
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            topic_disable_leader=True,
            topic_allow_declare=False,
            stream_wait_empty=False,
            web_enabled=False,
            store="memory://",
        )
        topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
        client = httpx.AsyncClient(timeout=30.0)

        async def forward(stream: Any) -> None:
            async for event in stream.events():
                if state["n"] >= args.events:
                    continue  # done: drop the rest until the app stops
                if state["n"] == 0:
                    state["t_first"] = time.time()
                    ru["first"] = resource.getrusage(resource.RUSAGE_SELF)
                m = event.message
                # (fetches the writer schema from the registry the first time, as a hand-written consumer would)
                out = pipeline.process_blocking(m.value, m.topic, m.partition, m.offset)
                if isinstance(out, Payload):
                    req = zeotap.request(out.body)
                    resp = await client.post(req.url, content=req.body, headers=req.headers)
                    if resp.status_code == 204:
                        state["sent"] += 1
                    else:
                        state["http_errors"] += 1
                else:
                    state["not_sent"] += 1
                state["n"] += 1
                if state["n"] >= args.events:
                    state["t_last"] = time.time()
                    ru["last"] = resource.getrusage(resource.RUSAGE_SELF)
                    done.set()

        app.agent(topic, name="bench.naive.forward")(forward)
        await app.start()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.timeout)
        finally:
            await app.stop()
            await client.aclose()

    asyncio.run(run())
    end = resource.getrusage(resource.RUSAGE_SELF)
    first, last = ru.get("first"), ru.get("last")
    cpu = (last.ru_utime + last.ru_stime - first.ru_utime - first.ru_stime) if first and last else 0.0
    emit_result(
        {
            "events": state["n"],
            "sent": state["sent"],
            "not_sent": state["not_sent"],
            "http_errors": state["http_errors"],
            "t_first": state["t_first"],
            "t_last": state["t_last"],
            "seconds": state["t_last"] - state["t_first"],
            "cpu_s": cpu,
            "cpu_total_s": end.ru_utime + end.ru_stime,
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec (it would report the parent's RSS)
            "peak_rss_kb": status_kb(os.getpid(), "VmHWM") or 0,
        }
    )


if __name__ == "__main__":
    main()
