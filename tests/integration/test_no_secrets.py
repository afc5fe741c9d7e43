"""No secret and no raw PII in anything the bridge emits: logs, metrics, dead-letter headers, dry-run stderr.

The worker runs as the real command (`python -m streams worker`, JSON logs at DEBUG, every route of the
example config) on the test broker against the emulator, with a distinctive Zeotap write key, over
sample events of every schema plus the demo's bad records (no identifier, no country, consent denied,
undecodable) and a record the destination rejects. Everything it says is collected - stdout and stderr
(its own logs, librdkafka's), the /metrics exposition, every dead-letter header - together with the
`s2s-bridge transform` dry run's stderr over the same records, and grepped for the write key (also as
the Basic auth header) and every raw email address and phone number the generator produced.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from confluent_kafka import KafkaException
from typer.testing import CliRunner

from streams.cli import app as cli_app
from streams.config import BridgeConfig
from streams.destinations.zeotap import auth_header
from streams.dev.demo import bad_records
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import EVENTS, SampleFactory
from streams.pipeline.identity import normalize_phone
from tests.integration.harness import (
    REPO,
    committed,
    create_topics,
    dead_letters,
    encoded,
    end_offsets,
    make_config,
    produce,
    read_all,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

REGIONS = (None, "DE", "FR", "GB", "ES", "US", "IT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Samples:
    """The records produced, per route, and the raw identifiers in them."""

    def __init__(self, seed: int, per_event: int) -> None:
        f = SampleFactory(seed)
        self.records: dict[str, list[dict[str, Any] | bytes]] = {}
        for event in EVENTS:
            recs: list[dict[str, Any] | bytes] = [f.record(event) for _ in range(per_event)]
            if event != "market_offer_assignment":
                recs += [r for _, r in bad_records(functools.partial(f.record, event))]
            self.records[event] = recs
        self.emails: set[str] = set()
        self.phones: set[str] = set()
        for recs in self.records.values():
            for r in recs:
                if isinstance(r, dict) and r.get("customer"):
                    c = r["customer"]
                    if c.get("email"):
                        self.emails.add(c["email"].strip())
                    if c.get("phone"):
                        self.phones.add(c["phone"])
        assert len(self.emails) > 50 and len(self.phones) > 30  # the check below means something

    def needles(self, secrets: list[str]) -> dict[str, str]:
        """What must not appear -> a label for the failure message (never the value itself: PII)."""
        out = {s: f"secret #{i}" for i, s in enumerate(secrets)}
        for e in self.emails:
            out[e] = "an email address"
            out[e.lower()] = "an email address (lower case)"
        for p in self.phones:
            out[p] = "a phone number"
            for region in REGIONS:
                e164 = normalize_phone(p, region)
                if e164:
                    out[e164] = "a phone number (E.164)"
        return out


def assert_clean(where: str, text: str, needles: dict[str, str]) -> None:
    found = sorted({label for needle, label in needles.items() if needle in text})
    assert not found, f"{where} contains {', '.join(found)}"


@pytest.fixture
def emulator_for(request: pytest.FixtureRequest) -> Iterator[Any]:
    emulators: list[Emulator] = []

    def start(write_key: str) -> Emulator:
        emu = Emulator(EmulatorConfig(zeotap_write_keys=(write_key,), seed=3)).__enter__()
        emulators.append(emu)
        return emu

    yield start
    for emu in emulators:
        emu.__exit__(None, None, None)


def _config(tmp_path: Path, bootstrap: str, emu: Emulator, write_key: str, metrics_port: int) -> tuple[BridgeConfig, Path]:
    cfg, path = make_config(
        tmp_path,
        bootstrap,
        emu.base_url,
        routes=EVENTS,
        write_key=write_key,
        worker={"log_format": "json", "log_level": "DEBUG", "shutdown_grace_s": 5},
    )
    raw = yaml.safe_load(path.read_text())
    raw["metrics"] = {"host": "127.0.0.1", "port": metrics_port}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return cfg, path


def _start_worker(config_path: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with out.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "-c", str(config_path)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )


def _all_committed(bootstrap: str, group: str, topics: list[str]) -> bool:
    try:
        return all(committed(bootstrap, group, t) == end_offsets(bootstrap, t) for t in topics)
    except KafkaException:  # e.g. NOT_COORDINATOR while the group's coordinator loads
        return False


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError("worker did not stop within 30 s of SIGTERM") from None


def test_no_write_key_or_raw_pii_anywhere(kafka_bootstrap, emulator_for, tmp_path):
    write_key = f"wk-{os.urandom(6).hex()}-zq"
    emu = emulator_for(write_key)
    port = _free_port()
    cfg, path = _config(tmp_path, kafka_bootstrap, emu, write_key, port)
    samples = Samples(seed=77, per_event=25)

    create_topics(kafka_bootstrap, [t for r in cfg.routes.values() for t in (r.topic, r.dlt)])
    total = 0
    for name, route in cfg.routes.items():
        values = [
            (r["event_id"].encode(), v)
            for r, (_, v) in zip(
                [r for r in samples.records[name] if isinstance(r, dict)],
                encoded(cfg.schema_path(route), [r for r in samples.records[name] if isinstance(r, dict)]),
                strict=True,
            )
        ]
        values += [(b"garbage", r) for r in samples.records[name] if isinstance(r, bytes)]
        values.append((b"undecodable", b"\x02\x00 not avro " + next(iter(samples.emails)).encode()))
        total += produce(kafka_bootstrap, route.topic, values)
    # one record the destination rejects (400 with its debug text): a deliver-stage dead letter
    poison = next(r for r in samples.records["purchase_completed"] if isinstance(r, dict))["event_id"]
    emu.admin.set_faults("zeotap", poison_ids=[poison])

    log_path = tmp_path / "worker.log"
    proc = _start_worker(path, log_path)
    metrics = ""
    try:
        deadline = time.monotonic() + 120
        topics = [r.topic for r in cfg.routes.values()]
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            if _all_committed(kafka_bootstrap, cfg.kafka.group_id, topics):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"worker did not settle every record in time:\n{log_path.read_text()[-3000:]}")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        code = _stop(proc)
    logs = log_path.read_text(errors="replace")
    assert code == 0, logs[-3000:]

    # the run did what it should, so the grep covers real output of every kind
    assert "s2s_records_consumed_total" in metrics and "s2s_records_dead_lettered_total" in metrics
    json_lines = [line for line in logs.splitlines() if line.startswith("{")]
    assert any(orjson.loads(line)["level"] == "DEBUG" for line in json_lines), "no DEBUG log lines"
    dl_records = [(m, h) for r in cfg.routes.values() for m, h in dead_letters(kafka_bootstrap, r.dlt)]
    dls = [h for _, h in dl_records]
    reasons = {h["s2s.reason"] for h in dls}
    assert {"undecodable", "missing_identifier", "missing_country"} <= reasons, reasons
    assert any(h.get("s2s.http.status") == "400" for h in dls), "no deliver-stage dead letter"
    assert int(emu.admin.stats()["destinations"]["zeotap"]["unique_ids"]) > total // 2

    # the dry run over the same records (JSON lines; plus a schema mismatch quoting an email address)
    runner = CliRunner()
    dry_err = []
    for name in cfg.routes:
        lines = [orjson.dumps(r) for r in samples.records[name] if isinstance(r, dict)]
        lines.append(b"{not json " + next(iter(samples.emails)).encode())
        first = next(r for r in samples.records[name] if isinstance(r, dict))
        lines.append(orjson.dumps({**first, "event_id": sorted(samples.emails)[0], "occurred_at": sorted(samples.phones)[0]}))
        jsonl = tmp_path / f"{name}.jsonl"
        jsonl.write_bytes(b"\n".join(lines) + b"\n")
        result = runner.invoke(cli_app, ["transform", "-c", str(path), "--route", name, "-i", str(jsonl)], env={})
        assert result.exit_code == 0, result.output
        assert result.stderr.count("\n") >= 2, result.stderr  # the bad lines were reported
        dry_err.append(result.stderr)

    needles = samples.needles([write_key, auth_header(write_key), auth_header(write_key).split()[1]])
    # the needles do match what the records carry: the consumed records hold the raw email addresses and
    # phone numbers, and so do the dead letters' values (the original records, kept for replay)
    consumed = b"".join(m.value() or b"" for m in read_all(kafka_bootstrap, cfg.routes["purchase_completed"].topic))
    assert {"an email address", "a phone number"} <= {label for n, label in needles.items() if n.encode() in consumed}
    dl_values = b"".join(m.value() or b"" for m, _ in dl_records)
    assert any(n.encode() in dl_values for n, label in needles.items() if label == "an email address")
    assert_clean("the worker's output (logs, librdkafka, exceptions)", logs, needles)
    assert_clean("the /metrics exposition", metrics, needles)
    assert_clean("the dead-letter headers", repr(dls), needles)
    assert_clean("the dry run's stderr", "\n".join(dry_err), needles)


def test_a_rejected_write_key_stops_the_worker_without_quoting_it(kafka_bootstrap, emulator_for, tmp_path):
    """401 from the destination: the worker stops (exit 3) and says so, without the key it used."""
    emu = emulator_for(f"the-right-key-{os.urandom(4).hex()}")
    wrong_key = f"wk-wrong-{os.urandom(6).hex()}"
    cfg, path = _config(tmp_path, kafka_bootstrap, emu, wrong_key, _free_port())
    route = cfg.routes["purchase_completed"]
    samples = Samples(seed=78, per_event=25)
    records = [r for r in samples.records["purchase_completed"] if isinstance(r, dict)]
    create_topics(kafka_bootstrap, [route.topic, route.dlt])
    produce(kafka_bootstrap, route.topic, encoded(cfg.schema_path(route), records))
    log_path = tmp_path / "worker.log"
    proc = _start_worker(path, log_path)
    try:
        code = proc.wait(90)
    except subprocess.TimeoutExpired:
        code = _stop(proc)
        raise AssertionError(f"worker kept running with a rejected write key:\n{log_path.read_text()[-3000:]}") from None
    logs = log_path.read_text(errors="replace")
    assert code == 3, logs[-3000:]
    assert "401" in logs, logs[-3000:]
    assert_clean("the worker's output", logs, samples.needles([wrong_key, auth_header(wrong_key).split()[1]]))
