"""`s2s-bridge demo`: every destination gets some events, and nothing is lost (issue 14)."""

from __future__ import annotations

import json

from streams.dev.demo import run_demo

#: the reasons of the demo's deliberately bad records: nothing else may be dead-lettered
DELIBERATE = {"decode:undecodable", "enrich:missing_identifier", "enrich:missing_country"}


def test_demo_routes_to_three_destinations_and_loses_nothing(kafka_bootstrap, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("S2S_BRIDGE_KAFKA_MODE", "external")
    code = run_demo(per_event=8, as_json=True, timeout=120)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, summary
    assert summary["lost"] == 0 and summary["worker_exit"] == 0
    per = summary["destinations"]
    assert set(per) == {"zeotap", "audiohook", "activation"}
    for dest, d in per.items():
        assert d["delivered"] > 0, (dest, d)
        assert d["lost"] == 0, (dest, d)
        # each destination settles every record it was given: delivered, filtered or dead-lettered
        assert d["produced"] == d["delivered"] + sum(d["filtered"].values()) + sum(d["dead_lettered"].values())
        assert set(d["dead_lettered"]) <= DELIBERATE, (dest, d["dead_lettered"])
        assert set(d["filtered"]) == {"consent:consent_denied"}, (dest, d["filtered"])
    # the totals (the keys the demo always had) are the sums over the destinations
    assert summary["delivered"] == sum(d["delivered"] for d in per.values())
    assert summary["produced"] == sum(d["produced"] for d in per.values())
    assert sum(summary["dead_lettered"].values()) == sum(sum(d["dead_lettered"].values()) for d in per.values())
