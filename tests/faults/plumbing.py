"""The suite's plumbing: broker, emulator, records with a known fate, worker processes, accounting.

Every produced record is a `Rec` whose expected fate comes from how it was made, never from the
pipeline under test: `good` (must be delivered), `filtered` (made with marketing consent denied:
must not be delivered), `bad` (garbage or hostile bytes: must be dead-lettered) or `either`
(a tombstone: dead-lettered or filtered, never delivered). Its (partition, offset) is taken from
the producer's delivery report, and a dead letter is matched to it by the
`__connect.errors.partition/offset` headers (the original key as a fallback, for reduced forms).

A scenario records what it expects with `Result.expect(ok, text)`; a failed expectation is a
line in the output and makes the suite exit 1.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.config import BridgeConfig, ConfigError, load_config
from streams.deadletter import H_OFFSET, H_PARTITION, H_TOPIC, header_dict
from streams.dev.emulator import EmulatorProcess
from streams.dev.kafka import LocalKafka
from streams.dev.samples import SampleFactory
from tests.integration.harness import API_KEY, WRITE_KEY, create_topics, encoded, make_config, read_all

PARTITIONS = 6
WORK = Path(os.environ.get("FAULTS_WORKDIR", "/tmp/s2s-faults"))
ROUTE = "purchase_completed"
# harness defaults for the Zeotap destination's retry section (a scenario's `retry` replaces the section)
RETRY = {"initial_backoff_s": 0.1, "max_backoff_s": 2.0}


class Aborted(Exception):
    """The scenario cannot go on (a precondition timed out, a worker died): account and move on."""


@dataclass
class Rec:
    index: int
    event_id: str | None  # the id the destination would see; None when the bytes carry none
    key: bytes | None
    kind: str  # good | filtered | bad | either
    label: str = ""  # what a hostile record is, for messages
    partition: int = -1
    offset: int = -1


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
    deadline_s: float = 0.0
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def expect(self, ok: bool, text: str) -> bool:
        """One expectation; `text` says what was expected and what was seen."""
        self.checks += 1
        if not ok:
            self.failures.append(text)
        return ok

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    alive_expected: bool = True

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def ready(self) -> bool:
        """/readyz answers 200: started, signal handlers installed (a SIGTERM before that kills the
        process by the signal, as it would any program still starting)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, timeout: float = 2.0) -> dict[str, float]:
    """A worker's Prometheus metrics: `name{labels}` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:  # noqa: S310
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def metric_sum(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


class Suite:
    def __init__(self, events: int, seed: int = 1, engine: str = "batch") -> None:
        self.events = events
        self.engine = engine
        self.seed = seed
        self.rng = random.Random(seed)
        WORK.mkdir(parents=True, exist_ok=True)
        self.broker = LocalKafka(log_file=WORK / "broker.log")
        self.emu = EmulatorProcess("--write-key", WRITE_KEY, "--api-key", API_KEY, "--no-keep-events", "--seed", str(seed))
        self.workers: list[Worker] = []
        self.recs: list[Rec] = []
        self.result = Result("")

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Self:
        self.broker.start()
        self.emu.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()
        self.emu.stop()
        self.broker.stop()

    def kill_all(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGCONT)  # a frozen worker cannot die otherwise
                w.proc.kill()
                w.proc.wait(10)
        self.workers = []

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def config(self, name: str, *, new_knobs: dict[str, Any] | None = None, **kw: Any) -> tuple[BridgeConfig, Path]:
        """The reference config for a scenario. `new_knobs` are Zeotap destination settings the config
        may not accept yet (knobs being built now): if it refuses them, that is a failed expectation
        and the scenario runs without them."""
        d = WORK / name
        d.mkdir(parents=True, exist_ok=True)
        kw.setdefault("worker", {"max_in_flight_events": 5_000, "shutdown_grace_s": 10})
        kw["worker"] = {"engine": self.engine, **kw["worker"]}
        if new_knobs:
            zeotap = {**(kw.get("zeotap") or {})}
            for k, v in new_knobs.items():
                zeotap[k] = {**zeotap[k], **v} if isinstance(v, dict) and isinstance(zeotap.get(k), dict) else v
            try:
                return make_config(d, self.bootstrap, self.emu.base_url, partitions=PARTITIONS, **{**kw, "zeotap": zeotap})
            except ConfigError as exc:
                first = str(exc).strip().splitlines()[0]
                self.result.expect(False, f"config accepts {new_knobs} (refused: {first}); ran without them")
        return make_config(d, self.bootstrap, self.emu.base_url, partitions=PARTITIONS, **kw)

    def make_records(self, cfg: BridgeConfig, n: int | None = None, consent_denied: float = 0.02) -> list[tuple[Rec, bytes]]:
        """N good records keyed by customer (realistic, skewed keys); `consent_denied` of them with
        marketing consent denied (the reference config requires it: those are expected filtered)."""
        route = cfg.routes[ROUTE]
        f = SampleFactory(self.rng.randint(0, 10**6))
        denied = [self.rng.random() < consent_denied for _ in range(n if n is not None else self.events)]
        recs = [f.record(ROUTE, consent_granted=not d) for d in denied]
        out = []
        for i, ((_, value), r, d) in enumerate(zip(encoded(cfg.schema_path(route), recs), recs, denied, strict=True)):
            key = (r["customer"]["customer_id"] or r["customer"]["anonymous_id"] or r["event_id"]).encode()
            out.append((Rec(i, r["event_id"], key, "filtered" if d else "good"), value))
        return out

    def produce(
        self, topic: str, items: Sequence[tuple[Rec, bytes | None]], headers: dict[int, list[tuple[Any, Any]]] | None = None
    ) -> None:
        """Produce in order and note each record's (partition, offset) from the delivery report."""
        p = Producer(
            {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 2_000_000}
        )
        errors: list[str] = []

        def report(rec: Rec) -> Callable[[Any, Any], None]:
            def done(err: Any, msg: Any) -> None:
                if err is not None:
                    errors.append(f"{rec.label or rec.index}: {err}")
                else:
                    rec.partition, rec.offset = msg.partition(), msg.offset()

            return done

        for n, (rec, value) in enumerate(items):
            h = (headers or {}).get(rec.index)
            p.produce(topic, key=rec.key, value=value, headers=h, on_delivery=report(rec))
            if n % 5000 == 0:
                p.poll(0)
        remaining = p.flush(60)
        if remaining or errors:
            raise Aborted(f"producing to {topic}: {remaining} unflushed, errors {errors[:3]}")
        self.recs = [rec for rec, _ in items]

    def fresh(self, name: str, topic_config: dict[str, str] | None = None, **kw: Any) -> tuple[BridgeConfig, Path]:
        """Reset the emulator, make the config and topics of a scenario (records are produced by the caller)."""
        self.emu.admin.reset(faults=True)
        cfg, path = self.config(name, **kw)
        route = cfg.routes[ROUTE]
        create_topics(self.bootstrap, [route.topic], PARTITIONS, config=topic_config)
        create_topics(self.bootstrap, [route.dlt], PARTITIONS)  # the dead-letter topic keeps the broker defaults
        return cfg, path

    def start_worker(self, path: Path, name: str) -> Worker:
        """A worker process with its own metrics port (a copy of the config that differs only in it)."""
        port = free_port()
        raw = yaml.safe_load(path.read_text())
        raw["metrics"] = {"host": "127.0.0.1", "port": port}
        own = path.with_name(f"{path.stem}.{name}.yaml")
        own.write_text(yaml.safe_dump(raw, sort_keys=False))
        log = open(WORK / f"{name}.log", "ab")  # noqa: SIM115
        log.write(f"\n==== {time.strftime('%H:%M:%S')} start {own}\n".encode())
        log.flush()
        p = subprocess.Popen([sys.executable, "-m", "streams", "worker", "--config", str(own)], stdout=log, stderr=log)
        w = Worker(name, p, port)
        self.workers.append(w)
        return w

    def check_alive(self) -> None:
        for w in self.workers:
            code = w.proc.poll()
            if w.alive_expected and code is not None:
                w.alive_expected = False
                self.result.expect(
                    False, f"worker {w.name} stays alive (exited on its own with code {code}; log {WORK}/{w.name}.log)"
                )
                raise Aborted(f"worker {w.name} exited with code {code}")

    def stop(self, w: Worker, expect_code: int | None = 0) -> int:
        """SIGTERM (graceful stop); expects exit code 0 within 30 s."""
        self.check_alive()
        w.alive_expected = False
        w.proc.send_signal(signal.SIGTERM)
        try:
            code = w.proc.wait(30)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            code = w.proc.wait(10)
            self.result.expect(False, f"worker {w.name} stops within 30 s of SIGTERM (killed)")
        if expect_code is not None:
            self.result.expect(code == expect_code, f"worker {w.name} exits {expect_code} after SIGTERM (exit code {code})")
        return code

    def kill(self, w: Worker) -> None:
        w.alive_expected = False
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait(10)

    # ------------------------------------------------------------------ observing

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.emu.admin.stats()["destinations"].get("zeotap", {})
        return result

    def delivered(self) -> int:
        return int(self.stats().get("unique_ids", 0))

    def count(self, *kinds: str) -> int:
        return sum(1 for r in self.recs if r.kind in kinds)

    def dlt_count(self, cfg: BridgeConfig) -> int:
        return sum(self.end_offsets(cfg.routes[ROUTE].dlt).values())

    def end_offsets(self, topic: str) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "faults-watermarks"})
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        finally:
            c.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
            return {tp.partition: tp.offset for tp in got}
        finally:
            c.close()

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for a precondition of the scenario (workers must stay alive meanwhile); Aborted on timeout."""
        deadline = time.monotonic() + timeout
        while not cond():
            self.check_alive()
            if time.monotonic() > deadline:
                raise Aborted(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)

    def sleep(self, seconds: float) -> None:
        """Sleep while checking that the workers stay alive."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check_alive()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def deadline(self, base_s: float, per_10k_s: float) -> float:
        return round(base_s + per_10k_s * len(self.recs) / 10_000, 1)

    def settle(self, cfg: BridgeConfig, since: float, deadline_s: float, what: str, dead: int | None = None) -> float:
        """Never stuck: every good record delivered (and `dead` dead letters written) within
        `deadline_s` of `since` (a monotonic time). Returns the seconds it took (or the deadline)."""
        r = self.result
        r.deadline_s = deadline_s
        want = self.count("good")
        end = since + deadline_s

        def done() -> bool:
            return self.delivered() >= want and (dead is None or self.dlt_count(cfg) >= dead)

        while not done():
            self.check_alive()
            if time.monotonic() > end:
                got, dl = self.delivered(), self.dlt_count(cfg)
                r.expect(
                    False,
                    f"never stuck: all {want} good records delivered within {deadline_s:.0f}s of {what} "
                    f"(after {time.monotonic() - since:.0f}s: {got} delivered, {dl} dead letters"
                    + (f" of {dead} expected" if dead is not None else "")
                    + ")",
                )
                return deadline_s
            time.sleep(0.5)
        took = time.monotonic() - since
        r.expect(True, "never stuck")
        r.notes.append(f"all good records delivered {took:.1f}s after {what} (deadline {deadline_s:.0f}s)")
        time.sleep(2)  # late extras (a dead letter, a duplicate) still count
        return took

    def check_committed(self, cfg: BridgeConfig) -> None:
        """After the last worker stopped: its group committed every source partition to the end."""
        topic = cfg.routes[ROUTE].topic
        ends, done = self.end_offsets(topic), self.committed(cfg.kafka.group_id, topic)
        behind = {p: ends[p] - done.get(p, -1) for p in ends if done.get(p, -1) != ends[p]}
        self.result.expect(not behind, f"offsets committed to the end of every partition (behind: {behind})")

    def dead_letters(self, cfg: BridgeConfig) -> tuple[dict[int, dict[str, str]], int]:
        """Dead letters matched to produced records: index -> headers; and the unmatched count."""
        route = cfg.routes[ROUTE]
        by_pos = {(r.partition, r.offset): r for r in self.recs}
        by_key: dict[bytes | None, list[Rec]] = {}
        for r in self.recs:
            by_key.setdefault(r.key, []).append(r)
        out: dict[int, dict[str, str]] = {}
        unmatched = 0
        for m in read_all(self.bootstrap, route.dlt, timeout=60):
            h = header_dict(m.headers())
            rec = None
            with contextlib.suppress(KeyError, ValueError):
                if h.get(H_TOPIC, route.topic) == route.topic:
                    rec = by_pos.get((int(h[H_PARTITION]), int(h[H_OFFSET])))
            if rec is None and len(by_key.get(m.key(), [])) == 1:
                rec = by_key[m.key()][0]
            if rec is None:
                unmatched += 1
            else:
                out[rec.index] = h
        return out, unmatched

    def account(
        self, name: str, cfg: BridgeConfig, t0: float, *, dead_good_allowed: int = 0, exact_dead: bool = True
    ) -> tuple[Result, dict[int, dict[str, str]]]:
        """Every record's outcome against the fate it was made with; the generic expectations:
        lost 0, no filtered or bad record delivered, the dead-lettered set is exactly the bad set
        (plus at most `dead_good_allowed` good ones)."""
        r = self.result
        r.scenario = name
        st = self.stats()
        delivered_ids = set(self.emu.admin.receipts("zeotap").get("zeotap", {}))
        dead, unmatched = self.dead_letters(cfg)
        lost: list[Rec] = []
        leaked: list[Rec] = []
        dead_good: list[Rec] = []
        missing_dead: list[Rec] = []
        filtered = delivered = 0
        for rec in self.recs:
            got = rec.event_id is not None and rec.event_id in delivered_ids
            is_dead = rec.index in dead
            delivered += got
            if rec.kind == "good":
                if is_dead:
                    dead_good.append(rec)
                elif not got:
                    lost.append(rec)
            elif rec.kind == "filtered":
                if got:
                    leaked.append(rec)
                elif not is_dead:
                    filtered += 1
            elif rec.kind == "bad":
                if got:
                    leaked.append(rec)
                elif not is_dead:
                    missing_dead.append(rec)
                    lost.append(rec)
            else:  # either: dead-lettered or filtered (counted filtered when not dead-lettered)
                if got:
                    leaked.append(rec)
                elif not is_dead:
                    filtered += 1
        r.produced = len(self.recs)
        r.delivered = delivered
        r.duplicates = int(st.get("duplicates", 0))
        r.dead_lettered = len(dead) + unmatched
        r.filtered = filtered
        r.lost = len(lost)
        r.seconds = round(time.monotonic() - t0, 1)

        def some(recs: Iterable[Rec]) -> str:
            return ", ".join(f"{x.label or x.event_id}@{x.partition}:{x.offset}" for x in list(recs)[:5])

        r.expect(not lost, f"lost 0 (lost {len(lost)}: {some(lost)})")
        r.expect(not leaked, f"no consent-denied or bad record delivered ({len(leaked)}: {some(leaked)})")
        r.expect(unmatched == 0, f"every dead letter names a produced record ({unmatched} do not)")
        if exact_dead:
            r.expect(not missing_dead, f"every bad record dead-lettered ({len(missing_dead)} not: {some(missing_dead)})")
            r.expect(
                len(dead_good) <= dead_good_allowed,
                f"at most {dead_good_allowed} good records dead-lettered ({len(dead_good)}: {some(dead_good)}"
                + (f"; reasons {sorted({dead[x.index].get('s2s.reason', '?') for x in dead_good})[:5]}" if dead_good else "")
                + ")",
            )
        return r, dead


def load(path: Path) -> BridgeConfig:
    return load_config(path)
