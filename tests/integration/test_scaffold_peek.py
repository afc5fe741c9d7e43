"""Wiring a topic the way the README says, on the real broker: `scaffold` a route from each shipped
schema, take its output unchanged into a config, `check --config-only` it, then `peek` the topic.
Every good sample is sent and the only rejections are those the samples are built to cause."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from streams.codec import encode_plain, load_schema_file, parse
from streams.dev.demo import bad_records
from streams.dev.samples import EVENTS, SampleFactory
from tests.integration.harness import REPO, create_topics, make_config

pytestmark = pytest.mark.kafka

GOOD = 12
# what each of demo.bad_records' records must come to, and nothing else
BAD_OUTCOMES = {
    "undecodable": ("rejected", "decode", "undecodable"),
    "no identifier": ("rejected", "enrich", "missing_identifier"),
    "no country": ("rejected", "enrich", "missing_country"),
    "consent denied": ("filtered", "consent", "consent_denied"),
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("event", EVENTS)
def test_scaffolded_route_peeks_real_traffic_without_surprises(event: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    cfg, cfg_path = make_config(tmp_path, kafka_bootstrap, "http://127.0.0.1:9")  # nothing is sent
    topic = f"{event}.{cfg.kafka.group_id}"
    schema_file = REPO / "avro_schemas" / f"{event}.avsc"

    scaffolded = _cli("scaffold", "--topic", topic, "--route", event, "--schema", str(schema_file))
    assert scaffolded.returncode == 0, scaffolded.stderr
    raw = yaml.safe_load(cfg_path.read_text())
    raw["routes"] = yaml.safe_load(scaffolded.stdout)["routes"]  # the output, unchanged
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    checked = _cli("check", "--config-only", "--config", str(cfg_path))
    assert checked.returncode == 0, checked.stderr
    assert "config OK: 1 route," in checked.stdout

    # the demo's samples: good ones, then one of each deliberately bad kind (customer events only)
    schema = parse(load_schema_file(schema_file))
    factory = SampleFactory(seed=42)
    kinds: list[str] = []
    values: list[bytes] = []
    for rec in factory.stream(event, GOOD):
        kinds.append("good")
        values.append(encode_plain(schema, rec))
    if event != "market_offer_assignment":
        for kind, bad in bad_records(lambda **kw: factory.record(event, **kw)):
            kinds.append(kind)
            values.append(bad if isinstance(bad, bytes) else encode_plain(schema, bad))
    create_topics(kafka_bootstrap, [topic], 1)  # one partition: offset i is the i-th record
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0

    peeked = _cli("peek", "--config", str(cfg_path), "--route", event, "--first", str(len(values)), "--json")
    assert peeked.returncode == 0, peeked.stderr
    out = peeked.stdout.splitlines()
    summary = json.loads(out[-1])
    sent = {json.loads(line)["record"] for line in out[:-1]}
    not_sent = {d["record"]: (d["outcome"], d["stage"], d["reason"]) for d in map(json.loads, peeked.stderr.splitlines()[:-1])}

    expected_sent = {f"0:{i}" for i, k in enumerate(kinds) if k == "good"}
    assert sent == expected_sent
    assert not_sent == {f"0:{i}": BAD_OUTCOMES[k] for i, k in enumerate(kinds) if k != "good"}
    counts: Counter[str] = Counter(o for o, _, _ in not_sent.values())
    assert summary == {"records": len(values), "sent": GOOD, "rejected": counts["rejected"], "filtered": counts["filtered"]}

    # each payload has what the scaffold placed: an event id and timestamp, and for a customer
    # event the user's hashed identifiers and country
    payloads: list[dict[str, Any]] = [json.loads(line)["payload"] for line in out[:-1]]
    for p in payloads:
        assert p["event"]["eventId"] and p["event"]["eventTimestamp"]
        if event != "market_offer_assignment":
            assert len(p["user"]["email_sha256"]) == 64 and p["user"]["country"]
