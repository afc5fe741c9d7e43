"""`s2s-bridge demo`: every destination gets some events, and nothing is lost (issue 14)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

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


def test_demo_output_is_quiet_and_ends_with_the_summary() -> None:
    """Issue 15: the real CLI's output (stdout and stderr, where librdkafka writes when no `logger` is
    set) has no raw librdkafka line (`%3|...|FAIL|...`), only progress and the summary. The demo starts
    its own broker, as a user's run does (the session's broker already holds the other test's records)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "S2S_BRIDGE_KAFKA_MODE")}
    done = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--events", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, lines
    assert not [line for line in lines if re.match(r"^%\d+\|", line)], lines
    assert [line for line in lines if line.startswith("lost ")] == ["lost           0"], lines
    assert any(line.startswith("total ") for line in lines), lines
    # nothing that looks like an error: no log line at WARNING or above, no traceback
    assert not [line for line in lines if re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b", line)], lines
