"""Fault-injection suite: `python -m tests.faults [--events 100000] [--only NAME ...] [--json]`.

On a real local Kafka broker (started here; LocalKafka so it can be stopped and restarted) and
the destination emulator in its own process, each scenario produces N records with realistic keys
over 6 partitions, runs worker processes through a failure, and then accounts for every record by
its eventId: delivered (the emulator received it), dead-lettered (its key is on the dead-letter
topic), filtered (the transform core filters it: consent denied), or **lost** (none of these).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from streams.config import BridgeConfig
from streams.dev.broker import LocalKafka
from streams.dev.emulator import EmulatorProcess
from streams.dev.samples import SampleFactory
from streams.pipeline.outcome import Filtered
from streams.pipeline.transform import build_pipelines
from tests.integration.harness import API_KEY, WRITE_KEY, create_topics, encoded, make_config, produce, read_all

PARTITIONS = 6
WORK = Path(os.environ.get("FAULTS_WORKDIR", "/tmp/s2s-faults"))


@dataclass
class Result:
    scenario: str
    produced: int = 0
    delivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    lost: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Suite:
    def __init__(self, events: int, seed: int = 1, engine: str = "batch") -> None:
        self.events = events
        self.engine = engine
        self.rng = random.Random(seed)
        WORK.mkdir(parents=True, exist_ok=True)
        self.broker = LocalKafka(log_file=WORK / "broker.log")
        self.emu = EmulatorProcess("--write-key", WRITE_KEY, "--api-key", API_KEY, "--no-keep-events", "--seed", str(seed))
        self.procs: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Suite:
        self.broker.start()
        self.emu.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        self.emu.stop()
        self.broker.stop()

    def config(self, name: str, **kw: Any) -> tuple[BridgeConfig, Path]:
        d = WORK / name
        d.mkdir(parents=True, exist_ok=True)
        kw.setdefault("worker", {"max_in_flight_events": 5_000, "shutdown_grace_s": 10})
        kw["worker"] = {"engine": self.engine, **kw["worker"]}
        return make_config(d, self.broker.bootstrap_servers, self.emu.base_url, partitions=PARTITIONS, **kw)

    def records(self, cfg: BridgeConfig, garbage_share: float = 0.0) -> tuple[list[tuple[bytes, bytes]], set[str]]:
        """N records keyed by customer (realistic keys), 2% with consent denied; returns (values, filtered ids)."""
        route = cfg.routes["purchase_completed"]
        f = SampleFactory(self.rng.randint(0, 10**6))
        recs = [f.record("purchase_completed", consent_granted=self.rng.random() >= 0.02) for _ in range(self.events)]
        values = encoded(cfg.schema_path(route), recs)
        keyed = []
        for (_, v), r in zip(values, recs, strict=True):
            key = (r["customer"]["customer_id"] or r["customer"]["anonymous_id"] or r["event_id"]).encode()
            keyed.append((key, v))
        pipeline = build_pipelines(cfg, routes=["purchase_completed"])["purchase_completed"]
        filtered = {r["event_id"] for r in recs if isinstance(pipeline.process_record(r, route.topic, 0, 0), Filtered)}
        if garbage_share:
            for i in range(len(keyed)):
                if self.rng.random() < garbage_share:
                    kind = self.rng.random()
                    if kind < 0.5:
                        garbage = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 200)))
                    else:  # schema-violating: a valid prefix cut short
                        garbage = keyed[i][1][: self.rng.randint(1, len(keyed[i][1]) - 1)]
                    filtered.discard(recs[i]["event_id"])
                    keyed[i] = (b"garbage-" + recs[i]["event_id"].encode(), garbage)
        self.ids = [r["event_id"] for r in recs]
        self.keys = {recs[i]["event_id"]: keyed[i][0] for i in range(len(recs))}
        return keyed, filtered

    def start_worker(self, path: Path, name: str) -> subprocess.Popen[bytes]:
        log = open(WORK / f"{name}.log", "ab")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, "-m", "streams", "worker", "--config", str(path)], stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def delivered(self) -> int:
        return int(self.emu.admin.stats()["destinations"]["zeotap"]["unique_ids"])

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def settle(self, cfg: BridgeConfig, expected: int, timeout: float = 300) -> None:
        """Wait until the emulator holds `expected` unique ids and the dead-letter topic stops growing."""
        self.wait(lambda: self.delivered() >= expected, timeout, f"{expected} deliveries")
        time.sleep(3)

    def account(self, name: str, cfg: BridgeConfig, filtered: set[str], t0: float) -> Result:
        route = cfg.routes["purchase_completed"]
        stats = self.emu.admin.stats()["destinations"]["zeotap"]
        delivered_ids = set(self.emu.admin.receipts("zeotap")["zeotap"])
        dl_keys = [m.key() for m in read_all(self.broker.bootstrap_servers, route.dlt, timeout=60)]
        dl_set = set(dl_keys)
        lost = [i for i in self.ids if i not in delivered_ids and i not in filtered and self.keys[i] not in dl_set]
        return Result(
            name,
            produced=len(self.ids),
            delivered=len(delivered_ids & set(self.ids)),
            duplicates=int(stats["duplicates"]),
            dead_lettered=len(dl_keys),
            filtered=len(filtered),
            lost=len(lost),
            seconds=round(time.monotonic() - t0, 1),
        )

    def fresh(self, name: str, garbage: float = 0.0, **kw: Any) -> tuple[BridgeConfig, Path, set[str], float]:
        self.emu.admin.reset(faults=True)
        cfg, path = self.config(name, **kw)
        route = cfg.routes["purchase_completed"]
        create_topics(self.broker.bootstrap_servers, [route.topic, route.dlt], PARTITIONS)
        values, filtered = self.records(cfg, garbage_share=garbage)
        produce(self.broker.bootstrap_servers, route.topic, values)
        return cfg, path, filtered, time.monotonic()

    def stop(self, p: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    def expected_deliveries(self, filtered: set[str], dead: int = 0) -> int:
        return len(self.ids) - len(filtered) - dead

    # ------------------------------------------------------------------ scenarios

    def sigkill(self) -> Result:
        cfg, path, filtered, t0 = self.fresh("sigkill")
        want = self.expected_deliveries(filtered)
        kills = sorted(self.rng.uniform(0.1, 0.85) for _ in range(3))
        notes = []
        for k in kills:
            p = self.start_worker(path, "sigkill")
            threshold = int(want * k)
            self.wait(lambda t=threshold: self.delivered() >= t, 300, f"{threshold} deliveries")
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            notes.append(f"killed at {self.delivered()}")
        p = self.start_worker(path, "sigkill")
        self.settle(cfg, want)
        self.stop(p)
        r = self.account("1. worker SIGKILLed 3x and restarted", cfg, filtered, t0)
        r.notes = notes
        return r

    def broker_restart(self) -> Result:
        cfg, path, filtered, t0 = self.fresh("broker")
        want = self.expected_deliveries(filtered)
        p = self.start_worker(path, "broker")
        self.wait(lambda: self.delivered() >= want * 0.3, 300, "30% delivered")
        at = self.delivered()
        t_restart = time.monotonic()
        self.broker.restart()  # stop, then start on the same data dir and port
        at_back = self.delivered()
        self.settle(cfg, want)
        self.stop(p)
        r = self.account("2. broker stopped and restarted mid-run", cfg, filtered, t0)
        r.notes = [
            f"broker restarted at {at} delivered (back after {time.monotonic() - t_restart:.1f}s... at {at_back})",
            f"worker exit code {p.returncode}",
        ]
        return r

    def outage(self) -> Result:
        cfg, path, filtered, t0 = self.fresh("outage")
        want = self.expected_deliveries(filtered)
        p = self.start_worker(path, "outage")
        self.wait(lambda: self.delivered() >= want * 0.2, 300, "20% delivered")
        self.emu.admin.set_faults("zeotap", outage_for_seconds=60)
        t_out = time.monotonic()
        rss: list[tuple[float, int]] = []  # (seconds into the outage, worker RSS in kB)
        while time.monotonic() - t_out < 60 and p.poll() is None:
            kb = rss_kb(p.pid)
            if kb:
                rss.append((time.monotonic() - t_out, kb))
            time.sleep(1.0)
        self.settle(cfg, want, timeout=400)
        self.stop(p)
        r = self.account("3. destination down for 60 s, then back", cfg, filtered, t0)
        r.notes = [f"all delivered {time.monotonic() - t_out:.0f}s after the outage began"]
        if rss:
            early = [kb for t, kb in rss if 5 <= t <= 15] or [rss[0][1]]
            late = [kb for t, kb in rss if t >= 45] or [rss[-1][1]]
            r.notes.append(
                f"worker RSS during the outage: {max(early) / 1024:.0f} MB at 5-15 s, {max(late) / 1024:.0f} MB at 45-60 s, "
                f"peak {max(kb for _, kb in rss) / 1024:.0f} MB"
            )
        return r

    def flaky(self) -> Result:
        cfg, path, filtered, t0 = self.fresh("flaky", zeotap={"timeout_s": 2.0})
        want = self.expected_deliveries(filtered)
        self.emu.admin.set_faults("zeotap", error_rate=0.20, throttle_rate=0.05, retry_after=1, slow_rate=0.01, slow_seconds=3.0)
        p = self.start_worker(path, "flaky")
        self.settle(cfg, want, timeout=600)
        self.stop(p)
        stats = self.emu.admin.stats()["destinations"]["zeotap"]
        r = self.account("4. 20% 5xx, 5% 429 + Retry-After, 1% slow (> timeout)", cfg, filtered, t0)
        r.notes = [f"requests by status {stats['requests']}", f"faults {stats.get('faults')}"]
        return r

    def rebalance(self) -> Result:
        cfg, path, filtered, t0 = self.fresh("rebalance")
        want = self.expected_deliveries(filtered)
        a = self.start_worker(path, "rebalance-a")
        self.wait(lambda: self.delivered() >= want * 0.25, 300, "25% delivered")
        b = self.start_worker(path, "rebalance-b")
        self.wait(lambda: self.delivered() >= want * 0.7, 300, "70% delivered")
        self.stop(b)
        self.settle(cfg, want)
        self.stop(a)
        r = self.account("5. second worker joins mid-run, later leaves", cfg, filtered, t0)
        r.notes = [f"worker exit codes a={a.returncode} b={b.returncode}"]
        return r

    def garbage(self) -> Result:
        cfg, path, filtered, t0 = self.fresh("garbage", garbage=0.01)
        route = cfg.routes["purchase_completed"]
        n_garbage = sum(1 for k in self.keys.values() if k.startswith(b"garbage-"))
        want = self.expected_deliveries(filtered, n_garbage)
        p = self.start_worker(path, "garbage")
        self.settle(cfg, want)
        self.stop(p)
        r = self.account("6. 1% garbage or schema-violating records", cfg, filtered, t0)
        dls = read_all(self.broker.bootstrap_servers, route.dlt, timeout=30)
        with_reason = sum(1 for m in dls if any(k == "s2s.reason" and v for k, v in (m.headers() or [])))
        r.notes = [f"{n_garbage} bad records produced, {with_reason} dead letters carry a reason", f"worker exit {p.returncode}"]
        r.notes.append(self.fuzz(cfg))
        return r

    def fuzz(self, cfg: BridgeConfig, rounds: int = 20_000) -> str:
        """Random bytes and random JSON against the decoder and pipeline: only clean rejections."""
        pipeline = build_pipelines(cfg, routes=["purchase_completed"])["purchase_completed"]
        rng = random.Random(7)
        rejected = 0
        for i in range(rounds):
            if i % 2:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            else:
                data = orjson.dumps({"event_id": rng.random(), "x": [rng.random()] * rng.randint(0, 5)})
            out = pipeline.process(data, "fuzz", 0, i)
            rejected += out.stage == "decode"  # type: ignore[union-attr]
        return f"fuzz: {rounds} random inputs, {rejected} rejected at decode, 0 crashes"

    def replay(self) -> Result:
        import asyncio

        from streams.replay import Replayer

        cfg, path, filtered, t0 = self.fresh("replay")
        raw = yaml.safe_load(path.read_text())
        raw["routes"]["purchase_completed"]["mapping"]["event"]["order_value"] = {"path": "order_value", "as": "int"}
        bug = path.with_name("bug.yaml")
        bug.write_text(yaml.safe_dump(raw, sort_keys=False))
        route = cfg.routes["purchase_completed"]
        p = self.start_worker(bug, "replay")
        self.wait(
            lambda: (
                len(read_all(self.broker.bootstrap_servers, route.dlt, timeout=5)) + self.delivered() + len(filtered)
                >= len(self.ids) * 0.999
            ),
            300,
            "the buggy run to settle",
        )
        time.sleep(3)
        self.stop(p)
        dead_first = len(read_all(self.broker.bootstrap_servers, route.dlt, timeout=30))
        s1 = asyncio.run(Replayer(cfg, "purchase_completed", progress=False).run())
        requests = self.emu.admin.stats()["destinations"]["zeotap"]["requests_total"]
        s2 = asyncio.run(Replayer(cfg, "purchase_completed", progress=False).run())
        requests_after = self.emu.admin.stats()["destinations"]["zeotap"]["requests_total"]
        r = self.account("7. replay after fixing a mapping bug", cfg, filtered, t0)
        # after the replay, the dead letters are handled: count them as delivered, not dead
        r.notes = [
            f"{dead_first} dead-lettered by the bug; replay delivered {s1.delivered}, filtered {s1.filtered} "
            f"(consent denied: filtered once the mapping works), failed again {s1.failed_again}",
            f"second replay read {s2.read}, sent {requests_after - requests} requests",
        ]
        r.dead_lettered = dead_first - s1.delivered - s1.filtered  # still unresolved after the replay
        return r


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


SCENARIOS = ["sigkill", "broker_restart", "outage", "flaky", "rebalance", "garbage", "replay"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.faults")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--only", nargs="*", choices=SCENARIOS)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--engine", choices=["batch", "faust"], default="batch", help="the worker's consuming engine")
    args = ap.parse_args(argv)
    results: list[Result] = []
    with Suite(args.events, engine=args.engine) as suite:
        print(
            f"broker {suite.broker.bootstrap_servers}, emulator {suite.emu.base_url}, {args.events} records per scenario, "
            f"{args.engine} engine",
            flush=True,
        )
        for name in args.only or SCENARIOS:
            r = getattr(suite, name)()
            results.append(r)
            print(
                f"{r.scenario}: produced {r.produced} delivered {r.delivered} duplicates {r.duplicates} "
                f"dead-lettered {r.dead_lettered} filtered {r.filtered} lost {r.lost} ({r.seconds}s)",
                flush=True,
            )
            for n in r.notes:
                print(f"    {n}", flush=True)
    print()
    print("| scenario | produced | delivered (unique) | duplicates | dead-lettered | filtered | lost | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cells = [r.scenario, r.produced, r.delivered, r.duplicates, r.dead_lettered, r.filtered, r.lost, r.seconds]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        print(orjson.dumps([r.__dict__ for r in results]).decode())
    return 1 if any(r.lost for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
