"""Fault-injection suite: `python -m tests.faults [--events 100000] [--only NAME ...] [--json] [--engine faust]`.

On a real local Kafka broker (started here; LocalKafka so it can be stopped and restarted) and
the destination emulator in its own process, each scenario produces records with realistic keys
over 6 partitions, runs `s2s-bridge worker` processes through a failure, and then accounts for
every record against the fate it was made with (see `plumbing.py`): delivered, dead-lettered,
filtered or **lost**. Each scenario checks its own expectations (worker exit codes and liveness,
every good record delivered within a stated deadline, exactly the bad records dead-lettered,
committed offsets, scenario-specific bounds); the suite exits 1 if any expectation fails and
prints which.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import struct
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from streams.codec import load_schema_file
from streams.config import BridgeConfig
from streams.routes import build_pipelines
from tests.faults.plumbing import RETRY, ROUTE, WORK, Aborted, Rec, Result, Suite, metric_sum, scrape


def zigzag_varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Scenarios(Suite):
    # ------------------------------------------------------------------ the original seven

    def sigkill(self) -> Result:
        t0 = time.monotonic()
        cfg, path = self.fresh("sigkill")
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        want = self.count("good")
        kills = sorted(self.rng.uniform(0.1, 0.85) for _ in range(3))
        notes = []
        for k in kills:
            w = self.start_worker(path, "sigkill")
            threshold = int(want * k)
            self.wait(lambda t=threshold: self.delivered() >= t, 300, f"{threshold} deliveries")  # type: ignore[misc]
            self.kill(w)
            notes.append(f"killed at {self.delivered()} delivered")
        w = self.start_worker(path, "sigkill")
        self.settle(cfg, time.monotonic(), self.deadline(60, 10), "the last restart")
        self.stop(w)
        self.check_committed(cfg)
        r, _ = self.account("1. worker SIGKILLed 3x and restarted", cfg, t0)
        r.notes += notes
        return r

    def broker_restart(self) -> Result:
        t0 = time.monotonic()
        cfg, path = self.fresh("broker")
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        want = self.count("good")
        w = self.start_worker(path, "broker")
        self.wait(lambda: self.delivered() >= want * 0.3, 300, "30% delivered")
        at = self.delivered()
        t_restart = time.monotonic()
        self.broker.restart()  # stop, then start on the same data dir and port
        back = time.monotonic()
        self.result.notes.append(f"broker restarted at {at} delivered, away {back - t_restart:.1f}s")
        self.settle(cfg, back, self.deadline(60, 10), "the broker's return")
        self.stop(w)
        self.check_committed(cfg)
        r, _ = self.account("2. broker stopped and restarted mid-run", cfg, t0)
        return r

    def outage(self) -> Result:
        t0 = time.monotonic()
        cfg, path = self.fresh("outage")
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        want = self.count("good")
        w = self.start_worker(path, "outage")
        self.wait(lambda: self.delivered() >= want * 0.2, 300, "20% delivered")
        self.emu.admin.set_faults("zeotap", outage_for_seconds=60)
        t_out = time.monotonic()
        rss: list[tuple[float, int]] = []  # (seconds into the outage, worker RSS in kB)
        while time.monotonic() - t_out < 60:
            self.check_alive()
            kb = rss_kb(w.proc.pid)
            if kb:
                rss.append((time.monotonic() - t_out, kb))
            time.sleep(1.0)
        self.settle(cfg, t_out + 60, self.deadline(30, 10), "the end of the outage")
        self.stop(w)
        self.check_committed(cfg)
        r, _ = self.account("3. destination down for 60 s, then back", cfg, t0)
        if rss:
            early = [kb for t, kb in rss if 5 <= t <= 15] or [rss[0][1]]
            late = [kb for t, kb in rss if t >= 45] or [rss[-1][1]]
            r.notes.append(
                f"worker RSS during the outage: {max(early) / 1024:.0f} MB at 5-15 s, {max(late) / 1024:.0f} MB at 45-60 s, "
                f"peak {max(kb for _, kb in rss) / 1024:.0f} MB"
            )
        return r

    def flaky(self) -> Result:
        t0 = time.monotonic()
        cfg, path = self.fresh("flaky", zeotap={"timeout_s": 2.0})
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        self.emu.admin.set_faults("zeotap", error_rate=0.20, throttle_rate=0.05, retry_after=1, slow_rate=0.01, slow_seconds=3.0)
        w = self.start_worker(path, "flaky")
        self.settle(cfg, time.monotonic(), self.deadline(60, 20), "the start")
        self.stop(w)
        self.check_committed(cfg)
        st = self.stats()
        r, _ = self.account("4. 20% 5xx, 5% 429 + Retry-After, 1% slow (> timeout)", cfg, t0)
        r.notes += [f"requests by status {st['requests']}", f"faults {st.get('faults')}"]
        return r

    def rebalance(self) -> Result:
        t0 = time.monotonic()
        cfg, path = self.fresh("rebalance")
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        want = self.count("good")
        a = self.start_worker(path, "rebalance-a")
        self.wait(lambda: self.delivered() >= want * 0.25, 300, "25% delivered")
        b = self.start_worker(path, "rebalance-b")
        self.wait(b.ready, 120, "the second worker ready")  # else a quick run stops it still starting
        self.wait(lambda: self.delivered() >= want * 0.7, 300, "70% delivered")
        self.stop(b)
        self.settle(cfg, t0, self.deadline(60, 10), "the start")
        self.stop(a)
        self.check_committed(cfg)
        r, _ = self.account("5. second worker joins mid-run, later leaves", cfg, t0)
        return r

    def garbage(self) -> Result:
        t0 = time.monotonic()
        cfg, path = self.fresh("garbage")
        items: list[tuple[Rec, bytes | None]] = []
        for rec, value in self.make_records(cfg):
            if self.rng.random() < 0.01:
                if self.rng.random() < 0.5:
                    value = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 200)))
                    rec.label = "random-bytes"
                else:  # schema-violating: a valid prefix cut short
                    value = value[: self.rng.randint(1, len(value) - 1)]
                    rec.label = "truncated-avro"
                rec.kind, rec.key, rec.event_id = "bad", b"garbage-" + (rec.event_id or "").encode(), None
            items.append((rec, value))
        self.produce(cfg.routes[ROUTE].topic, items)
        w = self.start_worker(path, "garbage")
        self.settle(cfg, t0, self.deadline(60, 10), "the start", dead=self.count("bad"))
        self.stop(w)
        self.check_committed(cfg)
        r, dead = self.account("6. 1% garbage or schema-violating records", cfg, t0)
        with_reason = sum(1 for h in dead.values() if h.get("s2s.reason"))
        r.expect(with_reason == len(dead), f"every dead letter carries s2s.reason ({len(dead) - with_reason} do not)")
        r.notes.append(f"{self.count('bad')} bad records produced, {with_reason} dead letters carry a reason")
        self.fuzz(cfg)
        return r

    def fuzz(self, cfg: BridgeConfig, rounds: int = 20_000) -> None:
        """Random bytes and random JSON against the decoder and pipeline: only clean rejections."""
        pipeline = build_pipelines(cfg, routes=[ROUTE])[ROUTE]
        rng = random.Random(7)
        rejected = crashed = 0
        for i in range(rounds):
            if i % 2:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            else:
                data = orjson.dumps({"event_id": rng.random(), "x": [rng.random()] * rng.randint(0, 5)})
            try:
                out = pipeline.process(data, "fuzz", 0, i)
            except Exception:  # noqa: BLE001
                crashed += 1
                continue
            rejected += getattr(out, "stage", None) == "decode"
        self.result.expect(
            rejected == rounds and not crashed,
            f"fuzz: all {rounds} random inputs rejected at decode ({rejected} were, {crashed} raised)",
        )
        self.result.notes.append(f"fuzz: {rounds} random inputs, {rejected} rejected at decode, {crashed} exceptions")

    def replay(self) -> Result:
        from streams.replay import Replayer

        t0 = time.monotonic()
        cfg, path = self.fresh("replay")
        route = cfg.routes[ROUTE]
        self.produce(route.topic, self.make_records(cfg))
        raw = yaml.safe_load(path.read_text())
        raw["routes"][ROUTE]["mapping"]["event"]["order_value"] = {"path": "order_value", "as": "int"}
        bug = path.with_name("bug.yaml")
        bug.write_text(yaml.safe_dump(raw, sort_keys=False))
        w = self.start_worker(bug, "replay")
        ends = self.end_offsets(route.topic)
        r = self.result
        deadline = self.deadline(60, 10)
        try:
            self.wait(
                lambda: self.committed(cfg.kafka.group_id, route.topic) == ends, deadline, "the buggy run to commit everything"
            )
        except Aborted as exc:
            r.expect(False, f"never stuck: the buggy run settles every record within {deadline:.0f}s ({exc})")
        self.stop(w)
        dead_bug, _ = self.dead_letters(cfg)
        dlt_ends = self.end_offsets(route.dlt)
        by_index = {rec.index: rec for rec in self.recs}
        good_dead = sum(1 for i in dead_bug if by_index[i].kind == "good")
        denied_dead = sum(1 for i in dead_bug if by_index[i].kind == "filtered")
        r.expect(good_dead > 0, f"the mapping bug dead-letters records (it dead-lettered {len(dead_bug)})")
        replayer = Replayer(cfg, ROUTE, progress=False)
        t_replay = time.monotonic()
        s1 = asyncio.run(replayer.run())
        replay_s = time.monotonic() - t_replay
        requests = self.stats()["requests_total"]
        s2 = asyncio.run(Replayer(cfg, ROUTE, progress=False).run())
        sent_again = self.stats()["requests_total"] - requests
        r.expect(s1.read == len(dead_bug), f"the replay reads every dead letter ({s1.read} of {len(dead_bug)})")
        r.expect(
            s1.delivered == good_dead,
            f"the replay delivers every good record the bug dead-lettered ({s1.delivered} of {good_dead})",
        )
        r.expect(
            s1.filtered == denied_dead,
            f"the replay filters the consent-denied dead letters ({s1.filtered} of {denied_dead})",
        )
        r.expect(s1.failed_again == 0 and s1.parked == 0, f"nothing fails again (failed {s1.failed_again}, parked {s1.parked})")
        after = self.end_offsets(route.dlt)
        r.expect(
            after == dlt_ends,
            f"no new dead letters from the replay (dead-letter topic {sum(dlt_ends.values())} -> {sum(after.values())})",
        )
        done = self.committed(replayer.group, route.dlt)
        left = {p: after[p] - done.get(p, 0) for p in after if after[p] and done.get(p, -1) != after[p]}
        r.expect(not left, f"the replay group committed every dead letter (left behind per partition: {left})")
        r.expect(
            s2.read == 0 and sent_again == 0, f"a second replay reads 0, sends 0 requests (read {s2.read}, sent {sent_again})"
        )
        self.check_committed(cfg)
        r, dead = self.account("7. replay after fixing a mapping bug", cfg, t0, exact_dead=False)
        # after the replay, the dead letters are resolved: those delivered or filtered do not count as dead
        r.dead_lettered = sum(1 for i in dead if by_index[i].kind == "good" and by_index[i].event_id is None)
        r.notes.append(
            f"{len(dead_bug)} dead-lettered by the bug ({good_dead} good, {denied_dead} consent-denied); replay "
            f"({replay_s:.1f}s) delivered {s1.delivered}, filtered {s1.filtered}, failed again {s1.failed_again}; "
            f"second replay read {s2.read}, sent {sent_again} requests"
        )
        return r

    # ------------------------------------------------------------------ hardening scenarios

    def hostile(self) -> Result:
        """Hostile records among good ones: the worker stays alive, good ones are delivered, each
        hostile one is dead-lettered (possibly reduced) or, a tombstone, filtered."""
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

        t0 = time.monotonic()
        kafka = {"schema_registry": {"url": self.emu.registry_url}}
        cfg, path = self.fresh("hostile", topic_config={"max.message.bytes": "2097152"}, kafka=kafka)
        route = cfg.routes[ROUTE]
        items: list[tuple[Rec, bytes | None]] = list(self.make_records(cfg))
        headers: dict[int, list[tuple[Any, Any]]] = {}
        n = len(items)
        # writer schema = the route's with a leading array of zero-width items
        writer = load_schema_file(cfg.schema_path(route))
        writer["fields"].insert(0, {"name": "bomb", "type": {"type": "array", "items": "null"}})
        schema_id = SchemaRegistryClient({"url": self.emu.registry_url}).register_schema(
            f"{route.topic}-value", Schema(json.dumps(writer), "AVRO")
        )
        big = b"\xff" + random.Random(3).randbytes(1_040_000 - 1)
        junk: dict[str, tuple[Any, Any]] = {
            "none": ("h-none", None),
            "long": ("h-long", b"L" * 1_000_000),
            "non-utf8-name": (b"\xff\xfeh-bad", b"v"),
        }
        hostile: list[tuple[str, str, bytes | None, list[tuple[Any, Any]] | None]] = [
            ("big-1040000", "bad", big, None),
            # over the dead-letter topic's default limit with its headers: only a reduced form fits
            ("big+header-40000", "bad", big, [("h-big", b"H" * 40_000)]),
            ("empty-value", "bad", b"", None),
            ("tombstone", "either", None, None),
            ("bomb-2^31-nulls", "bad", struct.pack(">bI", 0, schema_id) + zigzag_varint(2**31) + b"\x00", None),
        ]
        for name, pair in junk.items():
            hostile.append((f"garbage+header-{name}", "bad", b"\xffnot avro", [pair]))
        only = os.environ.get("FAULTS_HOSTILE_ONLY")  # development: a comma-separated subset of the labels
        if only:
            hostile = [h for h in hostile if any(o in h[0] for o in only.split(","))]
            junk = {k: v for k, v in junk.items() if any(o in f"good+header-{k}" for o in only.split(","))}
        for label, kind, value, hs in hostile:
            rec = Rec(n, None, f"hostile-{label}".encode(), kind, label=label)
            if hs:
                headers[n] = hs
            items.insert(self.rng.randrange(len(items) + 1), (rec, value))
            n += 1
        # good records carrying junk headers: their headers do not matter, they are delivered
        goods = [i for i, (rec, _) in enumerate(items) if rec.kind == "good"]
        for name, pair in junk.items():
            rec = items[self.rng.choice(goods)][0]
            rec.label = f"good+header-{name}"
            headers[rec.index] = [pair]
        try:
            self.produce(route.topic, items, headers)
        except Aborted as exc:  # e.g. the client refused one of them: say which, produce the rest
            self.result.notes.append(f"producing all hostile records failed ({exc})")
            raise
        w = self.start_worker(path, "hostile")
        self.settle(cfg, t0, self.deadline(60, 10), "the start", dead=self.count("bad"))
        self.sleep(3)
        self.result.expect(w.proc.poll() is None, "the worker is alive after the hostile records")
        self.stop(w)
        self.check_committed(cfg)
        r, dead = self.account("8. hostile records (1 MB, junk headers, empty, tombstone, 2^31 nulls)", cfg, t0)
        for rec in self.recs:
            if rec.label:
                h = dead.get(rec.index)
                if rec.kind == "good":
                    got = rec.event_id in set(self.emu.admin.receipts("zeotap").get("zeotap", {}))
                    r.notes.append(f"{rec.label}: {'delivered' if got else 'NOT delivered'}")
                    continue
                outcome = (
                    "dead-lettered"
                    + (" (reduced)" if h.get("s2s.reduced") else "")
                    + f" {h.get('__connect.errors.stage')}:{h.get('s2s.reason')}"
                    if h is not None
                    else "not dead-lettered"
                )
                r.notes.append(f"{rec.label}: {outcome}")
                if h is not None:
                    stage, exc_class = h.get("__connect.errors.stage"), h.get("__connect.errors.exception.class.name")
                    message = h.get("__connect.errors.exception.message", "")[:200]
                    r.expect(
                        stage == "decode",
                        f"{rec.label} dead-lettered at stage decode (at {stage}:{h.get('s2s.reason')}: {exc_class}: {message})",
                    )
        return r

    def systemic(self) -> Result:
        """The destination refuses every request (400, bad auth) for 30 s mid-run, then is fixed:
        at most 1 % dead-lettered, the rest delivered after the fix."""
        t0 = time.monotonic()
        breaker = {"refusals": 5, "probe_interval_s": 1, "max_probe_interval_s": 5}
        cfg, path = self.fresh("systemic", new_knobs={"breaker": breaker})
        topic = cfg.routes[ROUTE].topic
        recs = self.make_records(cfg)
        cut = len(recs) * 3 // 10
        self.produce(topic, recs[:cut])
        w = self.start_worker(path, "systemic")
        self.wait(lambda: self.delivered() >= self.count("good"), 300, "the first 30% delivered")
        self.emu.admin.set_faults("zeotap", reject_status=400, reject_debug="Authorization header rejected")
        t_fault = time.monotonic()
        first = self.recs
        self.produce(topic, recs[cut:])
        self.recs = first + self.recs
        self.sleep(max(0.0, 30 - (time.monotonic() - t_fault)))
        during = self.stats()
        self.emu.admin.clear_faults()
        t_fix = time.monotonic()
        self.settle(cfg, t_fix, self.deadline(30, 10), "the fix")
        self.stop(w)
        self.check_committed(cfg)
        allowed = len(self.recs) // 100
        r, dead = self.account("9. destination refuses every request (400 auth) for 30 s", cfg, t0, dead_good_allowed=allowed)
        reasons: dict[str, int] = {}
        for h in dead.values():
            k = f"{h.get('__connect.errors.stage')}:{h.get('s2s.reason')}"
            reasons[k] = reasons.get(k, 0) + 1
        r.notes.append(f"requests during the refusal {during.get('requests')}; dead letters by reason {reasons}")
        return r

    def retry_after(self) -> Result:
        """100 % 429 with an absurd Retry-After (a huge number, then an HTTP-date in year 9999) for
        10 s each: waits are capped at max_retry_after_s (5), everything delivered soon after."""
        t0 = time.monotonic()
        cfg, path = self.fresh(
            "retry_after", new_knobs={"retry": {**RETRY, "max_retry_after_s": 5}}, zeotap={"retry": dict(RETRY)}
        )
        topic = cfg.routes[ROUTE].topic
        recs = self.make_records(cfg)
        half = len(recs) // 2
        self.emu.admin.set_faults("zeotap", throttle_rate=1.0, retry_after="99999999")
        self.produce(topic, recs[:half])
        w = self.start_worker(path, "retry_after")
        self.sleep(10)
        self.emu.admin.clear_faults()
        t_clear = time.monotonic()
        self.settle(cfg, t_clear, self.deadline(20, 10), "the end of 'Retry-After: 99999999'")
        first = self.recs
        self.emu.admin.set_faults("zeotap", throttle_rate=1.0, retry_after="Fri, 31 Dec 9999 23:59:59 GMT")
        self.produce(topic, recs[half:])
        self.recs = first + self.recs
        self.sleep(10)
        throttled = self.stats().get("requests", {}).get("429", 0)
        self.emu.admin.clear_faults()
        self.settle(cfg, time.monotonic(), self.deadline(20, 10), "the end of 'Retry-After: <year 9999>'")
        self.stop(w)
        self.check_committed(cfg)
        r, _ = self.account("10. 100% 429 with absurd Retry-After (number, HTTP-date) for 10 s each", cfg, t0)
        r.notes.append(f"429 answers {throttled}")
        return r

    def server_poison(self) -> Result:
        """Three event ids make the server answer 500 whenever they are in a request: exactly those
        are dead-lettered (deliver:server_error), the rest delivered."""
        t0 = time.monotonic()
        knobs = {"retry": {**RETRY, "isolate_after": 3, "poison_after": 10}}
        cfg, path = self.fresh("server_poison", new_knobs=knobs, zeotap={"retry": dict(RETRY)})
        items = self.make_records(cfg)
        poison = self.rng.sample([rec for rec, _ in items if rec.kind == "good"], 3)
        for rec in poison:
            rec.kind, rec.label = "bad", f"server-poison {rec.event_id}"
        self.produce(cfg.routes[ROUTE].topic, items)
        self.emu.admin.set_faults("zeotap", server_poison_ids=[rec.event_id for rec in poison])
        w = self.start_worker(path, "server_poison")
        self.settle(cfg, t0, self.deadline(60, 10), "the start", dead=len(poison))
        self.stop(w)
        self.check_committed(cfg)
        st = self.stats()
        r, dead = self.account("11. 3 records the server answers 500 for", cfg, t0)
        for rec in poison:
            h = dead.get(rec.index)
            if h is not None:
                got = f"{h.get('__connect.errors.stage')}:{h.get('s2s.reason')}"
                r.expect(got == "deliver:server_error", f"{rec.label} dead-lettered as deliver:server_error (as {got})")
        r.notes.append(f"requests by status {st.get('requests')}; faults {st.get('faults')}")
        return r

    def paused_rebalance(self) -> Result:
        """A second worker joins, and later leaves, while the route is paused (destination down)."""
        t0 = time.monotonic()
        # a small in-flight limit so the route really pauses (consumption stops at the limit) at any --events
        cfg, path = self.fresh("paused_rebalance", worker={"max_in_flight_events": 1_000, "shutdown_grace_s": 10})
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        want = self.count("good")
        a = self.start_worker(path, "paused-a")
        self.wait(lambda: self.delivered() >= want * 0.2, 300, "20% delivered")
        self.emu.admin.set_faults("zeotap", outage_for_seconds=45)
        t_out = time.monotonic()
        r = self.result
        try:
            self.wait(lambda: metric_sum(scrape(a.port), "s2s_route_paused") >= 1, 25, "worker a to pause the route")
            r.notes.append(f"route paused {time.monotonic() - t_out:.1f}s into the outage")
        except Aborted as exc:
            r.expect(False, f"the route pauses during the outage ({exc})")
        b = self.start_worker(path, "paused-b")
        self.sleep(20)  # long enough to get partitions: the rebalance itself may wait rebalance_wait_s (10 s)
        self.stop(b)
        r.notes.append(f"worker b joined and left {time.monotonic() - t_out:.1f}s into the 45 s outage")
        self.settle(cfg, t_out + 45, self.deadline(30, 10), "the end of the outage")
        self.stop(a)
        self.check_committed(cfg)
        r, _ = self.account("12. rebalance while the route is paused (destination down 45 s)", cfg, t0)
        return r

    def freeze(self) -> Result:
        """Two workers; one frozen (SIGSTOP) for 20 s past the 6 s session timeout, then thawed,
        while 30 % of requests take 1 s. Duplicates must stay within what the frozen member held
        uncommitted at the freeze: its in-flight records plus the records delivered but not yet
        committed (the group's delivered - committed; at most one commit interval's worth once
        commits run), plus one consumed batch. Whole-assignment moves after the thaw, or the thawed
        member sending what it no longer owns, would exceed it."""
        t0 = time.monotonic()
        cfg, path = self.fresh("freeze")
        self.produce(cfg.routes[ROUTE].topic, self.make_records(cfg))
        want = self.count("good")
        self.emu.admin.set_faults("zeotap", slow_rate=0.3, slow_seconds=1.0)
        a = self.start_worker(path, "freeze-a")
        b = self.start_worker(path, "freeze-b")
        self.wait(lambda: self.delivered() >= want * 0.3, 300, "30% delivered")
        in_flight, t_look = 0, time.monotonic()
        while in_flight == 0 and time.monotonic() - t_look < 10:  # freeze it while it holds records
            in_flight = int(metric_sum(scrape(a.port), "s2s_in_flight_records"))
        at = self.delivered()
        sent_before = metric_sum(scrape(a.port), "s2s_destination_events_delivered_total")
        committed_at_freeze = sum(max(0, o) for o in self.committed(cfg.kafka.group_id, cfg.routes[ROUTE].topic).values())
        a.proc.send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        a.alive_expected = False  # a stopped process cannot be polled for liveness meaningfully
        self.sleep(20)
        a.proc.send_signal(signal.SIGCONT)
        a.alive_expected = True
        t_thaw = time.monotonic()
        self.settle(cfg, t_thaw, self.deadline(60, 10), "the thaw")
        # what the thawed member still sent (its requests in flight at the freeze, and anything it
        # sent before it learnt it had lost its partitions)
        sent_after_thaw = metric_sum(scrape(a.port), "s2s_destination_events_delivered_total") - sent_before
        self.stop(b)
        self.stop(a)
        self.check_committed(cfg)
        r, _ = self.account("13. member frozen (SIGSTOP) 20 s, 30% of requests slow", cfg, t0)
        batch = cfg.worker.batch_size
        uncommitted = max(0, at - committed_at_freeze)
        bound = in_flight + uncommitted + batch
        r.expect(
            r.duplicates <= bound,
            f"duplicates {r.duplicates} <= the frozen member's in-flight records at the freeze ({in_flight}) "
            f"+ delivered but not committed then ({uncommitted}) + one batch ({batch}) = {bound}",
        )
        r.notes.append(
            f"froze worker a at {at} delivered with {in_flight} records in flight (s2s_in_flight_records), "
            f"for {t_thaw - t_stop:.1f}s; duplicates {r.duplicates}, bound {bound}; "
            f"a had {int(sent_after_thaw)} events acknowledged after the thaw; "
            f"the group had committed {committed_at_freeze} records at the freeze"
        )
        return r


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


SCENARIOS = [
    "sigkill",
    "broker_restart",
    "outage",
    "flaky",
    "rebalance",
    "garbage",
    "replay",
    "hostile",
    "systemic",
    "retry_after",
    "server_poison",
    "paused_rebalance",
    "freeze",
]


def run_one(suite: Scenarios, name: str) -> Result:
    suite.result = Result(name)
    suite.recs = []
    t0 = time.monotonic()
    scenario: Callable[[], Result] = getattr(suite, name)
    try:
        return scenario()
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        r = suite.result
        r.expect(False, f"scenario ran to the end (aborted: {type(exc).__name__}: {exc})")
        if not isinstance(exc, Aborted):
            r.notes.append(traceback.format_exc().strip().splitlines()[-1])
        r.scenario = r.scenario or name
        r.produced = len(suite.recs)
        r.seconds = round(time.monotonic() - t0, 1)
        return r
    finally:
        suite.kill_all()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.faults")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--only", nargs="*", choices=SCENARIOS)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--engine", choices=["batch", "faust"], default="batch", help="the worker's consuming engine")
    args = ap.parse_args(argv)
    results: list[Result] = []
    with Scenarios(args.events, engine=args.engine) as suite:
        print(
            f"broker {suite.bootstrap}, emulator {suite.emu.base_url}, {args.events} records per scenario, "
            f"{args.engine} engine, worker logs in {WORK}",
            flush=True,
        )
        for name in args.only or SCENARIOS:
            r = run_one(suite, name)
            results.append(r)
            verdict = "PASS" if r.passed else "FAIL"
            print(
                f"{verdict} {r.scenario}: produced {r.produced} delivered {r.delivered} duplicates {r.duplicates} "
                f"dead-lettered {r.dead_lettered} filtered {r.filtered} lost {r.lost} ({r.seconds}s, "
                f"{r.checks} checks)",
                flush=True,
            )
            for n in r.notes:
                print(f"    {n}", flush=True)
            for f in r.failures:
                print(f"    FAILED: {f}", flush=True)
    print()
    print("| scenario | produced | delivered (unique) | duplicates | dead-lettered | filtered | lost | seconds | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        cells = [r.scenario, r.produced, r.delivered, r.duplicates, r.dead_lettered, r.filtered, r.lost, r.seconds]
        verdict = "pass" if r.passed else "**FAIL**: " + "; ".join(r.failures)
        print("| " + " | ".join(str(c) for c in cells) + f" | {verdict} |")
    if args.json:
        print(orjson.dumps([{**r.__dict__, "passed": r.passed} for r in results]).decode())
    failed = [r.scenario for r in results if not r.passed]
    if failed:
        print(f"\n{len(failed)} of {len(results)} scenarios failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
